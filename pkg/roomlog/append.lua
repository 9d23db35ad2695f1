-- roomlog append: assign the next offset of a room, store the payload in the
-- room's recovery stream and refresh TTLs, all in one atomic step.
--
-- KEYS[1]  meta hash   (fields: epoch, offset)
-- KEYS[2]  stream      (entry id "<offset>-0", field "d" = payload)
-- KEYS[3]  optional idempotency key (string "<offset>:<epoch>")
-- ARGV[1]  payload
-- ARGV[2]  candidate epoch, used only when the room has none
-- ARGV[3]  stream MAXLEN (approximate)
-- ARGV[4]  stream TTL, milliseconds
-- ARGV[5]  meta TTL, milliseconds
-- ARGV[6]  idempotency TTL, milliseconds
--
-- Returns {dup (0|1), offset (decimal string), epoch}.

if KEYS[3] then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    local off, ep = string.match(prev, '^(%d+):(.+)$')
    if not off then
      return redis.error_reply('roomlog: malformed idempotency record')
    end
    return {1, off, ep}
  end
end

local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- New incarnation of the room: offsets restart, and whatever stream a
  -- previous incarnation left behind must not mix with the new one.
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('DEL', KEYS[2])
end

-- string.format keeps the offset exact (no "1e+14" notation) up to 2^53.
local offset = string.format('%d', redis.call('HINCRBY', KEYS[1], 'offset', 1))
local res = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], offset .. '-0', 'd', ARGV[1])
if type(res) == 'table' and res.err then
  -- Scripts do not roll back: undo the bump so no offset is left without
  -- its stream entry.
  redis.call('HINCRBY', KEYS[1], 'offset', -1)
  return res
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if KEYS[3] then
  redis.call('SET', KEYS[3], offset .. ':' .. epoch, 'PX', ARGV[6])
end
return {0, offset, epoch}
