//! What a signal may carry, with no I/O: matchbox's `PeerSignal` as JSON, of
//! bounded size.
//!
//! A `matchbox_socket` client sends `{"Signal": {"receiver": <id>, "data": D}}`
//! where `D` is one of
//! - `{"Offer": "<sdp>"}` and `{"Answer": "<sdp>"}`, a session description;
//! - `{"IceCandidate": "<json>"}`, an `RTCIceCandidateInit` as JSON text, or
//!   `"null"` once a peer has no more candidates.
//!
//! Anything else is no signal a WebRTC peer could use, and some peers'
//! stacks fail hard on input they do not expect, so the server refuses it
//! before passing it on. The content of an SDP is left to the peers.

use serde_json::Value;
use thiserror::Error;

/// Longest SDP an offer or answer may carry, in bytes. A data-channel-only
/// offer from Chromium or webrtc-rs takes 0.5 to 1.5 KiB (one
/// `m=application` section, fingerprint, ICE credentials); one with every
/// candidate gathered in it, or with audio and video sections and their
/// codecs, 5 to 10 KiB. 16 KiB fits those with room to spare, and keeps a
/// flood of them small.
pub const MAX_SDP: usize = 16 * 1024;

/// Longest ICE candidate JSON, in bytes. An `RTCIceCandidateInit` as JSON
/// (candidate line, `sdpMid`, `sdpMLineIndex`, `usernameFragment`) takes
/// 150 to 350 bytes, the longest being IPv6 relay candidates with their
/// related address; 1 KiB is three times that.
pub const MAX_CANDIDATE: usize = 1024;

/// Why a signal was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignalError {
    /// Not an object with exactly one of `Offer`, `Answer` or `IceCandidate`
    /// holding a string.
    #[error(
        "invalid signal: data must be {{\"Offer\": sdp}}, {{\"Answer\": sdp}} or {{\"IceCandidate\": json}}"
    )]
    Shape,
    /// An offer's or answer's SDP over [`MAX_SDP`].
    #[error("invalid signal: an SDP of {0} bytes, over the limit of {MAX_SDP}")]
    SdpTooBig(usize),
    /// A candidate over [`MAX_CANDIDATE`].
    #[error("invalid signal: an ICE candidate of {0} bytes, over the limit of {MAX_CANDIDATE}")]
    CandidateTooBig(usize),
    /// A candidate that is neither a JSON object nor `null`.
    #[error("invalid signal: an ICE candidate must be a JSON object or null")]
    BadCandidate,
}

impl SignalError {
    /// The `reason` label it is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Shape => "shape",
            Self::SdpTooBig(_) => "sdp_too_big",
            Self::CandidateTooBig(_) => "candidate_too_big",
            Self::BadCandidate => "bad_candidate",
        }
    }
}

/// Checks a signal's `data`.
pub fn check(data: &Value) -> Result<(), SignalError> {
    let Some(object) = data.as_object() else {
        return Err(SignalError::Shape);
    };
    let mut entries = object.iter();
    let (Some((kind, Value::String(text))), None) = (entries.next(), entries.next()) else {
        return Err(SignalError::Shape);
    };
    match kind.as_str() {
        "Offer" | "Answer" if text.len() > MAX_SDP => Err(SignalError::SdpTooBig(text.len())),
        "Offer" | "Answer" => Ok(()),
        "IceCandidate" if text.len() > MAX_CANDIDATE => {
            Err(SignalError::CandidateTooBig(text.len()))
        }
        "IceCandidate" => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(_) | Value::Null) => Ok(()),
            _ => Err(SignalError::BadCandidate),
        },
        _ => Err(SignalError::Shape),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const CANDIDATE: &str = r#"{"candidate":"candidate:1 1 udp 2122260223 10.77.0.2 40123 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#;

    #[test]
    fn matchbox_signals_pass() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 10.77.0.1\r\ns=-\r\nt=0 0\r\n";
        assert_eq!(check(&json!({ "Offer": sdp })), Ok(()));
        assert_eq!(check(&json!({ "Answer": sdp })), Ok(()));
        assert_eq!(check(&json!({ "IceCandidate": CANDIDATE })), Ok(()));
        assert_eq!(check(&json!({ "IceCandidate": "null" })), Ok(()));
        // The SDP itself is the peers' business.
        assert_eq!(check(&json!({ "Answer": "garbage" })), Ok(()));
        assert_eq!(check(&json!({ "Offer": "x".repeat(MAX_SDP) })), Ok(()));
    }

    #[test]
    fn the_exact_json_of_matchbox_socket_passes() {
        // As `matchbox_socket` serializes `PeerRequest::Signal`.
        let text = r#"{"Signal":{"receiver":"a0a0a0a0-0000-4000-8000-000000000001","data":{"Offer":"v=0\r\n"}}}"#;
        let request: matchbox_protocol::JsonPeerRequest = text.parse().unwrap();
        let matchbox_protocol::PeerRequest::Signal { data, .. } = request else {
            panic!("not a signal");
        };
        assert_eq!(check(&data), Ok(()));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            json!("offer"),
            json!(null),
            json!(42),
            json!([]),
            json!({}),
            json!({ "Offer": 42 }),
            json!({ "Offer": { "sdp": "v=0" } }),
            json!({ "Offer": "v=0", "Answer": "v=0" }),
            json!({ "Teleport": "moon" }),
            json!({ "offer": "v=0" }),
        ] {
            assert_eq!(check(&bad), Err(SignalError::Shape), "{bad}");
        }
        assert_eq!(
            check(&json!({ "Offer": "x".repeat(MAX_SDP + 1) })),
            Err(SignalError::SdpTooBig(MAX_SDP + 1))
        );
        assert_eq!(
            check(&json!({ "IceCandidate": " ".repeat(MAX_CANDIDATE + 1) })),
            Err(SignalError::CandidateTooBig(MAX_CANDIDATE + 1))
        );
        for bad in ["", "candidate:1 1 udp", "[1]", "\"x\"", "{"] {
            assert_eq!(
                check(&json!({ "IceCandidate": bad })),
                Err(SignalError::BadCandidate),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_passes_only_the_three_kinds(text in ".{0,200}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let checked = check(&value);
                if checked.is_ok() {
                    let kind = value.as_object().unwrap().keys().next().unwrap().clone();
                    prop_assert!(["Offer", "Answer", "IceCandidate"].contains(&kind.as_str()));
                }
            }
            let _ = check(&json!({ "IceCandidate": text }));
        }
    }
}
