-- An incident's decisions, newest first, in one round trip.
-- KEYS[1] verdict:{INC}:history
-- ARGV[1] decision key prefix, verdict:{INC}:dec:  ARGV[2] how many
-- Returns the decisions' record (expired records are skipped).
local out = {}
for _, tok in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  local d = redis.call('HGET', ARGV[1] .. tok, 'd')
  if d then
    table.insert(out, d)
  end
end
return out
