-- roomlog append: assign the next offset of a room, store the payload in the
-- room's recovery stream and refresh TTLs, all in one atomic step. Runs
-- after appendfn.lua (roomlog_append).
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

local offset, epoch = roomlog_append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
if not offset then
  return epoch
end
if KEYS[3] then
  redis.call('SET', KEYS[3], offset .. ':' .. epoch, 'PX', ARGV[6])
end
return {0, offset, epoch}
