//! The state several server instances share: rooms and their members,
//! quick-match groups, lobbies and their join codes, the client count against
//! `--max-clients`, and the rate limits that must hold across instances.
//!
//! [`SharedState`] is the interface the request handlers are written against,
//! with two implementations:
//! - [`MemoryState`]: one process's memory, no other program needed (the
//!   embedded default, the same room logic as [`Rooms`](crate::rooms::Rooms));
//! - [`RedisState`]: a Redis server, so that every instance connected to it
//!   sees the same rooms, lobbies, counts and limits. Each operation that reads
//!   and writes several keys is one Lua script, which Redis runs atomically:
//!   two instances never put one waiting peer in two rooms, nor a lobby past its
//!   player limit.
//!
//! Both are driven by the same tests (`tests/shared.rs`, the Redis one against
//! a real `redis-server`).
//!
//! What stays local to an instance is not here: the send queue of each
//! connected client, and the limits per client (signal rate, message size,
//! idle time).
//!
//! Time is wall-clock milliseconds ([`Millis`]), passed in by the caller:
//! instances do not share an [`Instant`](std::time::Instant), and tests can
//! move time on without waiting.

use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use matchbox_protocol::PeerId;
use thiserror::Error;

use crate::limits::RetryAfter;
use crate::rooms::{JoinCode, Joined, LobbyInfo, LobbySpec, RoomError, RoomKey, RoomRequest};

mod memory;
mod redis;
mod scripts;

pub use memory::MemoryState;
pub use redis::{Held, HeldLobby, HeldPeer, RedisState, RedisStateConfig, Synced};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The wall clock in [`Millis`].
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why a shared-state operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SharedError {
    /// The room logic refused it (full room, unknown lobby, ...): the client's
    /// answer.
    #[error(transparent)]
    Refused(#[from] RoomError),
    /// The shared state could not be reached or answered out of protocol: the
    /// request cannot be served now (an HTTP 503 or a close with this reason).
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
}

/// Rooms, lobbies and server-wide counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Peers in rooms.
    pub peers: usize,
    /// Rooms with at least one peer.
    pub rooms: usize,
    /// Lobbies, empty or not.
    pub lobbies: usize,
}

/// Where a peer's client is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// To this process (always, in memory).
    Here,
    /// To the instance with this id (perhaps this one).
    At(String),
    /// Nowhere known: it left meanwhile.
    Nowhere,
}

/// A rate limit kept per client address (by its
/// [`address_key`](crate::limits::address_key)): `burst` requests at once,
/// refilled at `rate` a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Names the limit (`"connect"`, `"lobby_miss"`, `"ice"`, ...); each name
    /// is a table of its own.
    pub name: &'static str,
    /// Tokens a second; 0 turns the limit off.
    pub rate: f64,
    /// Tokens at most.
    pub burst: u32,
}

impl Bucket {
    /// How long a bucket takes to fill from empty: after that long unused it
    /// is full again and need not be kept.
    pub fn refill_time(&self) -> Duration {
        if self.rate > 0.0 {
            Duration::try_from_secs_f64(f64::from(self.burst.max(1)) / self.rate)
                .unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        }
    }
}

/// The client seats there are: across all instances, and per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatLimits {
    /// Clients at most (`--max-clients`).
    pub max: usize,
    /// Clients one address may have at once (0: no limit).
    pub per_address: usize,
}

/// What became of a seat asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seating {
    /// Taken: give it back when the client leaves.
    Taken,
    /// Every seat is taken.
    Full,
    /// The address has as many as it may.
    AddressFull,
}

/// The state instances share. Every method may fail with
/// [`SharedError::Unavailable`] when the state lives elsewhere and cannot be
/// reached; [`MemoryState`] never does.
pub trait SharedState: Send + Sync {
    /// Puts `peer`, a client of `instance`, in the room it asked for.
    fn join(
        &self,
        peer: PeerId,
        instance: &str,
        request: &RoomRequest,
        now: Millis,
    ) -> impl Future<Output = Result<Joined, SharedError>> + Send;

