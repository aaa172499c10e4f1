//! The sans-IO mesh: every link to another peer, driven by time and packets.

pub mod wire;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use self::wire::{
    DecodeError, FRAGMENT_CONT_HEADER, FRAGMENT_START_HEADER, GoodbyeReason, RELIABLE_DATA_HEADER,
    ReliablePacket, UNRELIABLE_DATA_HEADER, UnreliablePacket,
};
use crate::Instant;
use crate::peer::{Channel, PeerId, Transmit};
use crate::stats::{PING_SLOTS, PeerStats, PingSlot, RateMeter, RttEstimator, loss_estimate};

/// Version of the gamenet wire protocol this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Settings of a [`Mesh`].
#[derive(Debug, Clone, PartialEq)]
pub struct MeshConfig {
    /// Application id exchanged in the handshake; peers with another id are refused.
    pub app_id: String,
    /// Interval between heartbeats to each peer.
    pub heartbeat_interval: Duration,
    /// A joined peer that sends nothing for this long is reported as left.
    pub disconnect_timeout: Duration,
    /// A connected peer that has not completed the handshake after this long is refused.
    pub handshake_timeout: Duration,
    /// Largest reliable message, in bytes, either side may send. Larger ones are
    /// refused to the sender, and a peer that sends one is dropped.
    pub max_message_size: usize,
    /// Largest unreliable message, in bytes.
    pub max_unreliable_size: usize,
    /// Largest reliable packet handed to the transport; longer messages are fragmented.
    pub fragment_size: usize,
    /// Reliable bytes that may be in flight to one peer before its acknowledgement.
    pub send_window: usize,
    /// Reliable bytes that may wait for send window per peer before sends fail.
    pub max_queued_bytes: usize,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            app_id: String::from("gamenet"),
            heartbeat_interval: Duration::from_millis(100),
            disconnect_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(10),
            max_message_size: 16 << 20,
            max_unreliable_size: 16 << 10,
            fragment_size: DEFAULT_FRAGMENT_SIZE,
            send_window: DEFAULT_SEND_WINDOW,
            max_queued_bytes: 32 << 20,
        }
    }
}

/// Default [`MeshConfig::fragment_size`]: one fragment fits one SCTP data chunk
/// (about 1,200 bytes of payload in webrtc-rs and in browsers). Between two native
/// peers, fragments that span several chunks move large messages about ten times
/// slower (see the `transport` benchmark).
pub const DEFAULT_FRAGMENT_SIZE: usize = 1152;

/// Default [`MeshConfig::send_window`]. Heartbeats share the WebRTC association
/// (SCTP) with reliable data, and an SCTP association that loses a packet at the
/// tail of a burst, for instance to a full UDP receive buffer, stalls for its
/// minimum retransmission timeout of one second or more. Keeping the reliable data
/// in flight small keeps bursts within ordinary socket buffers; 256 KiB still
/// moves tens of MB/s on a LAN (see the `transport` benchmark).
pub const DEFAULT_SEND_WINDOW: usize = 256 << 10;

/// A setting of [`MeshConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The application id is longer than the handshake can carry.
    #[error("app id is {0} bytes, at most {max} allowed", max = wire::MAX_APP_ID_LEN)]
    AppIdTooLong(usize),
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// The fragment size leaves no room for payload.
    #[error("fragment size must be at least 64 bytes, not {0}")]
    FragmentTooSmall(usize),
    /// The send window is smaller than one fragment.
    #[error("send window must hold at least one fragment")]
    WindowTooSmall,
    /// The queue cannot hold one message of the largest size.
    #[error("max queued bytes must be at least max message size")]
    QueueTooSmall,
}

impl MeshConfig {
    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.app_id.len() > wire::MAX_APP_ID_LEN {
            return Err(ConfigError::AppIdTooLong(self.app_id.len()));
        }
        for (name, d) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("disconnect_timeout", self.disconnect_timeout),
            ("handshake_timeout", self.handshake_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.fragment_size < 64 {
            return Err(ConfigError::FragmentTooSmall(self.fragment_size));
        }
        if self.send_window < self.fragment_size {
            return Err(ConfigError::WindowTooSmall);
        }
        if self.max_queued_bytes < self.max_message_size {
            return Err(ConfigError::QueueTooSmall);
        }
        Ok(())
    }
}

