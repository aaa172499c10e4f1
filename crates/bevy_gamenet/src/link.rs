//! The mesh shared by rollback and replication: one connection, two layers,
//! neither importing the other.
//!
//! The layer that owns the mesh (the rollback plugin) hands each event to
//! [`SharedMesh::take`] in [`GamenetSet::ReceivePackets`](crate::GamenetSet)
//! and sends what the other layer queued with [`SharedMesh::pump`] in
//! [`GamenetSet::SendPackets`](crate::GamenetSet). The layer that borrows it
//! (replication over rollback) reads its events and queues its sends through
//! the same resource in between.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bevy_ecs::prelude::*;
use gamenet::replication::REPLICATION_TAG;
use gamenet::rollback::{Input, RollbackNet};
use gamenet::{Channel, Event, Instant, PeerId, Transport};

/// A mesh owned by one layer as another layer sees it: what the owner took
/// in for the borrower, and what the borrower wants sent. Inserted by the
/// borrowing layer; the owning layer serves it while it exists.
#[derive(Debug, Clone, Default, Resource)]
pub struct SharedMesh(Arc<Mutex<Shared>>);

/// The queues between the two layers.
#[derive(Debug, Default)]
struct Shared {
    /// Events for the borrower: its messages, and peers joining and leaving.
    inbox: VecDeque<Event>,
    /// Messages the borrower queued: peer, channel, payload.
    outbox: Vec<(PeerId, Channel, Vec<u8>)>,
    /// Peers the borrower wants dropped.
    drops: Vec<PeerId>,
    /// This peer's id on the mesh, once known.
    id: Option<PeerId>,
    /// Peers linked at the last pump.
    peers: Vec<PeerId>,
    /// The owner's transport's time at the last pump.
    now: Option<Instant>,
}

/// Events the owner may queue for the borrower before it reads them
/// (a frame's worth in practice; a flood is cut here).
const MAX_INBOX: usize = 65_536;

impl SharedMesh {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what the borrower wants from a mesh event; true if the event
    /// was the borrower's alone (a replication message).
    pub(crate) fn take(&self, event: &Event) -> bool {
        let ours = matches!(event, Event::Message { payload, .. }
            if payload.first() == Some(&REPLICATION_TAG));
        let shared = matches!(event, Event::PeerJoined(_) | Event::PeerLeft { .. });
        if ours || shared {
            let mut q = self.lock();
            if q.inbox.len() < MAX_INBOX {
                q.inbox.push_back(event.clone());
            }
        }
        ours
    }

    /// Sends what the borrower queued over the owner's session and tells the
    /// borrower who is linked.
    pub(crate) fn pump<I: Input, T: Transport>(&self, net: &mut RollbackNet<I, T>) {
        let mut q = self.lock();
        q.id = net.local_id();
        q.peers = net.mesh().linked_peers();
        q.now = Some(net.now());
        for (peer, channel, data) in q.outbox.drain(..) {
            let _ = net.send(peer, channel, &data);
        }
        for peer in q.drops.drain(..) {
            net.drop_peer(peer);
        }
    }

    /// The borrower's next event.
    pub(crate) fn poll_event(&self) -> Option<Event> {
        self.lock().inbox.pop_front()
    }

    /// Queues a message for the next pump.
    pub(crate) fn send(&self, peer: PeerId, channel: Channel, payload: &[u8]) {
        self.lock().outbox.push((peer, channel, payload.to_vec()));
    }

    /// Queues dropping a peer at the next pump.
    pub(crate) fn drop_peer(&self, peer: PeerId) {
        self.lock().drops.push(peer);
    }

    /// This peer's id, as of the last pump.
    pub(crate) fn local_id(&self) -> Option<PeerId> {
        self.lock().id
    }

    /// The peers linked at the last pump.
    pub(crate) fn linked_peers(&self) -> Vec<PeerId> {
        self.lock().peers.clone()
    }

    /// The owner's transport's time at the last pump (the system clock
    /// before the first): the borrower goes by the owner's clock, simulated
    /// or not.
    pub(crate) fn now(&self) -> Instant {
        self.lock().now.unwrap_or_else(Instant::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gamenet::Bytes;

    #[test]
    fn replication_messages_are_taken_and_peer_events_shared() {
        let shared = SharedMesh::default();
        let peer = PeerId(0x1234);
        let ours = Event::Message {
            peer,
            channel: Channel::Unreliable,
            payload: Bytes::from(vec![REPLICATION_TAG, 1, 2]),
        };
        let theirs = Event::Message {
            peer,
            channel: Channel::Reliable,
            payload: Bytes::from_static(b"hello"),
        };
        assert!(shared.take(&ours));
        assert!(!shared.take(&theirs));
        assert!(!shared.take(&Event::PeerJoined(peer)));
        assert_eq!(shared.poll_event(), Some(ours));
        assert_eq!(shared.poll_event(), Some(Event::PeerJoined(peer)));
        assert_eq!(shared.poll_event(), None);
    }
}
