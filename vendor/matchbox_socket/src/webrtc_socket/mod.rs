//! The webrtc_socket module provides a unified API for dealing with WebRtc on both native and wasm
//! builds. This common API only implements behaviors needed by the rest of matchbox_socket: it is
//! not a general WebRtc abstraction.

pub mod error;
mod messages;
mod signal_peer;
mod socket;

use self::error::SignalingError;
use crate::{Error, webrtc_socket::signal_peer::SignalPeer};
use async_trait::async_trait;
use bytes::Bytes;
use cfg_if::cfg_if;
use futures::{
    Future, FutureExt, StreamExt,
    future::Either,
    stream::{FusedStream, FuturesUnordered},
};
use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_timer::Delay;
use futures_util::select;
use log::{debug, error, warn};
use matchbox_protocol::PeerId;
pub use messages::*;
pub(crate) use socket::MessageLoopChannels;
pub use socket::{
    CandidatePair, CandidateType, ChannelConfig, PeerState, RtcIceServerConfig, WebRtcChannel,
    WebRtcSocket, WebRtcSocketBuilder,
};
use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    time::Duration,
};

cfg_if! {
    if #[cfg(target_arch = "wasm32")] {
        mod wasm;
        type UseMessenger = wasm::WasmMessenger;
        type UseSignallerBuilder = wasm::WasmSignallerBuilder;
        /// The signaller used when none is set: a WebSocket to the room URL. A custom
        /// [`SignallerBuilder`] can wrap it (e.g. to check signals before the socket sees them).
        pub type WebSocketSignallerBuilder = wasm::WasmSignallerBuilder;
        /// A future which runs the message loop for the socket and completes
        /// when the socket closes or disconnects
        pub type MessageLoopFuture = Pin<Box<dyn Future<Output = Result<(), Error>>>>;
    } else {
        mod native;
        type UseMessenger = native::NativeMessenger;
        type UseSignallerBuilder = native::NativeSignallerBuilder;
        /// The signaller used when none is set: a WebSocket to the room URL. A custom
        /// [`SignallerBuilder`] can wrap it (e.g. to check signals before the socket sees them).
        pub type WebSocketSignallerBuilder = native::NativeSignallerBuilder;
        /// A future which runs the message loop for the socket and completes
        /// when the socket closes or disconnects
        pub type MessageLoopFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;
    }
}

/// A builder that constructs a new [Signaller] from a room URL.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait SignallerBuilder: std::fmt::Debug + Sync + Send + 'static {
    /// Create a new [Signaller]. The Room URL is an implementation specific identifier for joining
    /// a room.
    async fn new_signaller(
        &self,
        attempts: Option<u16>,
        room_url: String,
    ) -> Result<Box<dyn Signaller>, SignalingError>;
}

/// A signalling implementation.
///
/// The Signaller is responsible for passing around
/// [WebRTC signals](https://developer.mozilla.org/en-US/docs/Web/API/WebRTC_API/Signaling_and_video_calling#the_signaling_server)
/// between room peers, encoded as [PeerEvent::Signal] which holds a [PeerSignal].
///
/// It is also responsible for notifying each peer of the following special events:
///
/// - [PeerEvent::IdAssigned] -- first event in stream, received once at connection time.
/// - [PeerEvent::NewPeer] -- received when a new peer has joined the room, AND when this node must
///   send an offer to them.
/// - [PeerEvent::PeerLeft] -- received when a peer leaves the room.
///
/// To achieve a full mesh configuration, the signaller must do the following for **each pair** of
/// peers in a room:
///
/// 1. It decides which peer is the "Offerer" and which is the "Answerer".
/// 2. It sends [PeerEvent::NewPeer] to the "Offerer" only.
/// 3. It passes [PeerEvent::Signal] events back and forth between them, until one of them
///    disconnects.
/// 4. It sends [PeerEvent::PeerLeft] with the ID of the disconnected peer to the remaining peer.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait Signaller: Sync + Send + 'static {
    /// Request the signaller to pass a message to another peer.
    async fn send(&mut self, request: PeerRequest) -> Result<(), SignalingError>;

    /// Get the next event from the signaller.
    async fn next_message(&mut self) -> Result<PeerEvent, SignalingError>;
}