    /// Takes `peer` out of its room; returns the peers left there, who must be
    /// told. A complete quick-match group stays closed. With `only_at`, only
    /// if the peer is connected to that instance (not if it resumed on
    /// another meanwhile).
    fn leave(
        &self,
        peer: PeerId,
        only_at: Option<&str>,
        now: Millis,
    ) -> impl Future<Output = Result<Vec<PeerId>, SharedError>> + Send;

    /// A client resuming with its key on `instance`: if `peer` holds a place
    /// in a room, it is now connected there; its room and room-mates.
    fn resume(
        &self,
        peer: PeerId,
        instance: &str,
    ) -> impl Future<Output = Result<Option<(RoomKey, Vec<PeerId>)>, SharedError>> + Send;

    /// The room `peer` is in.
    fn room_of(
        &self,
        peer: PeerId,
    ) -> impl Future<Output = Result<Option<RoomKey>, SharedError>> + Send;

    /// The other peers in `peer`'s room.
    fn room_mates(
        &self,
        peer: PeerId,
    ) -> impl Future<Output = Result<Vec<PeerId>, SharedError>> + Send;

    /// Whether `from` may send a signal to `to`: only within one room.
    fn can_signal(
        &self,
        from: PeerId,
        to: PeerId,
    ) -> impl Future<Output = Result<bool, SharedError>> + Send;

    /// Where `to` is connected, if `from` may send it a signal (both in one
    /// room); `None` if it may not.
    fn route(
        &self,
        from: PeerId,
        to: PeerId,
    ) -> impl Future<Output = Result<Option<Location>, SharedError>> + Send;

    /// Where each of `peers` is connected.
    fn locate(
        &self,
        peers: &[PeerId],
    ) -> impl Future<Output = Result<Vec<Location>, SharedError>> + Send;

    /// Creates a lobby under a fresh code, for `owner` (a client address by its
    /// limit key) if given, who may hold at most
    /// [`RoomLimits::max_lobbies_per_owner`](crate::rooms::RoomLimits) at once.
    /// `codes` are candidate codes, tried in order (random ones: a few are
    /// enough while the table is far from full).
    fn create_lobby(
        &self,
        owner: Option<IpAddr>,
        spec: LobbySpec,
        codes: &[JoinCode],
        now: Millis,
    ) -> impl Future<Output = Result<LobbyInfo, SharedError>> + Send;

    /// The lobby with `code`, public or private.
    fn lobby(
        &self,
        code: JoinCode,
    ) -> impl Future<Output = Result<Option<LobbyInfo>, SharedError>> + Send;

    /// Public lobbies, of `mode` if given, newest first, at most `limit`.
    fn public_lobbies(
        &self,
        mode: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LobbyInfo>, SharedError>> + Send;

    /// Removes lobbies that have been empty for the lobby time-to-live; returns
    /// how many.
    fn expire_lobbies(
        &self,
        now: Millis,
    ) -> impl Future<Output = Result<usize, SharedError>> + Send;

    /// Lobbies `owner` holds now.
    fn lobbies_of(&self, owner: IpAddr) -> impl Future<Output = Result<usize, SharedError>> + Send;

    /// Peers, rooms and lobbies now.
    fn counts(&self) -> impl Future<Output = Result<Counts, SharedError>> + Send;

    /// Takes a token from `key`'s bucket of `bucket`, or says how long until
    /// one is there; with `peek`, only looks.
    fn take_token(
        &self,
        bucket: Bucket,
        key: IpAddr,
        peek: bool,
        now: Millis,
    ) -> impl Future<Output = Result<Result<(), RetryAfter>, SharedError>> + Send;

    /// Takes a client seat for `instance`, for a client at `address` (by its
    /// [`address_key`](crate::limits::address_key)), if fewer than
    /// `limits.max` are taken across all instances and fewer than
    /// `limits.per_address` by that address.
    fn take_seat(
        &self,
        instance: &str,
        address: IpAddr,
        limits: SeatLimits,
    ) -> impl Future<Output = Result<Seating, SharedError>> + Send;

    /// Gives back a seat `instance` took for `address`.
    fn give_seat(
        &self,
        instance: &str,
        address: IpAddr,
    ) -> impl Future<Output = Result<(), SharedError>> + Send;

    /// Seats taken across all instances.
    fn seats(&self) -> impl Future<Output = Result<usize, SharedError>> + Send;
}

/// One of the implementations, chosen at start-up (`--redis`).
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a server holds one, for its whole life"
)]
pub enum Shared {
    /// In this process's memory.
    Memory(MemoryState),
    /// In Redis.
    Redis(RedisState),
}

