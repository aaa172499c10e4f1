//! The Lua scripts of [`RedisState`](super::RedisState): each step that reads
//! and writes several keys runs as one script, atomically. The key layout is
//! in the `redis` module's documentation.

use redis::Script;

/// The Lua scripts, loaded once (Redis caches them by hash).
pub(super) struct Scripts {
    pub(super) join: Script,
    pub(super) leave: Script,
    pub(super) room_mates: Script,
    pub(super) route: Script,
    pub(super) resume: Script,
    pub(super) dead_instances: Script,
    pub(super) forget_instance: Script,
    pub(super) create_lobby: Script,
    pub(super) lobby: Script,
    pub(super) public_lobbies: Script,
    pub(super) expire: Script,
    pub(super) token: Script,
    pub(super) take_seat: Script,
    pub(super) give_seat: Script,
    pub(super) epoch: Script,
    pub(super) sync: Script,
    pub(super) restore: Script,
}

/// Whether the state is being written back after Redis lost it: no epoch
/// (no instance has noticed yet) or the restore window still open. Joins,
/// resumes and lobby look-ups wait for it, so that nothing new lands in a
/// room before its members are back.
const RESTORING_FN: &str = r"
local function restoring(P)
  return redis.call('EXISTS', P..'epoch') == 0 or redis.call('EXISTS', P..'restoring') == 1
end
";

/// Removes lobbies empty since `now - ttl` or longer; shared by the scripts
/// that expire lobbies.
const EXPIRE_FN: &str = r"
local function expire(P, now, ttl)
  local old = redis.call('ZRANGEBYSCORE', P..'empty', '-inf', now - ttl)
  for _, code in ipairs(old) do
    local lk = P..'lobby:'..code
    local f = redis.call('HMGET', lk, 'owner', 'public', 'mode')
    redis.call('DEL', lk)
    redis.call('ZREM', P..'lobbies', code)
    redis.call('ZREM', P..'empty', code)
    if f[2] == '1' then
      redis.call('ZREM', P..'public', code)
      redis.call('ZREM', P..'public:'..(f[3] or ''), code)
    end
    if f[1] and f[1] ~= '' then
      if redis.call('DECR', P..'owned:'..f[1]) <= 0 then redis.call('DEL', P..'owned:'..f[1]) end
    end
  end
  return #old
end
";

/// The next quick-match group number. The counter starts from the clock
/// (milliseconds times 1,000), so that after Redis lost it new groups never
/// take the number of a group whose members are yet to be written back.
const NEXT_GROUP_FN: &str = r"
local function next_group(P, now)
  if redis.call('EXISTS', P..'group') == 0 then
    redis.call('SET', P..'group', string.format('%d', now * 1000))
  end
  return string.format('%d', redis.call('INCR', P..'group'))
end
";

/// ARGV: prefix, peer, instance, now, max room size, kind (`o`, `q`, `l`),
/// then path | path, mode, size | code. Returns `{'ok', room, others,
/// matched waits}` or `{refusal, number}`.
const JOIN: &str = r"
local P, peer, inst = ARGV[1], ARGV[2], ARGV[3]
local now, maxroom, kind = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
if restoring(P) then return {'restoring', 0} end
if redis.call('EXISTS', P..'peer:'..peer) == 1 then return {'already', 0} end
local rk, limit, fill, group, size
if kind == 'o' then
  rk = 'o:'..ARGV[7]
  limit = maxroom
elseif kind == 'q' then
  local path, mode = ARGV[7], ARGV[8]
  size = tonumber(ARGV[9])
  fill = P..'fill:'..size..':'..mode..':'..path
  group = redis.call('GET', fill)
  if not group then
    group = next_group(P, now)
    redis.call('SET', fill, group)
  end
  rk = 'q:'..size..':'..group..':'..mode..':'..path
  limit = math.min(size, maxroom)
else
  local max = redis.call('HGET', P..'lobby:'..ARGV[7], 'max')
  if not max then return {'unknown_lobby', 0} end
  rk = 'l:'..ARGV[7]
  limit = tonumber(max)
