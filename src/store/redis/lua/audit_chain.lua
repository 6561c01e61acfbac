-- One page of a chain's audit events, read through the chain's index
-- (audit.lua writes each event's id there too) instead of the whole trail.
-- KEYS[1] the chain's index stream, KEYS[2] the audit stream.
-- ARGV[1] the XRANGE start ('-' or '(<id>'), ARGV[2] the page size.
-- Returns XRANGE-shaped entries {id, fields}; an event trimmed from the
-- audit stream by retention comes back with no fields (skipped by the
-- reader, the cursor still moves past it).
local ids = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
for _, entry in ipairs(ids) do
  local id = entry[1]
  local got = redis.call('XRANGE', KEYS[2], id, id)
  if got[1] then
    out[#out + 1] = got[1]
  else
    out[#out + 1] = {id, {}}
  end
end
return out
