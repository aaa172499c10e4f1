//! Room-mates' WebRTC signals, checked before the WebRTC stack sees them.
//!
//! The signaling server passes on what one room-mate sends another: an offer
//! or answer (SDP) or an ICE candidate (JSON). Any room-mate can send
//! anything, and WebRTC stacks have failed hard on input they did not expect
//! (matchbox's native socket panicked on SDP that did not parse, taking every
//! link with it; a browser's wasm module aborts on a panic). A
//! A checking signaller wraps matchbox's WebSocket signaller: every
//! signal is parsed here first (SDP by `webrtc-sdp`, the parser Firefox
//! uses; the candidate's JSON and its candidate line), and one that does not
//! parse is dropped and its sender reported and banned: the socket never
//! sees a signal from it again, nor its arrival in the room. The peer's id is
//! the server's to assign, so the report names the real sender.
//!
//! Who may send a signal: any room-mate, to this peer only (the server
//! delivers it to its receiver alone). Checked on receipt: the shape and size
//! (as the server does), that an offer or answer parses as SDP and offers a
//! data channel (`m=application`), that a candidate is `null`, an end of
//! candidates, or a candidate line that parses. What parses but the stack
//! still rejects costs at most that one handshake (see
//! `vendor/matchbox_socket/PATCHES.md`).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use matchbox_socket::async_trait::async_trait;
use matchbox_socket::{
    PeerEvent, PeerRequest, PeerSignal, SignalingError, Signaller, SignallerBuilder,
    WebSocketSignallerBuilder,
};
use serde::Deserialize;
use thiserror::Error;
use webrtc_sdp::attribute_type::{SdpAttribute, parse_attribute};
use webrtc_sdp::media_type::SdpMediaValue;

use crate::PeerId;

/// Longest SDP accepted in an offer or answer, in bytes (as the server's limit).
pub const MAX_SDP: usize = 16 * 1024;

/// Longest ICE candidate JSON accepted, in bytes (as the server's limit).
pub const MAX_CANDIDATE: usize = 1024;

/// Most refusals kept until the mesh reports them; most banned peers
/// remembered. Older ones are forgotten.
const MEMORY: usize = 1024;

/// Why a room-mate's signal was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignalError {
    /// An offer's or answer's SDP over [`MAX_SDP`].
    #[error("an SDP of {0} bytes, over the limit of {MAX_SDP}")]
    SdpTooBig(usize),
    /// An offer or answer that is not SDP.
    #[error("an SDP that does not parse: {0}")]
    Sdp(String),
    /// An offer or answer without a data channel section.
    #[error("an SDP without a data channel (no m=application section)")]
    NoDataChannel,
    /// A candidate over [`MAX_CANDIDATE`].
    #[error("an ICE candidate of {0} bytes, over the limit of {MAX_CANDIDATE}")]
    CandidateTooBig(usize),
    /// A candidate whose JSON is not an `RTCIceCandidateInit`, or whose
    /// candidate line does not parse.
    #[error("an ICE candidate that does not parse: {0}")]
    Candidate(String),
}

/// A refused signal: its sender and why.
pub(crate) type Refusal = (PeerId, SignalError);

/// An `RTCIceCandidateInit` as JSON (what browsers' `toJSON` and webrtc-rs write).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct CandidateInit {
    candidate: String,
    sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex")]
    sdp_mline_index: Option<u16>,
    username_fragment: Option<String>,
}

/// Checks one signal.
pub fn check(signal: &PeerSignal) -> Result<(), SignalError> {
    match signal {
        PeerSignal::Offer(sdp) | PeerSignal::Answer(sdp) => check_sdp(sdp),
        PeerSignal::IceCandidate(json) => check_candidate(json),
    }
}

fn check_sdp(sdp: &str) -> Result<(), SignalError> {
    if sdp.len() > MAX_SDP {
        return Err(SignalError::SdpTooBig(sdp.len()));
    }
    let session = webrtc_sdp::parse_sdp(sdp, false).map_err(|e| SignalError::Sdp(e.to_string()))?;
    if !session
        .media
        .iter()
        .any(|m| *m.get_type() == SdpMediaValue::Application)
    {
        return Err(SignalError::NoDataChannel);
    }
    Ok(())
}