/// Something a peer sent that breaks the protocol; the peer is dropped for it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A packet could not be decoded.
    #[error("undecodable packet: {0}")]
    Decode(#[from] DecodeError),
    /// A message larger than [`MeshConfig::max_message_size`] or
    /// [`MeshConfig::max_unreliable_size`].
    #[error("message of {size} bytes exceeds the cap of {max}")]
    MessageTooLarge {
        /// Size the peer sent or announced.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// A fragment out of sequence, or more bytes than the message announced.
    #[error("fragment out of sequence")]
    BadFragment,
    /// A packet that has no place in the current phase, such as a second hello.
    #[error("unexpected packet: {0}")]
    Unexpected(&'static str),
    /// The peer acknowledged reliable bytes that were never sent.
    #[error("acknowledged {acked} reliable bytes, only {sent} sent")]
    AckBeyondSent {
        /// What the peer acknowledged.
        acked: u64,
        /// What was sent.
        sent: u64,
    },
}

/// Why a handshake with a peer failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// The peer runs another application.
    #[error("application mismatch: ours {ours:?}, theirs {theirs:?}")]
    AppMismatch {
        /// Our application id.
        ours: String,
        /// The peer's application id.
        theirs: String,
    },
    /// The peer refused us as incompatible before we saw its hello.
    #[error("the peer refused the handshake")]
    Refused,
    /// No hello arrived within [`MeshConfig::handshake_timeout`].
    #[error("no handshake within the timeout")]
    TimedOut,
    /// The peer sent something else than a hello first.
    #[error("protocol error during handshake: {0}")]
    Protocol(ProtocolError),
}

/// Why a joined peer left.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaveReason {
    /// Nothing arrived from it within [`MeshConfig::disconnect_timeout`].
    TimedOut,
    /// The transport reported it gone (data channel closed or signaling left).
    Disconnected,
    /// It said goodbye.
    Left(GoodbyeReason),
    /// This side dropped it with [`Mesh::drop_peer`].
    Dropped,
    /// It broke the protocol and was dropped.
    ProtocolViolation(ProtocolError),
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveReason::TimedOut => f.write_str("timed out"),
            LeaveReason::Disconnected => f.write_str("disconnected"),
            LeaveReason::Left(reason) => write!(f, "left ({reason:?})"),
            LeaveReason::Dropped => f.write_str("dropped locally"),
            LeaveReason::ProtocolViolation(e) => write!(f, "protocol violation: {e}"),
        }
    }
}

/// What the mesh reports to the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A peer completed the handshake; messages can flow both ways.
    PeerJoined(PeerId),
    /// A joined peer is gone; nothing more arrives from it.
    PeerLeft {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// A connected peer failed the handshake and was dropped.
    HandshakeFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        error: HandshakeError,
    },
    /// A message from a joined peer.
    Message {
        /// The sender.
        peer: PeerId,
        /// The channel it came on.
        channel: Channel,
        /// Its bytes.
        payload: Bytes,
    },
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer is not joined (never was, or left).
    #[error("peer {0} is not joined")]
    UnknownPeer(PeerId),
    /// The message is larger than the channel's cap.
    #[error("message of {size} bytes exceeds the cap of {max}")]
    MessageTooLarge {
        /// The message size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The peer's reliable queue is full: the peer does not keep up.
    #[error("send queue full: {queued} bytes queued, capacity {capacity}")]
    QueueFull {
        /// Bytes waiting.
        queued: usize,
        /// The cap, [`MeshConfig::max_queued_bytes`].
        capacity: usize,
    },
}

/// How many closed peer ids are remembered so that their stragglers are ignored.
const CLOSED_MEMORY: usize = 1024;

#[derive(Debug)]
enum Phase {
    Handshaking {
        deadline: Instant,
        /// The peer's hello arrived and matched.
        hello_received: bool,
        /// The peer acknowledged our hello.
        ack_received: bool,
    },
    Joined,
}

