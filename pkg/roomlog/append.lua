-- roomlog append: assign the next offsets of a room to one or more
-- messages, store them in the room's recovery stream and refresh TTLs, all
-- in one atomic step. Runs after appendfn.lua (roomlog_append). One call
-- carries a room's messages in order, so a batch keeps their order even
-- if the script must be loaded again (NOSCRIPT fails the whole call).
--
-- KEYS[1]  meta hash   (fields: epoch, offset)
-- KEYS[2]  stream      (entry id "<offset>-0", field "d" = payload)
-- KEYS[3…] the idempotency keys (string "<offset>:<epoch>") of the
--          messages that have one
-- ARGV[1]  candidate epoch, used only when the room has none
-- ARGV[2]  stream MAXLEN (approximate)
-- ARGV[3]  stream TTL, milliseconds
-- ARGV[4]  meta TTL, milliseconds
-- ARGV[5]  idempotency TTL, milliseconds
-- then per message: payload, index of its idempotency key in KEYS (0: none)
--
-- Returns, per message, dup (0|1), offset (decimal string), epoch. A
-- message that fails (and every one after it, which is not attempted, so
-- that a retry cannot reorder them) gets 2, the error text, "".

local out = {}
local function push(a, b, c)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3] = a, b, c
end
local failed = nil
for i = 6, #ARGV, 2 do
  local payload, k = ARGV[i], tonumber(ARGV[i + 1])
  local done = false
  if not failed and k > 0 then
    local prev = redis.call('GET', KEYS[k])
    if prev then
      local off, ep = string.match(prev, '^(%d+):(.+)$')
      if off then
        push(1, off, ep)
        done = true
      else
        failed = 'roomlog: malformed idempotency record'
      end
    end
  end
  if not failed and not done then
    local offset, epoch = roomlog_append(KEYS[1], KEYS[2], payload, ARGV[1], ARGV[2], ARGV[3], ARGV[4])
    if offset then
      if k > 0 then
        redis.call('SET', KEYS[k], offset .. ':' .. epoch, 'PX', ARGV[5])
      end
      push(0, offset, epoch)
      done = true
    else
      failed = epoch.err or 'roomlog: append failed'
    end
  end
  if not done then
    push(2, failed, '')
  end
end
return out
