//! A client's send queue, bounded in messages and in bytes. A client that does
//! not keep up is not quietly skipped: the first message that does not fit
//! marks its queue as overflowed and wakes its task, which closes it with a
//! reason (its room-mates are told it left, and a client with a key can come
//! back and be told who is there).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::Message;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::TrySendError};

/// What the sending and the receiving side share.
struct Shared {
    /// Bytes queued now.
    bytes: AtomicUsize,
    /// Most bytes queued at once.
    max_bytes: usize,
    /// Woken once the queue overflowed.
    overflowed: Notify,
    /// Bytes queued for every client, for the metrics.
    total: Gauge,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotQueued {
    /// The queue is full: its client is being closed.
    Overflow,
    /// The client is gone.
    Gone,
}

/// The sending side, held by the hub for other clients' tasks to queue
/// messages with.
#[derive(Clone)]
pub(crate) struct Outbox {
    queue: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

/// The receiving side, held by the client's own task.
pub(crate) struct Inbox {
    queue: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
}

/// A queue of at most `max_messages` messages and `max_bytes` bytes; `total`
/// counts the bytes queued across all queues.
pub(crate) fn outbox(max_messages: usize, max_bytes: usize, total: Gauge) -> (Outbox, Inbox) {
    let (sender, receiver) = mpsc::channel(max_messages.max(1));
    let shared = Arc::new(Shared {
        bytes: AtomicUsize::new(0),
        max_bytes: max_bytes.max(1),
        overflowed: Notify::new(),
        total,
    });
    (
        Outbox {
            queue: sender,
            shared: shared.clone(),
        },
        Inbox {
            queue: receiver,
            shared,
        },
    )
}

/// The bytes a message takes in the queue.
fn size(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(frame) => frame.as_ref().map_or(0, |f| f.reason.len()) + 2,
    }
}

impl Outbox {
    /// Queues `message`, or, when it does not fit, marks the queue as
    /// overflowed (its client's task closes it).
    pub(crate) fn push(&self, message: Message) -> Result<(), NotQueued> {
        let len = size(&message);
        let shared = &self.shared;
        let before = shared.bytes.fetch_add(len, Ordering::SeqCst);
        if before + len > shared.max_bytes {
            shared.bytes.fetch_sub(len, Ordering::SeqCst);
            shared.overflowed.notify_one();
            return Err(NotQueued::Overflow);
        }
        match self.queue.try_send(message) {
            Ok(()) => {
                shared.total.inc_by(len as i64);
                Ok(())
            }
            Err(error) => {
                shared.bytes.fetch_sub(len, Ordering::SeqCst);
                match error {
                    TrySendError::Full(_) => {
                        shared.overflowed.notify_one();
                        Err(NotQueued::Overflow)
                    }
                    TrySendError::Closed(_) => Err(NotQueued::Gone),
                }
            }
        }
    }
}

impl Inbox {
    /// The next queued message; `None` once no sender is left (the client's
    /// place was taken over by a newer connection).
    pub(crate) async fn recv(&mut self) -> Option<Message> {
        let message = self.queue.recv().await?;
        self.took(&message);
        Some(message)
    }

    /// What tells when a message did not fit.
    pub(crate) fn overflow(&self) -> Overflow {
        Overflow(self.shared.clone())
    }

    /// Bytes queued now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::SeqCst)
    }

    fn took(&self, message: &Message) {
        let len = size(message);
        self.shared.bytes.fetch_sub(len, Ordering::SeqCst);
        self.shared.total.dec_by(len as i64);
    }
}

/// Tells when a message did not fit in a queue.
pub(crate) struct Overflow(Arc<Shared>);

impl Overflow {
    /// Resolves once a message did not fit.
    pub(crate) async fn happened(&self) {
        self.0.overflowed.notified().await;
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // Whatever is still queued goes with the client.
        self.queue.close();
        while let Ok(message) = self.queue.try_recv() {
            self.took(&message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Message {
        Message::Text("x".repeat(len).into())
    }

    #[tokio::test]
    async fn bounded_in_messages_and_bytes_and_overflow_wakes_the_client() {
        let total = Gauge::default();
        let (outbox, mut inbox) = outbox(3, 100, total.clone());
        assert_eq!(outbox.push(text(40)), Ok(()));
        assert_eq!(outbox.push(text(40)), Ok(()));
        assert_eq!(total.get(), 80);
        // 40 more bytes would be 120.
        assert_eq!(outbox.push(text(40)), Err(NotQueued::Overflow));
        assert_eq!(inbox.bytes(), 80);
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            inbox.overflow().happened(),
        )
        .await
        .expect("the overflow wakes the client");
        assert_eq!(outbox.push(text(1)), Ok(()));
        // A fourth message is one too many.
        assert_eq!(outbox.push(text(1)), Err(NotQueued::Overflow));
        assert!(inbox.recv().await.is_some());
        assert_eq!(total.get(), 41);
        drop(inbox);
        // What was queued is counted out with the client.
        assert_eq!(total.get(), 0);
        assert_eq!(outbox.push(text(1)), Err(NotQueued::Gone));
        assert_eq!(total.get(), 0);
    }
}