#[derive(Debug)]
struct Reassembly {
    total: usize,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Link {
    phase: Phase,
    /// Whether the transport reported the connection; nothing is sent before.
    connected: bool,
    last_recv: Instant,
    next_ping: Instant,
    ping_seq: u32,
    pings: Vec<Option<PingSlot>>,
    rtt: RttEstimator,
    // Reliable flow control, in encoded bytes of reliable data packets.
    sent_reliable: u64,
    peer_acked: u64,
    recv_reliable: u64,
    last_ack_sent: u64,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    front_offset: usize,
    reassembly: Option<Reassembly>,
    meter_in: RateMeter,
    meter_out: RateMeter,
    stats: PeerStats,
}

impl Link {
    fn new(now: Instant, handshake_timeout: Duration) -> Self {
        Self {
            phase: Phase::Handshaking {
                deadline: now + handshake_timeout,
                hello_received: false,
                ack_received: false,
            },
            connected: false,
            last_recv: now,
            next_ping: now,
            ping_seq: 0,
            pings: vec![None; PING_SLOTS],
            rtt: RttEstimator::default(),
            sent_reliable: 0,
            peer_acked: 0,
            recv_reliable: 0,
            last_ack_sent: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            front_offset: 0,
            reassembly: None,
            meter_in: RateMeter::default(),
            meter_out: RateMeter::default(),
            stats: PeerStats::default(),
        }
    }

    fn joined(&self) -> bool {
        matches!(self.phase, Phase::Joined)
    }

