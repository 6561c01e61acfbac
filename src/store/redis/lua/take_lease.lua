-- Takes (or renews) the execution lease of one decision.
-- KEYS[1]  verdict:lease:{TOKEN}; KEYS[2] verdict:executing
-- ARGV[1]  the replica asking; ARGV[2] lease length in ms
-- ARGV[3]  lease expiry (ms since the epoch, the caller's clock)
-- ARGV[4]  the token
-- Returns 1 when ARGV[1] holds the lease now (taken, or renewed), else 0:
-- another replica holds it and its lease has not run out.
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
-- XX: a decision that already left EXECUTING is not put back in the index.
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[4])
return 1