end
local room = P..'room:'..rk
local n = redis.call('HLEN', room)
if n >= limit then return {'full', limit} end
local others = redis.call('HKEYS', room)
if n == 0 then redis.call('INCR', P..'nrooms') end
redis.call('HSET', room, peer, inst)
redis.call('SET', P..'peer:'..peer, rk)
redis.call('SET', P..'at:'..peer, inst)
redis.call('SADD', P..'members:'..inst, peer)
redis.call('INCR', P..'npeers')
if kind == 'l' then
  redis.call('HSET', P..'lobby:'..ARGV[7], 'empty', '')
  redis.call('ZREM', P..'empty', ARGV[7])
end
local matched = {}
if kind == 'q' then
  local wait = P..'wait:'..rk
  if n + 1 >= size then
    if redis.call('GET', fill) == group then redis.call('DEL', fill) end
    for _, m in ipairs(others) do
      local since = tonumber(redis.call('HGET', wait, m)) or now
      matched[#matched + 1] = math.max(0, now - since)
    end
    matched[#matched + 1] = 0
    redis.call('DEL', wait)
  else
    redis.call('HSET', wait, peer, now)
  end
end
return {'ok', rk, others, matched}
";

/// ARGV: prefix, peer, now, instance (`''`: any). Takes the peer out of its
/// room, if it is connected to that instance. Returns the peers left there.
const LEAVE: &str = r"
local P, peer, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local pk = P..'peer:'..peer
local rk = redis.call('GET', pk)
if not rk then return {} end
local at = redis.call('GET', P..'at:'..peer)
if ARGV[4] ~= '' and at ~= ARGV[4] then return {} end
if at then redis.call('SREM', P..'members:'..at, peer) end
redis.call('DEL', pk, P..'at:'..peer)
redis.call('DECR', P..'npeers')
local room = P..'room:'..rk
redis.call('HDEL', room, peer)
local kind = string.sub(rk, 1, 1)
if kind == 'q' then redis.call('HDEL', P..'wait:'..rk, peer) end
local others = redis.call('HKEYS', room)
if #others == 0 then
  redis.call('DECR', P..'nrooms')
  if kind == 'q' then
    local size, group, mode, path = string.match(rk, '^q:(%d+):(%d+):([^:]*):(.*)$')
    local fill = P..'fill:'..size..':'..mode..':'..path
    if redis.call('GET', fill) == group then redis.call('DEL', fill) end
    redis.call('DEL', P..'wait:'..rk)
  elseif kind == 'l' then
    local code = string.sub(rk, 3)
    local lk = P..'lobby:'..code
    if redis.call('EXISTS', lk) == 1 then
      redis.call('HSET', lk, 'empty', now)
      redis.call('ZADD', P..'empty', now, code)
    end
  end
end
return others
";

/// ARGV: prefix, peer. Returns the other members of its room.
const ROOM_MATES: &str = r"
local rk = redis.call('GET', ARGV[1]..'peer:'..ARGV[2])
if not rk then return {} end
local mates = {}
for _, m in ipairs(redis.call('HKEYS', ARGV[1]..'room:'..rk)) do
  if m ~= ARGV[2] then mates[#mates + 1] = m end
end
return mates
";

/// ARGV: prefix, peer, instance. Moves a peer that holds a place in a room
/// to that instance (a client resuming there). Returns `{room, mates}`, or
/// `{}` if it holds no place, `{'restoring'}` while the state is written back.
const RESUME: &str = r"
local P, peer, inst = ARGV[1], ARGV[2], ARGV[3]
if restoring(P) then return {'restoring'} end
local rk = redis.call('GET', P..'peer:'..peer)
if not rk then return {} end
local old = redis.call('GET', P..'at:'..peer)
if old then redis.call('SREM', P..'members:'..old, peer) end
redis.call('SET', P..'at:'..peer, inst)
redis.call('SADD', P..'members:'..inst, peer)
redis.call('HSET', P..'room:'..rk, peer, inst)
local mates = {}
for _, m in ipairs(redis.call('HKEYS', P..'room:'..rk)) do
  if m ~= peer then mates[#mates + 1] = m end
end
return {rk, mates}
";

/// ARGV: prefix. The instances seen whose announcement expired.
const DEAD_INSTANCES: &str = r"
local dead = {}
for _, id in ipairs(redis.call('SMEMBERS', ARGV[1]..'instances')) do
  if redis.call('EXISTS', ARGV[1]..'inst:'..id) == 0 then dead[#dead + 1] = id end
end
return dead
";

/// ARGV: prefix, instance. Forgets a dead instance once none of its clients
/// is left in a room: its seats are free. Returns 1 if it was forgotten.
const FORGET_INSTANCE: &str = r"
local P, id = ARGV[1], ARGV[2]
if redis.call('EXISTS', P..'inst:'..id) == 1 then return 0 end
if redis.call('SCARD', P..'members:'..id) > 0 then return 0 end
redis.call('SREM', P..'instances', id)
redis.call('HDEL', P..'seats', id)
for _, addr in ipairs(redis.call('SMEMBERS', P..'addrs:'..id)) do
  redis.call('HDEL', P..'seats:'..addr, id)
end
redis.call('DEL', P..'addrs:'..id)
return 1
";

/// ARGV: prefix, from, to. Returns the instance of `to` (`''` if unknown)
/// if both are in one room, else nil.
const ROUTE: &str = r"
local P = ARGV[1]
if ARGV[2] == ARGV[3] then return false end
local a = redis.call('GET', P..'peer:'..ARGV[2])
if not a or a ~= redis.call('GET', P..'peer:'..ARGV[3]) then return false end
return redis.call('GET', P..'at:'..ARGV[3]) or ''
";

/// ARGV: prefix, owner (`''`: none), name, mode, public (`1`/`0`), max
/// players, now, ttl, max lobbies, max per owner, then candidate codes.
/// Returns `{'ok', code}` or `{refusal, number}`.
const CREATE_LOBBY: &str = r"
local P, owner, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[7]), tonumber(ARGV[8])
local maxl, per = tonumber(ARGV[9]), tonumber(ARGV[10])
local function owner_full()
  return owner ~= '' and per > 0 and tonumber(redis.call('GET', P..'owned:'..owner) or '0') >= per
end
if redis.call('ZCARD', P..'lobbies') >= maxl or owner_full() then
  expire(P, now, ttl)
  if redis.call('ZCARD', P..'lobbies') >= maxl then return {'too_many', maxl} end
  if owner_full() then return {'too_many_from', per} end
end
for i = 11, #ARGV do
  local code = ARGV[i]
  local lk = P..'lobby:'..code
  if redis.call('EXISTS', lk) == 0 then
    redis.call('HSET', lk, 'name', ARGV[3], 'mode', ARGV[4], 'public', ARGV[5], 'max', ARGV[6],
      'owner', owner, 'created', now, 'empty', now)
    redis.call('ZADD', P..'lobbies', now, code)
    redis.call('ZADD', P..'empty', now, code)
    if ARGV[5] == '1' then
      redis.call('ZADD', P..'public', now, code)
      redis.call('ZADD', P..'public:'..ARGV[4], now, code)
    end
    if owner ~= '' then redis.call('INCR', P..'owned:'..owner) end
    return {'ok', code}
  end
end
return {'too_many', maxl}
";

/// A lobby's fields as `{code, name, mode, public, players, max}`, or `{}`.
const LOBBY_FN: &str = r"
local function lobby(P, code)
  local f = redis.call('HMGET', P..'lobby:'..code, 'name', 'mode', 'public', 'max')
  if not f[4] then return {} end
  return {code, f[1], f[2], f[3], redis.call('HLEN', P..'room:l:'..code), f[4]}
end
";

/// ARGV: prefix, code. `{'restoring'}` while the state is written back (an
/// unknown code then may only not be back yet).
const LOBBY: &str = r"
if restoring(ARGV[1]) then return {'restoring'} end
return lobby(ARGV[1], ARGV[2])
";

/// ARGV: prefix, the sorted set to list, limit. Returns lobbies as [`LOBBY`].
const PUBLIC_LOBBIES: &str = r"
local found = {}
for _, code in ipairs(redis.call('ZREVRANGE', ARGV[1]..ARGV[2], 0, tonumber(ARGV[3]) - 1)) do
  local l = lobby(ARGV[1], code)
  if #l > 0 then found[#found + 1] = l end
end
return found
";

/// ARGV: prefix, now, ttl. Returns how many lobbies expired.
const EXPIRE: &str = "return expire(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))";

/// KEYS: the bucket. ARGV: rate (a second), burst, now, peek (`1`/`0`),
/// time-to-live (ms). Returns 0 when a token was there (and taken unless
/// peeking), or the milliseconds until one is.
const TOKEN: &str = r"
local rate, burst, now, peek = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local f = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at = tonumber(f[1]) or burst, tonumber(f[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) / 1000 * rate)
  at = now
end
if tokens >= 1 then
  if not peek then
    redis.call('HSET', KEYS[1], 't', tostring(tokens - 1), 'at', at)
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  end
  return 0
end
return math.max(1, math.ceil((1 - tokens) / rate * 1000))
";

/// ARGV: prefix, instance, max, address, max per address (0: none).
/// Returns 1 when taken, 0 when every seat is, 2 when the address has as
/// many as it may.
const TAKE_SEAT: &str = r"
local P, inst, addr = ARGV[1], ARGV[2], ARGV[4]
local function sum(key)
  local n = 0
  for _, v in ipairs(redis.call('HVALS', key)) do n = n + tonumber(v) end
  return n
end
if sum(P..'seats') >= tonumber(ARGV[3]) then return 0 end
local per = tonumber(ARGV[5])
if per > 0 and sum(P..'seats:'..addr) >= per then return 2 end
redis.call('HINCRBY', P..'seats', inst, 1)
redis.call('HINCRBY', P..'seats:'..addr, inst, 1)
redis.call('SADD', P..'addrs:'..inst, addr)
return 1
";

/// ARGV: prefix, instance, address.
const GIVE_SEAT: &str = r"
local P, inst, addr = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HINCRBY', P..'seats', inst, -1) <= 0 then redis.call('HDEL', P..'seats', inst) end
local ak = P..'seats:'..addr
if redis.call('HINCRBY', ak, inst, -1) <= 0 then
  redis.call('HDEL', ak, inst)
  redis.call('SREM', P..'addrs:'..inst, addr)
end
return 0
";

/// ARGV: prefix, candidate epoch. Sets the epoch if there is none; returns it.
const EPOCH: &str = r"
redis.call('SET', ARGV[1]..'epoch', ARGV[2], 'NX')
return redis.call('GET', ARGV[1]..'epoch')
";

/// ARGV: prefix, instance, time-to-live (ms), candidate epoch, restore window
/// (ms), how many rooms follow, the quick-match rooms this instance has
/// clients waiting in, then the lobby codes it holds. Announces the instance
/// alive. With no epoch (Redis lost its data), sets the candidate and opens
/// the restore window. Returns `{epoch, rooms no longer filling, codes not
/// in Redis}`.
const SYNC: &str = r"
local P, inst, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('SET', P..'inst:'..inst, 1, 'PX', ttl)
redis.call('SADD', P..'instances', inst)
local epoch = redis.call('GET', P..'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', P..'epoch', epoch)
  redis.call('SET', P..'restoring', 1, 'PX', tonumber(ARGV[5]))
end
local nrooms = tonumber(ARGV[6])
local complete, gone = {}, {}
for i = 7, 6 + nrooms do
  local rk = ARGV[i]
  local size, group, mode, path = string.match(rk, '^q:(%d+):(%d+):([^:]*):(.*)$')
  if not size or redis.call('GET', P..'fill:'..size..':'..mode..':'..path) ~= group then
    complete[#complete + 1] = rk
  end
end
for i = 7 + nrooms, #ARGV do
  if redis.call('EXISTS', P..'lobby:'..ARGV[i]) == 0 then gone[#gone + 1] = ARGV[i] end
end
return {epoch, complete, gone}
";

/// ARGV: prefix, instance, now, seats (`''`: leave the counts alone), how
/// many addresses follow, then each
/// address and its seats, how many lobbies follow, then each
/// lobby as code, name, mode, public, max, owner, created, then each peer as
/// peer, room, waiting since (`''`: not waiting). Writes back what an
/// instance holds, leaving alone what is there already (another instance
/// wrote it back, or it changed meanwhile). Returns `{peers, lobbies}`
/// written back.
const RESTORE: &str = r"
local P, inst, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local peers, lobbies = 0, 0
if ARGV[4] ~= '' then
  -- The instance's own counts are what it says, replacing any kept.
  if tonumber(ARGV[4]) > 0 then
    redis.call('HSET', P..'seats', inst, ARGV[4])
  else
    redis.call('HDEL', P..'seats', inst)
  end
  for _, addr in ipairs(redis.call('SMEMBERS', P..'addrs:'..inst)) do
    redis.call('HDEL', P..'seats:'..addr, inst)
  end
  redis.call('DEL', P..'addrs:'..inst)
end
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('HSET', P..'seats:'..ARGV[i], inst, ARGV[i + 1])
  redis.call('SADD', P..'addrs:'..inst, ARGV[i])
  i = i + 2
end
local nlobbies = tonumber(ARGV[i])
i = i + 1
for _ = 1, nlobbies do
  local code, name, mode, public, max, owner, created =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6])
  i = i + 7
  local lk = P..'lobby:'..code
  if redis.call('EXISTS', lk) == 0 then
    redis.call('HSET', lk, 'name', name, 'mode', mode, 'public', public, 'max', max,
      'owner', owner, 'created', created, 'empty', now)
    redis.call('ZADD', P..'lobbies', created, code)
    redis.call('ZADD', P..'empty', now, code)
    if public == '1' then
      redis.call('ZADD', P..'public', created, code)
      redis.call('ZADD', P..'public:'..mode, created, code)
    end
    if owner ~= '' then redis.call('INCR', P..'owned:'..owner) end
    lobbies = lobbies + 1
  end
end
while i + 2 <= #ARGV do
  local peer, rk, since = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  if redis.call('EXISTS', P..'peer:'..peer) == 0 then
    local room = P..'room:'..rk
    if redis.call('HLEN', room) == 0 then redis.call('INCR', P..'nrooms') end
    redis.call('HSET', room, peer, inst)
    redis.call('SET', P..'peer:'..peer, rk)
    redis.call('SET', P..'at:'..peer, inst)
    redis.call('SADD', P..'members:'..inst, peer)
    redis.call('INCR', P..'npeers')
    local kind = string.sub(rk, 1, 1)
    if kind == 'l' then
      local code = string.sub(rk, 3)
      if redis.call('EXISTS', P..'lobby:'..code) == 1 then
        redis.call('HSET', P..'lobby:'..code, 'empty', '')
        redis.call('ZREM', P..'empty', code)
      end
    elseif kind == 'q' then
      local size, group, mode, path = string.match(rk, '^q:(%d+):(%d+):([^:]*):(.*)$')
      if tonumber(redis.call('GET', P..'group') or '0') < tonumber(group) then
        redis.call('SET', P..'group', group)
      end
      if since ~= '' and tonumber(size) > redis.call('HLEN', room) then
        redis.call('HSET', P..'wait:'..rk, peer, since)
        redis.call('SET', P..'fill:'..size..':'..mode..':'..path, group, 'NX')
      end
    end
    peers = peers + 1
  end
end
return {peers, lobbies}
";

impl Scripts {
    /// Every script, not loaded yet.
    pub(super) fn new() -> Self {
        let with_expire = |body: &str| Script::new(&format!("{EXPIRE_FN}\n{body}"));
        let with_lobby = |body: &str| Script::new(&format!("{RESTORING_FN}\n{LOBBY_FN}\n{body}"));
        Self {
            join: Script::new(&format!("{RESTORING_FN}\n{NEXT_GROUP_FN}\n{JOIN}")),
            leave: Script::new(LEAVE),
            room_mates: Script::new(ROOM_MATES),
            route: Script::new(ROUTE),
            resume: Script::new(&format!("{RESTORING_FN}\n{RESUME}")),
            dead_instances: Script::new(DEAD_INSTANCES),
            forget_instance: Script::new(FORGET_INSTANCE),
            create_lobby: with_expire(CREATE_LOBBY),
            lobby: with_lobby(LOBBY),
            public_lobbies: with_lobby(PUBLIC_LOBBIES),
            expire: with_expire(EXPIRE),
            token: Script::new(TOKEN),
            take_seat: Script::new(TAKE_SEAT),
            give_seat: Script::new(GIVE_SEAT),
            epoch: Script::new(EPOCH),
            sync: Script::new(SYNC),
            restore: Script::new(RESTORE),
        }
    }
}
