//! Room membership and matchmaking, with no I/O: which peers share a room, who
//! is told about whom, and which signals may pass.

use std::collections::HashMap;

use matchbox_protocol::PeerId;
use thiserror::Error;

/// Longest room path accepted, in bytes.
pub const MAX_ROOM_PATH: usize = 128;

/// What a connecting client asked for: the URL path, and `?next=N` for quick-match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomRequest {
    /// The room path (the URL path without its leading slash).
    pub path: String,
    /// Quick-match group size: the next `N` joiners of this path form a closed room.
    pub next: Option<usize>,
}

/// Why a room request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The path is too long or has characters outside `[A-Za-z0-9_.~-]`.
    #[error("invalid room path: at most {MAX_ROOM_PATH} characters of [A-Za-z0-9_.~-]")]
    InvalidPath,
    /// `next` is not a whole number between 2 and the room size limit.
    #[error("invalid next: must be a whole number from 2 to {0}")]
    InvalidNext(usize),
    /// The room is full.
    #[error("room is full ({0} peers)")]
    RoomFull(usize),
    /// The peer is already in a room.
    #[error("peer already joined")]
    AlreadyJoined,
}

impl RoomRequest {
    /// Parses and checks a request from a URL path and its `next` query value.
    pub fn parse(
        path: Option<&str>,
        next: Option<&str>,
        max_room_size: usize,
    ) -> Result<Self, RoomError> {
        let path = path.unwrap_or_default();
        let valid = path.len() <= MAX_ROOM_PATH
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.~-".contains(&b));
        if !valid {
            return Err(RoomError::InvalidPath);
        }
        let next = match next {
            None => None,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if (2..=max_room_size).contains(&n) => Some(n),
                _ => return Err(RoomError::InvalidNext(max_room_size)),
            },
        };
        Ok(Self {
            path: path.to_owned(),
            next,
        })
    }
}

/// A room: a path, and for quick-match its group size and which group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomKey {
    /// The path the peers asked for.
    pub path: String,
    /// Quick-match group size, if any.
    pub next: Option<usize>,
    /// Which group of that path and size (0 for open rooms).
    pub group: u64,
}

/// All rooms of a server.
#[derive(Debug)]
pub struct Rooms {
    max_room_size: usize,
    members: HashMap<RoomKey, Vec<PeerId>>,
    peer_room: HashMap<PeerId, RoomKey>,
    /// The quick-match group still filling, per (path, size).
    filling: HashMap<(String, usize), u64>,
    next_group: u64,
}

impl Rooms {
    /// No rooms; rooms hold at most `max_room_size` peers.
    pub fn new(max_room_size: usize) -> Self {
        Self {
            max_room_size: max_room_size.max(2),
            members: HashMap::new(),
            peer_room: HashMap::new(),
            filling: HashMap::new(),
            next_group: 1,
        }
    }

    /// The room size limit.
    pub fn max_room_size(&self) -> usize {
        self.max_room_size
    }

    /// Puts `peer` in the room it asked for and returns the peers already there,
    /// who must be told about it.
    pub fn join(&mut self, peer: PeerId, request: RoomRequest) -> Result<Vec<PeerId>, RoomError> {
        if self.peer_room.contains_key(&peer) {
            return Err(RoomError::AlreadyJoined);
        }
        let key = match request.next {
            Some(size) => {
                let slot = (request.path.clone(), size);
                let group = match self.filling.get(&slot) {
                    Some(&group) => group,
                    None => {
                        let group = self.next_group;
                        self.next_group += 1;
                        self.filling.insert(slot.clone(), group);
                        group
                    }
                };
                let key = RoomKey {
                    path: request.path,
                    next: Some(size),
                    group,
                };
                let filled = self.members.get(&key).map_or(0, Vec::len) + 1 >= size;
                if filled {
                    // The group is complete: the next joiner starts a new one.
                    self.filling.remove(&slot);
                }
                key
            }
            None => RoomKey {
                path: request.path,
                next: None,
                group: 0,
            },
        };
        let members = self.members.entry(key.clone()).or_default();
        if members.len() >= self.max_room_size {
            return Err(RoomError::RoomFull(self.max_room_size));
        }
        let others = members.clone();
        members.push(peer);
        self.peer_room.insert(peer, key);
        Ok(others)
    }

