-- Gives up the execution lease of one decision, if the caller holds it.
-- KEYS[1]  verdict:lease:{TOKEN}
-- ARGV[1]  the replica giving it up
-- Returns 1 when released, 0 when another replica holds it (or nobody).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
