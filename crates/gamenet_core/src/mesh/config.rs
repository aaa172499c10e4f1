//! The settings of a [`Mesh`](super::Mesh) and the checks they pass.

use std::time::Duration;

use thiserror::Error;

use super::wire;

/// Settings of a [`Mesh`](super::Mesh).
#[derive(Debug, Clone, PartialEq)]
pub struct MeshConfig {
    /// Application id exchanged in the handshake; peers with another id are refused.
    pub app_id: String,
    /// Interval between heartbeats to each peer.
    pub heartbeat_interval: Duration,
    /// A joined peer that sends nothing for this long is reported as
    /// interrupted ([`Event::PeerInterrupted`](super::Event::PeerInterrupted));
    /// the first packet after that reports it resumed. Default 1 s: ten missed
    /// heartbeats at the default interval. Must be shorter than
    /// [`MeshConfig::disconnect_timeout`].
    pub interrupt_timeout: Duration,
    /// A joined peer that sends nothing for this long is reported as left
    /// ([`LeaveReason::TimedOut`](super::LeaveReason::TimedOut)), without a
    /// goodbye: while the transport keeps it connected, the first packet it
    /// sends later starts a fresh link, and it joins again.
    ///
    /// Default 10 s. It must outlast a Wi-Fi roam or reassociation (1–5 s)
    /// plus the retransmission back-off of the WebRTC association (SCTP) once
    /// the network returns: its retransmission timeout starts at 1 s and
    /// doubles with every loss, so after a 4 s outage the next retransmission
    /// can be some 4 s away, and only that one unblocks the heartbeats queued
    /// behind it. With 10 s, a 5 s outage still resumes the link as it was,
    /// without a new handshake.
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
    /// Unreliable packets (data and heartbeats) taken from one peer per
    /// second, with a second's burst; more are dropped unread.
    pub inbound_packets_per_sec: u32,
    /// Unreliable bytes taken from one peer per second, with a second's
    /// burst; more are dropped unread.
    pub inbound_bytes_per_sec: usize,
    /// Unreliable messages of one peer that may wait for
    /// [`Mesh::poll_event`](crate::Mesh::poll_event); more are dropped.
    pub max_unpolled_unreliable: usize,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            app_id: String::from("gamenet"),
            heartbeat_interval: Duration::from_millis(100),
            interrupt_timeout: Duration::from_secs(1),
            disconnect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_message_size: 16 << 20,
            max_unreliable_size: 16 << 10,
            fragment_size: DEFAULT_FRAGMENT_SIZE,
            send_window: DEFAULT_SEND_WINDOW,
            max_queued_bytes: 32 << 20,
            inbound_packets_per_sec: 2000,
            inbound_bytes_per_sec: 4 << 20,
            max_unpolled_unreliable: 1024,
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
    /// [`MeshConfig::interrupt_timeout`] is not shorter than
    /// [`MeshConfig::disconnect_timeout`].
    #[error("interrupt timeout must be shorter than disconnect timeout")]
    InterruptNotBeforeDisconnect,
    /// The inbound budget cannot take the heartbeats, or one largest
    /// unreliable message a second.
    #[error(
        "inbound budget too small: at least {MIN_INBOUND_PACKETS} packets, max_unreliable_size + 1 bytes and one unpolled message"
    )]
    InboundBudgetTooSmall,
}

/// Least [`MeshConfig::inbound_packets_per_sec`]: heartbeats (pings, pongs,
/// acknowledgements) at the shortest interval with room to spare.
pub const MIN_INBOUND_PACKETS: u32 = 64;

impl MeshConfig {
    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.app_id.len() > wire::MAX_APP_ID_LEN {
            return Err(ConfigError::AppIdTooLong(self.app_id.len()));
        }
        for (name, d) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("interrupt_timeout", self.interrupt_timeout),
            ("disconnect_timeout", self.disconnect_timeout),
            ("handshake_timeout", self.handshake_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.interrupt_timeout >= self.disconnect_timeout {
            return Err(ConfigError::InterruptNotBeforeDisconnect);
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
        if self.inbound_packets_per_sec < MIN_INBOUND_PACKETS
            || self.inbound_bytes_per_sec <= self.max_unreliable_size
            || self.max_unpolled_unreliable == 0
        {
            return Err(ConfigError::InboundBudgetTooSmall);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mesh;

    #[test]
    fn config_is_validated() {
        let bad = MeshConfig {
            fragment_size: 10,
            ..MeshConfig::default()
        };
        assert_eq!(
            Mesh::new(bad).err(),
            Some(ConfigError::FragmentTooSmall(10))
        );
        let bad = MeshConfig {
            app_id: "x".repeat(300),
            ..MeshConfig::default()
        };
        assert_eq!(Mesh::new(bad).err(), Some(ConfigError::AppIdTooLong(300)));
    }

    #[test]
    fn interrupt_timeout_must_be_positive_and_before_the_disconnect_timeout() {
        let bad = MeshConfig {
            interrupt_timeout: Duration::ZERO,
            ..MeshConfig::default()
        };
        assert_eq!(
            Mesh::new(bad).err(),
            Some(ConfigError::ZeroDuration("interrupt_timeout"))
        );
        for interrupt in [10, 11] {
            let bad = MeshConfig {
                interrupt_timeout: Duration::from_secs(interrupt),
                disconnect_timeout: Duration::from_secs(10),
                ..MeshConfig::default()
            };
            assert_eq!(
                Mesh::new(bad).err(),
                Some(ConfigError::InterruptNotBeforeDisconnect)
            );
        }
        let config = MeshConfig::default();
        assert_eq!(config.interrupt_timeout, Duration::from_secs(1));
        assert_eq!(config.disconnect_timeout, Duration::from_secs(10));
        assert!(Mesh::new(config).is_ok());
    }
}
