//! Running due rollback frames each app update, carrying out the session's
//! requests, and serving the mesh a replication layer shares.

use std::time::Duration;

use bevy_ecs::prelude::*;
use gamenet::Transport;
use gamenet::rollback::{
    Checksum, ChecksumPart, Input, Request, RollbackError, RollbackEvent, RollbackNet,
};

use super::schedule::advance;
use super::socket::{FrameSession, NetMut};
use super::{
    LocalInputs, LocalPlayers, PlayerInputs, ReadInputs, RollbackFrame, RollbackSocket,
    SessionEvent,
};
use crate::NetClock;
use crate::link::SharedMesh;
use crate::snapshot::{LoadContext, Registry, SnapshotLimits};

/// Who decides when a rollback frame runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameClock {
    /// The session, at its frame rate, sped up or slowed down to stay in step
    /// with the other peers (the default).
    #[default]
    Session,
    /// One frame per app update whenever the session allows: for apps that
    /// run their update on a fixed timestep of their own.
    EveryUpdate,
}

/// Settings the driver needs.
#[derive(Resource, Debug, Clone)]
pub(super) struct Settings {
    /// Snapshots kept per type.
    pub ring: usize,
    /// The time one frame simulates.
    pub step: Duration,
    /// Who decides when frames run.
    pub clock: FrameClock,
}

/// A late-join snapshot did not load: the session is left (the socket
/// removed, which closes its link) once the requests in hand are done.
#[derive(Resource, Debug)]
pub(super) struct LoadFailed;

/// Most frames run in one app update (catching up after a hitch).
const MAX_FRAMES_PER_UPDATE: usize = 32;

/// Runs due frames: reads inputs, advances the session, carries out its
/// requests, and forwards its events.
pub(crate) fn drive<I: Input>(world: &mut World) {
    if !world.contains_resource::<RollbackSocket<I>>() {
        return;
    }
    let clock = world.resource::<Settings>().clock;
    world.resource_scope(|world, mut socket: Mut<RollbackSocket<I>>| {
        let now = world.resource::<NetClock>().now();
        socket.update(now);
        let mut frames = 0;
        while frames < MAX_FRAMES_PER_UPDATE {
            let Some(session) = socket.frame_session() else {
                break;
            };
            let due = match clock {
                FrameClock::Session => session.frame_due(now),
                FrameClock::EveryUpdate => frames == 0 && session.frame_ready(),
            };
            if !due {
                break;
            }
            let local = session.local_slots();
            world.resource_mut::<LocalPlayers>().0.clone_from(&local);
            world.resource_mut::<LocalInputs<I>>().0.clear();
            world.run_schedule(ReadInputs);
            let inputs = world.resource::<LocalInputs<I>>().0.clone();
            for slot in local {
                let input = inputs.get(&slot).copied().unwrap_or_default();
                let _ = session.add_local_input(slot, input);
            }
            match session.advance_frame(now) {
                Ok(requests) => {
                    run_requests(world, session, requests);
                    if world.contains_resource::<LoadFailed>() {
                        break;
                    }
                }
                Err(RollbackError::Stalled) => break,
                Err(e) => {
                    tracing::warn!("rollback: {e}");
                    break;
                }
            }
            frames += 1;
        }
        socket.flush();
        while let Some(event) = socket.poll_event() {
            world.write_message(SessionEvent(event));
        }
        // Peers and application messages, as the mesh plugin's messages
        // (read every frame, so what peers send cannot pile up).
        // Replication over this mesh takes its messages, and its sends go out.
        match socket.net_any() {
            Some(NetMut::Mesh(net)) => serve(world, net),
            #[cfg(feature = "memory")]
            Some(NetMut::Memory(net)) => serve(world, net),
            None => {}
        }
    });
    if world.remove_resource::<LoadFailed>().is_some() {
        world.remove_resource::<RollbackSocket<I>>();
    }
}

/// Writes the mesh's events as the mesh plugin's messages, after a layer
/// sharing the mesh took its own.
fn serve<I: Input, T: Transport>(world: &mut World, net: &mut RollbackNet<I, T>) {
    let events: Vec<gamenet::Event> = std::iter::from_fn(|| net.poll_event()).collect();
    let shared = world.get_resource::<SharedMesh>().cloned();
    if let Some(shared) = &shared {
        shared.pump(net);
    }
    for event in events {
        if shared.as_ref().is_some_and(|s| s.take(&event)) {
            continue;
        }
        crate::write_event(world, event);
    }
}

/// Sends what a layer sharing this session's mesh (replication over
/// rollback) queued.
pub(super) fn pump_link<I: Input>(
    link: Option<Res<SharedMesh>>,
    socket: Option<ResMut<RollbackSocket<I>>>,
) {
    let (Some(link), Some(mut socket)) = (link, socket) else {
        return;
    };
    match socket.net_any() {
        Some(NetMut::Mesh(net)) => link.pump(net),
        #[cfg(feature = "memory")]
        Some(NetMut::Memory(net)) => link.pump(net),
        None => {}
    }
}

/// Carries out a session's requests on the world.
pub fn run_requests<I: Input>(
    world: &mut World,
    session: &mut (impl FrameSession<I> + ?Sized),
    requests: Vec<Request<I>>,
) {
    let settings = world.resource::<Settings>().clone();
    world.resource_scope(|world, mut registry: Mut<Registry>| {
        let registry = &mut *registry;
        for request in requests {
            match request {
                Request::Save { frame } => {
                    let mut parts = Vec::new();
                    let mut total = 0u64;
                    for t in &mut registry.types {
                        if let Some(sum) = t.save(world, settings.ring, frame) {
                            total = total.rotate_left(5) ^ sum;
                            parts.push(ChecksumPart {
                                name: t.name().into(),
                                value: sum,
                            });
                        }
                    }
                    session.set_checksum(frame, Checksum { total, parts });
                }
                Request::Load { frame } => {
                    let mut cx = LoadContext {
                        remap: &mut registry.remap,
                    };
                    for t in &mut registry.types {
                        t.load(world, settings.ring, frame, &mut cx);
                    }
                    world.resource_mut::<RollbackFrame>().0 = frame;
                }
                Request::Advance { frame, inputs } => {
                    world.resource_mut::<RollbackFrame>().0 = frame;
                    world.insert_resource(PlayerInputs(inputs));
                    advance(world, settings.step);
                    world.resource_mut::<RollbackFrame>().0 = frame + 1;
                }
                Request::Snapshot { frame } => match registry.write_all(settings.ring, frame) {
                    Ok(data) => session.submit_snapshot(frame, data),
                    Err(reason) => {
                        tracing::warn!("rollback: turning a late joiner away: {reason}");
                        session.decline_snapshot(frame, &reason.to_string());
                    }
                },
                Request::LoadSnapshot { frame, data } => {
                    let limits = world
                        .get_resource::<SnapshotLimits>()
                        .copied()
                        .unwrap_or_default();
                    match registry.read_all(world, &data, limits) {
                        Ok(()) => world.resource_mut::<RollbackFrame>().0 = frame,
                        Err(e) => {
                            // The world is as it was; this peer cannot play
                            // on, so it leaves (see `drive`) and says why.
                            tracing::error!("rollback: the host's snapshot does not load: {e}");
                            let reason = format!("the host's snapshot does not load: {e}");
                            world
                                .write_message(SessionEvent(RollbackEvent::JoinRefused { reason }));
                            world.insert_resource(LoadFailed);
                            return;
                        }
                    }
                }
            }
        }
        // Respawn mappings only matter while snapshots from before them exist.
        if registry.remap.len() > 4096 {
            registry.remap.clear();
        }
    });
}
