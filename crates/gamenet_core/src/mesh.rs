//! The sans-IO mesh: every link to another peer, driven by time and packets.
//!
//! [`Mesh`] only orchestrates: it routes what the transport hands in to the
//! link it concerns and runs the heartbeats. The rest lives in one file per
//! concept: the settings ([`config`]), what it reports ([`event`]), the state of
//! one link ([`link`]), the [`handshake`], the [`heartbeat`]s, the
//! [`reliable`] stream (flow control, fragmentation, reassembly, send queue),
//! outages and links that come back ([`lapse`]) and the packet format
//! ([`wire`]).

mod config;
mod event;
mod handshake;
mod heartbeat;
mod inbound;
mod lapse;
mod link;
mod reliable;
mod schema;
#[cfg(test)]
mod tests;
pub mod wire;

pub use config::{ConfigError, DEFAULT_FRAGMENT_SIZE, DEFAULT_SEND_WINDOW, MeshConfig};
pub use event::{Event, HandshakeError, LeaveReason, ProtocolError, SendError};
pub use handshake::PROTOCOL_VERSION;
pub use schema::TypeSchema;

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;

use self::event::{Fault, check_size};
use self::link::{Link, LinkPhase};
use self::wire::{GoodbyeReason, ReliablePacket, UNRELIABLE_DATA_HEADER, UnreliablePacket};
use crate::Instant;
use crate::peer::{Channel, PeerId, Transmit};
use crate::stats::PeerStats;

/// How many closed peer ids are remembered so that their stragglers are ignored.
const CLOSED_MEMORY: usize = 1024;

/// The sans-IO heart of a peer mesh.
///
/// It never reads a clock and never touches a socket: the caller feeds it time,
/// transport events and received packets, and drains what it wants sent
/// ([`Mesh::poll_transmit`]), what happened ([`Mesh::poll_event`]) and when it
/// wants to be woken ([`Mesh::poll_timeout`]).
#[derive(Debug)]
pub struct Mesh {
    /// The settings, validated.
    config: MeshConfig,
    /// Every peer handshaking or joined, by id.
    links: HashMap<PeerId, Link>,
    /// The peers the transport reported connected and not since disconnected,
    /// whether linked, lapsed or closed.
    connected: HashSet<PeerId>,
    /// The peers whose link timed out while the transport keeps them
    /// connected, with when each is probed next: the next packet from one
    /// starts a fresh link. Never linked nor closed at the same time.
    lapsed: HashMap<PeerId, Instant>,
    /// The last [`CLOSED_MEMORY`] peers whose link ended: what they still send
    /// is ignored, and they cannot join again.
    closed: HashSet<PeerId>,
    /// The peers of [`Mesh::closed`], oldest first, to forget the oldest.
    closed_order: VecDeque<PeerId>,
    /// The last [`CLOSED_MEMORY`] peers banned for breaking the protocol,
    /// oldest first: never linked again, whatever connection they come on.
    banned: VecDeque<PeerId>,
    /// The types this peer registered, which its hello carries.
    schema: TypeSchema,
    /// Packets waiting for [`Mesh::poll_transmit`].
    transmits: VecDeque<Transmit>,
    /// Events waiting for [`Mesh::poll_event`].
    events: VecDeque<Event>,
    /// For each message event waiting, what taking it gives back to its link.
    credits: inbound::Credits,
}

