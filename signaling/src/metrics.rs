//! The server's Prometheus metrics (OpenMetrics text at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label naming why something happened.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why.
    pub reason: &'static str,
}

/// A label naming a kind of room.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// `open`, `quick` or `lobby`.
    pub kind: &'static str,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// WebSocket clients connected now.
    pub clients: Gauge,
    /// WebSocket connections accepted in all.
    pub connections: Counter,
    /// Rooms with at least one peer, set when scraped.
    pub rooms: Gauge,
    /// Lobbies, set when scraped.
    pub lobbies: Gauge,
    /// Lobbies created.
    pub lobbies_created: Counter,
    /// Peers that joined a room, by kind of room.
    pub joins: Family<Kind, Counter>,
    /// Quick-match groups completed.
    pub matches: Counter,
    /// Signals passed between peers.
    pub signals: Counter,
    /// Signals dropped, by reason.
    pub signals_dropped: Family<Reason, Counter>,
    /// Signals refused for what they carry (not an offer, answer or ICE
    /// candidate, or too big), by reason; their sender is closed.
    pub signals_refused: Family<Reason, Counter>,
    /// Bytes queued for WebSocket clients now, all clients together.
    pub queued_bytes: Gauge,
    /// TCP connections open now (HTTP and WebSocket).
    pub tcp_connections: Gauge,
    /// Connections and requests refused or closed by a limit or check, by reason.
    pub refused: Family<Reason, Counter>,
    /// How long quick-match players waited for their group to fill.
    pub matchmaking_seconds: Histogram,
    /// STUN Binding requests answered.
    pub stun_requests: Counter,
    /// Clients that reconnected with their key into the room they held.
    pub resumes: Counter,
    /// Messages for clients of other instances handed to Redis.
    pub relayed_out: Counter,
    /// Messages from other instances, through Redis, for clients here.
    pub relayed_in: Counter,
    /// Operations on the shared state (Redis) that failed.
    pub shared_errors: Counter,
    /// Times this instance wrote back what it holds (Redis lost its data or
    /// was out of reach).
    pub write_backs: Counter,
    /// Clients connected across all instances (with Redis; else this
    /// instance's), set when scraped.
    pub clients_all: Gauge,
    /// Peers in rooms across all instances, set when scraped.
    pub peers: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gamenet_signaling");
        let metrics = Self {
            clients: Gauge::default(),
            connections: Counter::default(),
            rooms: Gauge::default(),
            lobbies: Gauge::default(),
            lobbies_created: Counter::default(),
            joins: Family::default(),
            matches: Counter::default(),
            signals: Counter::default(),
            signals_dropped: Family::default(),
            signals_refused: Family::default(),
            queued_bytes: Gauge::default(),
            tcp_connections: Gauge::default(),
            refused: Family::default(),
            // 1 ms to ~65 s.
            matchmaking_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 9)),
            stun_requests: Counter::default(),
            resumes: Counter::default(),
            relayed_out: Counter::default(),
            relayed_in: Counter::default(),
            shared_errors: Counter::default(),
            write_backs: Counter::default(),
            clients_all: Gauge::default(),
            peers: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "clients",
            "WebSocket clients connected now",
            metrics.clients.clone(),
        );
        registry.register(
            "connections",
            "WebSocket connections accepted",
            metrics.connections.clone(),
        );
        registry.register(
            "rooms",
            "Rooms with at least one peer",
            metrics.rooms.clone(),
        );
        registry.register("lobbies", "Lobbies, empty or not", metrics.lobbies.clone());
        registry.register(
            "lobbies_created",
            "Lobbies created",
            metrics.lobbies_created.clone(),
        );
        registry.register("joins", "Peers that joined a room", metrics.joins.clone());
        registry.register(
            "matches",
            "Quick-match groups completed",
            metrics.matches.clone(),
        );
        registry.register(
            "signals",
            "Signals passed between peers",
            metrics.signals.clone(),
        );
        registry.register(
            "signals_dropped",
            "Signals dropped, by reason",
            metrics.signals_dropped.clone(),
        );
        registry.register(
            "signals_refused",
            "Signals refused for what they carry (their sender is closed), by reason",
            metrics.signals_refused.clone(),
        );
        registry.register(
            "queued_bytes",
            "Bytes queued for WebSocket clients now",
            metrics.queued_bytes.clone(),
        );
        registry.register(
            "tcp_connections",
            "TCP connections open now, HTTP and WebSocket",
            metrics.tcp_connections.clone(),
        );
        registry.register(
            "refused",
            "Connections and requests refused or closed by a limit or check, by reason",
            metrics.refused.clone(),
        );
        registry.register(
            "matchmaking_seconds",
            "Time quick-match players waited for their group to fill",
            metrics.matchmaking_seconds.clone(),
        );
        registry.register(
            "stun_requests",
            "STUN Binding requests answered",
            metrics.stun_requests.clone(),
        );
        registry.register(
            "resumes",
            "Clients that reconnected with their key into the room they held",
            metrics.resumes.clone(),
        );
        registry.register(
            "relayed_out",
            "Messages for clients of other instances handed to Redis",
            metrics.relayed_out.clone(),
        );
        registry.register(
            "relayed_in",
            "Messages from other instances for clients here",
            metrics.relayed_in.clone(),
        );
        registry.register(
            "shared_errors",
            "Operations on the shared state (Redis) that failed",
            metrics.shared_errors.clone(),
        );
        registry.register(
            "write_backs",
            "Times this instance wrote back what it holds into Redis",
            metrics.write_backs.clone(),
        );
        registry.register(
            "clients_all",
            "WebSocket clients connected across all instances",
            metrics.clients_all.clone(),
        );
        registry.register(
            "peers",
            "Peers in rooms across all instances",
            metrics.peers.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// Counts a refusal.
    pub fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    /// Counts a dropped signal.
    pub fn drop_signal(&self, reason: &'static str) {
        self.signals_dropped.get_or_create(&Reason { reason }).inc();
    }

    /// The metrics in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