    fn next_deadline(&self, config: &MeshConfig) -> Instant {
        match self.phase {
            Phase::Handshaking {
                deadline,
                ack_received,
                ..
            } => {
                if self.connected && !ack_received {
                    deadline.min(self.next_ping)
                } else {
                    deadline
                }
            }
            Phase::Joined => self
                .next_ping
                .min(self.last_recv + config.disconnect_timeout),
        }
    }
}

/// The sans-IO heart of a peer mesh.
///
/// It never reads a clock and never touches a socket: the caller feeds it time,
/// transport events and received packets, and drains what it wants sent
/// ([`Mesh::poll_transmit`]), what happened ([`Mesh::poll_event`]) and when it
/// wants to be woken ([`Mesh::poll_timeout`]).
#[derive(Debug)]
pub struct Mesh {
    config: MeshConfig,
    links: HashMap<PeerId, Link>,
    closed: HashSet<PeerId>,
    closed_order: VecDeque<PeerId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Mesh {
    /// A mesh with no peers yet.
    pub fn new(config: MeshConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            links: HashMap::new(),
            closed: HashSet::new(),
            closed_order: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// The transport connected a peer: start the handshake.
    pub fn handle_connected(&mut self, now: Instant, peer: PeerId) {
        if self.closed.contains(&peer) {
            return;
        }
        let timeout = self.config.handshake_timeout;
        let link = self
            .links
            .entry(peer)
            .or_insert_with(|| Link::new(now, timeout));
        if link.connected {
            return;
        }
        link.connected = true;
        let hello_received = matches!(
            link.phase,
            Phase::Handshaking {
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

    fn send_hello(&mut self, now: Instant, peer: PeerId) {
        let hello = ReliablePacket::Hello {
            version: PROTOCOL_VERSION,
            app_id: &self.config.app_id,
        }
        .encode();
        if let Some(link) = self.links.get_mut(&peer) {
            link.next_ping = now + self.config.heartbeat_interval * 2;
        }
        self.push_transmit(peer, Channel::Reliable, hello);
    }

    /// Handles a packet of a peer still in the handshake. Returns whether the
    /// packet is application data that the now joined peer sent, to be taken in.
    fn on_handshake(
        &mut self,
        now: Instant,
        peer: PeerId,
        packet: ReliablePacket<'_>,
    ) -> Result<bool, Fault> {
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(false);
        };
        let Phase::Handshaking {
            hello_received,
            ack_received,
            ..
        } = &mut link.phase
        else {
            return Ok(false);
        };
        let mut is_data = false;
        match packet {
            ReliablePacket::Hello { version, app_id } => {
                if version != PROTOCOL_VERSION {
                    return Err(Fault::Handshake(HandshakeError::VersionMismatch {
                        ours: PROTOCOL_VERSION,
                        theirs: version,
                    }));
                }
                if app_id != self.config.app_id {
                    return Err(Fault::Handshake(HandshakeError::AppMismatch {
                        ours: self.config.app_id.clone(),
                        theirs: app_id.to_owned(),
                    }));
                }
                *hello_received = true;
                if link.connected {
                    self.push_transmit(peer, Channel::Reliable, ReliablePacket::HelloAck.encode());
                }
            }
            ReliablePacket::HelloAck => *ack_received = true,
            ReliablePacket::Goodbye(GoodbyeReason::Incompatible) => {
                return Err(Fault::Handshake(HandshakeError::Refused));
            }
            ReliablePacket::Goodbye(reason) => return Err(Fault::Gone(LeaveReason::Left(reason))),
            _ if *hello_received && link.connected => {
                // The peer sends data only once it has our acknowledgement of its
                // hello, so it had our hello too: its own acknowledgement was lost
                // while our end of the channel opened.
                *ack_received = true;
                is_data = true;
            }
            _ => {
                return Err(Fault::Protocol(ProtocolError::Unexpected(
                    "data before the handshake",
                )));
            }
        }
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(false);
        };
        if let Phase::Handshaking {
            hello_received: true,
            ack_received: true,
            ..
        } = link.phase
        {
            link.phase = Phase::Joined;
            link.next_ping = now;
            link.last_recv = now;
            self.events.push_back(Event::PeerJoined(peer));
        }
        Ok(is_data)
    }

    /// The transport lost a peer.
    pub fn handle_disconnected(&mut self, _now: Instant, peer: PeerId) {
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
        if self.closed.contains(&peer) {
            return;
        }
        if channel == Channel::Reliable && !self.links.contains_key(&peer) {
            // The transport delivered data before reporting the connection: take
            // the hello in, and answer it once the connection is reported.
            let link = Link::new(now, self.config.handshake_timeout);
            self.links.insert(peer, link);
        }
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        link.stats.bytes_in += data.len() as u64;
        link.stats.packets_in += 1;
        let result = match channel {
            Channel::Reliable => self.on_reliable(now, peer, data),
            Channel::Unreliable => self.on_unreliable(now, peer, data),
        };
        if let Err(error) = result {
            self.close_link(peer, error);
        }
    }

    fn on_reliable(&mut self, now: Instant, peer: PeerId, data: Bytes) -> Result<(), Fault> {
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        link.last_recv = now;
        let packet = ReliablePacket::decode(&data).map_err(|e| Fault::Protocol(e.into()))?;
        if !link.joined() && !self.on_handshake(now, peer, packet)? {
            return Ok(());
        }
        let config = &self.config;
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        if matches!(
            packet,
            ReliablePacket::Data(_)
                | ReliablePacket::FragmentStart { .. }
                | ReliablePacket::FragmentCont(_)
        ) {
            // Flow control counts application packets only: handshake packets
            // may be repeated or lost while a channel opens.
            link.recv_reliable += data.len() as u64;
        }
        let message = match packet {
            ReliablePacket::Hello { .. } => {
                // Our acknowledgement crossed a repeated hello: answer it again.
                self.push_transmit(peer, Channel::Reliable, ReliablePacket::HelloAck.encode());
                return Ok(());
            }
            ReliablePacket::HelloAck => return Ok(()),
            ReliablePacket::Goodbye(reason) => return Err(Fault::Gone(LeaveReason::Left(reason))),
            ReliablePacket::Data(_) => {
                if link.reassembly.is_some() {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                }
                let size = data.len() - RELIABLE_DATA_HEADER;
                check_size(size, config.max_message_size)?;
                Some(data.slice(RELIABLE_DATA_HEADER..))
            }
            ReliablePacket::FragmentStart { total_len, chunk } => {
                if link.reassembly.is_some() {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                }
                let total = total_len as usize;
                check_size(total, config.max_message_size)?;
                let mut buf = Vec::with_capacity(total.min(1 << 20));
                buf.extend_from_slice(chunk);
                link.reassembly = Some(Reassembly { total, buf });
                None
            }
            ReliablePacket::FragmentCont(chunk) => {
                let Some(re) = link.reassembly.as_mut() else {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                };
                if re.buf.len() + chunk.len() > re.total {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                }
                re.buf.extend_from_slice(chunk);
                if re.buf.len() == re.total {
                    link.reassembly.take().map(|re| Bytes::from(re.buf))
                } else {
                    None
                }
            }
        };
        if link.recv_reliable - link.last_ack_sent >= (config.send_window / 4) as u64 {
            link.last_ack_sent = link.recv_reliable;
            let ack = UnreliablePacket::Ack {
                acked: link.recv_reliable,
            }
            .encode();
            self.push_transmit(peer, Channel::Unreliable, ack);
        }
        if let Some(payload) = message {
            self.events.push_back(Event::Message {
                peer,
                channel: Channel::Reliable,
                payload,
            });
        }
        Ok(())
    }

    fn on_unreliable(&mut self, now: Instant, peer: PeerId, data: Bytes) -> Result<(), Fault> {
        let max_unreliable = self.config.max_unreliable_size;
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        if !link.joined() {
            // Heartbeats may overtake the hello on the other channel.
            return Ok(());
        }
        link.last_recv = now;
        let acked = match UnreliablePacket::decode(&data).map_err(|e| Fault::Protocol(e.into()))? {
            UnreliablePacket::Ping { seq, acked } => {
                link.last_ack_sent = link.recv_reliable;
                let pong = UnreliablePacket::Pong {
                    seq,
                    acked: link.recv_reliable,
                }
                .encode();
                self.push_transmit(peer, Channel::Unreliable, pong);
                acked
            }
            UnreliablePacket::Pong { seq, acked } => {
                let slot = &mut link.pings[seq as usize % PING_SLOTS];
                if let Some(slot) = slot.as_mut().filter(|s| s.seq == seq && !s.answered) {
                    slot.answered = true;
                    link.rtt.sample(now.saturating_duration_since(slot.sent_at));
                }
                acked
            }
            UnreliablePacket::Ack { acked } => acked,
            UnreliablePacket::Data(_) => {
                let size = data.len() - UNRELIABLE_DATA_HEADER;
                check_size(size, max_unreliable)?;
                let payload = data.slice(UNRELIABLE_DATA_HEADER..);
                self.events.push_back(Event::Message {
                    peer,
                    channel: Channel::Unreliable,
                    payload,
                });
                return Ok(());
            }
        };
        self.on_ack(peer, acked)
    }

    fn on_ack(&mut self, peer: PeerId, acked: u64) -> Result<(), Fault> {
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        if acked > link.sent_reliable {
            return Err(Fault::Protocol(ProtocolError::AckBeyondSent {
                acked,
                sent: link.sent_reliable,
            }));
        }
        if acked > link.peer_acked {
            link.peer_acked = acked;
            self.pump(peer);
        }
        Ok(())
    }

    /// Time has passed: send heartbeats, expire handshakes and silent peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut pings = Vec::new();
        let mut hellos = Vec::new();
        for (&peer, link) in self.links.iter_mut() {
            match link.phase {
                Phase::Handshaking {
                    deadline,
                    ack_received,
                    ..
                } => {
                    if now >= deadline {
                        expired.push((peer, Fault::Handshake(HandshakeError::TimedOut)));
                    } else if link.connected && !ack_received && now >= link.next_ping {
                        hellos.push(peer);
                    }
                }
                Phase::Joined => {
                    if now >= link.last_recv + self.config.disconnect_timeout {
                        expired.push((peer, Fault::Gone(LeaveReason::TimedOut)));
                        continue;
                    }
                    if now >= link.next_ping {
                        pings.push(peer);
                        link.next_ping = (link.next_ping + self.config.heartbeat_interval)
                            .max(now + self.config.heartbeat_interval / 2);
                    }
                }
            }
        }
        for peer in pings {
            self.send_ping(now, peer);
        }
        for peer in hellos {
            self.send_hello(now, peer);
        }
        for (peer, fault) in expired {
            self.close_link(peer, fault);
        }
    }

    fn send_ping(&mut self, now: Instant, peer: PeerId) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let seq = link.ping_seq;
        link.ping_seq = seq.wrapping_add(1);
        link.pings[seq as usize % PING_SLOTS] = Some(PingSlot {
            seq,
            sent_at: now,
            answered: false,
        });
        link.last_ack_sent = link.recv_reliable;
        let ping = UnreliablePacket::Ping {
            seq,
            acked: link.recv_reliable,
        }
        .encode();
        // Refresh the statistics on the heartbeat's beat.
        let grace = link
            .rtt
            .smoothed()
            .map_or(Duration::from_millis(500), |srtt| {
                srtt * 2 + Duration::from_millis(100)
            })
            .min(self.config.disconnect_timeout);
        let stats = &mut link.stats;
        stats.rtt = link.rtt.smoothed();
        stats.rtt_var = link.rtt.var();
        stats.rtt_p99 = link.rtt.p99();
        stats.loss = loss_estimate(&link.pings, now, grace);
        stats.bytes_in_per_sec = link.meter_in.record(now, stats.bytes_in);
        stats.bytes_out_per_sec = link.meter_out.record(now, stats.bytes_out);
        self.push_transmit(peer, Channel::Unreliable, ping);
    }

    /// When [`Mesh::handle_timeout`] wants to be called next, if any peer is linked.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .values()
            .map(|l| l.next_deadline(&self.config))
            .min()
    }