/// The ICE server new handshakes use, which the application may replace while the socket runs.
pub(crate) type SharedIceServer = std::sync::Arc<std::sync::Mutex<RtcIceServerConfig>>;

/// How the signaling loop reconnects after its connection drops.
pub(crate) struct Resume {
    pub(crate) builder: std::sync::Arc<dyn SignallerBuilder>,
    pub(crate) room_url: String,
    /// How long to keep trying (`None`: do not reconnect).
    pub(crate) limit: Option<Duration>,
}

/// First wait before reconnecting to the signaling server; doubled after each failed attempt.
const RESUME_FIRST_DELAY: Duration = Duration::from_millis(250);
/// Longest wait between two attempts to reconnect to the signaling server.
const RESUME_MAX_DELAY: Duration = Duration::from_secs(4);

/// Why one signaling connection ended.
enum SignalingEnd {
    /// The socket is gone: nothing more to send.
    Done(Result<(), SignalingError>),
    /// The connection was lost: reconnecting may help.
    Lost(SignalingError),
}

/// Passes requests to the signaling server and its events to the message loop, and, with
/// [`Resume::limit`], reconnects with backoff when the connection drops.
///
/// A reconnected socket must be given its id again (the server knows it by the room URL's
/// key): the message loop and every peer know this socket by that id. The repeated
/// [`PeerEvent::IdAssigned`] is not passed on. A server that assigns another id ends
/// signaling for good.
async fn signaling_loop(
    mut signaller: Box<dyn Signaller>,
    resume: Resume,
    mut requests_receiver: futures_channel::mpsc::UnboundedReceiver<PeerRequest>,
    events_sender: futures_channel::mpsc::UnboundedSender<PeerEvent>,
) -> Result<(), SignalingError> {
    let mut id = None;
    loop {
        let lost =
            match serve_signaller(&mut *signaller, &mut requests_receiver, &events_sender, &mut id)
                .await
            {
                SignalingEnd::Done(result) => return result,
                SignalingEnd::Lost(error) => error,
            };
        let Some(limit) = resume.limit else {
            return Err(lost);
        };
        warn!("signaling connection lost ({lost}); reconnecting");
        let mut delay = RESUME_FIRST_DELAY;
        let mut waited = Duration::ZERO;
        signaller = loop {
            if waited >= limit {
                warn!("could not reconnect to the signaling server within {limit:?}");
                return Err(lost);
            }
            Delay::new(delay).await;
            waited += delay;
            if requests_receiver.is_terminated() {
                return Ok(());
            }
            match resume.builder.new_signaller(Some(1), resume.room_url.clone()).await {
                Ok(signaller) => {
                    // Signals queued while away belong to handshakes that have
                    // timed out or soon will (and retry): sent now, a stale
                    // offer would replace a newer attempt at the other end.
                    let mut dropped = 0usize;
                    while requests_receiver.try_recv().is_ok() {
                        dropped += 1;
                    }
                    if dropped > 0 {
                        debug!("dropped {dropped} signaling requests queued while away");
                    }
                    break signaller;
                }
                Err(error) => {
                    debug!("reconnecting to the signaling server failed: {error}");
                    delay = (delay * 2).min(RESUME_MAX_DELAY);
                }
            }
        };
    }
}

