//! Rooms, lobbies and matchmaking, with no I/O: which peers share a room, who is
//! told about whom, which signals may pass, and the lobbies players create and
//! join by code.
//!
//! Three kinds of room:
//! - open rooms, by URL path: everyone on one path shares a room;
//! - quick-match, `?next=N` (and optionally `&mode=M`): the next `N` joiners of
//!   one path and mode form a closed room of their own;
//! - lobbies, created through the HTTP API with a name, a mode, a player limit
//!   and public or private; joined by a short code at `/join/<CODE>`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use matchbox_protocol::PeerId;
use serde::Serialize;
use thiserror::Error;

/// Longest room path accepted, in bytes.
pub const MAX_ROOM_PATH: usize = 128;
/// Longest mode accepted, in bytes.
pub const MAX_MODE: usize = 32;
/// Longest lobby name accepted, in characters.
pub const MAX_LOBBY_NAME: usize = 64;
/// Characters of a join code.
pub const CODE_LEN: usize = 6;
/// Join codes avoid characters that read alike (0/O, 1/I/L).
const CODE_ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// Why a room or lobby request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The path is too long or has characters outside `[A-Za-z0-9_.~-]`.
    #[error("invalid room path: at most {MAX_ROOM_PATH} characters of [A-Za-z0-9_.~-]")]
    InvalidPath,
    /// `next` is not a whole number between 2 and the room size limit.
    #[error("invalid next: must be a whole number from 2 to {0}")]
    InvalidNext(usize),
    /// The mode is too long or has characters outside `[A-Za-z0-9_.~-]`.
    #[error("invalid mode: at most {MAX_MODE} characters of [A-Za-z0-9_.~-]")]
    InvalidMode,
    /// A mode was given without `next`: modes key quick-match only.
    #[error("mode needs next: modes apply to quick-match (?next=N&mode=M)")]
    ModeWithoutNext,
    /// The join code is not six characters of the code alphabet.
    #[error("invalid join code: {CODE_LEN} characters of 2-9 and A-Z without I, L and O")]
    InvalidCode,
    /// No lobby has that code (it never existed, or it expired).
    #[error("no lobby with code {0}")]
    UnknownLobby(JoinCode),
    /// A lobby's settings are out of range.
    #[error("invalid lobby: {0}")]
    InvalidLobby(String),
    /// The server holds as many lobbies as it may.
    #[error("too many lobbies ({0}); try again later")]
    TooManyLobbies(usize),
    /// The creator holds as many lobbies as one may.
    #[error("too many lobbies from one address ({0}); try again once one has expired")]
    TooManyLobbiesFrom(usize),
    /// The room is full.
    #[error("room is full ({0} peers)")]
    RoomFull(usize),
    /// The peer is already in a room.
    #[error("peer already joined")]
    AlreadyJoined,
}

/// A short, human-friendly lobby code such as `K7PX2M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JoinCode([u8; CODE_LEN]);

impl JoinCode {
    /// A code from 30 random bits (31^6: about 890 million codes).
    pub fn from_random(bits: u32) -> Self {
        let mut rest = bits;
        let mut code = [0u8; CODE_LEN];
        for c in &mut code {
            *c = CODE_ALPHABET[(rest % CODE_ALPHABET.len() as u32) as usize];
            rest /= CODE_ALPHABET.len() as u32;
        }
        Self(code)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Always ASCII from the alphabet.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl FromStr for JoinCode {
    type Err = RoomError;

    /// Parses a code, ignoring case.
    fn from_str(s: &str) -> Result<Self, RoomError> {
        let bytes = s.as_bytes();
        if bytes.len() != CODE_LEN {
            return Err(RoomError::InvalidCode);
        }
        let mut code = [0u8; CODE_LEN];
        for (c, &b) in code.iter_mut().zip(bytes) {
            let b = b.to_ascii_uppercase();
            if !CODE_ALPHABET.contains(&b) {
                return Err(RoomError::InvalidCode);
            }
            *c = b;
        }
        Ok(Self(code))
    }
}

impl fmt::Display for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JoinCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_.~-".contains(&b)
}

/// Whether `c` may not be in a lobby name: control characters (C0, DEL, C1),
/// the bidirectional marks, embeddings, overrides and isolates (which can
/// make a name read differently from what it is, and spill into the text
/// around it where it is shown), line and paragraph separators and the
/// byte-order mark.
pub fn is_forbidden_in_name(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{FEFF}'
        )
}

