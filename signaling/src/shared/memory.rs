//! Shared state in this process's memory: [`Rooms`] and rate limiters behind
//! locks. It never fails and never waits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use matchbox_protocol::PeerId;

use super::{
    Bucket, Counts, Location, Millis, SeatLimits, Seating, SharedError, SharedState, now_millis,
};
use crate::limits::{RateLimiter, RetryAfter, address_key};
use crate::rooms::{
    JoinCode, Joined, LobbyInfo, LobbySpec, RoomKey, RoomLimits, RoomRequest, Rooms,
};

/// Addresses one rate table remembers at most (see [`RateLimiter`]).
const MAX_ADDRESSES: usize = 100_000;

/// Rooms, lobbies, limits and the client count of one server, in memory.
#[derive(Debug)]
pub struct MemoryState {
    rooms: Mutex<Rooms>,
    /// One rate table per [`Bucket::name`].
    rates: Mutex<HashMap<&'static str, RateLimiter>>,
    seats: AtomicUsize,
    /// Seats taken per client address.
    addresses: Mutex<HashMap<IpAddr, usize>>,
    /// The instant that [`Millis`] `origin.1` stands for: wall-clock times
    /// passed in become instants from there, so that the room logic runs on a
    /// monotonic clock.
    origin: (Instant, Millis),
}

/// Locks `mutex`, also when a panic elsewhere poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryState {
    /// No rooms, lobbies or clients yet.
    pub fn new(limits: RoomLimits) -> Self {
        Self {
            rooms: Mutex::new(Rooms::new(limits)),
            rates: Mutex::new(HashMap::new()),
            seats: AtomicUsize::new(0),
            addresses: Mutex::new(HashMap::new()),
            origin: (Instant::now(), now_millis()),
        }
    }

    /// The instant of wall-clock time `now` (times before this state was
    /// made count as its start).
    fn instant(&self, now: Millis) -> Instant {
        self.origin.0 + Duration::from_millis(now.saturating_sub(self.origin.1))
    }
}

impl SharedState for MemoryState {
    async fn join(
        &self,
        peer: PeerId,
        _instance: &str,
        request: &RoomRequest,
        now: Millis,
    ) -> Result<Joined, SharedError> {
        let now = self.instant(now);
        Ok(lock(&self.rooms).join(peer, request.clone(), now)?)
    }

    async fn leave(
        &self,
        peer: PeerId,
        _only_at: Option<&str>,
        now: Millis,
    ) -> Result<Vec<PeerId>, SharedError> {
        let now = self.instant(now);
        Ok(lock(&self.rooms).leave(peer, now))
    }

    async fn resume(
        &self,
        peer: PeerId,
        _instance: &str,
    ) -> Result<Option<(RoomKey, Vec<PeerId>)>, SharedError> {
        let rooms = lock(&self.rooms);
        Ok(rooms
            .room_of(peer)
            .cloned()
            .map(|room| (room, rooms.room_mates(peer))))
    }

    async fn room_of(&self, peer: PeerId) -> Result<Option<RoomKey>, SharedError> {
        Ok(lock(&self.rooms).room_of(peer).cloned())
    }

    async fn room_mates(&self, peer: PeerId) -> Result<Vec<PeerId>, SharedError> {
        Ok(lock(&self.rooms).room_mates(peer))
    }

    async fn can_signal(&self, from: PeerId, to: PeerId) -> Result<bool, SharedError> {
        Ok(lock(&self.rooms).can_signal(from, to))
    }

    async fn route(&self, from: PeerId, to: PeerId) -> Result<Option<Location>, SharedError> {
        Ok(lock(&self.rooms)
            .can_signal(from, to)
            .then_some(Location::Here))
    }

    async fn locate(&self, peers: &[PeerId]) -> Result<Vec<Location>, SharedError> {
        Ok(vec![Location::Here; peers.len()])
    }

    async fn create_lobby(
        &self,
        owner: Option<IpAddr>,
        spec: LobbySpec,
        codes: &[JoinCode],
        now: Millis,
    ) -> Result<LobbyInfo, SharedError> {
        let now = self.instant(now);
        Ok(lock(&self.rooms).create_lobby_with(owner, spec, now, codes)?)
    }

    async fn lobby(&self, code: JoinCode) -> Result<Option<LobbyInfo>, SharedError> {
        Ok(lock(&self.rooms).lobby(code))
    }

    async fn public_lobbies(
        &self,
        mode: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LobbyInfo>, SharedError> {
        Ok(lock(&self.rooms).public_lobbies(mode, limit))
    }

    async fn expire_lobbies(&self, now: Millis) -> Result<usize, SharedError> {
        let now = self.instant(now);
        Ok(lock(&self.rooms).expire_lobbies(now))
    }

    async fn lobbies_of(&self, owner: IpAddr) -> Result<usize, SharedError> {
        Ok(lock(&self.rooms).lobbies_of(owner))
    }

    async fn counts(&self) -> Result<Counts, SharedError> {
        let rooms = lock(&self.rooms);
        Ok(Counts {
            peers: rooms.peer_count(),
            rooms: rooms.room_count(),
            lobbies: rooms.lobby_count(),
        })
    }

    async fn take_token(
        &self,
        bucket: Bucket,
        key: IpAddr,
        peek: bool,
        now: Millis,
    ) -> Result<Result<(), RetryAfter>, SharedError> {
        let now = self.instant(now);
        let mut rates = lock(&self.rates);
        let table = rates
            .entry(bucket.name)
            .or_insert_with(|| RateLimiter::new(bucket.rate, bucket.burst, MAX_ADDRESSES));
        Ok(if peek {
            table.peek(key, now)
        } else {
            table.check(key, now)
        })
    }

    async fn take_seat(
        &self,
        _instance: &str,
        address: IpAddr,
        limits: SeatLimits,
    ) -> Result<Seating, SharedError> {
        let address = address_key(address);
        let mut addresses = lock(&self.addresses);
        if self.seats.load(Ordering::SeqCst) >= limits.max {
            return Ok(Seating::Full);
        }
        let held = addresses.entry(address).or_default();
        if limits.per_address > 0 && *held >= limits.per_address {
            return Ok(Seating::AddressFull);
        }
        *held += 1;
        self.seats.fetch_add(1, Ordering::SeqCst);
        Ok(Seating::Taken)
    }

    async fn give_seat(&self, _instance: &str, address: IpAddr) -> Result<(), SharedError> {
        let address = address_key(address);
        let mut addresses = lock(&self.addresses);
        if let Some(held) = addresses.get_mut(&address) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                addresses.remove(&address);
            }
            let _ = self
                .seats
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
                    taken.checked_sub(1)
                });
        }
        Ok(())
    }

    async fn seats(&self) -> Result<usize, SharedError> {
        Ok(self.seats.load(Ordering::SeqCst))
    }
}