fn check_candidate(json: &str) -> Result<(), SignalError> {
    if json.len() > MAX_CANDIDATE {
        return Err(SignalError::CandidateTooBig(json.len()));
    }
    // `null`: no more candidates.
    if json.trim() == "null" {
        return Ok(());
    }
    let init: CandidateInit =
        serde_json::from_str(json).map_err(|e| SignalError::Candidate(e.to_string()))?;
    let line = init.candidate.trim();
    // An empty line: the end of one generation's candidates.
    if line.is_empty() {
        return Ok(());
    }
    let line = line.strip_prefix("a=").unwrap_or(line);
    let attribute = if line.starts_with("candidate:") {
        parse_attribute(line)
    } else {
        parse_attribute(&format!("candidate:{line}"))
    };
    match attribute {
        Ok(webrtc_sdp::SdpType::Attribute(SdpAttribute::Candidate(_))) => Ok(()),
        Ok(_) => Err(SignalError::Candidate("not a candidate line".into())),
        Err(e) => Err(SignalError::Candidate(e.to_string())),
    }
}

/// What the checking signaller shares with its mesh: refusals to report and
/// the peers whose signals are dropped.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    refusals: VecDeque<Refusal>,
    banned: HashSet<matchbox_socket::PeerId>,
    banned_order: VecDeque<matchbox_socket::PeerId>,
}

impl Gate {
    /// Drops every signal from `peer` from now on, and its arrivals in the room.
    pub(crate) fn ban(&mut self, peer: matchbox_socket::PeerId) {
        if self.banned.insert(peer) {
            self.banned_order.push_back(peer);
            if self.banned_order.len() > MEMORY
                && let Some(old) = self.banned_order.pop_front()
            {
                self.banned.remove(&old);
            }
        }
    }

    /// The refusals not reported yet, oldest first.
    pub(crate) fn take_refusals(&mut self) -> VecDeque<Refusal> {
        std::mem::take(&mut self.refusals)
    }

    /// Whether `event` may reach the socket; records a refusal if not.
    fn admit(&mut self, event: &PeerEvent) -> bool {
        match event {
            PeerEvent::NewPeer(peer) => !self.banned.contains(peer),
            PeerEvent::Signal { sender, data } => {
                if self.banned.contains(sender) {
                    return false;
                }
                match check(data) {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!("gamenet: refused a signal from {sender}: {error}");
                        self.ban(*sender);
                        if self.refusals.len() < MEMORY {
                            self.refusals.push_back((PeerId(sender.0.as_u128()), error));
                        }
                        false
                    }
                }
            }
            _ => true,
        }
    }
}

/// A shared [`Gate`].
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedGate(Arc<Mutex<Gate>>);