/// Checks a lobby name: at most [`MAX_LOBBY_NAME`] characters, none of them
/// [forbidden](is_forbidden_in_name).
pub fn check_lobby_name(name: &str) -> Result<(), RoomError> {
    if name.chars().count() > MAX_LOBBY_NAME {
        return Err(RoomError::InvalidLobby(format!(
            "name: at most {MAX_LOBBY_NAME} characters"
        )));
    }
    if let Some(c) = name.chars().find(|&c| is_forbidden_in_name(c)) {
        return Err(RoomError::InvalidLobby(format!(
            "name: U+{:04X} is not allowed (no control or bidirectional formatting characters)",
            u32::from(c)
        )));
    }
    Ok(())
}

/// Checks a lobby's settings: its [name](check_lobby_name), its mode (at most
/// [`MAX_MODE`] characters of `[A-Za-z0-9_.~-]`) and a player limit from 2 to
/// `max_room_size`.
pub fn check_lobby_spec(spec: &LobbySpec, max_room_size: usize) -> Result<(), RoomError> {
    check_lobby_name(&spec.name)?;
    if spec.mode.len() > MAX_MODE || !spec.mode.bytes().all(is_name_char) {
        return Err(RoomError::InvalidMode);
    }
    if !(2..=max_room_size).contains(&spec.max_players) {
        return Err(RoomError::InvalidLobby(format!(
            "max_players: from 2 to {max_room_size}"
        )));
    }
    Ok(())
}

/// What a connecting client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoomRequest {
    /// Everyone on this path shares a room.
    Open {
        /// The URL path without its leading slash.
        path: String,
    },
    /// The next `size` joiners of this path and mode form a closed room.
    QuickMatch {
        /// The URL path without its leading slash.
        path: String,
        /// Players per room.
        size: usize,
        /// Players of different modes are never matched (empty: no mode).
        mode: String,
    },
    /// A lobby, by join code.
    Lobby(JoinCode),
}

impl RoomRequest {
    /// Parses and checks a request from a URL path and its `next` and `mode`
    /// query values.
    pub fn parse(
        path: Option<&str>,
        next: Option<&str>,
        mode: Option<&str>,
        max_room_size: usize,
    ) -> Result<Self, RoomError> {
        let path = path.unwrap_or_default();
        if path.len() > MAX_ROOM_PATH || !path.bytes().all(is_name_char) {
            return Err(RoomError::InvalidPath);
        }
        let mode = mode.unwrap_or_default();
        if mode.len() > MAX_MODE || !mode.bytes().all(is_name_char) {
            return Err(RoomError::InvalidMode);
        }
        let Some(next) = next else {
            if !mode.is_empty() {
                return Err(RoomError::ModeWithoutNext);
            }
            return Ok(Self::Open {
                path: path.to_owned(),
            });
        };
        match next.parse::<usize>() {
            Ok(size) if (2..=max_room_size).contains(&size) => Ok(Self::QuickMatch {
                path: path.to_owned(),
                size,
                mode: mode.to_owned(),
            }),
            _ => Err(RoomError::InvalidNext(max_room_size)),
        }
    }

    /// Parses a lobby join code from the `/join/<CODE>` path.
    pub fn lobby(code: &str) -> Result<Self, RoomError> {
        code.parse().map(Self::Lobby)
    }
}

/// A room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoomKey {
    /// An open room, by path.
    Open(String),
    /// One quick-match group of a path, mode and size.
    Quick {
        /// The path the peers asked for.
        path: String,
        /// Their mode.
        mode: String,
        /// Players per room.
        size: usize,
        /// Which group of that path, mode and size.
        group: u64,
    },
    /// A lobby.
    Lobby(JoinCode),
}

impl RoomKey {
    /// `open`, `quick` or `lobby`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open(_) => "open",
            Self::Quick { .. } => "quick",
            Self::Lobby(_) => "lobby",
        }
    }
}

/// Settings of a lobby to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LobbySpec {
    /// Shown in the public list; up to [`MAX_LOBBY_NAME`] characters.
    pub name: String,
    /// Listed publicly, or only joinable by code.
    pub public: bool,
    /// Most players, from 2 to the server's room size limit.
    pub max_players: usize,
    /// Free-form game mode, up to [`MAX_MODE`] characters of `[A-Za-z0-9_.~-]`.
    pub mode: String,
}

