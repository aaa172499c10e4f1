//! The replication systems: take in what arrived, apply it to remote
//! entities, publish this peer's entities, send at the tick rate.

use std::collections::BTreeSet;
use std::time::Duration;

use bevy_ecs::prelude::*;
use gamenet::replication::NetId;
use gamenet::replication::ReplicationEvent;
use gamenet::{Instant, PeerId};

use super::components::{Index, TypeIndex, Types};
use super::interpolation::{Buffer, SenderClocks, Timeline, display_time};
use super::messages::{AuthorityRequested, HandOver, OwnerChanged, RequestAuthority, dispatch};
use super::parts::{self, Parts, part_fields, split};
use super::{
    AppTransport, HiddenFrom, NetEntity, NetState, Remote, Replicated, ReplicationSettings,
    ReplicationSocket,
};
use crate::NetClock;

/// Takes in what arrived: spawns, despawns and buffers remote states.
#[allow(clippy::too_many_arguments)]
pub(super) fn receive(
    mut commands: Commands,
    (clock, settings, types): (Res<NetClock>, Res<ReplicationSettings>, Res<Types>),
    mut clocks: Local<SenderClocks>,
    socket: Option<ResMut<ReplicationSocket>>,
    mut index: ResMut<Index>,
    mut buffers: Query<&mut Buffer>,
    mut remotes: Query<&mut Remote>,
    mut parts: Query<&mut Parts>,
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
            ReplicationEvent::Spawned { id, ty, owner } => {
                if types.is_part(ty) {
                    // Put on its entity below, once that is known.
                    index.waiting.insert(id);
                    continue;
                }
                let Some(ent) = r.entity(id) else { continue };
                let entity = commands
                    .spawn((
                        NetEntity(id),
                        Remote { owner },
                        Buffer::new(now, ent.fields.clone()),
                    ))
                    .id();
                index.entities.insert(id, entity);
            }
            ReplicationEvent::Updated { id, sent, fields } => {
                let Some(ent) = r.entity(id) else { continue };
                let at = match (settings.timeline, sent) {
                    (Timeline::Sender, Some(sent)) => clocks.place(ent.owner, sent, now),
                    _ => now,
                };
                if let Some(&entity) = index.entities.get(&id) {
                    if let Ok(mut b) = buffers.get_mut(entity) {
                        b.push(at, fields);
                    }
                } else if let Some(&entity) = index.parts.get(&id)
                    && let Ok(mut parts) = parts.get_mut(entity)
                    && let Some(part) = parts.0.values_mut().find(|p| p.id == id)
                    && let (Some(b), Some((_, state))) = (part.buffer.as_mut(), split(&fields))
                {
                    b.push(at, state);
                }
            }
            ReplicationEvent::Despawned { id } => {
                index.waiting.remove(&id);
                if let Some(entity) = index.entities.remove(&id) {
                    commands.entity(entity).despawn();
                } else if let Some(entity) = index.parts.remove(&id)
                    && let Ok(mut parts) = parts.get_mut(entity)
                {
                    // Its component goes with `apply_remote`.
                    parts.0.retain(|_, p| p.id != id);
                }
            }
            ReplicationEvent::OwnerChanged { id, owner } => {
                // Parts change hands with their entity: told once, for it.
                let Some(&entity) = index.entities.get(&id) else {
                    continue;
                };
                if owner == r.id() {
                    // Ours now: it is published from its current state.
                    commands
                        .entity(entity)
                        .remove::<(Remote, Buffer)>()
                        .insert(Replicated);
                    if let Ok(mut parts) = parts.get_mut(entity) {
                        parts.0.values_mut().for_each(|p| p.buffer = None);
                    }
                } else if let Ok(mut remote) = remotes.get_mut(entity) {
                    remote.owner = owner;
                } else if let Some(ent) = r.entity(id) {
                    // Handed away: shown from the new owner's updates.
                    commands
                        .entity(entity)
                        .remove::<Replicated>()
                        .insert((Remote { owner }, Buffer::new(now, ent.fields.clone())));
                    if let Ok(mut parts) = parts.get_mut(entity) {
                        for p in parts.0.values_mut() {
                            let state = r.entity(p.id).and_then(|e| split(&e.fields));
                            p.buffer = state.map(|(_, state)| Buffer::new(now, state));
                        }
                    }
                }
                commands.write_message(OwnerChanged { entity, owner });
            }
            ReplicationEvent::AuthorityRequested { id, peer } => {
                if let Some(&entity) = index.entities.get(&id) {
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
    // Parts whose entity is known now; the others wait while they exist.
    for id in std::mem::take(&mut index.waiting) {
        let Some(part) = r.entity(id) else { continue };
        let Some((of, state)) = split(&part.fields) else {
            continue;
        };
        let Some(&entity) = index.entities.get(&of) else {
            index.waiting.insert(id);
            continue;
        };
        if r.entity(of).is_none_or(|e| e.owner != part.owner) {
            tracing::warn!(
                "replication: {} sent a part of {of:?}, an entity it does not own; ignored",
                part.owner
            );
            continue;
        }
        index.parts.insert(id, entity);
        let buffer = (part.owner != r.id()).then(|| Buffer::new(now, state));
        commands.queue(parts::add(entity, part.ty, id, buffer));
    }
}

/// An entity of this peer that loses its replication id (despawned, or the
/// component removed) is despawned on every peer, with its parts. A remote
/// entity removed here is only forgotten here.
pub(super) fn despawned(
    remove: On<Remove<NetEntity>>,
    entities: Query<(&NetEntity, Has<Remote>, Option<&Parts>)>,
    socket: Option<ResMut<ReplicationSocket>>,
    mut index: ResMut<Index>,
) {
    let Ok((net, remote, parts)) = entities.get(remove.entity) else {
        return;
    };
    // Gone from the index first when the replication layer despawned it.
    if index.entities.get(&net.0) != Some(&remove.entity) {
        return;
    }
    index.entities.remove(&net.0);
    let parts: Vec<_> = parts
        .iter()
        .flat_map(|p| p.0.values().map(|p| p.id))
        .collect();
    for id in &parts {
        index.parts.remove(id);
    }
    if remote {
        return;
    }
    if let Some(r) = socket.and_then(|s| s.into_inner().0.replicator_mut()) {
        for id in std::iter::once(net.0).chain(parts) {
            let _ = r.despawn(id);
        }
    }
}

/// A state removed from an entity of this peer. As a part, the part is
/// despawned on every peer and the state removed there. As the entity's
/// first state, the entity is despawned on every peer; its other states
/// publish it again, as a new entity, in the next frame.
pub(super) fn state_removed<T: NetState>(
    remove: On<Remove<T>>,
    mut commands: Commands,
    ty: Res<TypeIndex<T>>,
    mut entities: Query<(&NetEntity, Option<&mut Parts>), Without<Remote>>,
    socket: Option<ResMut<ReplicationSocket>>,
    mut index: ResMut<Index>,
) {
    let entity = remove.entity;
    let Ok((net, parts)) = entities.get_mut(entity) else {
        return;
    };
    let Some(r) = socket.and_then(|s| s.into_inner().0.replicator_mut()) else {
        return;
    };
    if r.entity(net.0).is_some_and(|e| e.ty == ty.0) {
        // `despawned` takes it and its parts off the wire (a no-op when
        // the entity itself is being despawned).
        commands.entity(entity).try_remove::<(NetEntity, Parts)>();
        return;
    }
    if let Some(part) = parts.and_then(|mut p| p.0.remove(&ty.part())) {
        index.parts.remove(&part.id);
        let _ = r.despawn(part.id);
    }
}

/// Entities of this peer whose hidden set changed, or that just got their
/// replication id.
type VisibilityChanged = (
    Owned,
    Or<(Changed<HiddenFrom>, Added<NetEntity>, Changed<Parts>)>,
);

/// An entity's id and its parts' ids.
fn ids<'a>(net: &NetEntity, parts: Option<&'a Parts>) -> impl Iterator<Item = NetId> + 'a {
    let own = net.0;
    std::iter::once(own).chain(parts.into_iter().flat_map(|p| p.0.values().map(|p| p.id)))
}

