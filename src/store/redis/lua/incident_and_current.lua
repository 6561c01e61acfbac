-- An incident and its current decision in one round trip.
-- KEYS[1] verdict:{INC}:incident  KEYS[2] verdict:{INC}:current
-- ARGV[1] decision key prefix, verdict:{INC}:dec: (same hash slot)
-- Returns {incident record or false, decision record or false}.
local inc = redis.call('HGET', KEYS[1], 'd')
local cur = redis.call('GET', KEYS[2])
local dec = false
if cur then
  dec = redis.call('HGET', ARGV[1] .. cur, 'd')
end
return {inc, dec}