/// A lobby as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LobbyInfo {
    /// Its join code.
    pub code: JoinCode,
    /// Its name.
    pub name: String,
    /// Its mode.
    pub mode: String,
    /// Whether it is listed.
    pub public: bool,
    /// Players in it now.
    pub players: usize,
    /// Most players.
    pub max_players: usize,
}

#[derive(Debug)]
struct Lobby {
    spec: LobbySpec,
    /// Who created it, for the limit per creator.
    owner: Option<IpAddr>,
    created: Instant,
    /// Since when nobody is in it (from creation until the first join).
    empty_since: Option<Instant>,
}

/// Limits of the room logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    /// Most peers in one room (any kind).
    pub max_room_size: usize,
    /// Most lobbies at once.
    pub max_lobbies: usize,
    /// An empty lobby is removed after this long.
    pub lobby_ttl: Duration,
    /// Most lobbies one creator may hold at once (0: no limit); see
    /// [`Rooms::create_lobby_from`].
    pub max_lobbies_per_owner: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self {
            max_room_size: 16,
            max_lobbies: 10_000,
            lobby_ttl: Duration::from_secs(600),
            max_lobbies_per_owner: 20,
        }
    }
}

/// What a join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The peers already in the room, who must be told about the newcomer.
    pub others: Vec<PeerId>,
    /// The room joined.
    pub room: RoomKey,
    /// When this join completed a quick-match group: how long each member of
    /// the group waited for it.
    pub matched: Vec<Duration>,
}

/// All rooms and lobbies of a server.
#[derive(Debug)]
pub struct Rooms {
    limits: RoomLimits,
    members: HashMap<RoomKey, Vec<PeerId>>,
    peer_room: HashMap<PeerId, RoomKey>,
    /// The quick-match group still filling, per (path, mode, size).
    filling: HashMap<(String, String, usize), u64>,
    /// When each member of a filling quick-match group joined.
    waiting_since: HashMap<PeerId, Instant>,
    lobbies: HashMap<JoinCode, Lobby>,
    /// Lobbies held per creator.
    owned: HashMap<IpAddr, usize>,
    next_group: u64,
}

