-- Creates an incident unless one with that id exists.
-- KEYS[1] verdict:{INC}:incident  ARGV[1] version  ARGV[2] record
-- then the audit event (audit.lua) and the statistics increments
-- (stats.lua), applied only when created.
-- Returns {1} when created, {0} when the id is taken, {2, seq, hash} when
-- the audit chain moved.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0}
end
local moved = audit_moved()
if moved then
  return moved
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
apply_stats()
append_audit()
return {1}
