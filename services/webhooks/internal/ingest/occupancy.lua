-- Room occupancy: which connections are in a room, cluster-wide, and the
-- transitions between empty and occupied.
-- KEYS[1] members hash: connection id -> "<node>|<key>|<flag>"
-- KEYS[2] the connection's tombstone: "<key>|<flag>" of its last leave
-- ARGV: action (join, leave, sweep), connection id, node, key (orders one
-- connection's changes: at*2 for a join, at*2+1 for a leave), tombstone
-- TTL in ms.
-- Returns {transition, replay}: transition 1 = occupied, -1 = vacated,
-- 0 = none; replay 1 when this change had been applied before (a retried
-- task), with the transition it made then.
local members, tomb = KEYS[1], KEYS[2]
local action, conn, node, key, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])

local cur = redis.call('HGET', members, conn)
local curNode, curKey, curFlag
if cur then
  curNode, curKey, curFlag = string.match(cur, '^(.*)|(%d+)|(%d)$')
  curKey, curFlag = tonumber(curKey), tonumber(curFlag)
end

if action == 'join' then
  if cur then
    if curKey == key then return {curFlag, 1} end
    return {0, 0}
  end
  local t = redis.call('GET', tomb)
  if t then
    local tk = tonumber(string.match(t, '^(%d+)|'))
    if tk and tk > key then return {0, 0} end -- left after this join: stale
  end
  local flag = 0
  if redis.call('HLEN', members) == 0 then flag = 1 end
  redis.call('HSET', members, conn, node .. '|' .. key .. '|' .. flag)
  return {flag, 0}
end

if action == 'leave' then
  if not cur then
    local t = redis.call('GET', tomb)
    if t then
      local tk, tf = string.match(t, '^(%d+)|(%d)$')
      if tonumber(tk) == key then return {-tonumber(tf), 1} end
      if tonumber(tk) > key then return {0, 0} end
    end
    redis.call('SET', tomb, key .. '|0', 'PX', ttl) -- a join older than this may still come
    return {0, 0}
  end
  if curKey > key then return {0, 0} end -- joined again since
  redis.call('HDEL', members, conn)
  local flag = 0
  if redis.call('HLEN', members) == 0 then flag = 1 end
  redis.call('SET', tomb, key .. '|' .. flag, 'PX', ttl)
  return {-flag, 0}
end

-- sweep: the connection's node died; it leaves if that node still holds it.
if not cur or curNode ~= node then return {0, 0} end
redis.call('HDEL', members, conn)
if redis.call('HLEN', members) == 0 then return {-1, 0} end
return {0, 0}
