//! Helpers shared by the server's tests: a real server on loopback and clients
//! over real WebSockets and HTTP.
#![allow(dead_code)]

pub mod load_balancer;
pub mod redis_server;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use gamenet_signaling::{Config, Server};
use matchbox_protocol::{JsonPeerEvent, JsonPeerRequest, PeerId};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn start(
    config: Config,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    start_on("127.0.0.1:0".parse().unwrap(), config).await
}

/// Starts a server listening on `listen`.
pub async fn start_on(
    listen: SocketAddr,
    config: Config,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let config = Config { listen, ..config };
    let server = Server::start(&config).await.unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop, task)
}

pub async fn next_event(ws: &mut Ws) -> JsonPeerEvent {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no event within 5 s")
            .expect("stream ended")
            .expect("websocket error");
        if let Message::Text(text) = message {
            return text.parse().unwrap();
        }
    }
}

pub async fn connect(addr: SocketAddr, path: &str) -> (Ws, PeerId) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/{path}"))
        .await
        .unwrap();
    match next_event(&mut ws).await {
        JsonPeerEvent::IdAssigned(id) => (ws, id),
        other => panic!("expected an id, got {other:?}"),
    }
}

/// A plain HTTP/1.1 GET over a fresh connection; the whole response as text.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    http_get_with(addr, path, "").await
}

/// A GET with extra header lines (each ending in `\r\n`).
pub async fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    response
}

/// The data of an offer signal carrying `sdp`, as `matchbox_socket` sends it.
pub fn offer(sdp: &str) -> serde_json::Value {
    serde_json::json!({ "Offer": sdp })
}

/// Sends an offer carrying `sdp` to `to`.
pub async fn signal(ws: &mut Ws, to: PeerId, sdp: &str) {
    send_signal(ws, to, offer(sdp)).await;
}

/// Sends a signal with any `data` to `to`.
pub async fn send_signal(ws: &mut Ws, to: PeerId, data: serde_json::Value) {
    let request = JsonPeerRequest::Signal { receiver: to, data };
    ws.send(Message::Text(request.to_string().into()))
        .await
        .unwrap();
}

/// Any HTTP/1.1 request over a fresh connection: status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    http_over(
        TcpStream::connect(addr).await.unwrap(),
        method,
        path,
        headers,
        body,
    )
    .await
}

/// A TCP connection to `addr` from `local` (any 127.0.0.0/8 address, or ::1).
pub async fn tcp_from(local: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = match local {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .unwrap();
    socket
        .bind(SocketAddr::new(local, 0))
        .expect("bind a loopback address");
    socket.connect(addr).await.unwrap()
}

/// Any HTTP/1.1 request from `local` over a fresh connection: status and body.
pub async fn http_from(
    local: [u8; 4],
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let tcp = tcp_from(IpAddr::from(local), addr).await;
    http_over(tcp, method, path, headers, body).await
}

/// A JSON API request from `local`: status and parsed body.
pub async fn api_from(
    local: [u8; 4],
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, body) = http_from(local, addr, method, path, headers, body).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, value)
}

async fn http_over(
    mut tcp: TcpStream,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A JSON API request: status and parsed body.
pub async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, body) = http(addr, method, path, headers, body).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, value)
}

/// Opens a WebSocket from `local` (any 127.0.0.0/8 address) to `path`.
pub async fn try_connect_from(
    local: [u8; 4],
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((local, 0)))
        .expect("bind a loopback address");
    let tcp = socket.connect(addr).await.unwrap();
    let mut request = format!("ws://{addr}/{path}").into_client_request().unwrap();
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes());
        request
            .headers_mut()
            .insert(name.unwrap(), value.parse().unwrap());
    }
    tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
        .await
        .map(|(ws, _)| ws)
}

/// Opens a WebSocket from `local` and reads its id.
pub async fn connect_from(local: [u8; 4], addr: SocketAddr, path: &str) -> (Ws, PeerId) {
    let mut ws = try_connect_from(local, addr, path, &[]).await.unwrap();
    match next_event(&mut ws).await {
        JsonPeerEvent::IdAssigned(id) => (ws, id),
        other => panic!("expected an id, got {other:?}"),
    }
}

/// The HTTP status and body of a refused WebSocket upgrade.
pub fn refusal(result: Result<Ws, tokio_tungstenite::tungstenite::Error>) -> (u16, String) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8(response.body().clone().unwrap_or_default()).unwrap(),
        ),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade was accepted"),
    }
}

/// Reads until the server's close frame: its code and reason.
pub async fn expect_close(ws: &mut Ws) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no close within 5 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Some(Ok(Message::Text(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// `from` signals `to`, which receives it: the pair is still served.
pub async fn signal_passes(from: &mut Ws, from_id: PeerId, to: &mut Ws, to_id: PeerId, tag: &str) {
    signal(from, to_id, tag).await;
    assert_eq!(
        next_event(to).await,
        JsonPeerEvent::Signal {
            sender: from_id,
            data: offer(tag)
        },
        "{tag}"
    );
}

/// A WebSocket client from `local` with a 4 KiB receive buffer, which the
/// test can leave unread so that the server's writes to it stall: its id,
/// the only message it reads.
pub async fn slow_reader(local: [u8; 4], addr: SocketAddr, path: &str) -> (Ws, PeerId) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::from((local, 0))).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}/{path}"),
        MaybeTlsStream::Plain(tcp),
        Some(config),
    )
    .await
    .unwrap();
    match next_event(&mut ws).await {
        JsonPeerEvent::IdAssigned(id) => (ws, id),
        other => panic!("expected an id, got {other:?}"),
    }
}

/// Polls `/metrics` until `sample` satisfies `ok`, for up to `within`; its
/// last value.
pub async fn wait_for_metric(
    addr: SocketAddr,
    sample: &str,
    within: Duration,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let value = metric(addr, sample).await;
        if ok(value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sample} is still {value} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one sample line of `/metrics`, such as
/// `gamenet_signaling_refused_total{reason="idle"}`.
pub async fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let (status, text) = http(addr, "GET", "/metrics", "", "").await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