impl Rooms {
    /// No rooms yet.
    pub fn new(limits: RoomLimits) -> Self {
        Self {
            limits: RoomLimits {
                max_room_size: limits.max_room_size.max(2),
                ..limits
            },
            members: HashMap::new(),
            peer_room: HashMap::new(),
            filling: HashMap::new(),
            waiting_since: HashMap::new(),
            lobbies: HashMap::new(),
            owned: HashMap::new(),
            next_group: 1,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> RoomLimits {
        self.limits
    }

    /// Puts `peer` in the room it asked for.
    pub fn join(
        &mut self,
        peer: PeerId,
        request: RoomRequest,
        now: Instant,
    ) -> Result<Joined, RoomError> {
        if self.peer_room.contains_key(&peer) {
            return Err(RoomError::AlreadyJoined);
        }
        let mut completes_group = None;
        let (key, limit) = match request {
            RoomRequest::Open { path } => (RoomKey::Open(path), self.limits.max_room_size),
            RoomRequest::QuickMatch { path, size, mode } => {
                let slot = (path, mode, size);
                let group = match self.filling.get(&slot) {
                    Some(&group) => group,
                    None => {
                        let group = self.next_group;
                        self.next_group += 1;
                        self.filling.insert(slot.clone(), group);
                        group
                    }
                };
                let (path, mode, size) = slot;
                let key = RoomKey::Quick {
                    path,
                    mode,
                    size,
                    group,
                };
                if self.members.get(&key).map_or(0, Vec::len) + 1 >= size {
                    completes_group = Some((key.path_mode_size(), group));
                }
                (key, size.min(self.limits.max_room_size))
            }
            RoomRequest::Lobby(code) => {
                let lobby = self
                    .lobbies
                    .get(&code)
                    .ok_or(RoomError::UnknownLobby(code))?;
                (RoomKey::Lobby(code), lobby.spec.max_players)
            }
        };
        let members = self.members.entry(key.clone()).or_default();
        if members.len() >= limit {
            return Err(RoomError::RoomFull(limit));
        }
        let others = members.clone();
        members.push(peer);
        self.peer_room.insert(peer, key.clone());
        if let RoomKey::Lobby(code) = &key
            && let Some(lobby) = self.lobbies.get_mut(code)
        {
            lobby.empty_since = None;
        }
        let mut matched = Vec::new();
        if let Some((slot, group)) = completes_group {
            // The group is complete: the next joiner starts a new one.
            if self.filling.get(&slot) == Some(&group) {
                self.filling.remove(&slot);
            }
            for member in others.iter().chain([&peer]) {
                let since = self.waiting_since.remove(member).unwrap_or(now);
                matched.push(now.saturating_duration_since(since));
            }
        } else if matches!(key, RoomKey::Quick { .. }) {
            self.waiting_since.insert(peer, now);
        }
        Ok(Joined {
            others,
            room: key,
            matched,
        })
    }

    /// Takes `peer` out of its room and returns the peers left there, who must be
    /// told. A complete quick-match group stays closed.
    pub fn leave(&mut self, peer: PeerId, now: Instant) -> Vec<PeerId> {
        self.waiting_since.remove(&peer);
        let Some(key) = self.peer_room.remove(&peer) else {
            return Vec::new();
        };
        let Some(members) = self.members.get_mut(&key) else {
            return Vec::new();
        };
        members.retain(|&p| p != peer);
        let others = members.clone();
        if others.is_empty() {
            self.members.remove(&key);
            match &key {
                RoomKey::Quick { group, .. } => {
                    let slot = key.path_mode_size();
                    if self.filling.get(&slot) == Some(group) {
                        self.filling.remove(&slot);
                    }
                }
                RoomKey::Lobby(code) => {
                    if let Some(lobby) = self.lobbies.get_mut(code) {
                        lobby.empty_since = Some(now);
                    }
                }
                RoomKey::Open(_) => {}
            }
        }
        others
    }

    /// Whether `from` may send a signal to `to`: only within one room.
    pub fn can_signal(&self, from: PeerId, to: PeerId) -> bool {
        from != to
            && match (self.peer_room.get(&from), self.peer_room.get(&to)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
    }

    /// The other peers in `peer`'s room.
    pub fn room_mates(&self, peer: PeerId) -> Vec<PeerId> {
        self.peer_room
            .get(&peer)
            .and_then(|key| self.members.get(key))
            .map(|members| members.iter().copied().filter(|&p| p != peer).collect())
            .unwrap_or_default()
    }

    /// The room `peer` is in.
    pub fn room_of(&self, peer: PeerId) -> Option<&RoomKey> {
        self.peer_room.get(&peer)
    }

    /// Number of peers in all rooms.
    pub fn peer_count(&self) -> usize {
        self.peer_room.len()
    }

    /// Number of rooms with at least one peer.
    pub fn room_count(&self) -> usize {
        self.members.len()
    }

    /// Number of lobbies, empty or not.
    pub fn lobby_count(&self) -> usize {
        self.lobbies.len()
    }

    /// Creates a lobby under a fresh code; `random` gives random bits for codes.
    /// No limit per creator applies.
    pub fn create_lobby(
        &mut self,
        spec: LobbySpec,
        now: Instant,
        random: impl FnMut() -> u32,
    ) -> Result<LobbyInfo, RoomError> {
        self.create(spec, None, now, codes(random))
    }

    /// Creates a lobby for `owner` (a client address, by its limit key), who
    /// may hold at most [`RoomLimits::max_lobbies_per_owner`] at once: a few
    /// addresses cannot take the whole lobby table.
    pub fn create_lobby_from(
        &mut self,
        owner: IpAddr,
        spec: LobbySpec,
        now: Instant,
        random: impl FnMut() -> u32,
    ) -> Result<LobbyInfo, RoomError> {
        self.create(spec, Some(owner), now, codes(random))
    }

    /// Creates a lobby for `owner` if given (limited as in
    /// [`create_lobby_from`](Self::create_lobby_from)) under the first of
    /// `codes` that is free.
    pub fn create_lobby_with(
        &mut self,
        owner: Option<IpAddr>,
        spec: LobbySpec,
        now: Instant,
        codes: &[JoinCode],
    ) -> Result<LobbyInfo, RoomError> {
        self.create(spec, owner, now, codes.iter().copied())
    }

    /// Lobbies `owner` holds now.
    pub fn lobbies_of(&self, owner: IpAddr) -> usize {
        self.owned.get(&owner).copied().unwrap_or(0)
    }

    fn create(
        &mut self,
        spec: LobbySpec,
        owner: Option<IpAddr>,
        now: Instant,
        mut codes: impl Iterator<Item = JoinCode>,
    ) -> Result<LobbyInfo, RoomError> {
        check_lobby_spec(&spec, self.limits.max_room_size)?;
        let per_owner = self.limits.max_lobbies_per_owner;
        let owner_full =
            |rooms: &Self| owner.is_some_and(|o| per_owner > 0 && rooms.lobbies_of(o) >= per_owner);
        if self.lobbies.len() >= self.limits.max_lobbies || owner_full(self) {
            self.expire_lobbies(now);
            if self.lobbies.len() >= self.limits.max_lobbies {
                return Err(RoomError::TooManyLobbies(self.limits.max_lobbies));
            }
            if owner_full(self) {
                return Err(RoomError::TooManyLobbiesFrom(per_owner));
            }
        }
        let code = codes
            .find(|code| !self.lobbies.contains_key(code))
            .ok_or(RoomError::TooManyLobbies(self.limits.max_lobbies))?;
        self.lobbies.insert(
            code,
            Lobby {
                spec,
                owner,
                created: now,
                empty_since: Some(now),
            },
        );
        if let Some(owner) = owner {
            *self.owned.entry(owner).or_default() += 1;
        }
        Ok(self.info(code, &self.lobbies[&code]))
    }

    fn info(&self, code: JoinCode, lobby: &Lobby) -> LobbyInfo {
        LobbyInfo {
            code,
            name: lobby.spec.name.clone(),
            mode: lobby.spec.mode.clone(),
            public: lobby.spec.public,
            players: self.members.get(&RoomKey::Lobby(code)).map_or(0, Vec::len),
            max_players: lobby.spec.max_players,
        }
    }

    /// The lobby with `code`, public or private.
    pub fn lobby(&self, code: JoinCode) -> Option<LobbyInfo> {
        self.lobbies.get(&code).map(|lobby| self.info(code, lobby))
    }

    /// Public lobbies, of `mode` if given, newest first, at most `limit`.
    pub fn public_lobbies(&self, mode: Option<&str>, limit: usize) -> Vec<LobbyInfo> {
        let mut found: Vec<(&JoinCode, &Lobby)> = self
            .lobbies
            .iter()
            .filter(|(_, l)| l.spec.public && mode.is_none_or(|m| l.spec.mode == m))
            .collect();
        found.sort_by(|a, b| b.1.created.cmp(&a.1.created).then(a.0.cmp(b.0)));
        found
            .into_iter()
            .take(limit)
            .map(|(&code, lobby)| self.info(code, lobby))
            .collect()
    }

    /// Removes lobbies that have been empty for the lobby time-to-live; returns
    /// how many.
    pub fn expire_lobbies(&mut self, now: Instant) -> usize {
        let ttl = self.limits.lobby_ttl;
        let before = self.lobbies.len();
        let owned = &mut self.owned;
        self.lobbies.retain(|_, lobby| {
            let keep = lobby
                .empty_since
                .is_none_or(|since| now.saturating_duration_since(since) < ttl);
            if !keep
                && let Some(owner) = lobby.owner
                && let Some(count) = owned.get_mut(&owner)
            {
                *count -= 1;
                if *count == 0 {
                    owned.remove(&owner);
                }
            }
            keep
        });
        before - self.lobbies.len()
    }
}

/// Codes to try for a new lobby: with at most `max_lobbies` taken out of ~890
/// million codes, a few random draws find a free one.
fn codes(mut random: impl FnMut() -> u32) -> impl Iterator<Item = JoinCode> {
    (0..64).map(move |_| JoinCode::from_random(random()))
}

impl RoomKey {
    fn path_mode_size(&self) -> (String, String, usize) {
        match self {
            Self::Quick {
                path, mode, size, ..
            } => (path.clone(), mode.clone(), *size),
            _ => (String::new(), String::new(), 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(n: u128) -> PeerId {
        PeerId(uuid::Uuid::from_u128(n))
    }

    fn open(path: &str) -> RoomRequest {
        RoomRequest::parse(Some(path), None, None, 16).unwrap()
    }

    fn quick(path: &str, n: usize, mode: Option<&str>) -> RoomRequest {
        RoomRequest::parse(Some(path), Some(&n.to_string()), mode, 16).unwrap()
    }

    fn rooms() -> Rooms {
        Rooms::new(RoomLimits {
            max_room_size: 4,
            max_lobbies: 3,
            lobby_ttl: Duration::from_secs(10),
            max_lobbies_per_owner: 2,
        })
    }

    fn spec(public: bool, max_players: usize, mode: &str) -> LobbySpec {
        LobbySpec {
            name: "friday game".into(),
            public,
            max_players,
            mode: mode.into(),
        }
    }

    fn counter() -> impl FnMut() -> u32 {
        let mut n = 0u32;
        move || {
            n = n.wrapping_add(0x9e37_79b9);
            n
        }
    }

    #[test]
    fn open_rooms_share_by_path() {
        let mut r = rooms();
        let t = Instant::now();
        assert!(r.join(peer(1), open("a"), t).unwrap().others.is_empty());
        assert_eq!(r.join(peer(2), open("a"), t).unwrap().others, [peer(1)]);
        assert!(r.join(peer(3), open("b"), t).unwrap().others.is_empty());
        assert!(r.can_signal(peer(1), peer(2)));
        assert!(!r.can_signal(peer(1), peer(3)));
        assert!(!r.can_signal(peer(1), peer(1)));
        assert_eq!(r.leave(peer(1), t), [peer(2)]);
        assert!(!r.can_signal(peer(2), peer(1)));
        assert_eq!(r.room_count(), 2);
    }

    #[test]
    fn quick_match_forms_closed_groups_and_reports_waits() {
        let mut r = rooms();
        let t = Instant::now();
        let first = r.join(peer(1), quick("q", 2, None), t).unwrap();
        assert!(first.others.is_empty() && first.matched.is_empty());
        let second = r
            .join(peer(2), quick("q", 2, None), t + Duration::from_millis(300))
            .unwrap();
        assert_eq!(second.others, [peer(1)]);
        let mut waits = second.matched.clone();
        waits.sort();
        assert_eq!(waits, [Duration::ZERO, Duration::from_millis(300)]);
        // The group is closed: the third starts a new one.
        assert!(
            r.join(peer(3), quick("q", 2, None), t)
                .unwrap()
                .others
                .is_empty()
        );
        assert!(!r.can_signal(peer(3), peer(1)));
        // A member leaving a complete group does not reopen it.
        assert_eq!(r.leave(peer(1), t), [peer(2)]);
        assert_eq!(
            r.join(peer(4), quick("q", 2, None), t).unwrap().others,
            [peer(3)]
        );
    }

    #[test]
    fn quick_match_never_mixes_modes_paths_or_sizes() {
        let mut r = rooms();
        let t = Instant::now();
        r.join(peer(1), quick("q", 2, Some("ctf")), t).unwrap();
        assert!(
            r.join(peer(2), quick("q", 2, Some("duel")), t)
                .unwrap()
                .others
                .is_empty()
        );
        assert!(
            r.join(peer(3), quick("q", 2, None), t)
                .unwrap()
                .others
                .is_empty()
        );
        assert!(
            r.join(peer(4), quick("q", 3, Some("ctf")), t)
                .unwrap()
                .others
                .is_empty()
        );
        assert!(
            r.join(peer(5), quick("other", 2, Some("ctf")), t)
                .unwrap()
                .others
                .is_empty()
        );
        assert_eq!(
            r.join(peer(6), quick("q", 2, Some("ctf")), t)
                .unwrap()
                .others,
            [peer(1)]
        );
        assert_eq!(
            r.join(peer(7), quick("q", 2, Some("duel")), t)
                .unwrap()
                .others,
            [peer(2)]
        );
    }

    #[test]
    fn a_waiting_quick_match_peer_that_leaves_frees_its_place() {
        let mut r = rooms();
        let t = Instant::now();
        r.join(peer(1), quick("q", 2, None), t).unwrap();
        assert!(r.leave(peer(1), t).is_empty());
        let joined = r.join(peer(2), quick("q", 2, None), t).unwrap();
        assert!(joined.others.is_empty() && joined.matched.is_empty());
    }

    #[test]
    fn rooms_are_capped() {
        let mut r = rooms();
        let t = Instant::now();
        for n in 0..4 {
            r.join(peer(n), open("full"), t).unwrap();
        }
        assert_eq!(
            r.join(peer(9), open("full"), t),
            Err(RoomError::RoomFull(4))
        );
        assert_eq!(r.join(peer(0), open("x"), t), Err(RoomError::AlreadyJoined));
    }

    #[test]
    fn lobbies_are_created_listed_joined_and_expire() {
        let mut r = rooms();
        let t = Instant::now();
        let mut random = counter();
        let public = r
            .create_lobby(spec(true, 2, "ctf"), t, &mut random)
            .unwrap();
        let private = r
            .create_lobby(
                spec(false, 3, "ctf"),
                t + Duration::from_secs(1),
                &mut random,
            )
            .unwrap();
        assert_ne!(public.code, private.code);
        assert_eq!(public.players, 0);
        // Only public lobbies are listed, filtered by mode.
        assert_eq!(r.public_lobbies(None, 10), std::slice::from_ref(&public));
        assert_eq!(
            r.public_lobbies(Some("ctf"), 10),
            std::slice::from_ref(&public)
        );
        assert!(r.public_lobbies(Some("duel"), 10).is_empty());
        // Both are joinable by code; codes ignore case.
        let code = RoomRequest::lobby(&public.code.as_str().to_lowercase()).unwrap();
        assert!(r.join(peer(1), code.clone(), t).unwrap().others.is_empty());
        assert_eq!(r.join(peer(2), code.clone(), t).unwrap().others, [peer(1)]);
        assert_eq!(r.join(peer(3), code, t), Err(RoomError::RoomFull(2)));
        assert_eq!(r.lobby(public.code).unwrap().players, 2);
        assert_eq!(r.public_lobbies(None, 10)[0].players, 2);
        r.join(peer(4), RoomRequest::Lobby(private.code), t)
            .unwrap();
        assert!(!r.can_signal(peer(4), peer(1)));
        // Unknown codes are refused.
        let unknown = JoinCode::from_random(7);
        assert_eq!(
            r.join(peer(5), RoomRequest::Lobby(unknown), t),
            Err(RoomError::UnknownLobby(unknown))
        );
        // A lobby with players never expires; an empty one does after its TTL.
        let later = t + Duration::from_secs(60);
        r.leave(peer(4), later);
        assert_eq!(r.expire_lobbies(later + Duration::from_secs(9)), 0);
        assert_eq!(r.expire_lobbies(later + Duration::from_secs(10)), 1);
        assert!(r.lobby(private.code).is_none());
        assert!(r.lobby(public.code).is_some());
    }

    #[test]
    fn lobby_settings_and_count_are_checked() {
        let mut r = rooms();
        let t = Instant::now();
        let mut random = counter();
        assert!(matches!(
            r.create_lobby(spec(true, 1, ""), t, &mut random),
            Err(RoomError::InvalidLobby(_))
        ));
        assert!(matches!(
            r.create_lobby(spec(true, 5, ""), t, &mut random),
            Err(RoomError::InvalidLobby(_))
        ));
        assert_eq!(
            r.create_lobby(spec(true, 2, "no spaces"), t, &mut random),
            Err(RoomError::InvalidMode)
        );
        let long = LobbySpec {
            name: "x".repeat(MAX_LOBBY_NAME + 1),
            ..spec(true, 2, "")
        };
        assert!(matches!(
            r.create_lobby(long, t, &mut random),
            Err(RoomError::InvalidLobby(_))
        ));
        for _ in 0..3 {
            r.create_lobby(spec(true, 2, ""), t, &mut random).unwrap();
        }
        assert_eq!(
            r.create_lobby(spec(true, 2, ""), t, &mut random),
            Err(RoomError::TooManyLobbies(3))
        );
        // Once empty lobbies expire there is room again.
        let later = t + Duration::from_secs(10);
        assert!(
            r.create_lobby(spec(true, 2, ""), later, &mut random)
                .is_ok()
        );
        assert_eq!(r.lobby_count(), 1);
    }

    #[test]
    fn lobby_names_without_control_or_bidi_characters() {
        let mut r = rooms();
        let t = Instant::now();
        let mut random = counter();
        for name in ["Friday ctf", "Élan vital", "日本語の部屋", "🎮 night", ""] {
            assert_eq!(check_lobby_name(name), Ok(()), "{name}");
        }
        for name in [
            "a\u{0}b",
            "line\nbreak",
            "tab\t",
            "del\u{7f}",
            "c1\u{85}",
            "\u{202E}gnp.exe",
            "left\u{202A}to",
            "iso\u{2066}late\u{2069}",
            "mark\u{200F}",
            "mark\u{200E}",
            "alm\u{061C}",
            "sep\u{2028}",
            "\u{FEFF}bom",
        ] {
            let created = r.create_lobby(
                LobbySpec {
                    name: name.into(),
                    ..spec(true, 2, "")
                },
                t,
                &mut random,
            );
            let Err(RoomError::InvalidLobby(why)) = created else {
                panic!("{name:?} was accepted");
            };
            assert!(why.contains("is not allowed"), "{why}");
        }
        assert_eq!(r.lobby_count(), 0);
    }

    #[test]
    fn one_owner_holds_a_bounded_number_of_lobbies() {
        let mut r = rooms();
        let t = Instant::now();
        let mut random = counter();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..2 {
            r.create_lobby_from(a, spec(true, 2, ""), t, &mut random)
                .unwrap();
        }
        assert_eq!(
            r.create_lobby_from(a, spec(true, 2, ""), t, &mut random),
            Err(RoomError::TooManyLobbiesFrom(2))
        );
        assert_eq!(r.lobbies_of(a), 2);
        // Another owner is not affected.
        let other = r
            .create_lobby_from(b, spec(false, 2, ""), t, &mut random)
            .unwrap();
        // A lobby that expires gives its owner the place back.
        r.join(peer(1), RoomRequest::Lobby(other.code), t).unwrap();
        let later = t + Duration::from_secs(10);
        assert!(
            r.create_lobby_from(a, spec(true, 2, ""), later, &mut random)
                .is_ok()
        );
        assert_eq!((r.lobbies_of(a), r.lobbies_of(b)), (1, 1));
    }

    #[test]
    fn colliding_codes_are_drawn_again() {
        let mut r = rooms();
        let t = Instant::now();
        let mut draws = [5u32, 5, 5, 6].into_iter().cycle();
        let a = r
            .create_lobby(spec(true, 2, ""), t, || draws.next().unwrap_or(0))
            .unwrap();
        let b = r
            .create_lobby(spec(true, 2, ""), t, || draws.next().unwrap_or(0))
            .unwrap();
        assert_ne!(a.code, b.code);
    }

    #[test]
    fn requests_are_validated() {
        assert_eq!(
            RoomRequest::parse(Some("a b"), None, None, 16),
            Err(RoomError::InvalidPath)
        );
        assert_eq!(
            RoomRequest::parse(Some(&"a".repeat(MAX_ROOM_PATH + 1)), None, None, 16),
            Err(RoomError::InvalidPath)
        );
        for next in ["1", "17", "x", "-2", ""] {
            assert_eq!(
                RoomRequest::parse(Some("a"), Some(next), None, 16),
                Err(RoomError::InvalidNext(16))
            );
        }
        assert_eq!(
            RoomRequest::parse(Some("a"), None, Some("ctf"), 16),
            Err(RoomError::ModeWithoutNext)
        );
        assert_eq!(
            RoomRequest::parse(Some("a"), Some("2"), Some("c/tf"), 16),
            Err(RoomError::InvalidMode)
        );
        for code in ["", "ABCDE", "ABCDEFG", "ABCDE0", "ABCDEI", "ABCDÉ"] {
            assert_eq!(
                RoomRequest::lobby(code),
                Err(RoomError::InvalidCode),
                "{code}"
            );
        }
        assert_eq!(
            RoomRequest::parse(None, None, None, 16),
            Ok(RoomRequest::Open {
                path: String::new()
            })
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_accepts_only_valid_input(
            path in ".{0,200}", next in proptest::option::of(".{0,6}"),
            mode in proptest::option::of(".{0,40}"),
        ) {
            if let Ok(request) = RoomRequest::parse(Some(&path), next.as_deref(), mode.as_deref(), 16) {
                let (p, m) = match &request {
                    RoomRequest::Open { path } => (path.clone(), String::new()),
                    RoomRequest::QuickMatch { path, size, mode } => {
                        prop_assert!((2..=16).contains(size));
                        (path.clone(), mode.clone())
                    }
                    RoomRequest::Lobby(_) => unreachable!(),
                };
                prop_assert!(p.len() <= MAX_ROOM_PATH && p.bytes().all(is_name_char));
                prop_assert!(m.len() <= MAX_MODE && m.bytes().all(is_name_char));
            }
            let _ = RoomRequest::lobby(&path);
        }

        #[test]
        fn codes_round_trip(bits in any::<u32>()) {
            let code = JoinCode::from_random(bits);
            prop_assert_eq!(code.as_str().parse::<JoinCode>(), Ok(code));
        }
    }
}
