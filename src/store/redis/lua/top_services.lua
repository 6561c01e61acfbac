-- The services with the most incidents over some buckets, ties by name.
-- KEYS     the buckets' service sorted sets (verdict:stats:{B}:svc)
-- ARGV[1]  how many services at most  ARGV[2] a scratch key, deleted here
-- Returns {above, ties}: `above` the members (with scores) scoring more
-- than the last of the top ARGV[1], in any order; `ties` the members with
-- exactly that score, by name, as many as still fit. Sorted sets order
-- equal scores by name, but descending ranges reverse that; fetching the
-- boundary score's members in ascending order keeps ties by name.
local limit = tonumber(ARGV[1])
if #KEYS == 0 or limit < 1 then
  return {{}, {}}
end
redis.call('ZUNIONSTORE', ARGV[2], #KEYS, unpack(KEYS))
local top = redis.call('ZREVRANGE', ARGV[2], 0, limit - 1, 'WITHSCORES')
if #top == 0 then
  redis.call('DEL', ARGV[2])
  return {{}, {}}
end
local last = top[#top]
local above = {}
for i = 1, #top, 2 do
  if tonumber(top[i + 1]) > tonumber(last) then
    table.insert(above, top[i])
    table.insert(above, top[i + 1])
  end
end
local ties = redis.call('ZRANGEBYSCORE', ARGV[2], last, last, 'WITHSCORES', 'LIMIT', 0, limit - #above / 2)
redis.call('DEL', ARGV[2])
return {above, ties}
