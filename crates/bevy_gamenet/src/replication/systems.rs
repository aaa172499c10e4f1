//! The replication systems: take in what arrived, apply it to remote
//! entities, publish this peer's entities, send at the tick rate.

use std::collections::BTreeSet;
use std::time::Duration;

use bevy_ecs::prelude::*;
use gamenet::replication::ReplicationEvent;
use gamenet::{Instant, PeerId};

use super::components::{Index, TypeIndex, Types};
use super::interpolation::{Buffer, SenderClocks, Timeline, display_time};
use super::messages::{AuthorityRequested, HandOver, OwnerChanged, RequestAuthority, dispatch};
use super::{
    AppTransport, HiddenFrom, NetEntity, NetState, Remote, Replicated, ReplicationSettings,
    ReplicationSocket,
};
use crate::NetClock;

/// Takes in what arrived: spawns, despawns and buffers remote states.
pub(super) fn receive(
    mut commands: Commands,
    (clock, settings): (Res<NetClock>, Res<ReplicationSettings>),
    mut clocks: Local<SenderClocks>,
    socket: Option<ResMut<ReplicationSocket>>,
    mut index: ResMut<Index>,
    mut buffers: Query<&mut Buffer>,
    mut remotes: Query<&mut Remote>,
) {
    let Some(mut socket) = socket else {
        return;
    };
    let net = &mut socket.0;
    net.update();
    // Peers and application messages of a mesh of its own, as the mesh
    // plugin's messages (over rollback, the rollback plugin writes them).
    while let Some(event) = net.poll_event() {
        if !matches!(net.transport(), AppTransport::Rollback(_)) {
            commands.queue(move |world: &mut World| crate::write_event(world, event));
        }
    }
    let now = clock.now();
    let mut events = Vec::new();
    while let Some(e) = net.poll_replication_event() {
        events.push(e);
    }
    let Some(r) = net.replicator() else {
        return;
    };
    if clocks.len() > r.peers().count() {
        let linked: BTreeSet<PeerId> = r.peers().collect();
        clocks.retain(|peer| linked.contains(&peer));
    }
    for e in events {
        match e {
            ReplicationEvent::Spawned { id, ty: _, owner } => {
                let Some(ent) = r.entity(id) else { continue };
                let entity = commands
                    .spawn((
                        NetEntity(id),
                        Remote { owner },
                        Buffer::new(now, ent.fields.clone()),
                    ))
                    .id();
                index.0.insert(id, entity);
            }
            ReplicationEvent::Updated { id, sent, fields } => {
                if let (Some(&entity), Some(ent)) = (index.0.get(&id), r.entity(id))
                    && let Ok(mut b) = buffers.get_mut(entity)
                {
                    let at = match (settings.timeline, sent) {
                        (Timeline::Sender, Some(sent)) => clocks.place(ent.owner, sent, now),
                        _ => now,
                    };
                    b.push(at, fields);
                }
            }
            ReplicationEvent::Despawned { id } => {
                if let Some(entity) = index.0.remove(&id) {
                    commands.entity(entity).despawn();
                }
            }
            ReplicationEvent::OwnerChanged { id, owner } => {
                let Some(&entity) = index.0.get(&id) else {
                    continue;
                };
                if owner == r.id() {
                    // Ours now: it is published from its current state.
                    commands
                        .entity(entity)
                        .remove::<(Remote, Buffer)>()
                        .insert(Replicated);
                } else if let Ok(mut remote) = remotes.get_mut(entity) {
                    remote.owner = owner;
                } else if let Some(ent) = r.entity(id) {
                    // Handed away: shown from the new owner's updates.
                    commands
                        .entity(entity)
                        .remove::<Replicated>()
                        .insert((Remote { owner }, Buffer::new(now, ent.fields.clone())));
                }
                commands.write_message(OwnerChanged { entity, owner });
            }
            ReplicationEvent::AuthorityRequested { id, peer } => {
                if let Some(&entity) = index.0.get(&id) {
                    commands.write_message(AuthorityRequested { entity, peer });
                }
            }
            ReplicationEvent::Event { peer, payload } => {
                commands.queue(move |world: &mut World| dispatch(world, peer, &payload));
            }
            // Logged by the network, which drops the peer; the entities are
            // spawned there again.
            _ => {}
        }
    }
}

/// An entity of this peer that loses its replication id (despawned, or the
/// component removed) is despawned on every peer. A remote entity removed
/// here is only forgotten here.
pub(super) fn despawned(
    remove: On<Remove<NetEntity>>,
    entities: Query<(&NetEntity, Has<Remote>)>,
    socket: Option<ResMut<ReplicationSocket>>,
    mut index: ResMut<Index>,
) {
    let Ok((net, remote)) = entities.get(remove.entity) else {
        return;
    };
    // Gone from the index first when the replication layer despawned it.
    if index.0.get(&net.0) != Some(&remove.entity) {
        return;
    }
    index.0.remove(&net.0);
    if remote {
        return;
    }
    if let Some(r) = socket.and_then(|s| s.into_inner().0.replicator_mut()) {
        let _ = r.despawn(net.0);
    }
}

/// Entities of this peer whose hidden set changed, or that just got their
/// replication id.
type VisibilityChanged = (Owned, Or<(Changed<HiddenFrom>, Added<NetEntity>)>);

