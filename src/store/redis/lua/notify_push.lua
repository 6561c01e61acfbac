-- Makes a token's outbox job due at ARGV[2] (ms), or earlier if it
-- already was. A job claimed under a live lease (its claim score is after
-- ARGV[3], now) is not touched, so no second worker can take it: the push
-- is remembered in the pending hash and applied when the claim settles.
-- KEYS[1] outbox, KEYS[2] claims, KEYS[3] pending; ARGV[1] token.
local c = redis.call('HGET', KEYS[2], ARGV[1])
if c and tonumber(c) > tonumber(ARGV[3]) then
  local p = redis.call('HGET', KEYS[3], ARGV[1])
  if not p or tonumber(ARGV[2]) < tonumber(p) then
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  end
  return 0
end
redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[1])
return 1
