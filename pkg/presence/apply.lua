-- presence apply: change one member of one room's presence set and append
-- the resulting event to the room's presence stream, in one atomic step, so
-- the order of events in the stream is the order in which the set changed.
-- Runs after roomlog's appendfn.lua (roomlog_append). Every key carries the
-- presence channel's hash tag.
--
-- KEYS[1]  members  hash  member id → member JSON (what presence.get returns)
-- KEYS[2]  records  hash  member id → internal record (cjson, strings only:
--                         q seq, c conn, n node, cl client, s since ms,
--                         e "seq:offset:epoch" of the member's last event)
-- KEYS[3]  clients  hash  client id → number of its members
-- KEYS[4]  order    zset  member ids, score 0 (paging by id)
-- KEYS[5]  tomb     string "seq:offset:epoch" of the member's last leave
-- KEYS[6]  meta, KEYS[7] stream   the presence channel's room log
--
-- ARGV[1]  action: enter | leave | detach | sweep
-- ARGV[2]  member id          ARGV[3]  seq (unix microseconds, decimal)
-- ARGV[4]  client id          ARGV[5]  connection id     ARGV[6] node
-- ARGV[7]  member JSON without its closing '"since":…}' (enter)
-- ARGV[8]  now, unix ms
-- ARGV[9..11]  envelope heads for join, update, leave (data appended here)
-- ARGV[12] candidate epoch    ARGV[13] stream MAXLEN
-- ARGV[14] stream TTL ms      ARGV[15] meta TTL ms     ARGV[16] tombstone TTL ms
--
-- Returns {kind, offset, epoch, action, payload, node}: kind 0 = nothing
-- changed (stale, repeated or not applicable), 1 = a new event at offset
-- with this stored payload, 2 = this exact change was applied before and
-- its event is at offset (a retry: publish it again; receivers drop
-- duplicate offsets). node is the node that held the member before this
-- change when it no longer does (a leave, or a takeover by another node),
-- so the caller can drop the member from that node's index.

local action, member, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])

-- uvarint as Go's binary.AppendUvarint writes it; exact below 2^53.
local function uvarint(n)
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end

local function emit(head, data, kind)
  local payload = head .. uvarint(#data) .. data
  local offset, epoch = roomlog_append(KEYS[6], KEYS[7], payload, ARGV[12], ARGV[13], ARGV[14], ARGV[15])
  if not offset then
    return nil, epoch
  end
  return {1, offset, epoch, kind, payload, ''}
end

-- A retry of a change whose event is recorded as "seq:offset:epoch".
local function replay(rec, kind)
  if not rec then return nil end
  local q, off, ep = string.match(rec, '^(%d+):(%d+):(.+)$')
  if q and tonumber(q) == seq then
    return {2, off, ep, kind, '', ''}
  end
  return nil
end

local raw = redis.call('HGET', KEYS[2], member)
local rec = raw and cjson.decode(raw)

if action == 'enter' then
  if rec then
    local q = tonumber(rec.q)
    if q == seq then
      return replay(rec.e, 'update') or {0, '', '', '', '', ''}
    end
    if q > seq then
      return {0, '', '', '', '', ''}
    end
    local moved = ''
    if rec.n ~= ARGV[6] then moved = rec.n end
    rec.q, rec.c, rec.n = ARGV[3], ARGV[5], ARGV[6]
    local json = ARGV[7] .. ',"since":' .. rec.s .. '}'
    local old = redis.call('HGET', KEYS[1], member)
    if old == json then
      -- Same data: a resumed connection taking its member over. No event.
      redis.call('HSET', KEYS[2], member, cjson.encode(rec))
      return {0, '', '', '', '', moved}
    end
    local res, err = emit(ARGV[10], json, 'update')
    if not res then return err end
    res[6] = moved
    rec.e = ARGV[3] .. ':' .. res[2] .. ':' .. res[3]
    redis.call('HSET', KEYS[1], member, json)
    redis.call('HSET', KEYS[2], member, cjson.encode(rec))
    return res
  end
  local tomb = redis.call('GET', KEYS[5])
  if tomb then
    local tq = tonumber(string.match(tomb, '^(%d+)'))
    if tq and tq >= seq then
      -- The member left after this change was made: it arrived late.
      return {0, '', '', '', '', ''}
    end
  end
  local json = ARGV[7] .. ',"since":' .. ARGV[8] .. '}'
  local res, err = emit(ARGV[9], json, 'join')
  if not res then return err end
  rec = {q = ARGV[3], c = ARGV[5], n = ARGV[6], cl = ARGV[4], s = ARGV[8],
         e = ARGV[3] .. ':' .. res[2] .. ':' .. res[3]}
  redis.call('HSET', KEYS[1], member, json)
  redis.call('HSET', KEYS[2], member, cjson.encode(rec))
  redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
  redis.call('ZADD', KEYS[4], 0, member)
  return res
end

-- leave, detach, sweep
if not rec then
  local tomb = redis.call('GET', KEYS[5])
  local again = replay(tomb, 'leave')
  if again then return again end
  local tq = tomb and tonumber(string.match(tomb, '^(%d+)'))
  if action == 'leave' and (not tq or tq < seq) then
    -- Remember the leave, so an enter made before it that arrives after
    -- it does not bring the member back.
    redis.call('SET', KEYS[5], ARGV[3] .. ':0:', 'PX', ARGV[16])
  end
  return {0, '', '', '', '', ''}
end
if tonumber(rec.q) > seq then
  return {0, '', '', '', '', ''} -- a newer change (a resumed connection) holds the member
end
if action == 'detach' and rec.c ~= ARGV[5] then
  return {0, '', '', '', '', ''} -- another connection took the member over
end
if action == 'sweep' and rec.n ~= ARGV[6] then
  return {0, '', '', '', '', ''} -- the member lives on another node now
end
local json = redis.call('HGET', KEYS[1], member) or '{}'
local res, err = emit(ARGV[11], json, 'leave')
if not res then return err end
res[6] = rec.n
redis.call('HDEL', KEYS[1], member)
redis.call('HDEL', KEYS[2], member)
redis.call('ZREM', KEYS[4], member)
if redis.call('HINCRBY', KEYS[3], rec.cl, -1) <= 0 then
  redis.call('HDEL', KEYS[3], rec.cl)
end
redis.call('SET', KEYS[5], ARGV[3] .. ':' .. res[2] .. ':' .. res[3], 'PX', ARGV[16])
return res
