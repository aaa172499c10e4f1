//! Shared state in Redis, for several server instances.
//!
//! Every operation that reads and writes more than one key is a Lua script
//! (below), which Redis runs atomically: a quick-match join reads the group
//! still filling, adds the peer and closes the group in one step, so two
//! instances can never put one waiting peer in two rooms nor a room past its
//! size. Scripts build their key names from the prefix, so this needs one
//! Redis server (with replicas if wanted), not Redis Cluster.
//!
//! Keys, under the prefix (`gn:` by default):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `peer:<id>` | string | the room of a peer |
//! | `at:<id>` | string | the instance a peer is connected to |
//! | `room:<room>` | hash | the room's members: peer id → its instance |
//! | `fill:<size>:<mode>:<path>` | string | the quick-match group filling now |
//! | `group` | counter | the last quick-match group number |
//! | `wait:<room>` | hash | when each member of a filling group joined (ms) |
//! | `npeers`, `nrooms` | counters | peers in rooms, rooms with a peer |
//! | `lobby:<code>` | hash | name, mode, public, max, owner, created, empty (since, ms; `""` while occupied) |
//! | `lobbies` | sorted set | every lobby code, by creation time |
//! | `public`, `public:<mode>` | sorted sets | public lobby codes, by creation time |
//! | `empty` | sorted set | empty lobby codes, by when they became empty |
//! | `owned:<address>` | counter | lobbies held per creator address |
//! | `seats` | hash | clients connected per instance |
//! | `rate:<name>:<address>` | hash | a token bucket: tokens and when counted; expires once full again |
//!
//! A room is written `o:<path>`, `q:<size>:<group>:<mode>:<path>` or
//! `l:<code>` (paths and modes have no `:`).

use std::net::IpAddr;
use std::time::Duration;

use matchbox_protocol::PeerId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script, Value};

use super::{Bucket, Counts, Location, Millis, SharedError, SharedState};
use crate::limits::{RetryAfter, address_key};
use crate::rooms::{
    JoinCode, Joined, LobbyInfo, LobbySpec, RoomError, RoomKey, RoomLimits, RoomRequest,
    check_lobby_spec,
};

/// How to reach Redis and what to keep there.
#[derive(Debug, Clone)]
pub struct RedisStateConfig {
    /// `redis://host:port/db` (or `redis+unix://`).
    pub url: String,
    /// Put before every key, so that several deployments (or tests) can share
    /// one Redis.
    pub prefix: String,
    /// The room and lobby limits, the same on every instance.
    pub limits: RoomLimits,
    /// How long one command may take before it counts as failed.
    pub timeout: Duration,
}

