-- roomlog_append: assign the next offset of a room, store the payload in
-- the room's recovery stream and refresh TTLs. A function, so that scripts
-- which change other state in the same atomic step (presence) can include
-- it: the Go side prepends this file to append.lua and to those scripts.
--
-- meta      meta hash key (fields: epoch, offset)
-- stream    stream key (entry id "<offset>-0", field "d" = payload)
-- payload   the stored bytes
-- epoch0    candidate epoch, used only when the room has none
-- maxlen    stream MAXLEN (approximate)
-- stream_ttl, meta_ttl  milliseconds
--
-- Returns offset (decimal string), epoch; or nil, error reply.
local function roomlog_append(meta, stream, payload, epoch0, maxlen, stream_ttl, meta_ttl)
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    -- New incarnation of the room: offsets restart, and whatever stream a
    -- previous incarnation left behind must not mix with the new one.
    epoch = epoch0
    redis.call('HSET', meta, 'epoch', epoch, 'offset', 0)
    redis.call('DEL', stream)
  end
  -- string.format keeps the offset exact (no "1e+14" notation) up to 2^53.
  local offset = string.format('%d', redis.call('HINCRBY', meta, 'offset', 1))
  local res = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, offset .. '-0', 'd', payload)
  if type(res) == 'table' and res.err then
    -- Scripts do not roll back: undo the bump so no offset is left without
    -- its stream entry.
    redis.call('HINCRBY', meta, 'offset', -1)
    return nil, res
  end
  redis.call('PEXPIRE', stream, stream_ttl)
  redis.call('PEXPIRE', meta, meta_ttl)
  return offset, epoch
end
