-- Claims the earliest outbox job due by ARGV[1] (ms): its score moves to
-- ARGV[2] (the lease end), so no other worker takes it until then.
-- KEYS[1] outbox. Returns the token, or false.
local first = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, 1)
if #first == 0 then return false end
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], first[1])
return first[1]