    /// Takes `peer` out of its room and returns the peers left there, who must be
    /// told. A quick-match group that is complete stays closed.
    pub fn leave(&mut self, peer: PeerId) -> Vec<PeerId> {
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
            if let Some(size) = key.next {
                let slot = (key.path, size);
                if self.filling.get(&slot) == Some(&key.group) {
                    self.filling.remove(&slot);
                }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u128) -> PeerId {
        PeerId(uuid::Uuid::from_u128(n))
    }

    fn open(path: &str) -> RoomRequest {
        RoomRequest {
            path: path.into(),
            next: None,
        }
    }

    fn quick(path: &str, n: usize) -> RoomRequest {
        RoomRequest {
            path: path.into(),
            next: Some(n),
        }
    }

    #[test]
    fn open_rooms_gather_everyone_on_a_path() {
        let mut rooms = Rooms::new(8);
        assert_eq!(rooms.join(peer(1), open("a")).unwrap(), vec![]);
        assert_eq!(rooms.join(peer(2), open("a")).unwrap(), vec![peer(1)]);
        assert_eq!(rooms.join(peer(3), open("b")).unwrap(), vec![]);
        assert_eq!(
            rooms.join(peer(4), open("a")).unwrap(),
            vec![peer(1), peer(2)]
        );
        assert!(rooms.can_signal(peer(1), peer(4)));
        assert!(!rooms.can_signal(peer(1), peer(3)));
        assert!(!rooms.can_signal(peer(1), peer(1)));
        assert!(!rooms.can_signal(peer(1), peer(99)));
        assert_eq!(rooms.leave(peer(2)), vec![peer(1), peer(4)]);
        assert_eq!(rooms.leave(peer(2)), vec![]);
        assert_eq!(rooms.room_count(), 2);
    }

    #[test]
    fn quick_match_forms_closed_groups() {
        let mut rooms = Rooms::new(8);
        assert_eq!(rooms.join(peer(1), quick("q", 2)).unwrap(), vec![]);
        assert_eq!(rooms.join(peer(2), quick("q", 2)).unwrap(), vec![peer(1)]);
        // The group of two is closed: the third joiner starts a new one.
        assert_eq!(rooms.join(peer(3), quick("q", 2)).unwrap(), vec![]);
        assert!(!rooms.can_signal(peer(3), peer(1)));
        // A member leaving does not reopen the group.
        rooms.leave(peer(2));
        assert_eq!(rooms.join(peer(4), quick("q", 2)).unwrap(), vec![peer(3)]);
        // Other sizes, other paths and open rooms of the same path never mix.
        assert_eq!(rooms.join(peer(5), quick("q", 3)).unwrap(), vec![]);
        assert_eq!(rooms.join(peer(6), open("q")).unwrap(), vec![]);
        assert_eq!(rooms.join(peer(7), quick("r", 2)).unwrap(), vec![]);
    }

    #[test]
    fn a_filling_group_whose_members_all_left_starts_afresh() {
        let mut rooms = Rooms::new(8);
        rooms.join(peer(1), quick("q", 3)).unwrap();
        rooms.leave(peer(1));
        assert_eq!(rooms.join(peer(2), quick("q", 3)).unwrap(), vec![]);
        assert_eq!(rooms.join(peer(3), quick("q", 3)).unwrap(), vec![peer(2)]);
    }

    #[test]
    fn limits_and_validation() {
        let mut rooms = Rooms::new(2);
        rooms.join(peer(1), open("a")).unwrap();
        assert_eq!(
            rooms.join(peer(1), open("a")),
            Err(RoomError::AlreadyJoined)
        );
        rooms.join(peer(2), open("a")).unwrap();
        assert_eq!(rooms.join(peer(3), open("a")), Err(RoomError::RoomFull(2)));
        assert_eq!(rooms.peer_count(), 2);

        assert_eq!(
            RoomRequest::parse(Some("ok-room_1"), Some("4"), 8),
            Ok(quick("ok-room_1", 4))
        );
        assert_eq!(RoomRequest::parse(None, None, 8), Ok(open("")));
        assert_eq!(
            RoomRequest::parse(Some("a"), Some("1"), 8),
            Err(RoomError::InvalidNext(8))
        );
        assert_eq!(
            RoomRequest::parse(Some("a"), Some("9"), 8),
            Err(RoomError::InvalidNext(8))
        );
        assert_eq!(
            RoomRequest::parse(Some("a"), Some("x"), 8),
            Err(RoomError::InvalidNext(8))
        );
        assert_eq!(
            RoomRequest::parse(Some("a b"), None, 8),
            Err(RoomError::InvalidPath)
        );
        let long = "a".repeat(MAX_ROOM_PATH + 1);
        assert_eq!(
            RoomRequest::parse(Some(&long), None, 8),
            Err(RoomError::InvalidPath)
        );
    }

    proptest::proptest! {
        /// Whatever a client puts in its URL, parsing gives a request or an error.
        #[test]
        fn any_path_and_next_parse_without_panic(path in ".{0,200}", next in proptest::option::of(".{0,12}")) {
            if let Ok(request) = RoomRequest::parse(Some(&path), next.as_deref(), 8) {
                proptest::prop_assert!(request.path.len() <= MAX_ROOM_PATH);
                proptest::prop_assert!(request.next.is_none_or(|n| (2..=8).contains(&n)));
            }
        }
    }
}
