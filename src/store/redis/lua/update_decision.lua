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
-- KEYS[5..7] the chat outbox (due zset, claims hash, pending hash);
--          ARGV[9] the token when the change must reach its chat card
--          (the notifier is on), else ''; ARGV[10] now in ms. The push is
--          notify_push.lua's, so a card update is enqueued in the same
--          atomic step as the change it shows (nothing lost between them).
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
if ARGV[9] ~= '' then
  local c = redis.call('HGET', KEYS[6], ARGV[9])
  if c and tonumber(c) > tonumber(ARGV[10]) then
    local p = redis.call('HGET', KEYS[7], ARGV[9])
    if not p or tonumber(ARGV[10]) < tonumber(p) then
      redis.call('HSET', KEYS[7], ARGV[9], ARGV[10])
    end
  else
    redis.call('ZADD', KEYS[5], 'LT', ARGV[10], ARGV[9])
  end
end
apply_stats()
append_audit()
return {1}