impl RedisStateConfig {
    /// Redis at `url` with the default prefix `gn:` and a 2 s timeout.
    pub fn new(url: impl Into<String>, limits: RoomLimits) -> Self {
        Self {
            url: url.into(),
            prefix: "gn:".into(),
            limits,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Rooms, lobbies, limits and the client count of every instance, in Redis.
pub struct RedisState {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    limits: RoomLimits,
    timeout: Duration,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The Lua scripts, loaded once (Redis caches them by hash).
struct Scripts {
    join: Script,
    leave: Script,
    room_mates: Script,
    route: Script,
    create_lobby: Script,
    lobby: Script,
    public_lobbies: Script,
    expire: Script,
    token: Script,
    take_seat: Script,
    give_seat: Script,
}

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

/// ARGV: prefix, peer, instance, now, max room size, kind (`o`, `q`, `l`),
/// then path | path, mode, size | code. Returns `{'ok', room, others,
/// matched waits}` or `{refusal, number}`.
const JOIN: &str = r"
local P, peer, inst = ARGV[1], ARGV[2], ARGV[3]
local now, maxroom, kind = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
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
    group = tostring(redis.call('INCR', P..'group'))
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

/// ARGV: prefix, peer, now. Returns the peers left in its room.
const LEAVE: &str = r"
local P, peer, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local pk = P..'peer:'..peer
local rk = redis.call('GET', pk)
if not rk then return {} end
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

/// ARGV: prefix, code.
const LOBBY: &str = "return lobby(ARGV[1], ARGV[2])";

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

/// KEYS: the seats hash. ARGV: instance, max.
const TAKE_SEAT: &str = r"
local sum = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do sum = sum + tonumber(v) end
if sum >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
";

/// KEYS: the seats hash. ARGV: instance.
const GIVE_SEAT: &str = r"
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
";

impl Scripts {
    fn new() -> Self {
        let with_expire = |body: &str| Script::new(&format!("{EXPIRE_FN}\n{body}"));
        let with_lobby = |body: &str| Script::new(&format!("{LOBBY_FN}\n{body}"));
        Self {
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            room_mates: Script::new(ROOM_MATES),
            route: Script::new(ROUTE),
            create_lobby: with_expire(CREATE_LOBBY),
            lobby: with_lobby(LOBBY),
            public_lobbies: with_lobby(PUBLIC_LOBBIES),
            expire: with_expire(EXPIRE),
            token: Script::new(TOKEN),
            take_seat: Script::new(TAKE_SEAT),
            give_seat: Script::new(GIVE_SEAT),
        }
    }
}

/// A Redis failure: the shared state is out of reach.
fn unavailable(error: impl std::fmt::Display) -> SharedError {
    SharedError::Unavailable(error.to_string())
}

/// An answer that is not what the scripts return.
fn bad_reply(what: &str) -> SharedError {
    SharedError::Unavailable(format!("unexpected reply from Redis: {what}"))
}

fn text(value: &Value) -> Result<String, SharedError> {
    redis::from_redis_value_ref(value).map_err(unavailable)
}

fn number(value: &Value) -> Result<u64, SharedError> {
    redis::from_redis_value_ref(value).map_err(unavailable)
}

fn peer_of(text: &str) -> Result<PeerId, SharedError> {
    text.parse::<uuid::Uuid>()
        .map(PeerId)
        .map_err(|_| bad_reply("a peer id"))
}

fn peers(value: &Value) -> Result<Vec<PeerId>, SharedError> {
    let texts: Vec<String> = redis::from_redis_value_ref(value).map_err(unavailable)?;
    texts.iter().map(|t| peer_of(t)).collect()
}

/// The room the scripts wrote as `text`.
fn room_key(text: &str) -> Result<RoomKey, SharedError> {
    let bad = || bad_reply("a room");
    let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
    match kind {
        "o" => Ok(RoomKey::Open(rest.to_owned())),
        "l" => Ok(RoomKey::Lobby(rest.parse().map_err(|_| bad())?)),
        "q" => {
            let mut parts = rest.splitn(4, ':');
            let mut next = || parts.next().ok_or_else(bad);
            let size = next()?.parse().map_err(|_| bad())?;
            let group = next()?.parse().map_err(|_| bad())?;
            let mode = next()?.to_owned();
            let path = next()?.to_owned();
            Ok(RoomKey::Quick {
                path,
                mode,
                size,
                group,
            })
        }
        _ => Err(bad()),
    }
}

/// An instance id as stored; empty for none known.
fn location(at: String) -> Location {
    if at.is_empty() {
        Location::Nowhere
    } else {
        Location::At(at)
    }
}

/// A lobby from `{code, name, mode, public, players, max}`.
fn lobby_info(value: &Value) -> Result<Option<LobbyInfo>, SharedError> {
    let fields: Vec<Value> = redis::from_redis_value_ref(value).map_err(unavailable)?;
    let [code, name, mode, public, players, max] = fields.as_slice() else {
        return if fields.is_empty() {
            Ok(None)
        } else {
            Err(bad_reply("a lobby"))
        };
    };
    Ok(Some(LobbyInfo {
        code: text(code)?.parse().map_err(|_| bad_reply("a join code"))?,
        name: text(name)?,
        mode: text(mode)?,
        public: text(public)? == "1",
        players: usize::try_from(number(players)?).map_err(unavailable)?,
        max_players: text(max)?
            .parse()
            .map_err(|_| bad_reply("a player limit"))?,
    }))
}

/// The refusal a script answered with `status` and `number`.
fn refusal(status: &str, number: usize, request: &RoomRequest) -> SharedError {
    match status {
        "already" => RoomError::AlreadyJoined.into(),
        "full" => RoomError::RoomFull(number).into(),
        "unknown_lobby" => match request {
            RoomRequest::Lobby(code) => RoomError::UnknownLobby(*code).into(),
            _ => bad_reply("unknown lobby"),
        },
        "too_many" => RoomError::TooManyLobbies(number).into(),
        "too_many_from" => RoomError::TooManyLobbiesFrom(number).into(),
        other => bad_reply(other),
    }
}

impl RedisState {
    /// Connects to Redis (reconnecting by itself after a failure) and checks
    /// that it answers.
    pub async fn connect(config: RedisStateConfig) -> Result<Self, SharedError> {
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let mut conn = tokio::time::timeout(
            config.timeout,
            client.get_connection_manager_with_config(manager),
        )
        .await
        .map_err(|_| unavailable(format!("no answer from {} in time", config.url)))?
        .map_err(unavailable)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            client,
            conn,
            prefix: config.prefix,
            limits: RoomLimits {
                max_room_size: config.limits.max_room_size.max(2),
                ..config.limits
            },
            timeout: config.timeout,
            scripts: Scripts::new(),
        })
    }

    /// Whether Redis answers now.
    pub async fn ping(&self) -> Result<(), SharedError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The channel of the messages for the clients of `instance`.
    fn channel(&self, instance: &str) -> String {
        self.key(&format!("to:{instance}"))
    }

    /// Sends `payload` to whichever instance subscribed for `instance`
    /// (lost if none is: Redis pub/sub keeps nothing).
    pub async fn publish(&self, instance: &str, payload: &str) -> Result<(), SharedError> {
        let _: i64 = self
            .conn
            .clone()
            .publish(self.channel(instance), payload)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The payloads published for `instance` from now on, over a connection of
    /// its own; the stream ends when that connection does.
    pub async fn subscribe(
        &self,
        instance: &str,
    ) -> Result<impl futures::Stream<Item = String> + Send + use<>, SharedError> {
        use futures::StreamExt;
        let mut pubsub = tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| unavailable("no answer from Redis in time"))?
            .map_err(unavailable)?;
        pubsub
            .subscribe(self.channel(instance))
            .await
            .map_err(unavailable)?;
        Ok(pubsub
            .into_on_message()
            .filter_map(|message| async move { message.get_payload::<String>().ok() }))
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn peer_key(&self, peer: PeerId) -> String {
        self.key(&format!("peer:{}", peer.0))
    }
}

impl SharedState for RedisState {
    async fn join(
        &self,
        peer: PeerId,
        instance: &str,
        request: &RoomRequest,
        now: Millis,
    ) -> Result<Joined, SharedError> {
        let mut invocation = self.scripts.join.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(peer.0.to_string())
            .arg(instance)
            .arg(now)
            .arg(self.limits.max_room_size);
        match request {
            RoomRequest::Open { path } => invocation.arg("o").arg(path),
            RoomRequest::QuickMatch { path, size, mode } => {
                invocation.arg("q").arg(path).arg(mode).arg(*size)
            }
            RoomRequest::Lobby(code) => invocation.arg("l").arg(code.as_str()),
        };
        let reply: Vec<Value> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let status = reply.first().map(text).transpose()?.unwrap_or_default();
        if status != "ok" {
            let n = reply.get(1).map(number).transpose()?.unwrap_or(0);
            return Err(refusal(
                &status,
                usize::try_from(n).unwrap_or(usize::MAX),
                request,
            ));
        }
        let [_, room, others, matched] = reply.as_slice() else {
            return Err(bad_reply("a join"));
        };
        let matched: Vec<u64> = redis::from_redis_value_ref(matched).map_err(unavailable)?;
        Ok(Joined {
            others: peers(others)?,
            room: room_key(&text(room)?)?,
            matched: matched.into_iter().map(Duration::from_millis).collect(),
        })
    }

    async fn leave(&self, peer: PeerId, now: Millis) -> Result<Vec<PeerId>, SharedError> {
        let reply: Value = self
            .scripts
            .leave
            .arg(&self.prefix)
            .arg(peer.0.to_string())
            .arg(now)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        peers(&reply)
    }

    async fn room_of(&self, peer: PeerId) -> Result<Option<RoomKey>, SharedError> {
        let room: Option<String> = self
            .conn
            .clone()
            .get(self.peer_key(peer))
            .await
            .map_err(unavailable)?;
        room.as_deref().map(room_key).transpose()
    }

    async fn room_mates(&self, peer: PeerId) -> Result<Vec<PeerId>, SharedError> {
        let reply: Value = self
            .scripts
            .room_mates
            .arg(&self.prefix)
            .arg(peer.0.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        peers(&reply)
    }

    async fn can_signal(&self, from: PeerId, to: PeerId) -> Result<bool, SharedError> {
        if from == to {
            return Ok(false);
        }
        let rooms: Vec<Option<String>> = self
            .conn
            .clone()
            .mget(&[self.peer_key(from), self.peer_key(to)])
            .await
            .map_err(unavailable)?;
        Ok(matches!(rooms.as_slice(), [Some(a), Some(b)] if a == b))
    }

    async fn route(&self, from: PeerId, to: PeerId) -> Result<Option<Location>, SharedError> {
        let at: Option<String> = self
            .scripts
            .route
            .arg(&self.prefix)
            .arg(from.0.to_string())
            .arg(to.0.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(at.map(location))
    }

    async fn locate(&self, peers: &[PeerId]) -> Result<Vec<Location>, SharedError> {
        if peers.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = peers
            .iter()
            .map(|p| self.key(&format!("at:{}", p.0)))
            .collect();
        let at: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(at
            .into_iter()
            .map(|at| at.map_or(Location::Nowhere, location))
            .collect())
    }

    async fn create_lobby(
        &self,
        owner: Option<IpAddr>,
        spec: LobbySpec,
        codes: &[JoinCode],
        now: Millis,
    ) -> Result<LobbyInfo, SharedError> {
        check_lobby_spec(&spec, self.limits.max_room_size)?;
        let ttl = u64::try_from(self.limits.lobby_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.scripts.create_lobby.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(
                owner
                    .map(|o| address_key(o).to_string())
                    .unwrap_or_default(),
            )
            .arg(&spec.name)
            .arg(&spec.mode)
            .arg(if spec.public { "1" } else { "0" })
            .arg(spec.max_players)
            .arg(now)
            .arg(ttl)
            .arg(self.limits.max_lobbies)
            .arg(self.limits.max_lobbies_per_owner);
        for code in codes {
            invocation.arg(code.as_str());
        }
        let reply: Vec<Value> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let [status, value] = reply.as_slice() else {
            return Err(bad_reply("a lobby creation"));
        };
        let status = text(status)?;
        if status != "ok" {
            let n = usize::try_from(number(value)?).unwrap_or(usize::MAX);
            return Err(refusal(
                &status,
                n,
                &RoomRequest::Open {
                    path: String::new(),
                },
            ));
        }
        Ok(LobbyInfo {
            code: text(value)?.parse().map_err(|_| bad_reply("a join code"))?,
            name: spec.name,
            mode: spec.mode,
            public: spec.public,
            players: 0,
            max_players: spec.max_players,
        })
    }

    async fn lobby(&self, code: JoinCode) -> Result<Option<LobbyInfo>, SharedError> {
        let reply: Value = self
            .scripts
            .lobby
            .arg(&self.prefix)
            .arg(code.as_str())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        lobby_info(&reply)
    }

    async fn public_lobbies(
        &self,
        mode: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LobbyInfo>, SharedError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let set = match mode {
            Some(mode) => format!("public:{mode}"),
            None => "public".to_owned(),
        };
        let reply: Vec<Value> = self
            .scripts
            .public_lobbies
            .arg(&self.prefix)
            .arg(set)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        reply
            .iter()
            .filter_map(|lobby| lobby_info(lobby).transpose())
            .collect()
    }

    async fn expire_lobbies(&self, now: Millis) -> Result<usize, SharedError> {
        let ttl = u64::try_from(self.limits.lobby_ttl.as_millis()).unwrap_or(u64::MAX);
        let expired: u64 = self
            .scripts
            .expire
            .arg(&self.prefix)
            .arg(now)
            .arg(ttl)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(usize::try_from(expired).unwrap_or(usize::MAX))
    }

    async fn lobbies_of(&self, owner: IpAddr) -> Result<usize, SharedError> {
        let owned: Option<usize> = self
            .conn
            .clone()
            .get(self.key(&format!("owned:{}", address_key(owner))))
            .await
            .map_err(unavailable)?;
        Ok(owned.unwrap_or(0))
    }

    async fn counts(&self) -> Result<Counts, SharedError> {
        let (peers, rooms, lobbies): (Option<i64>, Option<i64>, usize) = redis::pipe()
            .get(self.key("npeers"))
            .get(self.key("nrooms"))
            .zcard(self.key("lobbies"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let count = |n: Option<i64>| usize::try_from(n.unwrap_or(0)).unwrap_or(0);
        Ok(Counts {
            peers: count(peers),
            rooms: count(rooms),
            lobbies,
        })
    }

    async fn take_token(
        &self,
        bucket: Bucket,
        key: IpAddr,
        peek: bool,
        now: Millis,
    ) -> Result<Result<(), RetryAfter>, SharedError> {
        if bucket.rate <= 0.0 {
            return Ok(Ok(()));
        }
        let ttl = u64::try_from(bucket.refill_time().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let wait: u64 = self
            .scripts
            .token
            .key(self.key(&format!("rate:{}:{}", bucket.name, address_key(key))))
            .arg(bucket.rate)
            .arg(bucket.burst.max(1))
            .arg(now)
            .arg(if peek { "1" } else { "0" })
            .arg(ttl)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(if wait == 0 {
            Ok(())
        } else {
            Err(RetryAfter(Duration::from_millis(wait)))
        })
    }

    async fn take_seat(&self, instance: &str, max: usize) -> Result<bool, SharedError> {
        let taken: u64 = self
            .scripts
            .take_seat
            .key(self.key("seats"))
            .arg(instance)
            .arg(max)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(taken == 1)
    }

    async fn give_seat(&self, instance: &str) -> Result<(), SharedError> {
        let _: u64 = self
            .scripts
            .give_seat
            .key(self.key("seats"))
            .arg(instance)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn seats(&self) -> Result<usize, SharedError> {
        let seats: Vec<u64> = self
            .conn
            .clone()
            .hvals(self.key("seats"))
            .await
            .map_err(unavailable)?;
        Ok(seats
            .into_iter()
            .map(|n| usize::try_from(n).unwrap_or(0))
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A room as the scripts write it.
    fn room_text(key: &RoomKey) -> String {
        match key {
            RoomKey::Open(path) => format!("o:{path}"),
            RoomKey::Quick {
                path,
                mode,
                size,
                group,
            } => format!("q:{size}:{group}:{mode}:{path}"),
            RoomKey::Lobby(code) => format!("l:{code}"),
        }
    }

    #[test]
    fn rooms_are_written_and_read_back_alike() {
        let keys = [
            RoomKey::Open("arena".into()),
            RoomKey::Open(String::new()),
            RoomKey::Quick {
                path: "arena".into(),
                mode: String::new(),
                size: 4,
                group: 17,
            },
            RoomKey::Quick {
                path: "a.b~c-d".into(),
                mode: "ranked".into(),
                size: 2,
                group: u64::MAX,
            },
            RoomKey::Lobby("K7PX2M".parse().unwrap()),
        ];
        for key in keys {
            assert_eq!(room_key(&room_text(&key)).unwrap(), key);
        }
        assert!(room_key("x:1").is_err());
        assert!(room_key("q:2:x::a").is_err());
        assert!(room_key("l:nope").is_err());
    }
}
