-- Compare-and-set of a versioned record (an incident or a decision).
-- KEYS[1]  the record's hash {v = version, d = JSON}
-- ARGV[1]  the version the caller read; ARGV[2] the new version
-- ARGV[3]  the new JSON; ARGV[4] retention in ms (0: keep forever)
-- KEYS[2]  (decisions leaving ANALYZING only) verdict:analyzing, from which
--          ARGV[5], the token, is removed once written
-- Returns {1} when written, else {0, current JSON or false}.
local v = redis.call('HGET', KEYS[1], 'v')
if v ~= ARGV[1] then
  return {0, redis.call('HGET', KEYS[1], 'd')}
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if KEYS[2] then
  redis.call('ZREM', KEYS[2], ARGV[5])
end
return {1}
