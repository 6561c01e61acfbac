-- Compare-and-set of a versioned record (an incident or a decision).
-- KEYS[1]  the record's hash {v = version, d = record}
-- ARGV[1]  the version the caller read; ARGV[2] the new version
-- ARGV[3]  the new record; ARGV[4] retention in ms (0: keep forever)
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
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
apply_stats()
append_audit()
return {1}
