//! WebSocket clients: the checks at the upgrade, then one task per client that
//! joins its room, routes its signals, and enforces the message, signal, idle
//! and write limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use matchbox_protocol::{JsonPeerEvent, JsonPeerRequest, PeerId, PeerRequest};
use tracing::{debug, info};

use crate::auth::{self, MAX_RESUME_KEY, MIN_RESUME_KEY};
use crate::limits::TokenBucket;
use crate::metrics::Reason;
use crate::outbox::{Inbox, outbox};
use crate::rooms::{RoomError, RoomRequest};
use crate::seat::Seat;
use crate::shared::{HeldLobby, Location, SharedError, SharedState, now_millis};
use crate::signals::{self, SignalError};
use crate::state::{App, Delivery, Refusal};

/// Close codes sent to clients, with the reason as text.
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A message that is not part of the protocol (binary, malformed, unknown
    /// type, a signal that is no offer, answer or ICE candidate).
    pub const UNSUPPORTED: u16 = 1003;
    /// Too many signals, or too many bytes of them.
    pub const POLICY: u16 = 1008;
    /// A frame or message over the size limit, or a signal's SDP or candidate
    /// over its own.
    pub const TOO_BIG: u16 = 1009;
    /// The room could not be joined (full, or the lobby is gone).
    pub const ROOM_REFUSED: u16 = 4000;
    /// Nothing received for the idle timeout.
    pub const IDLE: u16 = 4001;
    /// The shared state (Redis) is out of reach: try again later.
    pub const UNAVAILABLE: u16 = 1013;
    /// The client does not read fast enough: a write took longer than the
    /// write timeout, or its send queue overflowed.
    pub const TOO_SLOW: u16 = 4002;
}

/// How long the close frame at the end may take to go out, and the client's
/// answer to come back.
const CLOSING: Duration = Duration::from_secs(1);

/// `GET /` and `GET /<room>`, with `?next=N&mode=M` for quick-match.
pub(crate) async fn open_room(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    room: Option<Path<String>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let request = RoomRequest::parse(
        room.as_deref().map(String::as_str),
        query.get("next").map(String::as_str),
        query.get("mode").map(String::as_str),
        app.config.max_room_size,
    );
    admit(app, addr, headers, query, upgrade, request).await
}

/// `GET /join/<CODE>`: a lobby.
pub(crate) async fn lobby(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    Path(code): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let request = RoomRequest::lobby(&code);
    admit(app, addr, headers, query, upgrade, request).await
}

/// The checks before a WebSocket is accepted, cheapest and most telling first,
/// the seat among `--max-clients` last (so that refused requests hold none);
/// each refusal is an HTTP status with a JSON reason, counted in the metrics.
async fn admit(
    app: Arc<App>,
    addr: SocketAddr,
    headers: HeaderMap,
    query: HashMap<String, String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Result<RoomRequest, RoomError>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            app.metrics.refuse("not_websocket");
            return rejection.into_response();
        }
    };
    let ip = app.client_ip(addr, &headers);
    let (request, seat, resume) = match check(&app, ip, &headers, &query, request).await {
        Ok(checked) => checked,
        Err(refusal) => return refusal.respond(&app),
    };
    let max = app.config.max_message;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        // Small buffers: most clients only ever send a few signals.
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| Client::run(app, seat, socket, request, ip, resume))
}

/// The checks of [`admit`]: the room asked for, the seat taken, and the peer
/// id a resume key stands for.
async fn check(
    app: &Arc<App>,
    ip: IpAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    request: Result<RoomRequest, RoomError>,
) -> Result<(RoomRequest, Seat, Option<PeerId>), Refusal> {
    if app.shutting_down.load(Ordering::SeqCst) {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        ));
    }
    app.check_rate(ip).await?;
    app.check_origin(headers)?;
    app.check_token(headers, query)?;
    let resume = match query.get("key") {
        None => None,
        Some(key) => match auth::resume_id(&app.resume_secret, key) {
            Some(id) => Some(PeerId(id)),
            None => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "bad_key",
                    format!(
                        "invalid key: {MIN_RESUME_KEY} to {MAX_RESUME_KEY} characters of [A-Za-z0-9_-]"
                    ),
                ));
            }
        },
    };
    if let Ok(RoomRequest::Lobby(code)) = &request {
        // An unknown code counts against the address's misses.
        let info = app.find_lobby(ip, *code).await?;
        app.mirror(|mirror| mirror.lobby(HeldLobby::from(info)));
    }
    let request = request.map_err(|e| {
        let (status, reason) = match e {
            RoomError::UnknownLobby(_) => (StatusCode::NOT_FOUND, "unknown_lobby"),
            _ => (StatusCode::BAD_REQUEST, "bad_room"),
        };
        Refusal::new(status, reason, e.to_string())
    })?;
    let seat = Seat::take(app, ip).await?.ok_or_else(|| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "max_clients",
            format!("the server is full ({} clients)", app.config.max_clients),
        )
    })?;
    Ok((request, seat, resume))
}

