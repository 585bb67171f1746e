# ruff: noqa: E501 (the Lua of the scripts keeps one statement a line)
"""The chat's changes as Redis Lua scripts: each checks, changes and publishes in one step.

With a broker (broker.py), what the hub keeps in memory without one lives in Redis, and every
change is one of these scripts, run with EVALSHA: Redis runs a script whole, with nothing in
between, so the checks see the state the change is made to, and the event a change publishes
on the one channel ``chat:events`` takes its place in the order of every other event. A room's
seq is assigned by the script that appends the message to the room's history and publishes it,
so the order of seqs is the order in which every node receives the messages.

The keys (``P`` is ``chat:``):

    rooms             set of room names        room:R      hash topic private epoch last online
    members:R         set of users             invited:R   set of users invited to private R
    hist:R            list of the last messages (their JSON), history_size at most
    urooms:U          set of U's rooms         invites:U   set of rooms U is invited to
    seen              hash user -> last_seen ms (0: online or never seen); a known user has one
    conns             hash user -> connections, every node together (a user online has one)
    node:N            hash user -> connections on node N
    nodes             sorted set node -> its last heartbeat (ms)
    state:U           hash key -> JSON value   directs     counter of direct message ids

An event is one byte of kind, then the rest: ``R`` ``room\\npayload`` (fan the payload out to
the room's members), and for the others a JSON header and ``\\n`` and a payload: ``J`` and
``L`` (a member joined or left; ``push`` says whether the room gets the push), ``P`` (a user
came online or went offline; ``rooms`` are the ones that get the push), ``U`` (send the payload
to the named users' connections).

A script refuses with ``{code, detail}``; it succeeds with ``{"", ...}``.
"""

from __future__ import annotations

PREFIX = "chat:"
CHANNEL = PREFIX + "events"

