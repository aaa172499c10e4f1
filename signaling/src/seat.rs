//! A client's seat among `--max-clients`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;

use crate::limits::{address_key, describe_key};
use crate::shared::{SeatLimits, Seating, Shared, SharedState};
use crate::state::{App, Refusal};

/// A place among `--max-clients`, taken before the upgrade so that upgrades in
/// flight count too, and given back when dropped: when its client leaves, or
/// when the upgrade never happens. With Redis, the count is across instances,
/// and so is each client address's, against `--max-connections-per-address`
/// (by the forwarded address behind `--trust-proxy`, where several instances
/// run).
pub(crate) struct Seat {
    app: Arc<App>,
    /// The client's address, by its limit key.
    address: IpAddr,
    /// Whether a seat was taken in the shared count too.
    shared: bool,
}

impl Seat {
    /// Takes a seat for a client at `ip`, or `None` when the servers are full.
    pub(crate) async fn take(app: &Arc<App>, ip: IpAddr) -> Result<Option<Self>, Refusal> {
        let address = address_key(ip);
        let mut seat = Seat {
            app: app.clone(),
            address,
            shared: false,
        };
        let max = app.config.max_clients;
        let taken = app.clients.fetch_add(1, Ordering::SeqCst);
        // Dropping the seat gives the place back.
        if taken >= max {
            return Ok(None);
        }
        if let Shared::Redis(redis) = &app.shared {
            let limits = SeatLimits {
                max,
                per_address: app.config.max_connections_per_address,
            };
            match redis.take_seat(&app.instance, address, limits).await {
                Ok(Seating::Taken) => {
                    seat.shared = true;
                    app.mirror(|mirror| mirror.seat_taken(address));
                }
                Ok(Seating::Full) => return Ok(None),
                Ok(Seating::AddressFull) => {
                    return Err(Refusal::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "connections_per_address",
                        format!(
                            "too many clients from {} across the servers (at most {})",
                            describe_key(address),
                            limits.per_address
                        ),
                    ));
                }
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
            let (app, address) = (self.app.clone(), self.address);
            app.mirror(|mirror| mirror.seat_given(address));
            runtime.spawn(async move {
                if let Err(error) = app.shared.give_seat(&app.instance, address).await {
                    app.metrics.shared_errors.inc();
                    tracing::warn!(%error, "giving back a seat");
                }
            });
        }
    }
}
