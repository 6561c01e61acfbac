-- Compare-and-set of a decision, publishing the change in the same step.
-- KEYS[1]  the decision's hash {v = version, d = record, h<N> = record of version N}
-- KEYS[2]  the change stream verdict:changes
-- ARGV[1]  the version the caller read; ARGV[2] the new version
-- ARGV[3]  the new record; ARGV[4] retention in ms; ARGV[5] stream length kept
-- KEYS[3]  verdict:analyzing; ARGV[6] the token when the decision leaves
--          ANALYZING (removed from that index), else ''
-- KEYS[4]  verdict:executing; ARGV[7] 'enter' when the decision is written
--          EXECUTING (indexed with score ARGV[8], ms), 'leave' when it is
--          written COMPLETED or ERROR (removed), else ''
-- then the audit event (audit.lua) and the statistics increments
-- (stats.lua), applied only when written.
-- Returns {1} when written, {2, seq, hash} when the audit chain moved,
-- else {0, current record or false}.
local v = redis.call('HGET', KEYS[1], 'v')
if v ~= ARGV[1] then
  return {0, redis.call('HGET', KEYS[1], 'd')}
end
local moved = audit_moved()
if moved then
  return moved
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3], 'h' .. ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'd', ARGV[3])
if ARGV[6] ~= '' then
  redis.call('ZREM', KEYS[3], ARGV[6])
end
if ARGV[7] == 'enter' then
  redis.call('ZADD', KEYS[4], 'NX', ARGV[8], ARGV[6])
elseif ARGV[7] == 'leave' then
  redis.call('ZREM', KEYS[4], ARGV[6])
end
apply_stats()
append_audit()
return {1}
