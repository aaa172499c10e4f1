//! What a [`PeerMesh`](crate::PeerMesh) shares with its [`MeshDriver`](crate::MeshDriver):
//! the protocol ([`Mesh`]) and matchbox's socket and channels, behind one lock.
//!
//! The driver *pumps* them: it is woken by every packet and peer change that
//! arrives and by the mesh's timers, takes them in at once, answers heartbeats
//! and sends what the protocol queued. A game whose frames stop (a hidden tab,
//! where `requestAnimationFrame` stops but message events still fire) keeps its
//! links, and round-trip times do not wait for the next frame on either side.
//! The game only drains the events the driver left, and sends.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use futures_timer::Delay;
use matchbox_socket::{PeerState, WebRtcChannel, WebRtcSocket};

use gamenet_core::{ConditionerConfig, LinkConditioner, Mesh, Transmit};

use crate::signals::SharedGate;
use crate::{Bytes, Channel, Instant, PeerId};

/// Longest the driver sleeps without looking at the clock.
const MAX_IDLE: Duration = Duration::from_millis(250);

/// What woke the driver.
enum Wake {
    /// Peer changes, in order.
    Peers(Vec<(matchbox_socket::PeerId, PeerState)>),
    /// One peer change, or `None`: the socket closed.
    Peer(Option<(matchbox_socket::PeerId, PeerState)>),
    /// A packet on a channel, or `None`: the channel closed.
    Packet(Channel, Option<(matchbox_socket::PeerId, Bytes)>),
    /// A timer fired (or nothing is pending).
    Timer,
}

/// The mesh and its socket, shared by the [`PeerMesh`](crate::PeerMesh) and its driver.
#[derive(Debug)]
pub(crate) struct Inner {
    /// matchbox's socket: peer changes, candidate pairs, closing.
    pub(crate) socket: WebRtcSocket,
    /// The reliable and the unreliable channel, by [`Channel::index`].
    channels: [WebRtcChannel; 2],
    /// The protocol.
    pub(crate) core: Mesh,
    /// Room-mates' signals refused before the socket saw them, and the peers
    /// whose signals are dropped.
    pub(crate) gate: SharedGate,
    /// Whether the socket or a channel closed.
    pub(crate) closed: bool,
    /// The link conditioner outgoing packets pass through, if any.
    conditioner: Option<LinkConditioner<Transmit>>,
    /// The task waiting in [`PeerMesh::next_event`](crate::PeerMesh::next_event),
    /// woken when the driver took something in.
    event_waker: Option<Waker>,
    /// The driver's task, and the deadline its timer is armed for.
    driver: Option<(Waker, Instant)>,
}

/// The shared state, cloned into the driver.
#[derive(Debug, Clone)]
pub(crate) struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    pub(crate) fn new(
        socket: WebRtcSocket,
        channels: [WebRtcChannel; 2],
        core: Mesh,
        gate: SharedGate,
        conditioner: Option<LinkConditioner<Transmit>>,
    ) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            socket,
            channels,
            core,
            gate,
            closed: false,
            conditioner,
            event_waker: None,
            driver: None,
        })))
    }

    /// A handle that does not keep the mesh alive.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn downgrade(&self) -> Weak<Mutex<Inner>> {
        Arc::downgrade(&self.0)
    }

    /// The state behind a [`Shared::downgrade`] handle, if the mesh lives.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn upgrade(weak: &Weak<Mutex<Inner>>) -> Option<Self> {
        weak.upgrade().map(Self)
    }

    /// The state, locked. A panic while it was held (none is expected: the
    /// protocol never panics on input) leaves it usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The driver's side: takes in whatever is ready and arms the waker and the
/// timer for what comes next.
#[derive(Debug, Default)]
pub(crate) struct Pump {
    /// The timer for the mesh's next deadline, and that deadline.
    timer: Option<(Instant, Delay)>,
}

impl Pump {
    /// Takes in everything ready, runs due timers and sends what is queued;
    /// returns with every source armed to wake `cx`.
    pub(crate) fn pump(&mut self, shared: &Shared, cx: &mut Context<'_>) {
        let mut inner = shared.lock();
        loop {
            if inner.closed {
                break;
            }
            let now = Instant::now();
            let deadline = inner
                .poll_timeout()
                .unwrap_or(now + MAX_IDLE)
                .min(now + MAX_IDLE);
            let mut delay = match self.timer.take() {
                Some((at, delay)) if at == deadline => Some(delay),
                _ => Some(Delay::new(deadline.saturating_duration_since(now))),
            };
            let wake = inner.poll_wake(cx, &mut delay);
            self.timer = delay.map(|d| (deadline, d));
            match wake {
                Poll::Ready(wake) => inner.on_wake(Instant::now(), wake),
                Poll::Pending => {
                    inner.driver = Some((cx.waker().clone(), deadline));
                    break;
                }
            }
        }
        // Whatever ran (a packet, a timer that ended a link) may have left an
        // event: the waiting task looks.
        if let Some(waker) = inner.event_waker.take() {
            waker.wake();
        }
    }
}

impl Inner {
    /// Registers `waker` to be woken when the driver takes something in.
    pub(crate) fn wake_on_event(&mut self, waker: &Waker) {
        match &self.event_waker {
            Some(w) if w.will_wake(waker) => {}
            _ => self.event_waker = Some(waker.clone()),
        }
    }

    /// Wakes the driver if the game's last call moved the mesh's next deadline
    /// before the one the driver's timer is armed for (a packet held by the
    /// link conditioner, say).
    pub(crate) fn nudge(&mut self) {
        if let Some((waker, armed)) = &self.driver
            && self.poll_timeout().is_some_and(|t| t < *armed)
        {
            waker.wake_by_ref();
        }
    }