    /// The next packet to hand to the transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues a message to a joined peer.
    pub fn send(
        &mut self,
        peer: PeerId,
        channel: Channel,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let (max_unreliable, max_message, max_queued) = (
            self.config.max_unreliable_size,
            self.config.max_message_size,
            self.config.max_queued_bytes,
        );
        let link = match self.links.get_mut(&peer) {
            Some(link) if link.joined() => link,
            _ => return Err(SendError::UnknownPeer(peer)),
        };
        match channel {
            Channel::Unreliable => {
                if payload.len() > max_unreliable {
                    return Err(SendError::MessageTooLarge {
                        size: payload.len(),
                        max: max_unreliable,
                    });
                }
                let data = UnreliablePacket::Data(payload).encode();
                self.push_transmit(peer, Channel::Unreliable, data);
            }
            Channel::Reliable => {
                if payload.len() > max_message {
                    return Err(SendError::MessageTooLarge {
                        size: payload.len(),
                        max: max_message,
                    });
                }
                if link.queued_bytes + payload.len() > max_queued {
                    return Err(SendError::QueueFull {
                        queued: link.queued_bytes,
                        capacity: max_queued,
                    });
                }
                let queue_empty = link.queue.is_empty();
                let mut reached = 0;
                if queue_empty && self.fits_window(peer, payload.len()) {
                    // Fast path: nothing waits, so the message goes out whole or as
                    // fragments straight from the caller's buffer.
                    reached = self.emit_reliable(peer, payload, 0);
                    if reached >= payload.len() {
                        return Ok(());
                    }
                }
                if let Some(link) = self.links.get_mut(&peer) {
                    link.queued_bytes += payload.len();
                    if queue_empty {
                        link.front_offset = reached;
                    }
                    link.queue.push_back(payload.to_vec());
                }
                self.pump(peer);
            }
        }
        Ok(())
    }

