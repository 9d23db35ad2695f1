-- Lists again, in asynq's set of groups (KEYS[1]), each group (KEYS[2..],
-- names in ARGV) that still holds tasks.
local n = 0
for i, key in ipairs(KEYS) do
  if i > 1 and redis.call("ZCARD", key) > 0 then
    n = n + redis.call("SADD", KEYS[1], ARGV[i-1])
  end
end
return n
