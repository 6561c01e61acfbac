-- Compare-and-set of an incident, publishing the change in the same step
-- (so a dashboard drops a resolved incident at once).
-- KEYS[1]  the incident's hash {v = version, d = record}
-- KEYS[2]  the change stream verdict:changes
-- ARGV[1]  the version the caller read; ARGV[2] the new version
-- ARGV[3]  the new record; ARGV[4] stream length kept
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
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'i', ARGV[3])
apply_stats()
append_audit()
return {1}
