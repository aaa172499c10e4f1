//! [`MeshDriver`]: the future the caller spawns to run a [`PeerMesh`]'s WebRTC
//! connections and signaling, and its protocol between the game's frames.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use matchbox_socket::MessageLoopFuture;

use crate::Error;
#[cfg(doc)]
use crate::PeerMesh;
use crate::pump::{Pump, Shared};

/// The future that runs the WebRTC connections and the signaling of a [`PeerMesh`],
/// and takes its packets in as they arrive: it answers heartbeats and runs the
/// protocol's timers even while the game's frames stop (a hidden tab).
/// Spawn it on the runtime of your choice; it ends when the mesh is closed or the
/// signaling server is lost.
///
/// A panic inside the WebRTC stack does not unwind into the runtime that polls
/// the driver: the driver ends with [`Error::Driver`] instead, and the mesh
/// reports itself closed (no peer is left connected).
#[must_use = "the mesh does nothing unless its driver is spawned"]
pub struct MeshDriver {
    /// matchbox's message loop, until it ends.
    message_loop: Option<MessageLoopFuture>,
    /// The mesh it pumps (none in tests of the loop alone).
    shared: Option<Shared>,
    /// The pump's timer.
    pump: Pump,
}

impl MeshDriver {
    /// The driver of matchbox's message loop and of the mesh in `shared`.
    pub(crate) fn new(message_loop: MessageLoopFuture, shared: Shared) -> Self {
        Self {
            message_loop: Some(message_loop),
            shared: Some(shared),
            pump: Pump::default(),
        }
    }
}

impl Future for MeshDriver {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(driver) = this.message_loop.as_mut() else {
            return Poll::Ready(Err(Error::Closed));
        };
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.poll_unpin(cx)));
        // What the loop delivered (or the channels closing as it ended) is
        // taken in now, and the next packet or timer wakes this task again.
        if let Some(shared) = &this.shared {
            if !matches!(polled, Ok(Poll::Pending)) {
                this.message_loop = None;
            }
            this.pump.pump(shared, cx);
        }
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                this.message_loop = None;
                Poll::Ready(result.map_err(Error::from))
            }
            Err(panic) => {
                // A future that panicked must not be polled again: drop it, which
                // closes every channel of the socket.
                this.message_loop = None;
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_owned());
                tracing::error!("gamenet: the WebRTC driver failed: {reason}");
                Poll::Ready(Err(Error::Driver(reason)))
            }
        }
    }
}

impl std::fmt::Debug for MeshDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshDriver")
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_webrtc_driver_ends_the_driver_with_an_error() {
        let failing: MessageLoopFuture = Box::pin(async {
            panic!("Sender closed before channel was ready");
        });
        let mut driver = MeshDriver {
            message_loop: Some(failing),
            shared: None,
            pump: Pump::default(),
        };
        let ended = futures::executor::block_on(&mut driver);
        match ended {
            Err(Error::Driver(reason)) => {
                assert_eq!(reason, "Sender closed before channel was ready")
            }
            other => panic!("expected Error::Driver, got {other:?}"),
        }
        // Polled again, it stays ended instead of touching the broken future.
        assert!(matches!(
            futures::executor::block_on(&mut driver),
            Err(Error::Closed)
        ));
    }
}
