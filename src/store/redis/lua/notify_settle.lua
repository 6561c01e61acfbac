-- Settles a claimed outbox job, only if its score is still the claim's
-- (a change pushed since moved it: then the job stays due).
-- KEYS[1] outbox, KEYS[2] attempts, KEYS[3] counts.
-- ARGV[1] token, ARGV[2] claimed score, ARGV[3] 'done' | 'defer' | 'failed',
-- ARGV[4] next due (ms), ARGV[5] max attempts.
-- Returns 1 when a failed job went to the dead letters, else 0.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == 'done' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
if ARGV[3] == 'failed' then
  local n = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  if n >= tonumber(ARGV[5]) then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HINCRBY', KEYS[3], 'dead', 1)
    return 1
  end
end
redis.call('ZADD', KEYS[1], 'XX', ARGV[4], ARGV[1])
return 0