    /// Whether a whole message of `len` bytes fits the send window now.
    fn fits_window(&self, peer: PeerId, len: usize) -> bool {
        let Some(link) = self.links.get(&peer) else {
            return false;
        };
        let in_flight = link.sent_reliable - link.peer_acked;
        // Generous upper bound on the encoded size of all fragments.
        let encoded = len + FRAGMENT_START_HEADER + len / (self.config.fragment_size - 8) + 1;
        in_flight + encoded as u64 <= self.config.send_window as u64
    }

    /// Emits `payload[offset..]` as reliable packets, as far as the window allows,
    /// and returns the offset reached.
    fn emit_reliable(&mut self, peer: PeerId, payload: &[u8], mut offset: usize) -> usize {
        let fragment = self.config.fragment_size;
        let window = self.config.send_window as u64;
        loop {
            let Some(link) = self.links.get_mut(&peer) else {
                return offset;
            };
            let rest = &payload[offset..];
            let packet = if offset == 0 && payload.len() + RELIABLE_DATA_HEADER <= fragment {
                ReliablePacket::Data(payload)
            } else if offset == 0 {
                ReliablePacket::FragmentStart {
                    total_len: payload.len() as u32,
                    chunk: &payload[..fragment - FRAGMENT_START_HEADER],
                }
            } else {
                ReliablePacket::FragmentCont(
                    &rest[..rest.len().min(fragment - FRAGMENT_CONT_HEADER)],
                )
            };
            let len = packet.encoded_len() as u64;
            if link.sent_reliable - link.peer_acked + len > window {
                return offset;
            }
            offset += match packet {
                ReliablePacket::Data(p) => p.len(),
                ReliablePacket::FragmentStart { chunk, .. }
                | ReliablePacket::FragmentCont(chunk) => chunk.len(),
                _ => 0,
            };
            link.sent_reliable += len;
            let data = packet.encode();
            self.push_transmit(peer, Channel::Reliable, data);
            if offset >= payload.len() {
                return payload.len();
            }
        }
    }

