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
//! | `seats:<address>` | hash | an address's clients per instance |
//! | `addrs:<instance>` | set | the addresses with clients on the instance |
//! | `inst:<instance>` | string | the instance is alive (expires unless announced again) |
//! | `instances` | set | the instances seen and not yet forgotten |
//! | `members:<instance>` | set | the peers connected to the instance that are in rooms |
//! | `rate:<name>:<address>` | hash | a token bucket: tokens and when counted; expires once full again |
//! | `epoch` | string | a random id set by the first instance to find it missing: a new one means Redis lost its data |
//! | `restoring` | string | set (expiring) while the instances write back what they hold |
//!
//! Redis may lose everything (a restart without persistence). Each instance
//! keeps what it holds (its clients' rooms, quick-match groups they wait in,
//! the lobbies it made or its clients are in) and finds out on its next
//! [`sync`](RedisState::sync): the epoch is missing, or not the one it knew.
//! The first to notice opens a restore window, during which joins, resumes
//! and lobby look-ups are refused as unavailable (retry shortly), and every
//! instance [`restore`](RedisState::restore)s what it holds. The same write-back
//! follows any time Redis was out of reach, with its data or without: it only
//! adds what is missing.
//!
//! A room is written `o:<path>`, `q:<size>:<group>:<mode>:<path>` or
//! `l:<code>` (paths and modes have no `:`).

use std::net::IpAddr;
use std::time::Duration;

use matchbox_protocol::PeerId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value};

mod instances;
mod restore;

pub use restore::{Held, HeldLobby, HeldPeer, Synced};

use super::scripts::Scripts;
use super::{Bucket, Counts, Location, Millis, SeatLimits, Seating, SharedError, SharedState};
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
    /// The epoch of the data this instance last saw.
    epoch: std::sync::Mutex<String>,
}

/// The refusal while the instances write back what they hold.
const RESTORING: &str = "Redis lost its data and is being refilled: retry shortly";

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

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
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
        return match fields.as_slice() {
            [] => Ok(None),
            [status] if text(status)? == "restoring" => {
                Err(SharedError::Unavailable(RESTORING.into()))
            }
            _ => Err(bad_reply("a lobby")),
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
        "restoring" => SharedError::Unavailable(RESTORING.into()),
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
        let epoch: String = Scripts::new()
            .epoch
            .arg(&config.prefix)
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            epoch: std::sync::Mutex::new(epoch),
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

    async fn leave(
        &self,
        peer: PeerId,
        only_at: Option<&str>,
        now: Millis,
    ) -> Result<Vec<PeerId>, SharedError> {
        let reply: Value = self
            .scripts
            .leave
            .arg(&self.prefix)
            .arg(peer.0.to_string())
            .arg(now)
            .arg(only_at.unwrap_or_default())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        peers(&reply)
    }

    async fn resume(
        &self,
        peer: PeerId,
        instance: &str,
    ) -> Result<Option<(RoomKey, Vec<PeerId>)>, SharedError> {
        let reply: Vec<Value> = self
            .scripts
            .resume
            .arg(&self.prefix)
            .arg(peer.0.to_string())
            .arg(instance)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        match reply.as_slice() {
            [] => Ok(None),
            [status] if text(status)? == "restoring" => {
                Err(SharedError::Unavailable(RESTORING.into()))
            }
            [room, mates] => Ok(Some((room_key(&text(room)?)?, peers(mates)?))),
            _ => Err(bad_reply("a resume")),
        }
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

    async fn take_seat(
        &self,
        instance: &str,
        address: IpAddr,
        limits: SeatLimits,
    ) -> Result<Seating, SharedError> {
        let taken: u64 = self
            .scripts
            .take_seat
            .arg(&self.prefix)
            .arg(instance)
            .arg(limits.max)
            .arg(address_key(address).to_string())
            .arg(limits.per_address)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(match taken {
            1 => Seating::Taken,
            2 => Seating::AddressFull,
            _ => Seating::Full,
        })
    }

    async fn give_seat(&self, instance: &str, address: IpAddr) -> Result<(), SharedError> {
        let _: u64 = self
            .scripts
            .give_seat
            .arg(&self.prefix)
            .arg(instance)
            .arg(address_key(address).to_string())
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