    /// Polls the sources of input; a timer that fired is taken out of `timer`.
    fn poll_wake(&mut self, cx: &mut Context<'_>, timer: &mut Option<Delay>) -> Poll<Wake> {
        match self.socket.try_update_peers() {
            Ok(changes) if changes.is_empty() => {}
            Ok(changes) => return Poll::Ready(Wake::Peers(changes)),
            Err(_) => return Poll::Ready(Wake::Peer(None)),
        }
        // Nothing pending: register for the next change. One that arrives between
        // the two calls is taken here, past the socket's peer table (its route
        // then stays unknown); the window is a few instructions wide.
        if let Poll::Ready(change) = self.socket.poll_next_unpin(cx) {
            return Poll::Ready(Wake::Peer(change));
        }
        for channel in [Channel::Reliable, Channel::Unreliable] {
            if let Poll::Ready(packet) = self.channels[channel.index()].poll_next_unpin(cx) {
                return Poll::Ready(Wake::Packet(channel, packet));
            }
        }
        match timer.as_mut().map(|delay| delay.poll_unpin(cx)) {
            Some(Poll::Pending) => Poll::Pending,
            Some(Poll::Ready(())) | None => {
                *timer = None;
                Poll::Ready(Wake::Timer)
            }
        }
    }

    fn on_wake(&mut self, now: Instant, wake: Wake) {
        let is_timer = matches!(wake, Wake::Timer);
        let refusals = self.gate.lock().take_refusals();
        for (peer, error) in refusals {
            self.core.refuse_signal(peer, error.to_string());
        }
        match wake {
            Wake::Peers(changes) => {
                for change in changes {
                    self.on_wake(now, Wake::Peer(Some(change)));
                }
            }
            Wake::Peer(Some((peer, PeerState::Connected))) => {
                self.core.handle_connected(now, to_core(peer));
            }
            Wake::Peer(Some((peer, PeerState::Disconnected))) => {
                self.core.handle_disconnected(now, to_core(peer));
            }
            Wake::Packet(channel, Some((peer, data))) => {
                self.core.handle_packet(now, to_core(peer), channel, data);
            }
            Wake::Peer(None) | Wake::Packet(_, None) => self.on_closed(now),
            Wake::Timer => {}
        }
        if is_timer && self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        self.flush();
    }

    /// The socket is gone: every peer the transport had is disconnected.
    pub(crate) fn on_closed(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        let peers: Vec<PeerId> = self.core.connected_peers().collect();
        for peer in peers {
            self.core.handle_disconnected(now, peer);
        }
        if let Some(waker) = self.event_waker.take() {
            waker.wake();
        }
    }

    /// When the mesh next wants its timers run (a heartbeat, a silence limit,
    /// a conditioned packet falling due).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let conditioned = self.conditioner.as_ref().and_then(|c| c.poll_timeout());
        [self.core.poll_timeout(), conditioned]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the mesh's due timers.
    pub(crate) fn run_timers(&mut self, now: Instant) {
        self.on_wake(now, Wake::Timer);
    }

    /// Hands what the protocol queued to the channels (through the conditioner).
    pub(crate) fn flush(&mut self) {
        let now = Instant::now();
        while let Some(t) = self.core.poll_transmit() {
            match &mut self.conditioner {
                Some(c) => {
                    let reliable = t.channel == Channel::Reliable;
                    c.send(now, t, reliable);
                }
                None => self.transmit(t),
            }
        }
        while let Some(t) = self.conditioner.as_mut().and_then(|c| c.poll(now)) {
            self.transmit(t);
        }
    }

    /// Says goodbye to every peer and leaves the room; the driver then ends.
    pub(crate) fn close(&mut self) {
        self.core.close();
        self.flush();
        // Goodbyes go now, not after the conditioner's delay.
        self.flush_held();
        self.socket.close();
    }

    /// Changes the link conditioner (`None` removes it): packets it holds
    /// keep their times; once removed, what it held goes at once.
    pub(crate) fn set_conditioner(&mut self, config: Option<ConditionerConfig>) {
        match (config, &mut self.conditioner) {
            (Some(config), Some(c)) => c.set_config(config),
            (Some(config), None) => self.conditioner = Some(LinkConditioner::new(config)),
            (None, _) => {
                self.flush_held();
                self.conditioner = None;
            }
        }
    }

    /// The link conditioner's behaviour, if one is on.
    pub(crate) fn conditioner(&self) -> Option<ConditionerConfig> {
        self.conditioner.as_ref().map(|c| c.config().clone())
    }

    /// Sends what the conditioner still holds now, as when closing.
    fn flush_held(&mut self) {
        let held: Vec<Transmit> = std::iter::from_fn(|| {
            let c = self.conditioner.as_mut()?;
            let at = c.poll_timeout()?;
            c.poll(at)
        })
        .collect();
        for t in held {
            self.transmit(t);
        }
    }

    fn transmit(&mut self, t: Transmit) {
        if self.channels[t.channel.index()]
            .try_send(t.data, to_matchbox(t.peer))
            .is_err()
        {
            self.closed = true;
        }
    }
}

pub(crate) fn to_core(peer: matchbox_socket::PeerId) -> PeerId {
    PeerId(peer.0.as_u128())
}

pub(crate) fn to_matchbox(peer: PeerId) -> matchbox_socket::PeerId {
    matchbox_socket::PeerId(uuid::Uuid::from_u128(peer.0))
}
