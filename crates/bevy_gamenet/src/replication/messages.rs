//! Game events between peers as typed Bevy messages, and what the
//! replication layer tells the game: register a type with
//! [`ReplicationApp::replicate_message`](super::ReplicationApp::replicate_message),
//! write [`ToPeers`] to send one, read [`FromPeer`] for those that arrive.
//!
//! Who may send a game event: any peer in the room, to any other. What
//! arrives is the sender's word only: decode failures are dropped with a
//! warning (the type index and the bytes come from the peer), and a game
//! checks what an event asks for before acting on it.

use std::marker::PhantomData;

use bevy_ecs::prelude::*;
use gamenet::PeerId;
use gamenet::replication::MAX_EVENT;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ReplicationSocket;

/// What can travel as a game event: any `serde` type.
pub trait NetMessage: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> NetMessage for T {}

/// A game event for other peers: write it, and it goes reliably, in order,
/// to `to`, or to every peer linked now when `to` is `None`.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ToPeers<M: NetMessage> {
    /// The one peer to send it to; every linked peer when `None`.
    pub to: Option<PeerId>,
    /// The event.
    pub message: M,
}

impl<M: NetMessage> ToPeers<M> {
    /// `message` for every linked peer.
    pub fn all(message: M) -> Self {
        Self { to: None, message }
    }

    /// `message` for `peer` only.
    pub fn one(peer: PeerId, message: M) -> Self {
        Self {
            to: Some(peer),
            message,
        }
    }
}

/// A game event from another peer.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct FromPeer<M: NetMessage> {
    /// Who sent it.
    pub peer: PeerId,
    /// The event.
    pub message: M,
}

/// Another peer asks for an entity this peer owns. Grant it by writing
/// [`HandOver`]; ignore it to refuse.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorityRequested {
    /// The entity.
    pub entity: Entity,
    /// Who asks.
    pub peer: PeerId,
}

/// An entity has a new owner: handed over, taken over from a peer that
/// left, or granted to this peer on request.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerChanged {
    /// The entity.
    pub entity: Entity,
    /// Its owner now (perhaps this peer).
    pub owner: PeerId,
}

/// Asks the owner of a remote entity to hand it to this peer; it answers
/// with an [`OwnerChanged`] if it does.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestAuthority(pub Entity);

/// Hands an entity this peer owns to another peer (on its request or not).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOver {
    /// The entity.
    pub entity: Entity,
    /// Its next owner.
    pub to: PeerId,
}

/// The registered event types, in registration order (the index on the
/// wire), each with the function that writes one that arrived.
#[derive(Resource, Default)]
pub(super) struct MessageTypes {
    /// Each type's Rust name.
    pub names: Vec<&'static str>,
    /// Each type's decoder: writes the event as a [`FromPeer`], or says why
    /// it could not.
    pub decoders: Vec<Decoder>,
}

/// Writes an event of one type that arrived, or says why it could not.
pub(super) type Decoder = fn(&mut World, PeerId, &[u8]) -> Result<(), bitcode::Error>;

/// The wire index of an event type.
#[derive(Resource)]
pub(super) struct MessageIndex<M>(pub u16, pub PhantomData<fn() -> M>);

/// Writes an event that arrived as a [`FromPeer`].
pub(super) fn decode<M: NetMessage>(
    world: &mut World,
    peer: PeerId,
    bytes: &[u8],
) -> Result<(), bitcode::Error> {
    let message: M = bitcode::deserialize(bytes)?;
    world.write_message(FromPeer { peer, message });
    Ok(())
}

/// Hands an event that arrived to its type's decoder.
pub(super) fn dispatch(world: &mut World, peer: PeerId, payload: &[u8]) {
    let Some((index, bytes)) = payload.split_first_chunk::<2>() else {
        tracing::warn!(%peer, "replication: a game event without its type");
        return;
    };
    let index = usize::from(u16::from_le_bytes(*index));
    let decoder = world
        .get_resource::<MessageTypes>()
        .and_then(|types| types.decoders.get(index).copied());
    let Some(decoder) = decoder else {
        tracing::warn!(%peer, index, "replication: a game event of no registered type");
        return;
    };
    if let Err(error) = decoder(world, peer, bytes) {
        let name = world.resource::<MessageTypes>().names[index];
        tracing::warn!(%peer, %error, "replication: a {name} that does not decode");
    }
}

/// Sends the [`ToPeers`] of `M` written this frame.
pub(super) fn send_messages<M: NetMessage>(
    mut written: MessageReader<ToPeers<M>>,
    socket: Option<ResMut<ReplicationSocket>>,
    index: Res<MessageIndex<M>>,
) {
    let Some(r) = socket.and_then(|s| s.into_inner().0.replicator_mut()) else {
        written.clear();
        return;
    };
    for ToPeers { to, message } in written.read() {
        let mut payload = index.0.to_le_bytes().to_vec();
        match bitcode::serialize(message) {
            Ok(bytes) => payload.extend_from_slice(&bytes),
            Err(error) => {
                tracing::warn!(%error, "replication: a {} that does not encode", std::any::type_name::<M>());
                continue;
            }
        }
        if payload.len() > MAX_EVENT {
            tracing::warn!(
                bytes = payload.len(),
                "replication: a {} over the {MAX_EVENT}-byte limit of a game event, not sent",
                std::any::type_name::<M>()
            );
            continue;
        }
        let peers: Vec<PeerId> = match to {
            Some(peer) => vec![*peer],
            None => r.peers().collect(),
        };
        for peer in peers {
            r.send_event(peer, &payload);
        }
    }
}
