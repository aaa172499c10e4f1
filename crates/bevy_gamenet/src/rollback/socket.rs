//! The rollback session as a Bevy resource: local, or networked with its mesh.

use bevy_ecs::prelude::*;
use gamenet::Instant;
#[cfg(feature = "memory")]
use gamenet::MemoryTransport;
use gamenet::rollback::{
    Checksum, Frame, Input, Request, RollbackError, RollbackEvent, RollbackNet, RollbackSession,
    RollbackStats, SyncTestSession,
};

/// The session and, for networked play, its mesh.
#[derive(Resource)]
pub struct RollbackSocket<I: Input> {
    /// The session, local or over a mesh.
    inner: Inner<I>,
}

/// Where the session runs.
enum Inner<I: Input> {
    /// A session with every player on this peer.
    Local(Box<RollbackSession<I>>),
    /// A local sync test.
    SyncTest(Box<SyncTestSession<I>>),
    /// A session over a mesh.
    Net(Box<RollbackNet<I>>),
    /// A session over a simulated network, for tests.
    #[cfg(feature = "memory")]
    Memory(Box<RollbackNet<I, MemoryTransport>>),
}

/// The network side of a session, whichever transport it runs on.
pub(super) enum NetMut<'a, I: Input> {
    /// Over a mesh.
    Mesh(&'a mut RollbackNet<I>),
    /// Over a simulated network.
    #[cfg(feature = "memory")]
    Memory(&'a mut RollbackNet<I, MemoryTransport>),
}

impl<I: Input> RollbackSocket<I> {
    /// Networked play over a [`RollbackNet`].
    pub fn net(net: RollbackNet<I>) -> Self {
        Self {
            inner: Inner::Net(Box::new(net)),
        }
    }

    /// Networked play over a simulated network, for tests (see
    /// `test_app::TestNetwork`).
    #[cfg(feature = "memory")]
    pub fn memory(net: RollbackNet<I, MemoryTransport>) -> Self {
        Self {
            inner: Inner::Memory(Box::new(net)),
        }
    }

    /// A local session (a game with every player local).
    pub fn local(session: RollbackSession<I>) -> Self {
        Self {
            inner: Inner::Local(Box::new(session)),
        }
    }

    /// A local sync test.
    pub fn sync_test(session: SyncTestSession<I>) -> Self {
        Self {
            inner: Inner::SyncTest(Box::new(session)),
        }
    }

    /// The session, once started (none for a sync test: see
    /// [`RollbackSocket::sync_test_session`]).
    pub fn session(&self) -> Option<&RollbackSession<I>> {
        match &self.inner {
            Inner::Local(s) => Some(s),
            Inner::SyncTest(_) => None,
            Inner::Net(n) => n.session(),
            #[cfg(feature = "memory")]
            Inner::Memory(n) => n.session(),
        }
    }

    /// The session, once started (none for a sync test).
    pub fn session_mut(&mut self) -> Option<&mut RollbackSession<I>> {
        match &mut self.inner {
            Inner::Local(s) => Some(s),
            Inner::SyncTest(_) => None,
            Inner::Net(n) => n.session_mut(),
            #[cfg(feature = "memory")]
            Inner::Memory(n) => n.session_mut(),
        }
    }

    /// The sync test session, for a sync test.
    pub fn sync_test_session(&self) -> Option<&SyncTestSession<I>> {
        match &self.inner {
            Inner::SyncTest(s) => Some(s),
            _ => None,
        }
    }

    /// The session's counters, whichever kind it is, once started.
    pub fn stats(&self) -> Option<RollbackStats> {
        match &self.inner {
            Inner::SyncTest(s) => Some(s.stats()),
            _ => self.session().map(RollbackSession::stats),
        }
    }

    /// The session that runs frames, whichever kind it is, once started.
    pub(super) fn frame_session(&mut self) -> Option<&mut dyn FrameSession<I>> {
        match &mut self.inner {
            Inner::Local(s) => Some(&mut **s),
            Inner::SyncTest(s) => Some(&mut **s),
            Inner::Net(n) => n.session_mut().map(|s| s as &mut dyn FrameSession<I>),
            #[cfg(feature = "memory")]
            Inner::Memory(n) => n.session_mut().map(|s| s as &mut dyn FrameSession<I>),
        }
    }

    /// Hands the app's registered types to the mesh, for its handshake.
    pub(crate) fn set_schema(&mut self, schema: gamenet::TypeSchema) {
        match &mut self.inner {
            Inner::Net(n) => n.raw_mesh_mut().set_schema(schema),
            #[cfg(feature = "memory")]
            Inner::Memory(n) => gamenet::Transport::set_schema(n.raw_mesh_mut(), schema),
            _ => {}
        }
    }

    /// The network side, for networked play over a mesh.
    pub fn net_ref(&self) -> Option<&RollbackNet<I>> {
        match &self.inner {
            Inner::Net(n) => Some(n),
            _ => None,
        }
    }

    /// The network side, for networked play over a mesh.
    pub fn net_mut(&mut self) -> Option<&mut RollbackNet<I>> {
        match &mut self.inner {
            Inner::Net(n) => Some(n),
            _ => None,
        }
    }

    /// The network side, for play over a simulated network.
    #[cfg(feature = "memory")]
    pub fn memory_net(&self) -> Option<&RollbackNet<I, MemoryTransport>> {
        match &self.inner {
            Inner::Memory(n) => Some(n),
            _ => None,
        }
    }

    /// The network side, for play over a simulated network.
    #[cfg(feature = "memory")]
    pub fn memory_net_mut(&mut self) -> Option<&mut RollbackNet<I, MemoryTransport>> {
        match &mut self.inner {
            Inner::Memory(n) => Some(n),
            _ => None,
        }
    }

    /// The network side, whichever transport it runs on.
    pub(super) fn net_any(&mut self) -> Option<NetMut<'_, I>> {
        match &mut self.inner {
            Inner::Local(_) | Inner::SyncTest(_) => None,
            Inner::Net(n) => Some(NetMut::Mesh(n)),
            #[cfg(feature = "memory")]
            Inner::Memory(n) => Some(NetMut::Memory(n)),
        }
    }

    pub(super) fn update(&mut self, now: Instant) {
        match &mut self.inner {
            Inner::Local(s) => {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            Inner::SyncTest(_) => {}
            Inner::Net(n) => n.update(),
            #[cfg(feature = "memory")]
            Inner::Memory(n) => n.update(),
        }
    }

    pub(super) fn flush(&mut self) {
        match &mut self.inner {
            Inner::Local(_) | Inner::SyncTest(_) => {}
            Inner::Net(n) => n.flush(),
            #[cfg(feature = "memory")]
            Inner::Memory(n) => n.flush(),
        }
    }

    pub(super) fn poll_event(&mut self) -> Option<RollbackEvent> {
        match &mut self.inner {
            Inner::Local(s) => s.poll_event(),
            Inner::SyncTest(s) => s.poll_event(),
            Inner::Net(n) => n.poll_rollback_event(),
            #[cfg(feature = "memory")]
            Inner::Memory(n) => n.poll_rollback_event(),
        }
    }
}

/// What the frame loop and [`run_requests`](super::run_requests) need of a
/// session: a [`RollbackSession`] or a [`SyncTestSession`].
pub trait FrameSession<I: Input> {
    /// Whether a frame should run now.
    fn frame_due(&mut self, now: Instant) -> bool;
    /// Whether a frame can run now, the clock aside.
    fn frame_ready(&self) -> bool;
    /// The slots played on this peer.
    fn local_slots(&self) -> Vec<usize>;
    /// Sets a local player's input for the next frame.
    fn add_local_input(&mut self, slot: usize, input: I) -> Result<(), RollbackError>;
    /// Runs one frame.
    fn advance_frame(&mut self, now: Instant) -> Result<Vec<Request<I>>, RollbackError>;
    /// Reports the checksum of a saved state.
    fn set_checksum(&mut self, frame: Frame, checksum: Checksum);
    /// Hands over a snapshot the session asked for.
    fn submit_snapshot(&mut self, frame: Frame, data: Vec<u8>);
    /// Turns away the joiners waiting for a snapshot.
    fn decline_snapshot(&mut self, frame: Frame, reason: &str);
}

impl<I: Input> FrameSession<I> for RollbackSession<I> {
    fn frame_due(&mut self, now: Instant) -> bool {
        RollbackSession::frame_due(self, now)
    }
    fn frame_ready(&self) -> bool {
        RollbackSession::frame_ready(self)
    }
    fn local_slots(&self) -> Vec<usize> {
        RollbackSession::local_slots(self)
    }
    fn add_local_input(&mut self, slot: usize, input: I) -> Result<(), RollbackError> {
        RollbackSession::add_local_input(self, slot, input)
    }
    fn advance_frame(&mut self, now: Instant) -> Result<Vec<Request<I>>, RollbackError> {
        RollbackSession::advance_frame(self, now)
    }
    fn set_checksum(&mut self, frame: Frame, checksum: Checksum) {
        RollbackSession::set_checksum(self, frame, checksum);
    }
    fn submit_snapshot(&mut self, frame: Frame, data: Vec<u8>) {
        RollbackSession::submit_snapshot(self, frame, data);
    }
    fn decline_snapshot(&mut self, frame: Frame, reason: &str) {
        RollbackSession::decline_snapshot(self, frame, reason);
    }
}

impl<I: Input> FrameSession<I> for SyncTestSession<I> {
    fn frame_due(&mut self, now: Instant) -> bool {
        SyncTestSession::frame_due(self, now)
    }
    fn frame_ready(&self) -> bool {
        SyncTestSession::frame_ready(self)
    }
    fn local_slots(&self) -> Vec<usize> {
        SyncTestSession::local_slots(self)
    }
    fn add_local_input(&mut self, slot: usize, input: I) -> Result<(), RollbackError> {
        SyncTestSession::add_local_input(self, slot, input)
    }
    fn advance_frame(&mut self, now: Instant) -> Result<Vec<Request<I>>, RollbackError> {
        SyncTestSession::advance_frame(self, now)
    }
    fn set_checksum(&mut self, frame: Frame, checksum: Checksum) {
        SyncTestSession::set_checksum(self, frame, checksum);
    }
    /// A sync test asks for no snapshots.
    fn submit_snapshot(&mut self, _frame: Frame, _data: Vec<u8>) {}
    /// A sync test asks for no snapshots.
    fn decline_snapshot(&mut self, _frame: Frame, _reason: &str) {}
}

impl<I: Input> crate::conditions::OnPeerMesh for RollbackSocket<I> {
    fn peer_mesh(&mut self) -> Option<&mut gamenet::PeerMesh> {
        match &mut self.inner {
            Inner::Net(n) => Some(n.raw_mesh_mut()),
            _ => None,
        }
    }
    fn peer_mesh_ref(&self) -> Option<&gamenet::PeerMesh> {
        self.net_ref().map(|n| n.mesh())
    }
}