impl SharedGate {
    /// The gate, locked (usable after a panic elsewhere: it holds no invariant
    /// a panic could break).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Gate> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// matchbox's WebSocket signaller, with every incoming signal checked.
#[derive(Debug)]
pub(crate) struct CheckedSignallerBuilder {
    inner: WebSocketSignallerBuilder,
    gate: SharedGate,
}

impl CheckedSignallerBuilder {
    pub(crate) fn new(gate: SharedGate) -> Self {
        Self {
            inner: WebSocketSignallerBuilder::default(),
            gate,
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl SignallerBuilder for CheckedSignallerBuilder {
    async fn new_signaller(
        &self,
        attempts: Option<u16>,
        room_url: String,
    ) -> Result<Box<dyn Signaller>, SignalingError> {
        let inner = self.inner.new_signaller(attempts, room_url).await?;
        Ok(Box::new(CheckedSignaller {
            inner,
            gate: self.gate.clone(),
        }))
    }
}

struct CheckedSignaller {
    inner: Box<dyn Signaller>,
    gate: SharedGate,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Signaller for CheckedSignaller {
    async fn send(&mut self, request: PeerRequest) -> Result<(), SignalingError> {
        self.inner.send(request).await
    }

    async fn next_message(&mut self) -> Result<PeerEvent, SignalingError> {
        loop {
            let event = self.inner.next_message().await?;
            if self.gate.lock().admit(&event) {
                return Ok(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer as webrtc-rs (matchbox's native stack) writes it.
    const NATIVE_OFFER: &str = "v=0\r\no=- 4215275829542934383 1767225600 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 5C:7E:39:2D:2E:3B:59:12:4B:6E:2C:4C:5E:38:11:46:83:1E:0B:3C:6B:3E:1C:55:5A:37:2F:6E:3C:4B:0A:4E\r\na=extmap-allow-mixed\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=sctp-port:5000\r\na=ice-ufrag:QmKcLWwSzsMBdjCq\r\na=ice-pwd:XNiFwcGRtOsemIZdTazDvsaOEqLFrbpQ\r\n";

    /// An offer as Chromium writes it.
    const CHROMIUM_OFFER: &str = "v=0\r\no=- 7595655801978680453 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:yxYb\r\na=ice-pwd:05iMxO9GujD2fUWXSoi0ByNd\r\na=ice-options:trickle\r\na=fingerprint:sha-256 B4:12:1C:7C:7D:ED:F1:FA:61:07:57:9C:29:BE:58:E3:BC:41:E7:13:8E:7D:D3:9D:1F:94:6A:A8:21:BD:C9:63\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";

    #[test]
    fn offers_from_real_stacks_pass() {
        for sdp in [NATIVE_OFFER, CHROMIUM_OFFER] {
            assert_eq!(check(&PeerSignal::Offer(sdp.into())), Ok(()));
            assert_eq!(check(&PeerSignal::Answer(sdp.into())), Ok(()));
        }
    }

    #[test]
    fn candidates_from_real_stacks_pass() {
        for json in [
            r#"{"candidate":"candidate:842163049 1 udp 1677729535 10.77.0.2 40123 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag yxYb network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"yxYb"}"#,
            r#"{"candidate":"candidate:1 1 udp 2130706431 3e1b4f5a-7f2c-4b8e-9d3a-1c2b3d4e5f60.local 51234 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"yxYb"}"#,
            r#"{"candidate":"candidate:2324433312 1 udp 2130706431 127.0.0.1 56723 typ host","sdpMid":"","sdpMLineIndex":0,"usernameFragment":null}"#,
            r#"{"candidate":"candidate:3 1 udp 16777215 10.0.0.9 3478 typ relay raddr 10.77.0.2 rport 40123","sdpMid":"0","sdpMLineIndex":0}"#,
            r#"{"candidate":"","sdpMid":"0","sdpMLineIndex":0}"#,
            "null",
        ] {
            assert_eq!(
                check(&PeerSignal::IceCandidate(json.into())),
                Ok(()),
                "{json}"
            );
        }
    }

    #[test]
    fn malformed_signals_are_refused() {
        for signal in [
            PeerSignal::Offer("garbage".into()),
            PeerSignal::Answer("garbage".into()),
            PeerSignal::Answer(String::new()),
            PeerSignal::Offer("v=0\r\n".into()),
            PeerSignal::Offer(NATIVE_OFFER.replace("m=application", "m=audio")),
            PeerSignal::Offer("x".repeat(MAX_SDP + 1)),
            PeerSignal::IceCandidate("garbage".into()),
            PeerSignal::IceCandidate("{}".into()),
            PeerSignal::IceCandidate(r#"{"candidate":"candidate:garbage"}"#.into()),
            PeerSignal::IceCandidate(r#"{"candidate":"a=mid:0"}"#.into()),
            PeerSignal::IceCandidate(
                r#"{"candidate":"candidate:1 1 udp 1 10.0.0.1 99999 typ host"}"#.into(),
            ),
            PeerSignal::IceCandidate("x".repeat(MAX_CANDIDATE + 1)),
        ] {
            assert!(check(&signal).is_err(), "{signal:?}");
        }
    }

    #[test]
    fn a_refused_sender_is_banned_and_reported_once() {
        let mut gate = Gate::default();
        let rogue = matchbox_socket::PeerId(uuid::Uuid::from_u128(7));
        let honest = matchbox_socket::PeerId(uuid::Uuid::from_u128(8));
        let garbage = PeerEvent::Signal {
            sender: rogue,
            data: PeerSignal::Offer("garbage".into()),
        };
        let good = |sender| PeerEvent::Signal {
            sender,
            data: PeerSignal::Offer(NATIVE_OFFER.into()),
        };
        assert!(!gate.admit(&garbage));
        assert!(!gate.admit(&good(rogue)), "a banned sender's good signal");
        assert!(!gate.admit(&PeerEvent::NewPeer(rogue)));
        assert!(gate.admit(&good(honest)));
        assert!(gate.admit(&PeerEvent::NewPeer(honest)));
        let refusals = gate.take_refusals();
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].0, PeerId(7));
    }
}