impl Mesh {
    /// A mesh with no peers yet.
    pub fn new(config: MeshConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            links: HashMap::new(),
            connected: HashSet::new(),
            lapsed: HashMap::new(),
            closed: HashSet::new(),
            closed_order: VecDeque::new(),
            banned: VecDeque::new(),
            schema: TypeSchema::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            credits: inbound::Credits::new(),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// Sets the types this peer registered for its layers, which its hellos
    /// carry and the peers' hellos must match. Call it before the first
    /// handshake: hellos still waiting for [`Mesh::poll_transmit`] are
    /// rewritten, those already taken are not.
    pub fn set_schema(&mut self, schema: TypeSchema) {
        self.schema = schema;
        let mut transmits = std::mem::take(&mut self.transmits);
        for transmit in &mut transmits {
            if transmit.channel == Channel::Reliable
                && let Ok(ReliablePacket::Hello { link, .. }) =
                    ReliablePacket::decode(&transmit.data)
            {
                transmit.data = Bytes::from(self.hello(link));
            }
        }
        self.transmits = transmits;
    }

    /// The types this peer registered ([`Mesh::set_schema`]).
    pub fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    /// The transport connected a peer: start the handshake (or, if its link
    /// lapsed, start over).
    ///
    /// A peer whose link ended comes back only through a new transport
    /// connection (reported after its disconnection: the peer reconnected
    /// through signaling, or restarted), as a fresh link; what it still sends
    /// on the old one is ignored.
    pub fn handle_connected(&mut self, now: Instant, peer: PeerId) {
        if self.banned.contains(&peer) {
            return;
        }
        let new_connection = self.connected.insert(peer);
        let was_closed = self.closed.contains(&peer);
        if was_closed {
            if !new_connection {
                return;
            }
            self.closed.remove(&peer);
            self.closed_order.retain(|&p| p != peer);
        }
        if self.lapsed.contains_key(&peer) {
            self.restart(now, peer);
            return;
        }
        let timeout = self.config.handshake_timeout;
        let link = self.links.entry(peer).or_insert_with(|| {
            let mut link = Link::new(now, timeout);
            // A new connection to a peer whose link ended: it may have sent on
            // a link it still took for joined (its side heard of the new
            // connection first). That is ignored until its fresh hello.
            link.stragglers = was_closed;
            link
        });
        if link.connected {
            return;
        }
        link.connected = true;
        let hello_received = matches!(
            link.phase,
            LinkPhase::Handshaking {
                hello_received: true,
                ..
            }
        );
        self.send_hello(now, peer);
        if hello_received {
            // Its hello came before the transport could carry our answer.
            self.push_transmit(peer, Channel::Reliable, ReliablePacket::HelloAck.encode());
        }
    }

    /// The transport lost a peer: its link ends, and it cannot come back.
    pub fn handle_disconnected(&mut self, _now: Instant, peer: PeerId) {
        self.connected.remove(&peer);
        if self.lapsed.remove(&peer).is_some() {
            self.remember_closed(peer);
        }
        if let Some(link) = self.links.remove(&peer) {
            if link.joined() {
                self.events.push_back(Event::PeerLeft {
                    peer,
                    reason: LeaveReason::Disconnected,
                });
            }
            self.remember_closed(peer);
        }
    }

    /// A packet arrived from `peer` on `channel`.
    pub fn handle_packet(&mut self, now: Instant, peer: PeerId, channel: Channel, data: Bytes) {
        if self.closed.contains(&peer) || self.banned.contains(&peer) {
            return;
        }
        let size = data.len() as u64;
        let result = match channel {
            Channel::Reliable => self.on_reliable(now, peer, data),
            Channel::Unreliable => self.on_unreliable(now, peer, data),
        };
        match result {
            Err(error) => self.close_link(peer, error),
            Ok(()) => {
                if let Some(link) = self.links.get_mut(&peer) {
                    link.stats.bytes_in += size;
                    link.stats.packets_in += 1;
                }
            }
        }
    }

    /// A packet on the reliable channel: the handshake's while handshaking,
    /// then the goodbye and reliable data; a reset in any phase.
    fn on_reliable(&mut self, now: Instant, peer: PeerId, data: Bytes) -> Result<(), Fault> {
        let decoded = ReliablePacket::decode(&data);
        if self.lapsed.contains_key(&peer) {
            if !self.on_lapsed_reliable(now, peer, &decoded) {
                return Ok(());
            }
        } else if !self.links.contains_key(&peer) {
            // The transport delivered data before reporting the connection: take
            // the hello in, and answer it once the connection is reported.
            let link = Link::new(now, self.config.handshake_timeout);
            self.links.insert(peer, link);
        }
        let packet = decoded.map_err(|e| Fault::Protocol(e.into()))?;
        match packet {
            ReliablePacket::Reset => {
                self.on_reset(now, peer);
                return Ok(());
            }
            // A goodbye ends the link: an interrupted one does not resume.
            ReliablePacket::Goodbye(_) => {}
            _ => self.heard(now, peer),
        }
        let Some(link) = self.links.get(&peer) else {
            return Ok(());
        };
        if !link.joined() && !self.on_handshake(now, peer, packet)? {
            return Ok(());
        }
        match packet {
            ReliablePacket::Hello { link, .. }
                if from_another_link(self.links.get(&peer), link) =>
            {
                // A hello of a fresh link on our joined one: the peer restarted,
                // or its side ended the link (its transport replaced the
                // connection before ours said so). Ours ends too, and a fresh
                // handshake takes this hello in.
                self.on_reset(now, peer);
                self.on_reliable(now, peer, data.clone())
            }
            ReliablePacket::Hello { .. } => {
                // Our acknowledgement crossed a repeated hello: answer it again.
                self.push_transmit(peer, Channel::Reliable, ReliablePacket::HelloAck.encode());
                Ok(())
            }
            ReliablePacket::HelloAck | ReliablePacket::Reset => Ok(()),
            ReliablePacket::Goodbye(reason) => Err(Fault::Gone(LeaveReason::Left(reason))),
            ReliablePacket::Data(_)
            | ReliablePacket::FragmentStart { .. }
            | ReliablePacket::FragmentCont(_) => self.on_reliable_data(peer, packet, &data),
        }
    }

    /// A packet on the unreliable channel of a joined peer: heartbeats,
    /// acknowledgements and unreliable data. From a lapsed peer, it starts a
    /// fresh link and is otherwise ignored.
    fn on_unreliable(&mut self, now: Instant, peer: PeerId, data: Bytes) -> Result<(), Fault> {
        if self.lapsed.contains_key(&peer) {
            self.restart(now, peer);
            return Ok(());
        }
        let max_unreliable = self.config.max_unreliable_size;
        if !self.links.get(&peer).is_some_and(Link::joined) {
            // Heartbeats may overtake the hello on the other channel.
            return Ok(());
        }
        if !self.within_budget(now, peer, &data) {
            return Ok(());
        }
        self.heard(now, peer);
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        let acked = match UnreliablePacket::decode(&data).map_err(|e| Fault::Protocol(e.into()))? {
            UnreliablePacket::Ping { seq, acked } => {
                let pong = UnreliablePacket::Pong {
                    seq,
                    acked: link.reliable.ack_now(),
                }
                .encode();
                self.push_transmit(peer, Channel::Unreliable, pong);
                acked
            }
            UnreliablePacket::Pong { seq, acked } => {
                link.heartbeats.pong(seq, now);
                acked
            }
            UnreliablePacket::Ack { acked } => acked,
            UnreliablePacket::Data(_) => {
                let size = data.len() - UNRELIABLE_DATA_HEADER;
                check_size(size, max_unreliable)?;
                let payload = data.slice(UNRELIABLE_DATA_HEADER..);
                self.deliver(peer, Channel::Unreliable, payload, 0);
                return Ok(());
            }
        };
        match self.on_ack(peer, acked) {
            Err(fault) if self.is_stale_ack(now, peer, &fault) => Ok(()),
            result => result,
        }
    }

    /// Time has passed: send heartbeats and probes, expire handshakes,
    /// report silent peers interrupted and lapse those silent for too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut lapses = Vec::new();
        let mut interrupted = Vec::new();
        let mut pings = Vec::new();
        let mut hellos = Vec::new();
        for (&peer, link) in self.links.iter_mut() {
            match link.phase {
                LinkPhase::Handshaking {
                    deadline,
                    ack_received,
                    ..
                } => {
                    if now >= deadline && link.restarted {
                        lapses.push(peer);
                    } else if now >= deadline {
                        expired.push((peer, Fault::Handshake(HandshakeError::TimedOut)));
                    } else if link.connected && !ack_received && now >= link.next_ping {
                        hellos.push(peer);
                    }
                }
                LinkPhase::Joined => {
                    if now >= link.last_recv + self.config.disconnect_timeout {
                        lapses.push(peer);
                        continue;
                    }
                    if !link.interrupted && now >= link.last_recv + self.config.interrupt_timeout {
                        link.interrupted = true;
                        interrupted.push(peer);
                    }
                    if now >= link.next_ping {
                        pings.push(peer);
                        link.next_ping = (link.next_ping + self.config.heartbeat_interval)
                            .max(now + self.config.heartbeat_interval / 2);
                    }
                }
            }
        }
        // Peers in id order, so that events come the same way every run.
        interrupted.sort_unstable();
        self.events
            .extend(interrupted.into_iter().map(Event::PeerInterrupted));
        for peer in pings {
            self.send_ping(now, peer);
        }
        for peer in hellos {
            self.send_hello(now, peer);
        }
        expired.sort_unstable_by_key(|(peer, _)| *peer);
        for (peer, fault) in expired {
            self.close_link(peer, fault);
        }
        lapses.sort_unstable();
        for peer in lapses {
            self.lapse(now, peer);
        }
        self.probe_lapsed(now);
    }

