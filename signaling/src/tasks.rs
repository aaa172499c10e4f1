//! The loops a server runs beside its HTTP handlers until it shuts down: the
//! STUN responder and lobby expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limits::RateLimiter;
use crate::shared::{Shared, SharedState, now_millis};
use crate::state::App;
use crate::stun;

/// STUN requests per second one address may make. ICE sends a few per peer
/// connection, and players behind one NAT share an address.
const STUN_RATE: f64 = 50.0;
/// STUN requests one address may make at once.
const STUN_BURST: u32 = 200;

/// Answers STUN Binding requests until the server shuts down; an address past
/// its rate gets no answer, so the port cannot be turned on someone in volume.
pub(crate) async fn run_stun(socket: tokio::net::UdpSocket, app: Arc<App>) {
    let mut shutdown = app.shutdown.clone();
    let mut limiter = RateLimiter::new(STUN_RATE, STUN_BURST, 100_000);
    let mut buf = vec![0u8; 1500];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    if limiter.check(from.ip(), Instant::now()).is_err() {
                        app.metrics.refuse("stun_rate");
                        continue;
                    }
                    if let Some(reply) = stun::answer(&buf[..len], from) {
                        app.metrics.stun_requests.inc();
                        let _ = socket.send_to(&reply, from).await;
                    }
                }
                // ICMP errors from earlier replies surface here on some systems.
                Err(e) => tracing::debug!("stun: {e}"),
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Removes lobbies that stayed empty too long.
pub(crate) async fn expire_lobbies(app: Arc<App>) {
    let mut shutdown = app.shutdown.clone();
    let period =
        (app.config.lobby_ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match app.shared.expire_lobbies(now_millis()).await {
                    Ok(0) => {}
                    Ok(expired) => tracing::debug!(expired, "lobbies expired"),
                    Err(error) => {
                        app.metrics.shared_errors.inc();
                        tracing::warn!(%error, "expiring lobbies");
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// What other instances publish for this one's clients, through Redis.
pub(crate) type Incoming = std::pin::Pin<Box<dyn futures::Stream<Item = String> + Send>>;

/// Hands what other instances sent through Redis to the clients here;
/// subscribes again (every third of `--instance-ttl` until it works) when
/// the subscription's connection is lost. Meanwhile `/ready` says so, and
/// joins into rooms with a client here are refused (their `NewPeer` would be
/// lost).
pub(crate) async fn relay_in(app: Arc<App>, mut incoming: Incoming) {
    use futures::StreamExt;
    let Shared::Redis(redis) = &app.shared else {
        return;
    };
    let mut shutdown = app.shutdown.clone();
    loop {
        tokio::select! {
            payload = incoming.next() => match payload {
                Some(payload) => {
                    let Some((to, text)) = payload.split_once(' ') else {
                        continue;
                    };
                    let Ok(to) = to.parse::<uuid::Uuid>() else {
                        continue;
                    };
                    app.metrics.relayed_in.inc();
                    let _ = app.deliver_here(matchbox_protocol::PeerId(to), text);
                }
                None => {
                    app.relay_up.store(false, std::sync::atomic::Ordering::SeqCst);
                    app.metrics.shared_errors.inc();
                    tracing::warn!("the Redis subscription ended; subscribing again");
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep(app.config.instance_ttl / 3) => {}
                            _ = shutdown.changed() => return,
                        }
                        match redis.subscribe(&app.instance).await {
                            Ok(stream) => {
                                incoming = Box::pin(stream);
                                app.relay_up.store(true, std::sync::atomic::Ordering::SeqCst);
                                tracing::info!("subscribed to Redis again");
                                break;
                            }
                            Err(error) => {
                                app.metrics.shared_errors.inc();
                                tracing::debug!(%error, "subscribing again");
                            }
                        }
                    }
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// With Redis: announces this instance every third of `--instance-ttl`;
/// writes back what it holds when Redis lost its data, or after Redis was
/// out of reach (see [`write_back`]); and takes the clients of instances
/// whose announcement expired out of their rooms (their room-mates are told
/// they left), unless they resumed on another instance meanwhile.
pub(crate) async fn watch_instances(app: Arc<App>) {
    let Shared::Redis(redis) = &app.shared else {
        return;
    };
    let ttl = app.config.instance_ttl;
    let period = (ttl / 3).max(Duration::from_millis(50));
    // Long enough for every live instance to sync once and write back.
    let restore_window = period * 2;
    let mut tick = tokio::time::interval(period);
    let mut shutdown = app.shutdown.clone();
    // Errors seen by the last sync: any since means a write-back.
    let mut errors = app.metrics.shared_errors.get();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let watched = async {
            let (filling, lobbies) = app.local().mirror.asked();
            let synced = redis
                .sync(&app.instance, ttl, restore_window, &filling, &lobbies)
                .await?;
            let seen = app.metrics.shared_errors.get();
            if synced.lost || seen != errors {
                write_back(&app, redis, synced.lost).await?;
            } else {
                app.local().mirror.synced(&synced);
            }
            errors = seen;
            for dead in redis.dead_instances().await? {
                let left = redis.members_of(&dead).await?;
                for peer in &left {
                    let others = app.shared.leave(*peer, Some(&dead), now_millis()).await?;
                    let event = matchbox_protocol::JsonPeerEvent::PeerLeft(*peer).to_string();
                    app.deliver_all(&others, &event).await;
                }
                if redis.forget_instance(&dead).await? || !left.is_empty() {
                    tracing::info!(instance = %dead, clients = left.len(), "a dead instance's clients left their rooms");
                }
            }
            Ok::<_, crate::shared::SharedError>(())
        };
        if let Err(error) = watched.await {
            app.metrics.shared_errors.inc();
            tracing::debug!(%error, "watching the instances");
        }
    }
}

/// Makes Redis agree with what this instance holds: writes back its clients
/// in rooms, the quick-match groups they wait in, its lobbies and its seat
/// count, where missing (after Redis `lost` its data, or after it was out of
/// reach and some change may not have reached it); then takes out of their
/// rooms the peers Redis still places here that are not connected here (a
/// leave that failed meanwhile), telling their room-mates.
async fn write_back(
    app: &App,
    redis: &crate::shared::RedisState,
    lost: bool,
) -> Result<(), crate::shared::SharedError> {
    // Seats as the mirror counts them: those Redis gave this instance.
    let held = app.local().held();
    let (peers, lobbies) = redis.restore(&app.instance, &held, now_millis()).await?;
    // Read after the write-back, and checked against the clients here after
    // that: a client joining meanwhile is registered here before Redis has it.
    let recorded = redis.members_of(&app.instance).await?;
    let stale: Vec<_> = {
        let local = app.local();
        recorded
            .into_iter()
            .filter(|peer| !local.owners.contains_key(peer))
            .collect()
    };
    for peer in &stale {
        let others = app
            .shared
            .leave(*peer, Some(&app.instance), now_millis())
            .await?;
        let event = matchbox_protocol::JsonPeerEvent::PeerLeft(*peer).to_string();
        app.deliver_all(&others, &event).await;
    }
    app.metrics.write_backs.inc();
    if lost || peers + lobbies + stale.len() > 0 {
        tracing::info!(
            lost,
            peers,
            lobbies,
            stale = stale.len(),
            "wrote back what this instance holds"
        );
    }
    Ok(())
}
