-- roomlog position: the room's current offset and epoch, creating the epoch
-- (at offset 0) when the room has none, so that a joiner always gets a
-- concrete epoch that the next append continues.
--
-- KEYS[1]  meta hash   (fields: epoch, offset)
-- KEYS[2]  stream
-- ARGV[1]  candidate epoch, used only when the room has none
-- ARGV[2]  meta TTL, milliseconds
--
-- Returns {offset (decimal string), epoch}.

local v = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
local epoch, offset = v[1], v[2]
if not epoch then
  epoch = ARGV[1]
  offset = '0'
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('DEL', KEYS[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {offset or '0', epoch}