    /// Moves queued reliable messages out as far as the send window allows.
    fn pump(&mut self, peer: PeerId) {
        loop {
            let Some(link) = self.links.get_mut(&peer) else {
                return;
            };
            let Some(front) = link.queue.pop_front() else {
                return;
            };
            let start = link.front_offset;
            let reached = self.emit_reliable(peer, &front, start);
            let Some(link) = self.links.get_mut(&peer) else {
                return;
            };
            if reached >= front.len() {
                link.front_offset = 0;
                link.queued_bytes -= front.len();
            } else {
                link.front_offset = reached;
                link.queue.push_front(front);
                return;
            }
        }
    }

    /// Stops talking to `peer`: it is told goodbye and reported as left.
    /// Returns whether the peer was linked.
    pub fn drop_peer(&mut self, peer: PeerId) -> bool {
        if !self.links.contains_key(&peer) {
            return false;
        }
        self.close_link(peer, Fault::Gone(LeaveReason::Dropped));
        true
    }

    /// Says goodbye to every peer, as when leaving the mesh.
    pub fn close(&mut self) {
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for peer in peers {
            self.close_link(peer, Fault::Gone(LeaveReason::Dropped));
        }
    }

    /// Peers that completed the handshake.
    pub fn joined_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.links
            .iter()
            .filter(|(_, l)| l.joined())
            .map(|(&p, _)| p)
    }

    /// Whether `peer` is joined.
    pub fn is_joined(&self, peer: PeerId) -> bool {
        self.links.get(&peer).is_some_and(Link::joined)
    }

    /// Statistics of the link to `peer`, as of its last heartbeat.
    pub fn stats(&self, peer: PeerId) -> Option<PeerStats> {
        self.links.get(&peer).map(|link| {
            let mut stats = link.stats.clone();
            stats.rtt = link.rtt.smoothed();
            stats.reliable_in_flight = link.sent_reliable - link.peer_acked;
            stats.reliable_queued = link.queued_bytes - link.front_offset;
            stats
        })
    }

    fn close_link(&mut self, peer: PeerId, fault: Fault) {
        let Some(link) = self.links.remove(&peer) else {
            return;
        };
        let goodbye = match &fault {
            Fault::Handshake(HandshakeError::Refused) | Fault::Gone(LeaveReason::Left(_)) => None,
            Fault::Handshake(HandshakeError::VersionMismatch { .. })
            | Fault::Handshake(HandshakeError::AppMismatch { .. }) => {
                Some(GoodbyeReason::Incompatible)
            }
            Fault::Protocol(_) | Fault::Handshake(HandshakeError::Protocol(_)) => {
                Some(GoodbyeReason::ProtocolViolation)
            }
            _ => Some(GoodbyeReason::Leaving),
        };
        // A peer the transport never connected cannot be told anything.
        if let Some(reason) = goodbye.filter(|_| link.connected) {
            self.push_transmit(
                peer,
                Channel::Reliable,
                ReliablePacket::Goodbye(reason).encode(),
            );
        }
        let event = match (link.joined(), fault) {
            (true, Fault::Gone(reason)) => Some(Event::PeerLeft { peer, reason }),
            (true, Fault::Protocol(e)) => Some(Event::PeerLeft {
                peer,
                reason: LeaveReason::ProtocolViolation(e),
            }),
            (false, Fault::Handshake(error)) => Some(Event::HandshakeFailed { peer, error }),
            (false, Fault::Protocol(e)) => Some(Event::HandshakeFailed {
                peer,
                error: HandshakeError::Protocol(e),
            }),
            _ => None,
        };
        self.events.extend(event);
        self.remember_closed(peer);
    }

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

fn check_size(size: usize, max: usize) -> Result<(), Fault> {
    if size > max {
        Err(Fault::Protocol(ProtocolError::MessageTooLarge {
            size,
            max,
        }))
    } else {
        Ok(())
    }
}

/// Why a link ends.
#[derive(Debug)]
enum Fault {
    Handshake(HandshakeError),
    Protocol(ProtocolError),
    Gone(LeaveReason),
}
