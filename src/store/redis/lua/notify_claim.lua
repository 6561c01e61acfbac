-- Claims the earliest outbox job due by ARGV[1] (ms): its score moves to
-- ARGV[2] (the lease end) and the claim is recorded, so no other worker
-- takes it until then. A push remembered for an earlier, lapsed claim is
-- dropped: this pass reads the decision as it is now.
-- KEYS[1] outbox, KEYS[2] claims, KEYS[3] pending. Returns the token, or false.
local first = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, 1)
if #first == 0 then return false end
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], first[1])
redis.call('HSET', KEYS[2], first[1], ARGV[2])
redis.call('HDEL', KEYS[3], first[1])
return first[1]