_COMMON = r"""
local P = 'chat:'
local function publish(kind, header, payload)
  redis.call('PUBLISH', P .. 'events', kind .. cjson.encode(header) .. '\n' .. (payload or ''))
end
local function pushes(room, limit)
  return redis.call('SCARD', P .. 'members:' .. room) <= limit
end
local function known(user)
  return redis.call('HEXISTS', P .. 'seen', user) == 1
end
local function online(user)
  return redis.call('HEXISTS', P .. 'conns', user) == 1
end
local function room_info(room)
  local h = redis.call('HMGET', P .. 'room:' .. room, 'topic', 'private', 'epoch', 'last', 'online')
  return {room, h[1], h[2], redis.call('SCARD', P .. 'members:' .. room), h[5], h[3], h[4]}
end
local function admits(user, room, private)
  return private ~= '1' or redis.call('SISMEMBER', P .. 'members:' .. room, user) == 1
    or redis.call('SISMEMBER', P .. 'invited:' .. room, user) == 1
end
local function drop_room(room)
  for _, user in ipairs(redis.call('SMEMBERS', P .. 'invited:' .. room)) do
    redis.call('SREM', P .. 'invites:' .. user, room)
  end
  redis.call('DEL', P .. 'room:' .. room, P .. 'members:' .. room, P .. 'invited:' .. room,
    P .. 'hist:' .. room)
  redis.call('SREM', P .. 'rooms', room)
end
local function join(user, room, limit)
  redis.call('SADD', P .. 'members:' .. room, user)
  redis.call('SADD', P .. 'urooms:' .. user, room)
  if redis.call('SREM', P .. 'invited:' .. room, user) == 1 then
    redis.call('SREM', P .. 'invites:' .. user, room)
  end
  if online(user) then redis.call('HINCRBY', P .. 'room:' .. room, 'online', 1) end
  publish('J', {room = room, user = user, push = pushes(room, limit)})
end
local function leave(user, room, limit)
  publish('L', {room = room, user = user, push = pushes(room, limit)})
  redis.call('SREM', P .. 'members:' .. room, user)
  redis.call('SREM', P .. 'urooms:' .. user, room)
  if online(user) then redis.call('HINCRBY', P .. 'room:' .. room, 'online', -1) end
  if redis.call('HGET', P .. 'room:' .. room, 'private') == '1'
      and redis.call('SCARD', P .. 'members:' .. room) == 0 then
    drop_room(room)
  end
end
local function came_online(user, limit)
  redis.call('HSET', P .. 'seen', user, 0)
  local push = {}
  for _, room in ipairs(redis.call('SMEMBERS', P .. 'urooms:' .. user)) do
    redis.call('HINCRBY', P .. 'room:' .. room, 'online', 1)
    if pushes(room, limit) then push[#push + 1] = room end
  end
  publish('P', {user = user, online = true, rooms = push})
end
local function went_offline(user, at, limit)
  redis.call('HDEL', P .. 'conns', user)
  local rooms = redis.call('SMEMBERS', P .. 'urooms:' .. user)
  local push = {}
  for _, room in ipairs(rooms) do
    redis.call('HINCRBY', P .. 'room:' .. room, 'online', -1)
    if pushes(room, limit) then push[#push + 1] = room end
  end
  if string.sub(user, 1, 1) == '~' then
    -- a guest ends with its connection: it leaves its rooms, loses invitations and state
    for _, room in ipairs(rooms) do leave(user, room, limit) end
    for _, room in ipairs(redis.call('SMEMBERS', P .. 'invites:' .. user)) do
      redis.call('SREM', P .. 'invited:' .. room, user)
    end
    redis.call('DEL', P .. 'invites:' .. user, P .. 'state:' .. user, P .. 'urooms:' .. user)
    redis.call('HDEL', P .. 'seen', user)
  else
    redis.call('HSET', P .. 'seen', user, at)
    publish('P', {user = user, online = false, last_seen = tonumber(at), rooms = push})
  end
end
-- Add n (negative: remove) connections of user on node; online and offline follow.
local function add_conns(user, node, n, limit, at)
  if n == 0 then return end
  local total = redis.call('HINCRBY', P .. 'conns', user, n)
  if redis.call('HINCRBY', P .. 'node:' .. node, user, n) <= 0 then
    redis.call('HDEL', P .. 'node:' .. node, user)
  end
  if n > 0 and total == n then
    came_online(user, limit)
  elseif total <= 0 then
    went_offline(user, at, limit)
  end
end
local function room_checked(user, room)
  local private = redis.call('HGET', P .. 'room:' .. room, 'private')
  if not private then return nil, {'no-such-room', 'no room is named ' .. room} end
  return private, nil
end
local function member_checked(user, room)
  local private, err = room_checked(user, room)
  if err then return err end
  if redis.call('SISMEMBER', P .. 'members:' .. room, user) == 0 then
    return {'not-a-member', 'you are not a member of ' .. room}
  end
  return nil
end
"""