    /// When [`Mesh::handle_timeout`] wants to be called next, if any peer is
    /// linked or lapsed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.links.values().map(|l| l.next_deadline(&self.config));
        links.chain(self.lapsed.values().copied()).min()
    }

    /// The next packet to hand to the transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if matches!(event, Event::Message { .. }) {
            self.credit();
        }
        Some(event)
    }

    /// Queues a message to a joined peer.
    pub fn send(
        &mut self,
        peer: PeerId,
        channel: Channel,
        payload: &[u8],
    ) -> Result<(), SendError> {
        if !self.is_joined(peer) {
            return Err(SendError::UnknownPeer(peer));
        }
        match channel {
            Channel::Unreliable => {
                let max_unreliable = self.config.max_unreliable_size;
                if payload.len() > max_unreliable {
                    return Err(SendError::MessageTooLarge {
                        size: payload.len(),
                        max: max_unreliable,
                    });
                }
                let data = UnreliablePacket::Data(payload).encode();
                self.push_transmit(peer, Channel::Unreliable, data);
            }
            Channel::Reliable => self.send_reliable(peer, payload)?,
        }
        Ok(())
    }

    /// Stops talking to `peer` for good: it is told goodbye, reported as left
    /// if it was joined, and never joins again. Works on a peer whose link
    /// timed out too, so that it does not come back. Returns whether the peer
    /// was linked or timed out.
    pub fn drop_peer(&mut self, peer: PeerId) -> bool {
        if self.drop_lapsed(peer, GoodbyeReason::Dropped) {
            return true;
        }
        if !self.links.contains_key(&peer) {
            return false;
        }
        self.close_link(peer, Fault::Gone(LeaveReason::Dropped));
        true
    }

    /// Drops `peer` for breaking the protocol and never links it again: a
    /// reconnect (its own, or this peer's automatic one) finds no link.
    /// Returns whether it was linked.
    pub fn ban_peer(&mut self, peer: PeerId) -> bool {
        if !self.banned.contains(&peer) {
            self.banned.push_back(peer);
            if self.banned.len() > CLOSED_MEMORY {
                self.banned.pop_front();
            }
        }
        let dropped = self.drop_peer(peer);
        self.connected.remove(&peer);
        dropped
    }

    /// A room-mate's signal failed the checks made before the WebRTC stack
    /// sees it (by the transport, which owns the signaling): `peer` is banned
    /// and reported as [`Event::SignalRefused`].
    pub fn refuse_signal(&mut self, peer: PeerId, reason: String) {
        self.ban_peer(peer);
        self.events.push_back(Event::SignalRefused { peer, reason });
    }

    /// Whether `peer` was banned ([`Mesh::ban_peer`]).
    pub fn is_banned(&self, peer: PeerId) -> bool {
        self.banned.contains(&peer)
    }

    /// Says goodbye to every peer, as when leaving the mesh.
    pub fn close(&mut self) {
        let mut lapsed: Vec<PeerId> = self.lapsed.keys().copied().collect();
        lapsed.sort_unstable();
        for peer in lapsed {
            self.drop_lapsed(peer, GoodbyeReason::Leaving);
        }
        let mut peers: Vec<PeerId> = self.links.keys().copied().collect();
        peers.sort_unstable();
        for peer in peers {
            self.close_link(peer, Fault::Gone(LeaveReason::Closed));
        }
    }

    /// Peers that completed the handshake.
    pub fn joined_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.links
            .iter()
            .filter(|(_, l)| l.joined())
            .map(|(&p, _)| p)
    }

    /// Peers the transport reported connected and not since disconnected,
    /// whatever their link's state: a transport that closes reports each of
    /// them with [`Mesh::handle_disconnected`].
    pub fn connected_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.connected.iter().copied()
    }

    /// Whether `peer` is joined.
    pub fn is_joined(&self, peer: PeerId) -> bool {
        self.links.get(&peer).is_some_and(Link::joined)
    }

    /// Statistics of the link to `peer`, as of its last heartbeat.
    pub fn stats(&self, peer: PeerId) -> Option<PeerStats> {
        self.links.get(&peer).map(|link| {
            let mut stats = link.stats.clone();
            stats.rtt = link.heartbeats.rtt();
            stats.reliable_in_flight = link.reliable.in_flight();
            stats.reliable_queued = link.reliable.queued_unsent();
            stats
        })
    }

    /// Ends the link to `peer` for `fault`: tells the peer why when it should
    /// hear it, reports the end, and remembers the peer as closed.
    fn close_link(&mut self, peer: PeerId, fault: Fault) {
        let Some(link) = self.links.remove(&peer) else {
            return;
        };
        // A peer the transport never connected cannot be told anything.
        if let Some(reason) = fault.goodbye().filter(|_| link.connected) {
            self.push_transmit(
                peer,
                Channel::Reliable,
                ReliablePacket::Goodbye(reason).encode(),
            );
        }
        self.events.extend(fault.into_event(peer, link.joined()));
        self.remember_closed(peer);
    }

    /// Remembers `peer` as closed, forgetting the oldest beyond [`CLOSED_MEMORY`].
    fn remember_closed(&mut self, peer: PeerId) {
        if self.closed.insert(peer) {
            self.closed_order.push_back(peer);
            if self.closed_order.len() > CLOSED_MEMORY
                && let Some(old) = self.closed_order.pop_front()
            {
                self.closed.remove(&old);
            }
        }
    }

    /// Queues `data` for the transport and counts it in the peer's statistics.
    fn push_transmit(&mut self, peer: PeerId, channel: Channel, data: Box<[u8]>) {
        let data = Bytes::from(data);
        if let Some(link) = self.links.get_mut(&peer) {
            link.stats.bytes_out += data.len() as u64;
            link.stats.packets_out += 1;
        }
        self.transmits.push_back(Transmit {
            peer,
            channel,
            data,
        });
    }
}

/// Whether a hello of link id `theirs` on the joined `link` is from another
/// link than the one joined.
fn from_another_link(link: Option<&Link>, theirs: u32) -> bool {
    link.is_some_and(|l| l.peer_link != Some(theirs))
}