/// Resolves once the server shuts down.
async fn shutting_down(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|&down| down).await.is_err() {
        // The server is gone without a word: nothing will ever come.
        std::future::pending::<()>().await;
    }
}

fn event(event: JsonPeerEvent) -> Message {
    Message::Text(event.to_string().into())
}

/// The text of the close for a shared state out of reach.
fn unavailable_close(app: &App, error: &SharedError) -> Message {
    app.metrics.shared_errors.inc();
    app.metrics.refuse("shared_state");
    close_frame(
        close::UNAVAILABLE,
        &format!("the server cannot serve this now: {error}"),
    )
}

/// A close frame; WebSocket close reasons are at most 123 bytes.
fn close_frame(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

/// One connected client.
struct Client {
    app: Arc<App>,
    id: PeerId,
    /// This connection's number, to tell it from a later one with the same key.
    connection: u64,
    /// Whether its id comes from a key: it may reconnect and take its place back.
    resumable: bool,
    /// Whether its end was handled (left, or holding its place).
    ended: bool,
    /// Its signal rate.
    signals: TokenBucket,
    /// Its signal byte rate.
    signal_bytes: TokenBucket,
    _seat: Seat,
}

impl Client {
    async fn run(
        app: Arc<App>,
        seat: Seat,
        socket: WebSocket,
        request: RoomRequest,
        ip: IpAddr,
        resume: Option<PeerId>,
    ) {
        app.metrics.clients.inc();
        app.metrics.connections.inc();
        let signals = TokenBucket::full(app.config.signal_burst, Instant::now());
        let signal_bytes = TokenBucket::full(app.config.signal_byte_burst, Instant::now());
        let connection = app.next_connection.fetch_add(1, Ordering::Relaxed);
        let mut client = Client {
            app,
            id: resume.unwrap_or_else(|| PeerId(uuid::Uuid::new_v4())),
            connection,
            resumable: resume.is_some(),
            ended: false,
            signals,
            signal_bytes,
            _seat: seat,
        };
        client.serve(socket, request, ip).await;
    }

    async fn serve(&mut self, socket: WebSocket, request: RoomRequest, ip: IpAddr) {
        let app = self.app.clone();
        let id = self.id;
        let (mut sink, stream) = socket.split();
        let (outbox, inbox) = outbox(
            app.config.send_queue,
            app.config.send_queue_bytes,
            app.metrics.queued_bytes.clone(),
        );
        // A client with a key that still holds its place (or replaces a
        // connection the server has not seen drop yet) resumes: the room
        // does not hear of it. It is told who is there, so that it can offer
        // to peers it lost meanwhile; it ignores those it is still connected to.
        // With Redis it may have held it through another instance: it is
        // connected here from now on.
        let held = if self.resumable {
            match Box::pin(app.shared.resume(id, &app.instance)).await {
                Ok(held) => held,
                Err(error) => return self.refuse(sink, unavailable_close(&app, &error)).await,
            }
        } else {
            None
        };
        if let Some((room, mates)) = held {
            for other in mates {
                // Overflowing a fresh queue closes this client at once.
                let _ = outbox.push(event(JsonPeerEvent::NewPeer(other)));
            }
            {
                let mut local = app.local();
                local.owners.insert(id, self.connection);
                // Replacing the old queue ends the old connection's task.
                local.peers.insert(id, outbox);
            }
            app.mirror(|mirror| mirror.resumed(id, room.clone()));
            app.metrics.resumes.inc();
            debug!(%id, %ip, room = room.kind(), "resumed");
            if !self.hello(&mut sink).await {
                return Box::pin(self.end(true)).await;
            }
            return self.relay(sink, stream, inbox).await;
        }
        // Registered before the join, so that a signal sent to it at once
        // reaches it.
        {
            let mut local = app.local();
            local.peers.insert(id, outbox);
            local.owners.insert(id, self.connection);
        }
        // Boxed, like the other calls of the shared state here: they are
        // rare, and inline they would add their size to every client's task.
        let now = now_millis();
        let joined = match Box::pin(app.shared.join(id, &app.instance, &request, now)).await {
            Ok(joined) => {
                app.mirror(|mirror| mirror.joined(id, &joined, now));
                joined
            }
            Err(error) => {
                self.ended = true;
                {
                    let mut local = app.local();
                    if local.owners.get(&id) == Some(&self.connection) {
                        local.owners.remove(&id);
                        local.peers.remove(&id);
                    }
                }
                let error = match error {
                    SharedError::Refused(error) => error,
                    error => return self.refuse(sink, unavailable_close(&app, &error)).await,
                };
                let reason = match error {
                    RoomError::RoomFull(_) => "room_full",
                    RoomError::UnknownLobby(_) => "unknown_lobby",
                    _ => "bad_room",
                };
                app.metrics.refuse(reason);
                info!(%id, %ip, %error, "refused");
                let close = close_frame(close::ROOM_REFUSED, &error.to_string());
                return self.refuse(sink, close).await;
            }
        };
        let new_peer = JsonPeerEvent::NewPeer(id).to_string();
        if !Box::pin(app.deliver_all(&joined.others, &new_peer)).await {
            // A room-mate's instance did not hear of it (out of Redis's reach
            // now): rather than a room where some never link, the join is
            // undone and the client told to come back.
            Box::pin(leave(&app, id, self.connection)).await;
            let error = SharedError::Unavailable("a room-mate's server is out of reach".into());
            return self.refuse(sink, unavailable_close(&app, &error)).await;
        }
        // Its id only now that it is in the room: a client that has its id
        // is found by the next joiner, on any instance.
        if !self.hello(&mut sink).await {
            return Box::pin(self.end(true)).await;
        }
        let kind = joined.room.kind();
        app.metrics
            .joins
            .get_or_create(&crate::metrics::Kind { kind })
            .inc();
        if !joined.matched.is_empty() {
            app.metrics.matches.inc();
            for wait in &joined.matched {
                app.metrics.matchmaking_seconds.observe(wait.as_secs_f64());
            }
        }
        debug!(%id, %ip, kind, peers = joined.others.len() + 1, "joined");

        self.relay(sink, stream, inbox).await;
    }

    /// Tells the client its id; `false` if that write failed or timed out.
    async fn hello(&self, sink: &mut futures::stream::SplitSink<WebSocket, Message>) -> bool {
        let hello = sink.send(event(JsonPeerEvent::IdAssigned(self.id)));
        matches!(
            tokio::time::timeout(self.app.config.write_timeout, hello).await,
            Ok(Ok(()))
        )
    }

    /// Closes a client that did not get into a room with `close` (after its
    /// id, as a client expects one first).
    async fn refuse(
        &mut self,
        mut sink: futures::stream::SplitSink<WebSocket, Message>,
        close: Message,
    ) {
        self.ended = true;
        if self.hello(&mut sink).await {
            let _ = tokio::time::timeout(self.app.config.write_timeout, sink.send(close)).await;
        }
    }

    /// Passes the client's signals on and its queued messages to it until the
    /// connection ends, then leaves the room (or, with a key, holds its place
    /// for a while). Each write may take up to the write timeout, and gives
    /// way to the shutdown: a client that stops reading is closed within it.
    async fn relay(
        &mut self,
        mut sink: futures::stream::SplitSink<WebSocket, Message>,
        mut stream: futures::stream::SplitStream<WebSocket>,
        mut inbox: Inbox,
    ) {
        let app = self.app.clone();
        let write_timeout = app.config.write_timeout;
        let overflow = inbox.overflow();
        // One timer for the idle limit, moved only when it fires: messages just
        // note when they came, so that they cost no timer work.
        let idle = app.config.idle_timeout;
        let mut last_heard = tokio::time::Instant::now();
        let idle_timer = tokio::time::sleep_until(last_heard + idle);
        tokio::pin!(idle_timer);
        let mut shutdown = app.shutdown.clone();
        let shutdown = shutting_down(&mut shutdown);
        tokio::pin!(shutdown);
        // A client that closes on purpose leaves at once; one whose connection
        // drops may be back.
        let mut closed_by_client = false;
        let closing = loop {
            tokio::select! {
                message = stream.next() => {
                    last_heard = tokio::time::Instant::now();
                    match message {
                        None => break None,
                        Some(Ok(Message::Close(_))) => {
                            closed_by_client = true;
                            break None;
                        }
                        Some(Ok(Message::Text(text))) => {
                            if let Err(close) = Box::pin(self.on_request(&text)).await {
                                break Some(close);
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            app.metrics.refuse("bad_message");
                            break Some(close_frame(
                                close::UNSUPPORTED,
                                "binary messages are not part of the signaling protocol",
                            ));
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Err(error)) => break self.on_read_error(error),
                    }
                }
                queued = inbox.recv() => match queued {
                    Some(message) => {
                        let write = tokio::time::timeout(write_timeout, sink.send(message));
                        tokio::select! {
                            written = write => match written {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) => break None,
                                Err(_) => {
                                    app.metrics.refuse("write_timeout");
                                    debug!(id = %self.id, "write timed out");
                                    break Some(close_frame(
                                        close::TOO_SLOW,
                                        &format!(
                                            "too slow: a write took over {} s",
                                            write_timeout.as_secs_f64()
                                        ),
                                    ));
                                }
                            },
                            () = overflow.happened() => break Some(self.overflowed()),
                            () = &mut shutdown => {
                                break Some(close_frame(
                                    close::GOING_AWAY,
                                    "the server is shutting down",
                                ));
                            }
                        }
                    }
                    None => break None,
                },
                () = overflow.happened() => break Some(self.overflowed()),
                () = &mut idle_timer => {
                    if last_heard + idle > tokio::time::Instant::now() {
                        idle_timer.as_mut().reset(last_heard + idle);
                        continue;
                    }
                    app.metrics.refuse("idle");
                    break Some(close_frame(
                        close::IDLE,
                        &format!("idle: nothing received for {} s", idle.as_secs_f64()),
                    ));
                }
                () = &mut shutdown => {
                    break Some(close_frame(close::GOING_AWAY, "the server is shutting down"));
                }
            }
        };
        Box::pin(self.end(closing.is_none() && !closed_by_client)).await;
        if let Some(close) = closing {
            // A client that does not read may never take the close frame.
            let _ = tokio::time::timeout(CLOSING, sink.send(close)).await;
            // Give the client a moment to read the close before the socket drops.
            let _ = tokio::time::timeout(CLOSING, async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// Its send queue overflowed: counted, and the close frame to end with.
    fn overflowed(&self) -> Message {
        let config = &self.app.config;
        self.app.metrics.refuse("send_queue_full");
        debug!(id = %self.id, "send queue overflowed");
        close_frame(
            close::TOO_SLOW,
            &format!(
                "too slow: over {} messages or {} bytes waiting to be read",
                config.send_queue, config.send_queue_bytes
            ),
        )
    }

    /// Handles one text message; an error is the close frame to end with.
    async fn on_request(&mut self, text: &str) -> Result<(), Message> {
        let app = self.app.clone();
        match JsonPeerRequest::from_str(text) {
            Ok(PeerRequest::Signal { receiver, data }) => {
                if let Err(error) = signals::check(&data) {
                    app.metrics
                        .signals_refused
                        .get_or_create(&Reason {
                            reason: error.reason(),
                        })
                        .inc();
                    debug!(id = %self.id, %error, "refused signal");
                    let code = match error {
                        SignalError::SdpTooBig(_) | SignalError::CandidateTooBig(_) => {
                            close::TOO_BIG
                        }
                        _ => close::UNSUPPORTED,
                    };
                    return Err(close_frame(code, &error.to_string()));
                }
                let now = Instant::now();
                let (rate, burst) = (app.config.signal_rate, app.config.signal_burst);
                if rate > 0.0 && self.signals.take(rate, burst, now).is_err() {
                    app.metrics.refuse("signal_rate");
                    return Err(close_frame(
                        close::POLICY,
                        &format!("too many signals: over {burst} at once or {rate} a second"),
                    ));
                }
                let (rate, burst) = (app.config.signal_byte_rate, app.config.signal_byte_burst);
                let cost = text.len() as f64;
                if rate > 0.0 && self.signal_bytes.take_n(cost, rate, burst, now).is_err() {
                    app.metrics.refuse("signal_bytes");
                    return Err(close_frame(
                        close::POLICY,
                        &format!("too many signal bytes: over {burst} at once or {rate} a second"),
                    ));
                }
                let message = JsonPeerEvent::Signal {
                    sender: self.id,
                    data,
                }
                .to_string();
                let location = match app.shared.route(self.id, receiver).await {
                    Ok(Some(location)) => location,
                    Ok(None) => {
                        app.metrics.drop_signal("outside_room");
                        return Ok(());
                    }
                    Err(error) => {
                        app.metrics.shared_errors.inc();
                        debug!(id = %self.id, %error, "routing a signal");
                        // Between two clients here in one room, it passes.
                        if !app.local().routes_here(self.id, receiver) {
                            app.metrics.drop_signal("unavailable");
                            return Ok(());
                        }
                        Location::Here
                    }
                };
                match app.deliver(receiver, &location, &message).await {
                    Delivery::Queued => {
                        app.metrics.signals.inc();
                    }
                    // The receiver is being closed for not keeping up.
                    Delivery::Overflow => app.metrics.drop_signal("queue_full"),
                    Delivery::Gone => app.metrics.drop_signal("gone"),
                    Delivery::Unavailable => app.metrics.drop_signal("unavailable"),
                };
                Ok(())
            }
            Ok(PeerRequest::KeepAlive) => Ok(()),
            Err(error) => {
                app.metrics.refuse("bad_message");
                debug!(id = %self.id, %error, "malformed or unknown message");
                Err(close_frame(
                    close::UNSUPPORTED,
                    &format!("malformed or unknown message: {error}"),
                ))
            }
        }
    }

    /// A read failed: over the size limit gets a close with a reason, anything
    /// else (a broken connection) just ends.
    fn on_read_error(&self, error: axum::Error) -> Option<Message> {
        let inner = error.into_inner();
        let too_big = matches!(
            inner.downcast_ref::<tungstenite::Error>(),
            Some(tungstenite::Error::Capacity(_))
        );
        if too_big {
            self.app.metrics.refuse("message_too_big");
            Some(close_frame(
                close::TOO_BIG,
                &format!(
                    "message too big: the limit is {} bytes",
                    self.app.config.max_message
                ),
            ))
        } else {
            debug!(id = %self.id, "read failed: {inner}");
            None
        }
    }

    /// The connection ended. A client with a key whose connection dropped
    /// keeps its place, unannounced, for `--resume-grace`; any other leaves now.
    async fn end(&mut self, dropped: bool) {
        self.ended = true;
        let app = self.app.clone();
        let hold = {
            let mut local = app.local();
            if local.owners.get(&self.id) != Some(&self.connection) {
                // A newer connection with the same key took over.
                return;
            }
            let hold = dropped && self.resumable && !app.shutting_down.load(Ordering::SeqCst);
            if hold {
                local.peers.remove(&self.id);
            }
            hold
        };
        if !hold {
            return leave(&app, self.id, self.connection).await;
        }
        let (id, connection) = (self.id, self.connection);
        tokio::spawn(async move {
            tokio::time::sleep(app.config.resume_grace).await;
            let held = {
                let local = app.local();
                local.owners.get(&id) == Some(&connection) && !local.peers.contains_key(&id)
            };
            if held {
                debug!(%id, "did not come back");
                leave(&app, id, connection).await;
            }
        });
    }
}

/// Takes `id` out of its room and tells the others, unless a newer connection
/// holds it.
async fn leave(app: &App, id: PeerId, connection: u64) {
    {
        let mut local = app.local();
        if local.owners.get(&id) != Some(&connection) {
            return;
        }
        local.owners.remove(&id);
        local.peers.remove(&id);
        local.mirror.left(id);
    }
    match app
        .shared
        .leave(id, Some(&app.instance), now_millis())
        .await
    {
        Ok(others) => {
            let left = JsonPeerEvent::PeerLeft(id).to_string();
            app.deliver_all(&others, &left).await;
        }
        Err(error) => {
            app.metrics.shared_errors.inc();
            tracing::warn!(%id, %error, "leaving the room");
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Already done on the way out, unless the task was cancelled.
        if !self.ended
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (app, id, connection) = (self.app.clone(), self.id, self.connection);
            runtime.spawn(async move { leave(&app, id, connection).await });
        }
        self.app.metrics.clients.dec();
        // The seat goes back when the fields drop, after this.
    }
}