/// Shows and hides this peer's entities as their [`HiddenFrom`] says, to
/// the peers linked now: when the set changes, when it is removed, and for
/// peers that linked since the last frame.
pub(super) fn visibility(
    socket: Option<ResMut<ReplicationSocket>>,
    mut linked: Local<BTreeSet<PeerId>>,
    changed: Query<(&NetEntity, Option<&Parts>, &HiddenFrom), VisibilityChanged>,
    hidden: Query<(&NetEntity, Option<&Parts>, &HiddenFrom), Owned>,
    mut shown: RemovedComponents<HiddenFrom>,
    owned: Query<(&NetEntity, Option<&Parts>), Owned>,
) {
    let Some(r) = socket.and_then(|s| s.into_inner().0.replicator_mut()) else {
        return;
    };
    let peers: BTreeSet<PeerId> = r.peers().collect();
    for (net, parts, from) in &changed {
        for id in ids(net, parts) {
            for &peer in &peers {
                r.set_visible(peer, id, !from.0.contains(&peer));
            }
        }
    }
    for entity in shown.read() {
        if let Ok((net, parts)) = owned.get(entity) {
            for id in ids(net, parts) {
                for &peer in &peers {
                    r.set_visible(peer, id, true);
                }
            }
        }
    }
    let new: Vec<PeerId> = peers.difference(&linked).copied().collect();
    if !new.is_empty() {
        for (net, parts, from) in &hidden {
            for id in ids(net, parts) {
                for peer in new.iter().filter(|p| from.0.contains(p)) {
                    r.set_visible(*peer, id, false);
                }
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
    entities: Query<(&NetEntity, Option<&Parts>)>,
    socket: Option<ResMut<ReplicationSocket>>,
) {
    let Some(r) = socket.and_then(|s| s.into_inner().0.replicator_mut()) else {
        requests.clear();
        hand_overs.clear();
        return;
    };
    // An entity's parts are asked for and handed over with it.
    for RequestAuthority(entity) in requests.read() {
        if let Ok((net, parts)) = entities.get(*entity) {
            ids(net, parts).for_each(|id| r.request_authority(id));
        }
    }
    for HandOver { entity, to } in hand_overs.read() {
        if let Ok((net, parts)) = entities.get(*entity) {
            for id in ids(net, parts) {
                if let Err(error) = r.hand_over(id, *to) {
                    tracing::warn!(%error, "replication: handing over {entity}");
                }
            }
        }
    }
}

/// The remote entities a state is applied to.
type RemoteStates<'a, T> = (
    Entity,
    &'a NetEntity,
    &'a Buffer,
    Option<&'a Parts>,
    Option<&'a mut T>,
);

/// Sets remote entities' state, interpolated at `now - delay`, whether it
/// is the entity's first state or a part; removes it when the part is gone.
pub(super) fn apply_remote<T: NetState>(
    mut commands: Commands,
    clock: Res<NetClock>,
    socket: Option<Res<ReplicationSocket>>,
    settings: Res<ReplicationSettings>,
    index: Res<TypeIndex<T>>,
    mut q: Query<RemoteStates<T>, With<Remote>>,
) {
    let ty = index.0;
    {
        let Some(r) = socket.as_ref().and_then(|s| s.0.replicator()) else {
            return;
        };
        let at = display_time(clock.now(), settings.interpolation_delay);
        for (entity, net, buffer, parts, current) in &mut q {
            let Some(e) = r.entity(net.0) else { continue };
            let buffer = if e.ty == ty {
                Some(buffer)
            } else {
                parts
                    .and_then(|p| p.0.get(&index.part()))
                    .and_then(|p| p.buffer.as_ref())
            };
            let Some(buffer) = buffer else {
                if current.is_some() {
                    commands.entity(entity).remove::<T>();
                }
                continue;
            };
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

/// This peer's entities publishing a state.
type OwnStates<'a, T> = (Entity, &'a T, Option<&'a NetEntity>, Option<&'a Parts>);

/// This peer's new entities, and its ones whose state changed.
type ToPublish<T> = (Owned, Or<(Changed<T>, Without<NetEntity>)>);

/// Spawns this peer's new replicated entities of type `T` and updates the
/// ones whose state changed (entities at rest cost nothing). On an entity
/// whose first state is another type, `T` travels as a part.
pub(super) fn publish<T: NetState>(
    mut commands: Commands,
    socket: Option<ResMut<ReplicationSocket>>,
    mut index: ResMut<Index>,
    ty: Res<TypeIndex<T>>,
    q: Query<OwnStates<T>, ToPublish<T>>,
) {
    let Some(r) = socket.and_then(|s| s.into_inner().0.replicator_mut()) else {
        return;
    };
    for (entity, state, net, parts) in &q {
        let fields = state.to_fields();
        // The entity's id: given earlier, or in this frame by another state.
        let of = net
            .map(|n| n.0)
            .or_else(|| index.published_now.get(&entity).copied());
        let Some(of) = of else {
            if let Ok(id) = r.spawn(ty.0, &fields) {
                commands.entity(entity).insert(NetEntity(id));
                index.entities.insert(id, entity);
                index.published_now.insert(entity, id);
            }
            continue;
        };
        // Not sent while the entity is not this peer's (handed away in
        // this frame, say).
        match r.entity(of).filter(|e| e.owner == r.id()).map(|e| e.ty) {
            None => {}
            Some(t) if t == ty.0 => {
                let _ = r.set(of, &fields);
            }
            Some(_) => {
                let fields = part_fields(of, &fields);
                match parts.and_then(|p| p.0.get(&ty.part())) {
                    Some(part) => {
                        let _ = r.set(part.id, &fields);
                    }
                    None => {
                        if let Ok(id) = r.spawn(ty.part(), &fields) {
                            index.parts.insert(id, entity);
                            commands.queue(parts::add(entity, ty.part(), id, None));
                        }
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
    index.published_now.clear();
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
