-- Creates an incident unless one with that id exists.
-- KEYS[1] verdict:{INC}:incident  ARGV[1] version  ARGV[2] JSON
-- then the statistics increments (stats.lua), applied only when created.
-- Returns 1 when created, 0 when the id is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
apply_stats()
return 1