/// Calls the same method on whichever implementation `$self` holds.
macro_rules! either {
    ($self:ident, $state:ident => $call:expr) => {
        match $self {
            Shared::Memory($state) => $call.await,
            Shared::Redis($state) => $call.await,
        }
    };
}

impl SharedState for Shared {
    async fn join(
        &self,
        peer: PeerId,
        instance: &str,
        request: &RoomRequest,
        now: Millis,
    ) -> Result<Joined, SharedError> {
        either!(self, s => s.join(peer, instance, request, now))
    }

    async fn leave(
        &self,
        peer: PeerId,
        only_at: Option<&str>,
        now: Millis,
    ) -> Result<Vec<PeerId>, SharedError> {
        either!(self, s => s.leave(peer, only_at, now))
    }

    async fn resume(
        &self,
        peer: PeerId,
        instance: &str,
    ) -> Result<Option<(RoomKey, Vec<PeerId>)>, SharedError> {
        either!(self, s => s.resume(peer, instance))
    }

    async fn room_of(&self, peer: PeerId) -> Result<Option<RoomKey>, SharedError> {
        either!(self, s => s.room_of(peer))
    }

    async fn room_mates(&self, peer: PeerId) -> Result<Vec<PeerId>, SharedError> {
        either!(self, s => s.room_mates(peer))
    }

    async fn can_signal(&self, from: PeerId, to: PeerId) -> Result<bool, SharedError> {
        either!(self, s => s.can_signal(from, to))
    }

    async fn route(&self, from: PeerId, to: PeerId) -> Result<Option<Location>, SharedError> {
        either!(self, s => s.route(from, to))
    }

    async fn locate(&self, peers: &[PeerId]) -> Result<Vec<Location>, SharedError> {
        either!(self, s => s.locate(peers))
    }

    async fn create_lobby(
        &self,
        owner: Option<IpAddr>,
        spec: LobbySpec,
        codes: &[JoinCode],
        now: Millis,
    ) -> Result<LobbyInfo, SharedError> {
        either!(self, s => s.create_lobby(owner, spec, codes, now))
    }

    async fn lobby(&self, code: JoinCode) -> Result<Option<LobbyInfo>, SharedError> {
        either!(self, s => s.lobby(code))
    }

    async fn public_lobbies(
        &self,
        mode: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LobbyInfo>, SharedError> {
        either!(self, s => s.public_lobbies(mode, limit))
    }

    async fn expire_lobbies(&self, now: Millis) -> Result<usize, SharedError> {
        either!(self, s => s.expire_lobbies(now))
    }

    async fn lobbies_of(&self, owner: IpAddr) -> Result<usize, SharedError> {
        either!(self, s => s.lobbies_of(owner))
    }

    async fn counts(&self) -> Result<Counts, SharedError> {
        either!(self, s => s.counts())
    }

    async fn take_token(
        &self,
        bucket: Bucket,
        key: IpAddr,
        peek: bool,
        now: Millis,
    ) -> Result<Result<(), RetryAfter>, SharedError> {
        either!(self, s => s.take_token(bucket, key, peek, now))
    }

    async fn take_seat(
        &self,
        instance: &str,
        address: IpAddr,
        limits: SeatLimits,
    ) -> Result<Seating, SharedError> {
        either!(self, s => s.take_seat(instance, address, limits))
    }

    async fn give_seat(&self, instance: &str, address: IpAddr) -> Result<(), SharedError> {
        either!(self, s => s.give_seat(instance, address))
    }

    async fn seats(&self) -> Result<usize, SharedError> {
        either!(self, s => s.seats())
    }
}
