-- A connection closed: KEYS as open.lua; ARGV conn, at, keep. The close is
-- remembered for keep ms so a late open of the same conn is ignored.
local at, keep = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], at, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', at - keep)
redis.call('PEXPIRE', KEYS[2], keep)
local seen = tonumber(redis.call('GET', KEYS[3]) or '0')
if at > seen then redis.call('SET', KEYS[3], ARGV[2]) end
return 1