/// Shows and hides this peer's entities as their [`HiddenFrom`] says, to
/// the peers linked now: when the set changes, when it is removed, and for
/// peers that linked since the last frame.
pub(super) fn visibility(
    socket: Option<ResMut<ReplicationSocket>>,
    mut linked: Local<BTreeSet<PeerId>>,
    changed: Query<(&NetEntity, &HiddenFrom), VisibilityChanged>,
    hidden: Query<(&NetEntity, &HiddenFrom), Owned>,
    mut shown: RemovedComponents<HiddenFrom>,
    owned: Query<&NetEntity, Owned>,
) {
    let Some(r) = socket.and_then(|s| s.into_inner().0.replicator_mut()) else {
        return;
    };
    let peers: BTreeSet<PeerId> = r.peers().collect();
    for (net, from) in &changed {
        for &peer in &peers {
            r.set_visible(peer, net.0, !from.0.contains(&peer));
        }
    }
    for entity in shown.read() {
        if let Ok(net) = owned.get(entity) {
            for &peer in &peers {
                r.set_visible(peer, net.0, true);
            }
        }
    }
    let new: Vec<PeerId> = peers.difference(&linked).copied().collect();
    if !new.is_empty() {
        for (net, from) in &hidden {
            for peer in new.iter().filter(|p| from.0.contains(p)) {
                r.set_visible(*peer, net.0, false);
            }
        }
    }
    *linked = peers;
}

/// Asks for and hands over entities as the game wrote ([`RequestAuthority`],
/// [`HandOver`]).
pub(super) fn authority(
    mut requests: MessageReader<RequestAuthority>,
    mut hand_overs: MessageReader<HandOver>,
    entities: Query<&NetEntity>,
    socket: Option<ResMut<ReplicationSocket>>,
) {
    let Some(r) = socket.and_then(|s| s.into_inner().0.replicator_mut()) else {
        requests.clear();
        hand_overs.clear();
        return;
    };
    for RequestAuthority(entity) in requests.read() {
        if let Ok(net) = entities.get(*entity) {
            r.request_authority(net.0);
        }
    }
    for HandOver { entity, to } in hand_overs.read() {
        if let Ok(net) = entities.get(*entity)
            && let Err(error) = r.hand_over(net.0, *to)
        {
            tracing::warn!(%error, "replication: handing over {entity}");
        }
    }
}

/// Sets remote entities' state, interpolated at `now - delay`.
pub(super) fn apply_remote<T: NetState>(
    mut commands: Commands,
    clock: Res<NetClock>,
    socket: Option<Res<ReplicationSocket>>,
    settings: Res<ReplicationSettings>,
    index: Res<TypeIndex<T>>,
    mut q: Query<(Entity, &NetEntity, &Buffer, Option<&mut T>), With<Remote>>,
) {
    let ty = index.0;
    {
        let Some(r) = socket.as_ref().and_then(|s| s.0.replicator()) else {
            return;
        };
        let at = display_time(clock.now(), settings.interpolation_delay);
        for (entity, net, buffer, current) in &mut q {
            if r.entity(net.0).is_none_or(|e| e.ty != ty) {
                continue;
            }
            let Some(state) = buffer.sample::<T>(at) else {
                continue;
            };
            match current {
                Some(mut c) => *c = state,
                None => {
                    commands.entity(entity).insert(state);
                }
            }
        }
    }
}

/// Entities this peer replicates.
type Owned = (With<Replicated>, Without<Remote>);

/// This peer's new entities, and its ones whose state changed.
type ToPublish<T> = (Owned, Or<(Changed<T>, Without<NetEntity>)>);

/// Spawns this peer's new replicated entities of type `T` and updates the
/// ones whose state changed (entities at rest cost nothing).
pub(super) fn publish<T: NetState>(
    mut commands: Commands,
    socket: Option<ResMut<ReplicationSocket>>,
    mut index: ResMut<Index>,
    ty: Res<TypeIndex<T>>,
    types: Res<Types>,
    q: Query<(Entity, &T, Option<&NetEntity>), ToPublish<T>>,
) {
    let ty = ty.0;
    {
        let Some(mut socket) = socket else {
            return;
        };
        let Some(r) = socket.0.replicator_mut() else {
            return;
        };
        for (entity, state, net) in &q {
            let other = match net {
                Some(net) => r.entity(net.0).map(|e| e.ty).filter(|&t| t != ty),
                None => index.1.0.get(&entity).copied(),
            };
            if let Some(other) = other {
                // One state type per entity: the first one published wins.
                tracing::warn!(
                    "replication: {entity} has two replicated states ({} and {}); only the first is sent",
                    types.names.get(other as usize).copied().unwrap_or("?"),
                    std::any::type_name::<T>(),
                );
                continue;
            }
            let fields = state.to_fields();
            match net {
                Some(net) => {
                    let _ = r.set(net.0, &fields);
                }
                None => {
                    if let Ok(id) = r.spawn(ty, &fields) {
                        commands.entity(entity).insert(NetEntity(id));
                        index.0.insert(id, entity);
                        index.1.0.insert(entity, ty);
                    }
                }
            }
        }
    }
}

/// How much earlier than its period a tick may come.
const TICK_SLACK: Duration = Duration::from_millis(2);

/// Sends an update packet at the tick rate.
pub(super) fn send(
    clock: Res<NetClock>,
    socket: Option<ResMut<ReplicationSocket>>,
    settings: Res<ReplicationSettings>,
    mut index: ResMut<Index>,
    mut last: Local<Option<Instant>>,
) {
    index.1.0.clear();
    let Some(mut socket) = socket else {
        return;
    };
    let now = clock.now();
    let period = Duration::from_secs_f64(1.0 / settings.tick_hz.max(1) as f64);
    // A frame a little early still ticks: at 60 frames a second, a 30 Hz
    // tick falls every second frame, not every third.
    if last.is_some_and(|t| now.saturating_duration_since(t) + TICK_SLACK < period) {
        socket.0.flush();
        return;
    }
    *last = Some(now);
    socket.0.tick();
}
