-- Single-flight creation of an incident's decision: the new token becomes
-- current only if the current token is still the one the caller saw. The
-- new decision is published to the change stream in the same step.
-- KEYS[1]  verdict:{INC}:current   KEYS[2] the new decision's hash
-- KEYS[3]  verdict:{INC}:history   KEYS[4] the change stream verdict:changes
-- ARGV[1]  the current token the caller saw ('' for none)
-- ARGV[2]  the new token  ARGV[3] its version  ARGV[4] its record
-- ARGV[5]  retention in ms  ARGV[6] history length kept
-- ARGV[7]  decision key prefix, verdict:{INC}:dec: (same hash slot)
-- ARGV[8]  stream length kept
-- KEYS[5]  verdict:analyzing, the index of ANALYZING decisions
-- ARGV[9]  the analysis deadline in ms ('' when not created ANALYZING)
-- then the audit event (audit.lua) and the statistics increments
-- (stats.lua), applied only when created.
-- Returns {1} when created, {2, seq, hash} when the audit chain moved,
-- else {0, the current decision's record or false}.
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then
  if cur then
    return {0, redis.call('HGET', ARGV[7] .. cur, 'd')}
  end
  return {0, false}
end
local moved = audit_moved()
if moved then
  return moved
end
redis.call('HSET', KEYS[2], 'v', ARGV[3], 'd', ARGV[4], 'h' .. ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'd', ARGV[4])
if ARGV[9] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[9], ARGV[2])
end
apply_stats()
append_audit()
return {1}
