//! The rollback session as a Bevy resource: local, or networked with its mesh.

use bevy_ecs::prelude::*;
use gamenet::Instant;
use gamenet::rollback::{Input, RollbackEvent, RollbackNet, RollbackSession};

/// The session and, for networked play, its mesh.
#[derive(Resource)]
pub struct RollbackSocket<I: Input> {
    /// The session, local or over a mesh.
    inner: Inner<I>,
}

/// Where the session runs.
enum Inner<I: Input> {
    /// A session with every player on this peer (or a sync test).
    Local(Box<RollbackSession<I>>),
    /// A session over a mesh.
    Net(Box<RollbackNet<I>>),
}

impl<I: Input> RollbackSocket<I> {
    /// Networked play over a [`RollbackNet`].
    pub fn net(net: RollbackNet<I>) -> Self {
        Self {
            inner: Inner::Net(Box::new(net)),
        }
    }

    /// A local session (sync test, or a game with every player local).
    pub fn local(session: RollbackSession<I>) -> Self {
        Self {
            inner: Inner::Local(Box::new(session)),
        }
    }

    /// The session, once started.
    pub fn session(&self) -> Option<&RollbackSession<I>> {
        match &self.inner {
            Inner::Local(s) => Some(s),
            Inner::Net(n) => n.session(),
        }
    }

    /// The session, once started.
    pub fn session_mut(&mut self) -> Option<&mut RollbackSession<I>> {
        match &mut self.inner {
            Inner::Local(s) => Some(s),
            Inner::Net(n) => n.session_mut(),
        }
    }

    /// The network side, for networked play.
    pub fn net_ref(&self) -> Option<&RollbackNet<I>> {
        match &self.inner {
            Inner::Local(_) => None,
            Inner::Net(n) => Some(n),
        }
    }

    /// The network side, for networked play.
    pub fn net_mut(&mut self) -> Option<&mut RollbackNet<I>> {
        match &mut self.inner {
            Inner::Local(_) => None,
            Inner::Net(n) => Some(n),
        }
    }

    pub(super) fn update(&mut self, now: Instant) {
        match &mut self.inner {
            Inner::Local(s) => {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            Inner::Net(n) => n.update(),
        }
    }

    pub(super) fn flush(&mut self) {
        if let Inner::Net(n) = &mut self.inner {
            n.flush();
        }
    }

    pub(super) fn poll_event(&mut self) -> Option<RollbackEvent> {
        match &mut self.inner {
            Inner::Local(s) => s.poll_event(),
            Inner::Net(n) => n.poll_rollback_event(),
        }
    }
}
