-- A connection opened: KEYS conns (hash conn -> node), closed (zset of
-- closed conns by time), seen (last seen, ms); ARGV conn, node, at, keep.
-- An open that arrives after its close (events may reorder) is ignored.
local at, keep = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', at - keep)
local seen = tonumber(redis.call('GET', KEYS[3]) or '0')
if at > seen then redis.call('SET', KEYS[3], ARGV[3]) end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