/// Runs one signaling connection until it ends.
async fn serve_signaller(
    signaller: &mut dyn Signaller,
    requests_receiver: &mut futures_channel::mpsc::UnboundedReceiver<PeerRequest>,
    events_sender: &futures_channel::mpsc::UnboundedSender<PeerEvent>,
    id: &mut Option<PeerId>,
) -> SignalingEnd {
    loop {
        select! {
            request = requests_receiver.next() => {
                debug!("-> {request:?}");
                let Some(request) = request else {
                    return SignalingEnd::Done(Err(SignalingError::StreamExhausted));
                };
                if let Err(error) = signaller.send(request).await {
                    return SignalingEnd::Lost(error);
                }
            }

            message = signaller.next_message().fuse() => {
                match message {
                    Ok(PeerEvent::IdAssigned(assigned)) if id.is_some() => {
                        if *id != Some(assigned) {
                            error!(
                                "the signaling server gave this socket a new id ({assigned}) on \
                                reconnecting; its peers know it by another: signaling ends"
                            );
                            return SignalingEnd::Done(Err(SignalingError::UserImplementationError(
                                "the signaling server assigned a new id on reconnecting".into(),
                            )));
                        }
                        log::info!("signaling resumed as {assigned}");
                    }
                    Ok(message) => {
                        debug!("Received {message:?}");
                        if let PeerEvent::IdAssigned(assigned) = message {
                            *id = Some(assigned);
                        }
                        if let Err(error) = events_sender.unbounded_send(message) {
                            return SignalingEnd::Done(Err(SignalingError::from(error)));
                        }
                    }
                    Err(SignalingError::UnknownFormat) => {
                        warn!("ignoring unexpected non-text message from signaling server")
                    },
                    Err(error) => return SignalingEnd::Lost(error),
                }
            }
        }
    }
}

/// The raw format of data being sent and received.
pub type Packet = Bytes;

/// Errors that can happen when sending packets
#[derive(Debug, thiserror::Error)]
#[error("The socket was dropped and package could not be sent")]
struct PacketSendError {
    #[cfg(not(target_arch = "wasm32"))]
    source: futures_channel::mpsc::SendError,
    #[cfg(target_arch = "wasm32")]
    source: error::JsError,
}

trait PeerDataSender {
    fn send(&mut self, packet: Packet) -> Result<(), PacketSendError>;
}

struct HandshakeResult<D: PeerDataSender, M> {
    peer_id: PeerId,
    data_channels: Vec<D>,
    metadata: M,
}

/// A handshake with a peer that ended without a connection: bad signals from the peer, a
/// description the WebRTC stack rejects, a data channel that closed before it opened, the
/// peer leaving or signaling lost midway.
///
/// Only that handshake ends. The peer was never reported connected, so it is just dropped;
/// the socket and its other peers carry on.
#[derive(Debug)]
struct HandshakeFailure {
    peer_id: PeerId,
    reason: String,
}

impl HandshakeFailure {
    fn new(peer_id: PeerId, reason: impl Into<String>) -> Self {
        Self {
            peer_id,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "handshake with peer {} failed: {}",
            self.peer_id, self.reason
        )
    }
}

/// Turns a failed step of a handshake into a [`HandshakeFailure`] instead of a panic.
trait HandshakeStep<T> {
    fn or_fail(self, peer_id: PeerId, step: &str) -> Result<T, HandshakeFailure>;
}

impl<T, E: std::fmt::Display> HandshakeStep<T> for Result<T, E> {
    fn or_fail(self, peer_id: PeerId, step: &str) -> Result<T, HandshakeFailure> {
        self.map_err(|e| HandshakeFailure::new(peer_id, format!("{step}: {e}")))
    }
}

