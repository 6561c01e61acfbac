-- A decision read by its token alone (a token this replica has not seen),
-- in one round trip instead of two: the token index, then the record.
-- KEYS[1] verdict:token:<TOKEN>
-- ARGV[1] the token; ARGV[2] the decision key prefix 'verdict:{'
-- The decision's key, verdict:{<INC>}:dec:<TOKEN>, is built here from the
-- incident id the index names: it lies in the incident's hash slot, not the
-- index's, which a single Redis (what verdict targets) allows; the id is
-- checked by the caller, and a malformed one can only name a missing key.
-- Returns {incident id, record} / {incident id, false} / {false, false}.
local id = redis.call('GET', KEYS[1])
if not id then
  return {false, false}
end
return {id, redis.call('HGET', ARGV[2] .. id .. '}:dec:' .. ARGV[1], 'd')}
