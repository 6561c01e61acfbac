-- Takes or renews a lease. KEYS[1] lease; ARGV[1] owner, ARGV[2] ttl ms,
-- ARGV[3] 'take' or 'release'. Returns 1 when ARGV[1] holds it after.
local cur = redis.call('GET', KEYS[1])
if ARGV[3] == 'release' then
  if cur == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 0
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