# Each script: ARGV as documented on its first line.
_SCRIPTS = {
    # user guest node max_connections push_limit now -> {"", online, rooms}
    "hello": r"""
local user, guest, node = ARGV[1], ARGV[2] == '1', ARGV[3]
local most, limit, now = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local have = tonumber(redis.call('HGET', P .. 'conns', user) or '0')
if guest and have > 0 then return {'name-taken', 'a guest named ' .. user .. ' is online'} end
if have >= most then
  return {'too-many-connections', user .. ' holds ' .. have .. ' connections already (max_connections_per_user)'}
end
add_conns(user, node, 1, limit, now)
return {'', redis.call('HLEN', P .. 'conns'), redis.call('SMEMBERS', P .. 'urooms:' .. user)}
""",
    # user node push_limit now: one connection of user on node closed
    "bye": r"""
local user, node = ARGV[1], ARGV[2]
if tonumber(redis.call('HGET', P .. 'node:' .. node, user) or '0') > 0 then
  add_conns(user, node, -1, tonumber(ARGV[3]), ARGV[4])
end
return {''}
""",
    # node now push_limit [user count]...: node holds exactly these connections (a re-register)
    "sync": r"""
local node, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local want = {}
for i = 4, #ARGV, 2 do want[ARGV[i]] = tonumber(ARGV[i + 1]) end
local have = redis.call('HGETALL', P .. 'node:' .. node)
for i = 1, #have, 2 do
  local user = have[i]
  add_conns(user, node, (want[user] or 0) - tonumber(have[i + 1]), limit, now)
  want[user] = nil
end
for user, n in pairs(want) do add_conns(user, node, n, limit, now) end
redis.call('ZADD', P .. 'nodes', now, node)
return {''}
""",
    # node now dead_after_ms push_limit sweep: a heartbeat, and (sweep = 1) the sweep of the
    # nodes that missed theirs -> {"", alive (0: this node was swept: sync), [node users]...}
    "beat": r"""
local node, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
if ARGV[5] ~= '1' then
  if not redis.call('ZSCORE', P .. 'nodes', node) then return {'', 0} end
  redis.call('ZADD', P .. 'nodes', now, node)
  return {'', 1}
end
local alive = 1
if redis.call('ZSCORE', P .. 'nodes', node) then
  redis.call('ZADD', P .. 'nodes', now, node)
else
  alive = 0
end
local result = {'', alive}
local dead = redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', now - tonumber(ARGV[3]), 'WITHSCORES')
for i = 1, #dead, 2 do
  local gone, at = dead[i], dead[i + 1]
  local users = redis.call('HGETALL', P .. 'node:' .. gone)
  for j = 1, #users, 2 do add_conns(users[j], gone, -tonumber(users[j + 1]), limit, at) end
  redis.call('DEL', P .. 'node:' .. gone)
  redis.call('ZREM', P .. 'nodes', gone)
  result[#result + 1] = gone
  result[#result + 1] = #users / 2
end
return result
""",
    # node now push_limit: a node's goodbye, its connections closed
    "goodbye": r"""
local node, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local users = redis.call('HGETALL', P .. 'node:' .. node)
for j = 1, #users, 2 do add_conns(users[j], node, -tonumber(users[j + 1]), limit, now) end
redis.call('DEL', P .. 'node:' .. node)
redis.call('ZREM', P .. 'nodes', node)
return {''}
""",
    # history_size [room epoch]...: the rooms of the `rooms` setting, made if missing
    "ensure": r"""
for i = 2, #ARGV, 2 do
  local room = ARGV[i]
  if redis.call('EXISTS', P .. 'room:' .. room) == 0 then
    redis.call('HSET', P .. 'room:' .. room, 'topic', '', 'private', '0', 'epoch', ARGV[i + 1],
      'last', 0, 'online', 0)
    redis.call('SADD', P .. 'rooms', room)
  end
end
return {''}
""",
    # user room private topic epoch max_rooms max_rooms_per_user push_limit -> {"", info}
    "create": r"""
local user, room = ARGV[1], ARGV[2]
if redis.call('EXISTS', P .. 'room:' .. room) == 1 then return {'room-exists', 'a room named ' .. room .. ' exists already'} end
local count = redis.call('SCARD', P .. 'rooms')
if count >= tonumber(ARGV[6]) then return {'rooms-full', 'the server holds ' .. count .. ' rooms (max_rooms)'} end
local mine = redis.call('SCARD', P .. 'urooms:' .. user)
if mine >= tonumber(ARGV[7]) then return {'too-many-rooms', 'already in ' .. mine .. ' rooms (max_rooms_per_user)'} end
redis.call('HSET', P .. 'room:' .. room, 'topic', ARGV[4], 'private', ARGV[3], 'epoch', ARGV[5],
  'last', 0, 'online', 0)
redis.call('SADD', P .. 'rooms', room)
join(user, room, tonumber(ARGV[8]))
return {'', room_info(room)}
""",
    # user room max_rooms_per_user push_limit -> {"", info}
    "join": r"""
local user, room = ARGV[1], ARGV[2]
local private, err = room_checked(user, room)
if err then return err end
if redis.call('SISMEMBER', P .. 'members:' .. room, user) == 0 then
  if not admits(user, room, private) then return {'not-invited', room .. ' is private: a member must invite you'} end
  local mine = redis.call('SCARD', P .. 'urooms:' .. user)
  if mine >= tonumber(ARGV[3]) then return {'too-many-rooms', 'already in ' .. mine .. ' rooms (max_rooms_per_user)'} end
  join(user, room, tonumber(ARGV[4]))
end
return {'', room_info(room)}
""",
    # user room push_limit
    "leave": r"""
local user, room = ARGV[1], ARGV[2]
local err = member_checked(user, room)
if err then return err end
leave(user, room, tonumber(ARGV[3]))
return {''}
""",
    # user room invited payload
    "invite": r"""
local user, room, invited = ARGV[1], ARGV[2], ARGV[3]
local err = member_checked(user, room)
if err then return err end
if not known(invited) then return {'no-such-user', 'no user is named ' .. invited} end
if redis.call('SISMEMBER', P .. 'members:' .. room, invited) == 0
    and redis.call('SADD', P .. 'invited:' .. room, invited) == 1 then
  redis.call('SADD', P .. 'invites:' .. invited, room)
  publish('U', {users = {invited}}, ARGV[4])
end
return {''}
""",
    # user room topic payload
    "topic": r"""
local user, room = ARGV[1], ARGV[2]
local err = member_checked(user, room)
if err then return err end
redis.call('HSET', P .. 'room:' .. room, 'topic', ARGV[3])
redis.call('PUBLISH', P .. 'events', 'R' .. room .. '\n' .. ARGV[4])
return {''}
""",
    # user room before_seq after_seq history_size -> {"", seq}: the payload is ARGV[3] .. seq ..
    # ARGV[4], the message's JSON with its seq in place
    "post": r"""
local user, room = ARGV[1], ARGV[2]
if redis.call('SISMEMBER', P .. 'members:' .. room, user) == 0 then
  if redis.call('EXISTS', P .. 'room:' .. room) == 0 then return {'no-such-room', 'no room is named ' .. room} end
  return {'not-a-member', 'only members of ' .. room .. ' may post there'}
end
local seq = redis.call('HINCRBY', P .. 'room:' .. room, 'last', 1)
local payload = ARGV[3] .. seq .. ARGV[4]
local size = tonumber(ARGV[5])
local hist = P .. 'hist:' .. room
if size > 0 then
  redis.call('RPUSH', hist, payload)
  redis.call('LTRIM', hist, -size, -1)
end
redis.call('PUBLISH', P .. 'events', 'R' .. room .. '\n' .. payload)
return {'', seq}
""",
    # sender to before_id after_id -> {"", id}
    "direct": r"""
local sender, to = ARGV[1], ARGV[2]
if not known(to) then return {'no-such-user', 'no user is named ' .. to} end
if not online(to) then return {'user-offline', to .. ' is offline'} end
local id = redis.call('INCR', P .. 'directs')
local users = {to}
if sender ~= to and online(sender) then users[2] = sender end
publish('U', {users = users}, ARGV[3] .. id .. ARGV[4])
return {'', id}
""",
    # limit -> {"", online, names}
    "who": r"""
local limit = tonumber(ARGV[1])
local names, cursor = {}, '0'
repeat
  local page = redis.call('HSCAN', P .. 'conns', cursor, 'COUNT', 100)
  cursor = page[1]
  for i = 1, #page[2], 2 do
    if #names < limit then names[#names + 1] = page[2][i] end
  end
until cursor == '0' or #names >= limit
return {'', redis.call('HLEN', P .. 'conns'), names}
""",
    # user room limit -> {"", online, [name online last_seen]...}
    "who_room": r"""
local user, room, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local private, err = room_checked(user, room)
if err then return err end
if not admits(user, room, private) then
  return {'not-a-member', room .. ' is private: only its members may see it'}
end
local here, away = {}, {}
for _, name in ipairs(redis.call('SMEMBERS', P .. 'members:' .. room)) do
  if online(name) then here[#here + 1] = name else away[#away + 1] = name end
end
local listed = {}
for _, name in ipairs(here) do
  if #listed >= limit then break end
  listed[#listed + 1] = {name, 1, 0}
end
for _, name in ipairs(away) do
  if #listed >= limit then break end
  listed[#listed + 1] = {name, 0, tonumber(redis.call('HGET', P .. 'seen', name) or '0')}
end
return {'', tonumber(redis.call('HGET', P .. 'room:' .. room, 'online') or '0'), listed}
""",
    # user -> {"", online, last_seen}
    "seen": r"""
local seen = redis.call('HGET', P .. 'seen', ARGV[1])
if not seen then return {'no-such-user', 'no user is named ' .. ARGV[1]} end
return {'', online(ARGV[1]) and 1 or 0, tonumber(seen)}
""",
    # user most -> {"", info...}
    "rooms": r"""
local user, most = ARGV[1], tonumber(ARGV[2])
local result = {''}
for _, room in ipairs(redis.call('SORT', P .. 'rooms', 'ALPHA')) do
  if #result > most then break end
  if admits(user, room, redis.call('HGET', P .. 'room:' .. room, 'private')) then
    result[#result + 1] = room_info(room)
  end
end
return result
""",
    # user room -> {"", last, epoch, messages}
    "history": r"""
local user, room = ARGV[1], ARGV[2]
local private, err = room_checked(user, room)
if err then return err end
if not admits(user, room, private) then
  return {'not-a-member', room .. ' is private: only its members may see it'}
end
local h = redis.call('HMGET', P .. 'room:' .. room, 'last', 'epoch')
return {'', tonumber(h[1]), h[2], redis.call('LRANGE', P .. 'hist:' .. room, 0, -1)}
""",
    # user key value max_keys max_bytes -> {"", size}
    "state_set": r"""
local key, value = ARGV[2], ARGV[3]
local doc = P .. 'state:' .. ARGV[1]
local size, keys, old = 0, 0, nil
local all = redis.call('HGETALL', doc)
for i = 1, #all, 2 do
  if all[i] == key then old = all[i + 1] else size = size + #all[i] + #all[i + 1] end
  keys = keys + 1
end
if not old and keys >= tonumber(ARGV[4]) then return {'state-full', 'no room for another key (state_max_keys)'} end
size = size + #key + #value
if size > tonumber(ARGV[5]) then return {'state-full', 'the document would be ' .. size .. ' bytes (state_max_bytes)'} end
redis.call('HSET', doc, key, value)
return {'', size}
""",
    # user key by max_keys max_bytes -> {"", value (text)}
    "state_incr": r"""
local key = ARGV[2]
local doc = P .. 'state:' .. ARGV[1]
local old = redis.call('HGET', doc, key)
if old and not string.match(old, '^%-?%d+$') then return {'not-a-number', string.format('%q does not hold an integer', key)} end
if not old and redis.call('HLEN', doc) >= tonumber(ARGV[4]) then return {'state-full', 'no room for another key (state_max_keys)'} end
local done = redis.pcall('HINCRBY', doc, key, ARGV[3])
if type(done) == 'table' and done.err then return {'not-a-number', 'the result does not fit in 64 bits'} end
local value = redis.call('HGET', doc, key)
local size = 0
local all = redis.call('HGETALL', doc)
for i = 1, #all, 2 do size = size + #all[i] + #all[i + 1] end
if size > tonumber(ARGV[5]) then
  if old then redis.call('HSET', doc, key, old) else redis.call('HDEL', doc, key) end
  return {'state-full', 'the document would be ' .. size .. ' bytes (state_max_bytes)'}
end
return {'', value}
""",
}

SOURCES: dict[str, str] = {name: _COMMON + body for name, body in _SCRIPTS.items()}

__all__ = ["CHANNEL", "PREFIX", "SOURCES"]
