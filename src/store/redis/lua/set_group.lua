-- Compare-and-set of an alert group's pointer to the incident it last opened.
-- KEYS[1]  verdict:group:{GROUP}
-- ARGV[1]  the incident id the caller saw ('' for none)
-- ARGV[2]  the incident id to point at
-- Returns {1} when the pointer now holds ARGV[2] (set now, or already),
-- else {0, the id it holds or false}.
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[2] then
  return {1}
end
if (cur or '') ~= ARGV[1] then
  return {0, cur}
end
redis.call('SET', KEYS[1], ARGV[2])
return {1}
