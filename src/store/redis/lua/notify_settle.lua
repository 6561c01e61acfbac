-- Settles a claimed outbox job, only if the claim is still this one (a
-- worker whose lease lapsed and was taken over settles nothing).
-- KEYS[1] outbox, KEYS[2] claims, KEYS[3] pending, KEYS[4] attempts,
-- KEYS[5] counts. ARGV[1] token, ARGV[2] claim score, ARGV[3] how:
--   'done'   finished; a push made during the claim makes it due again;
--   'defer'  due again at ARGV[4], or at the push made during the claim
--            if earlier (a change must not wait for a grace period);
--   'retry'  due again at ARGV[4] exactly (a rate limit: pushes wait too);
--   'failed' as 'retry', counting an attempt; after ARGV[5] attempts the
--            job is dropped and counted as dead.
-- Returns 1 when the job went to the dead letters, else 0.
local c = redis.call('HGET', KEYS[2], ARGV[1])
if not c or tonumber(c) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local p = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local how = ARGV[3]
if how == 'done' then
  redis.call('HDEL', KEYS[4], ARGV[1])
  if p then
    redis.call('ZADD', KEYS[1], 'XX', p, ARGV[1])
  else
    redis.call('ZREM', KEYS[1], ARGV[1])
  end
  return 0
end
local at = tonumber(ARGV[4])
if how == 'defer' then
  redis.call('HDEL', KEYS[4], ARGV[1])
  if p and tonumber(p) < at then at = tonumber(p) end
end
if how == 'failed' then
  local n = redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
  if n >= tonumber(ARGV[5]) then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[4], ARGV[1])
    redis.call('HINCRBY', KEYS[5], 'dead', 1)
    return 1
  end
end
redis.call('ZADD', KEYS[1], 'XX', at, ARGV[1])
return 0
