-- Prepended to every write script, after stats.lua: appends the write's
-- audit event to its chain in the same atomic step as the write. The Rust
-- side (redis/audit.rs) puts six arguments right before the statistics
-- increments (so the script's own argument positions never shift):
--   A+0 the chain's head hash key ('' when auditing is off)
--   A+1 the head's sequence number the event was sealed after ('0': empty)
--   A+2 the event's hash (the new head)
--   A+3 the event's JSON
--   A+4 the audit stream key
--   A+5 the retention cut-off: the oldest stream id kept (MINID ~)
-- A script calls audit_moved() right after its compare-and-set succeeded
-- and before writing anything: when the chain moved since the event was
-- sealed, it returns {2, seq, hash} of the head now (the caller reseals and
-- retries) and the script returns that without writing. append_audit()
-- runs beside apply_stats(); it also indexes the event under its chain
-- (`<head key>:ids`, a stream of the same ids).
local function audit_arg(i)
  local n = tonumber(ARGV[#ARGV])
  return ARGV[#ARGV - n - 6 + i]
end

local function audit_moved()
  local key = audit_arg(0)
  if key == '' then
    return nil
  end
  local head = redis.call('HMGET', key, 'seq', 'hash')
  local seq = head[1] or '0'
  if seq ~= audit_arg(1) then
    return {2, seq, head[2] or ''}
  end
  return nil
end

local function append_audit()
  local key = audit_arg(0)
  if key == '' then
    return
  end
  local seq = tonumber(audit_arg(1)) + 1
  redis.call('HSET', key, 'seq', seq, 'hash', audit_arg(2))
  local id = redis.call('XADD', audit_arg(4), 'MINID', '~', audit_arg(5), '*', 'e', audit_arg(3))
  -- The chain's index: the same id in a stream of the chain's own (the
  -- head's key + ':ids'), so a listing by incident reads that incident's
  -- events only (audit_chain.lua). Ids only grow, so the explicit id is
  -- always accepted.
  redis.call('XADD', key .. ':ids', 'MINID', '~', audit_arg(5), id, 's', seq)
end
