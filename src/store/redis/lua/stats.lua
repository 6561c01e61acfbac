-- Prepended to every script that writes a record (see RedisStore::new):
-- applies the statistics increments of the write, which the Rust side
-- (stats::StatDelta) appends to the END of ARGV, after the script's own
-- arguments:
--   ARGV[#ARGV]   how many arguments the increments take (0: none)
--   before it, a sequence of records:
--     'H' key field n     HINCRBY
--     'Z' key member n    ZINCRBY
--     'B' key bin n       BITFIELD key OVERFLOW SAT INCRBY u32 #bin n
--     'E' key unixtime    EXPIREAT (each bucket key's fixed deadline)
-- A script calls apply_stats() right after its compare-and-set succeeded,
-- so the counts change in the same atomic step as the record, or not at
-- all. Being at the end, the increments never shift the script's own
-- argument positions.
local function apply_stats()
  local n = tonumber(ARGV[#ARGV])
  local i = #ARGV - n
  while i < #ARGV do
    local op = ARGV[i]
    if op == 'H' then
      redis.call('HINCRBY', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
      i = i + 4
    elseif op == 'Z' then
      redis.call('ZINCRBY', ARGV[i + 1], ARGV[i + 3], ARGV[i + 2])
      i = i + 4
    elseif op == 'B' then
      redis.call('BITFIELD', ARGV[i + 1], 'OVERFLOW', 'SAT', 'INCRBY', 'u32', '#' .. ARGV[i + 2], ARGV[i + 3])
      i = i + 4
    elseif op == 'E' then
      redis.call('EXPIREAT', ARGV[i + 1], ARGV[i + 2])
      i = i + 3
    else
      error('unknown statistics op ' .. tostring(op))
    end
  end
end
