//! Writing back what an instance holds when Redis lost its data (see the
//! parent module's documentation).

use std::net::IpAddr;
use std::time::Duration;

use matchbox_protocol::PeerId;

use super::{RedisState, bad_reply, room_key, room_text, unavailable};
use crate::limits::address_key;
use crate::rooms::{JoinCode, LobbySpec, RoomKey};
use crate::shared::{Millis, SharedError};

/// What [`RedisState::sync`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// Redis lost its data since the last sync: write back what is held.
    pub lost: bool,
    /// Of the quick-match rooms asked about, those whose group is complete
    /// (or gone).
    pub complete: Vec<RoomKey>,
    /// Of the lobbies asked about, those no longer in Redis (expired).
    pub gone: Vec<JoinCode>,
}

/// Peers written back by one script at most.
const RESTORE_BATCH: usize = 500;

/// A lobby as an instance holds it, to write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLobby {
    /// Its code.
    pub code: JoinCode,
    /// What it was made with.
    pub spec: LobbySpec,
    /// Its creator's address (by its limit key), if known.
    pub owner: Option<IpAddr>,
    /// When it was made.
    pub created: Millis,
}

impl From<crate::rooms::LobbyInfo> for HeldLobby {
    /// A lobby as looked up: its creator unknown, made now as far as anyone
    /// here knows.
    fn from(info: crate::rooms::LobbyInfo) -> Self {
        Self {
            code: info.code,
            spec: LobbySpec {
                name: info.name,
                public: info.public,
                max_players: info.max_players,
                mode: info.mode,
            },
            owner: None,
            created: crate::shared::now_millis(),
        }
    }
}

/// A client in a room, as its instance holds it, to write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPeer {
    /// The peer.
    pub peer: PeerId,
    /// Its room.
    pub room: RoomKey,
    /// Since when it waits for its quick-match group to fill; `None` when
    /// not waiting.
    pub waiting_since: Option<Millis>,
}

/// Everything an instance holds of the shared state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Its clients in rooms.
    pub peers: Vec<HeldPeer>,
    /// The lobbies it made or its clients are in.
    pub lobbies: Vec<HeldLobby>,
    /// Its clients connected (seats against `--max-clients`).
    pub seats: usize,
    /// Its clients per address (by its limit key).
    pub addresses: Vec<(IpAddr, usize)>,
}

impl RedisState {
    /// Announces `instance` as alive for `ttl` and checks whether Redis lost
    /// its data since the last sync (then, if this is the first instance to
    /// notice, joins wait for `restore_window` while the instances write back
    /// what they hold); and which of the quick-match rooms in `filling` are
    /// complete, which of the `lobbies` are gone.
    pub async fn sync(
        &self,
        instance: &str,
        ttl: Duration,
        restore_window: Duration,
        filling: &[RoomKey],
        lobbies: &[JoinCode],
    ) -> Result<Synced, SharedError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.scripts.sync.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(instance)
            .arg(millis(ttl))
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .arg(millis(restore_window))
            .arg(filling.len());
        for room in filling {
            invocation.arg(room_text(room));
        }
        for code in lobbies {
            invocation.arg(code.as_str());
        }
        let (epoch, complete, gone): (String, Vec<String>, Vec<String>) = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let lost = {
            let mut known = self
                .epoch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let lost = *known != epoch;
            *known = epoch;
            lost
        };
        Ok(Synced {
            lost,
            complete: complete
                .iter()
                .map(|room| room_key(room))
                .collect::<Result<_, _>>()?,
            gone: gone
                .iter()
                .map(|code| code.parse().map_err(|_| bad_reply("a join code")))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Writes back what `instance` holds, leaving alone what Redis has
    /// already (written back by another instance, or changed meanwhile).
    /// Returns how many peers and lobbies were missing.
    pub async fn restore(
        &self,
        instance: &str,
        held: &Held,
        now: Millis,
    ) -> Result<(usize, usize), SharedError> {
        // In batches, so that Redis is never held long by one script: the
        // counts and lobbies with the first.
        let mut written = (0, 0);
        let mut batches = held.peers.chunks(RESTORE_BATCH);
        let mut first = true;
        loop {
            let batch = batches.next().unwrap_or_default();
            if !first && batch.is_empty() {
                break;
            }
            let mut invocation = self.scripts.restore.prepare_invoke();
            invocation.arg(&self.prefix).arg(instance).arg(now);
            if first {
                invocation.arg(held.seats).arg(held.addresses.len());
                for (address, seats) in &held.addresses {
                    invocation
                        .arg(address_key(*address).to_string())
                        .arg(*seats);
                }
                invocation.arg(held.lobbies.len());
                for lobby in &held.lobbies {
                    invocation
                        .arg(lobby.code.as_str())
                        .arg(&lobby.spec.name)
                        .arg(&lobby.spec.mode)
                        .arg(if lobby.spec.public { "1" } else { "0" })
                        .arg(lobby.spec.max_players)
                        .arg(
                            lobby
                                .owner
                                .map(|o| address_key(o).to_string())
                                .unwrap_or_default(),
                        )
                        .arg(lobby.created);
                }
            } else {
                invocation.arg("").arg(0).arg(0);
            }
            for peer in batch {
                invocation
                    .arg(peer.peer.0.to_string())
                    .arg(room_text(&peer.room))
                    .arg(
                        peer.waiting_since
                            .map(|since| since.to_string())
                            .unwrap_or_default(),
                    );
            }
            let (peers, lobbies): (usize, usize) = invocation
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
            written = (written.0 + peers, written.1 + lobbies);
            first = false;
        }
        Ok(written)
    }
}
