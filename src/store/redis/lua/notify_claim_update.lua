-- Claims one update for handling. KEYS[1] lease, KEYS[2] offset;
-- ARGV[1] owner, ARGV[2] update id. Only the lease holder, and only an
-- update the offset has not passed: the offset then moves past it.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local off = tonumber(redis.call('GET', KEYS[2]) or '0')
local id = tonumber(ARGV[2])
if id < off then return 0 end
redis.call('SET', KEYS[2], string.format('%d', id + 1))
return 1
