-- Appends an audit event on its own (a refused call, which changes
-- nothing). Only the audit arguments (audit.lua) and an empty statistics
-- tail. Returns {1} when appended, {2, seq, hash} when the chain moved.
local moved = audit_moved()
if moved then
  return moved
end
append_audit()
return {1}
