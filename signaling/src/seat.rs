//! A client's seat among `--max-clients`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::shared::{Shared, SharedState};
use crate::state::{App, Refusal};

/// A place among `--max-clients`, taken before the upgrade so that upgrades in
/// flight count too, and given back when dropped: when its client leaves, or
/// when the upgrade never happens. With Redis, the count is across instances.
pub(crate) struct Seat {
    app: Arc<App>,
    /// Whether a seat was taken in the shared count too.
    shared: bool,
}

impl Seat {
    /// Takes a seat, or `None` when the servers are full.
    pub(crate) async fn take(app: &Arc<App>) -> Result<Option<Self>, Refusal> {
        let mut seat = Seat {
            app: app.clone(),
            shared: false,
        };
        let max = app.config.max_clients;
        let taken = app.clients.fetch_add(1, Ordering::SeqCst);
        // Dropping the seat gives the place back.
        if taken >= max {
            return Ok(None);
        }
        if let Shared::Redis(redis) = &app.shared {
            match redis.take_seat(&app.instance, max).await {
                Ok(true) => seat.shared = true,
                Ok(false) => return Ok(None),
                Err(error) => return Err(app.unavailable(&error)),
            }
        }
        Ok(Some(seat))
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.app.clients.fetch_sub(1, Ordering::SeqCst);
        self.app.client_left.notify_waiters();
        if self.shared
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let app = self.app.clone();
            runtime.spawn(async move {
                if let Err(error) = app.shared.give_seat(&app.instance).await {
                    app.metrics.shared_errors.inc();
                    tracing::warn!(%error, "giving back a seat");
                }
            });
        }
    }
}