impl<T> HandshakeStep<T> for Option<T> {
    fn or_fail(self, peer_id: PeerId, step: &str) -> Result<T, HandshakeFailure> {
        self.ok_or_else(|| HandshakeFailure::new(peer_id, step))
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
trait Messenger {
    type DataChannel: PeerDataSender;
    type HandshakeMeta: Send;

    async fn offer_handshake(
        signal_peer: SignalPeer,
        mut peer_signal_rx: UnboundedReceiver<PeerSignal>,
        messages_from_peers_tx: Vec<UnboundedSender<(PeerId, Packet)>>,
        ice_server_config: &RtcIceServerConfig,
        channel_configs: &[ChannelConfig],
    ) -> Result<HandshakeResult<Self::DataChannel, Self::HandshakeMeta>, HandshakeFailure>;

    async fn accept_handshake(
        signal_peer: SignalPeer,
        peer_signal_rx: UnboundedReceiver<PeerSignal>,
        messages_from_peers_tx: Vec<UnboundedSender<(PeerId, Packet)>>,
        ice_server_config: &RtcIceServerConfig,
        channel_configs: &[ChannelConfig],
    ) -> Result<HandshakeResult<Self::DataChannel, Self::HandshakeMeta>, HandshakeFailure>;

    /// Runs the connection to a peer until it ends, reporting the candidate pair it uses on
    /// `candidate_pair_tx` whenever it changes
    async fn peer_loop(
        peer_uuid: PeerId,
        handshake_meta: Self::HandshakeMeta,
        candidate_pair_tx: UnboundedSender<(PeerId, CandidatePair)>,
    ) -> PeerId;
}

/// The first wait before offering again to a peer whose handshake failed or whose connection
/// ended; doubled after each failure in a row.
const RETRY_FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest wait between two offers to the same peer.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(16);
/// Failed offers in a row after which a peer is given up: about two minutes of
/// trying. A peer that left while this socket's signaling was down is never
/// announced as gone; this bounds what offering to it costs. The peer may still
/// offer to this socket, and a `NewPeer` for it starts over.
const RETRY_MAX_FAILURES: u32 = 12;

/// A handshake that ended: its peer, its attempt number, and how it ended (`None`: aborted).
type Handshake<M> = (
    PeerId,
    u64,
    Option<
        Result<
            HandshakeResult<<M as Messenger>::DataChannel, <M as Messenger>::HandshakeMeta>,
            HandshakeFailure,
        >,
    >,
);

/// A handshake under way.
struct Attempt {
    /// Its number, to tell its end from that of an attempt it replaced.
    number: u64,
    /// Whether this socket offered.
    offering: bool,
    /// Where the peer's signals for it go.
    signals: UnboundedSender<PeerSignal>,
    abort: futures::future::AbortHandle,
}

/// Starts a handshake, bounded by `timeout` and abortable; it ends as a [`Handshake`].
#[allow(clippy::too_many_arguments)]
fn start_handshake<'a, M>(
    offering: bool,
    peer: PeerId,
    number: u64,
    requests_sender: &UnboundedSender<PeerRequest>,
    messages_from_peers_tx: &[UnboundedSender<(PeerId, Packet)>],
    ice_server: &SharedIceServer,
    channel_configs: &'a [ChannelConfig],
    timeout: Duration,
) -> (Attempt, impl Future<Output = Handshake<M>> + 'a)
where
    M: Messenger + 'a,
    M::DataChannel: 'a,
    M::HandshakeMeta: 'a,
{
    let (signals, signal_rx) = futures_channel::mpsc::unbounded();
    let signal_peer = SignalPeer::new(peer, requests_sender.clone());
    let messages = messages_from_peers_tx.to_vec();
    // The ICE server as it is now: the application may have replaced it (fresh TURN
    // credentials) since the socket was built.
    let ice_server_config = ice_server
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let handshake = async move {
        if offering {
            M::offer_handshake(signal_peer, signal_rx, messages, &ice_server_config, channel_configs)
                .await
        } else {
            M::accept_handshake(signal_peer, signal_rx, messages, &ice_server_config, channel_configs)
                .await
        }
    };
    let bounded = async move {
        let mut handshake = Box::pin(handshake.fuse());
        let mut deadline = Delay::new(timeout).fuse();
        select! {
            result = handshake => result,
            () = deadline => Err(HandshakeFailure::new(
                peer,
                format!("no connection within {timeout:?}"),
            )),
        }
    };
    let (abort, registration) = futures::future::AbortHandle::new_pair();
    let attempt = Attempt {
        number,
        offering,
        signals,
        abort,
    };
    let future = futures::future::Abortable::new(bounded, registration)
        .map(move |result| (peer, number, result.ok()));
    (attempt, future)
}

/// Waits `delay`, then names `peer` (a retry falling due).
fn retry_after(peer: PeerId, delay: Duration) -> impl Future<Output = PeerId> {
    Delay::new(delay).map(move |()| peer)
}

/// Runs the handshakes and peer connections of a socket.
///
/// Who connects to whom: the signaling server sends [`PeerEvent::NewPeer`] to the peer that
/// offers. That peer keeps offering, with backoff, while the other is in the room and not
/// connected: after a handshake fails or times out, and after an established connection ends
/// (a long outage, the other peer's process restarted). The other side accepts every offer:
/// an offer from a peer it is connected to replaces that connection (the peer started over),
/// which is reported as [`PeerState::Disconnected`] then [`PeerState::Connected`]; an offer
/// that crosses its own (both sides offering) goes to the peer with the lower id.
async fn message_loop<M: Messenger + 'static>(
    id_tx: futures_channel::oneshot::Sender<PeerId>,
    ice_server: SharedIceServer,
    channel_configs: &[ChannelConfig],
    channels: MessageLoopChannels,
    keep_alive_interval: Option<Duration>,
    handshake_timeout: Duration,
) -> Result<(), SignalingError> {
    let MessageLoopChannels {
        requests_sender,
        mut events_receiver,
        mut peer_messages_out_rx,
        messages_from_peers_tx,
        peer_state_tx,
        candidate_pair_tx,
    } = channels;

    let mut handshakes = FuturesUnordered::new();
    let mut peer_loops = FuturesUnordered::new();
    let mut retries = FuturesUnordered::new();
    let mut data_channels = HashMap::new();
    let mut id_tx = Option::Some(id_tx);
    let mut my_id = None;
    // The peers known to be in the room, and those of them this socket offers to.
    let mut room = HashSet::new();
    let mut offer_to = HashSet::new();
    // The handshakes under way and the connections up, by peer.
    let mut attempts: HashMap<PeerId, Attempt> = HashMap::new();
    let mut live: HashMap<PeerId, (u64, futures::future::AbortHandle)> = HashMap::new();
    // Failures in a row per peer (for the backoff), and the peers with a retry pending.
    let mut failures: HashMap<PeerId, u32> = HashMap::new();
    let mut retry_pending = HashSet::new();
    let mut next_number = 0u64;

    let mut timeout = if let Some(interval) = keep_alive_interval {
        Either::Left(Delay::new(interval))
    } else {
        Either::Right(std::future::pending())
    }
    .fuse();

    macro_rules! start {
        ($offering:expr, $peer:expr) => {{
            next_number += 1;
            let (attempt, handshake) = start_handshake::<M>(
                $offering,
                $peer,
                next_number,
                &requests_sender,
                &messages_from_peers_tx,
                &ice_server,
                channel_configs,
                handshake_timeout,
            );
            if let Some(replaced) = attempts.insert($peer, attempt) {
                replaced.abort.abort();
            }
            handshakes.push(handshake);
        }};
    }

    // Offers again to `peer` after a backoff, if this socket offers to it.
    macro_rules! retry_later {
        ($peer:expr) => {{
            let peer = $peer;
            if room.contains(&peer) && offer_to.contains(&peer) && retry_pending.insert(peer) {
                let failed = failures.entry(peer).or_insert(0u32);
                *failed += 1;
                if *failed > RETRY_MAX_FAILURES {
                    warn!("giving up on peer {peer} after {RETRY_MAX_FAILURES} failed attempts");
                    failures.remove(&peer);
                    retry_pending.remove(&peer);
                    room.remove(&peer);
                    offer_to.remove(&peer);
                } else {
                    let delay = RETRY_FIRST_DELAY
                        .saturating_mul(1 << (*failed - 1).min(8))
                        .min(RETRY_MAX_DELAY);
                    log::info!("offering to peer {peer} again in {delay:?}");
                    retries.push(retry_after(peer, delay));
                }
            }
        }};
    }

    loop {
        let mut next_peer_messages_out = peer_messages_out_rx
            .iter_mut()
            .enumerate()
            .map(|(channel, rx)| async move { (channel, rx.next().await) })
            .collect::<FuturesUnordered<_>>();

        let mut next_peer_message_out = next_peer_messages_out.next().fuse();

        select! {
            _  = &mut timeout => {
                if requests_sender.unbounded_send(PeerRequest::KeepAlive).is_err() {
                    // The signaling loop is gone; keep-alives exist to keep
                    // the signaling websocket alive, so there is nothing
                    // left to send them to. Existing peer connections are
                    // unaffected. Do not break: the socket stays alive on
                    // its data channels.
                    debug!("cannot send keep-alive: signaling connection is gone");
                }
                if let Some(interval) = keep_alive_interval {
                    timeout = Either::Left(Delay::new(interval)).fuse();
                } else {
                    error!("no keep alive timeout, please file a bug");
                }
            }

            event = events_receiver.next() => {
                match event {
                    Some(event) => {
                        debug!("{event:?}");
                        match event {
                            PeerEvent::IdAssigned(peer_uuid) => {
                                let Some(id_tx) = id_tx.take() else {
                                    warn!("ignoring a second id from the signaling server: {peer_uuid}");
                                    continue;
                                };
                                my_id = Some(peer_uuid);
                                if id_tx.send(peer_uuid.to_owned()).is_err() {
                                    // Socket receiver was dropped, exit cleanly.
                                    break Ok(());
                                };
                            },
                            PeerEvent::NewPeer(peer_uuid) => {
                                room.insert(peer_uuid);
                                offer_to.insert(peer_uuid);
                                // Told again after signaling resumed: the connection up or
                                // being made stands.
                                if live.contains_key(&peer_uuid) || attempts.contains_key(&peer_uuid) {
                                    debug!("already connected or connecting to {peer_uuid}");
                                    continue;
                                }
                                start!(true, peer_uuid);
                            },
                            PeerEvent::PeerLeft(peer_uuid) => {
                                room.remove(&peer_uuid);
                                offer_to.remove(&peer_uuid);
                                failures.remove(&peer_uuid);
                                // Ends a handshake still waiting for the peer's signals.
                                if let Some(attempt) = attempts.remove(&peer_uuid) {
                                    attempt.abort.abort();
                                }
                                if peer_state_tx.unbounded_send((peer_uuid, PeerState::Disconnected)).is_err() {
                                    // socket dropped, exit cleanly
                                    break Ok(());
                                }
                            },
                            PeerEvent::Signal { sender, data } => {
                                room.insert(sender);
                                let offer = matches!(data, PeerSignal::Offer(_));
                                let under_way = attempts.get(&sender).map(|a| a.offering);
                                match (offer, under_way) {
                                    // Both offered: the lower id's offer stands.
                                    (true, Some(true)) if my_id.is_some_and(|me| me < sender) => {
                                        debug!("keeping our offer to {sender} over theirs");
                                        continue;
                                    }
                                    // A new offer: the peer started over (or won the crossing).
                                    (true, _) => start!(false, sender),
                                    (false, Some(_)) => {}
                                    (false, None) => {
                                        debug!("ignoring a signal from {sender} outside a handshake");
                                        continue;
                                    }
                                }
                                if let Some(attempt) = attempts.get(&sender)
                                    && attempt.signals.unbounded_send(data).is_err()
                                {
                                    debug!("ignoring a signal from {sender}: its handshake ended");
                                }
                            },
                        }
                    }
                    None => {
                        // The signaling loop ended for good (server gone, or no
                        // reconnect within the limit). This is not fatal while
                        // peers are connected: their connections live entirely
                        // on the data channels and keep working; only new
                        // handshakes are impossible. `signaling_events` has
                        // become terminated, so this arm is disabled from here
                        // on.
                        //
                        // With no peer connected, though, there is nothing
                        // left to keep alive, and a socket that can never
                        // gain a peer must end, so that the application
                        // learns the signaling server is gone (e.g. a player
                        // waiting for a match) instead of waiting forever.
                        if live.is_empty() {
                            break Err(SignalingError::StreamExhausted);
                        }
                        // The signals of the handshakes under way can no longer
                        // arrive: end them, and offer no more.
                        for (_, attempt) in attempts.drain() {
                            attempt.abort.abort();
                        }
                        room.clear();
                        warn!(
                            "signaling connection lost; keeping existing peer \
                            connections, but no new peers can join until the \
                            socket is rebuilt"
                        );
                    }
                }
            }

            handshake = handshakes.select_next_some() => {
                let (peer, number, result) = handshake;
                if attempts.get(&peer).map(|a| a.number) != Some(number) {
                    // Replaced or aborted: dropping it closes its connection.
                    continue;
                }
                attempts.remove(&peer);
                let Some(result) = result else { continue };
                let handshake_result = match result {
                    Ok(handshake_result) => handshake_result,
                    Err(failure) => {
                        // Only this handshake ends: the peer was never reported
                        // connected (or still is, on the connection this one
                        // would have replaced).
                        warn!("{failure}");
                        retry_later!(peer);
                        continue;
                    }
                };
                debug_assert_eq!(handshake_result.peer_id, peer);
                failures.remove(&peer);
                if let Some((_, replaced)) = live.remove(&peer) {
                    // The peer started over: its old connection is stale.
                    replaced.abort();
                    if peer_state_tx.unbounded_send((peer, PeerState::Disconnected)).is_err() {
                        break Ok(());
                    }
                }
                data_channels.insert(peer, handshake_result.data_channels);
                if peer_state_tx.unbounded_send((peer, PeerState::Connected)).is_err() {
                    // sending can only fail on socket drop, in which case connected_peers is unavailable, ignore
                    break Ok(());
                }
                let (abort, registration) = futures::future::AbortHandle::new_pair();
                live.insert(peer, (number, abort));
                let peer_loop = M::peer_loop(peer, handshake_result.metadata, candidate_pair_tx.clone());
                peer_loops.push(
                    futures::future::Abortable::new(peer_loop, registration)
                        .map(move |_| (peer, number)),
                );
            }

            ended = peer_loops.select_next_some() => {
                let (peer, number) = ended;
                if live.get(&peer).map(|(n, _)| *n) != Some(number) {
                    // A connection that was replaced.
                    continue;
                }
                live.remove(&peer);
                data_channels.remove(&peer);
                debug!("peer {peer} finished");
                if peer_state_tx.unbounded_send((peer, PeerState::Disconnected)).is_err() {
                    // sending can only fail on socket drop, in which case connected_peers is unavailable, ignore
                    break Ok(());
                }
                if events_receiver.is_terminated() && live.is_empty() {
                    // The last peer is gone and, without signaling, no new
                    // one can join: end the socket (see the `None` arm above).
                    break Err(SignalingError::StreamExhausted);
                }
                retry_later!(peer);
            }

            peer = retries.select_next_some() => {
                retry_pending.remove(&peer);
                if room.contains(&peer)
                    && offer_to.contains(&peer)
                    && !live.contains_key(&peer)
                    && !attempts.contains_key(&peer)
                {
                    start!(true, peer);
                }
            }

            message = next_peer_message_out => {
                match message {
                    Some((channel_index, Some((peer, packet)))) => {
                        // The app may send to a peer this socket never connected to,
                        // e.g. a stale id from before the socket was rebuilt.
                        let Some(peer_channels) = data_channels.get_mut(&peer) else {
                            warn!("dropping packet for unknown peer {peer}");
                            continue;
                        };
                        let data_channel = peer_channels
                            .get_mut(channel_index)
                            .unwrap_or_else(|| panic!("couldn't find data channel with index {channel_index}"));
                        if let Err(e) = data_channel.send(packet) {
                            // Peer we're sending to closed their end of the connection.
                            // We anticipate the PeerLeft event soon, but we sent a message before it came.
                            // Do nothing. Only log it.
                            warn!("failed to send to peer {peer} (socket closed): {e:?}");
                        };
                    }
                    Some((_, None)) | None => {
                        // Receiver end of outgoing message channel closed,
                        // which most likely means the socket was dropped.
                        // There could probably be cleaner ways to handle this,
                        // but for now, just exit cleanly.
                        warn!("Outgoing message queue closed, message not sent");
                        break Ok(());
                    }
                }
            }

            complete => break Ok(())
        }
    }
}
