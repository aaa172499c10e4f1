//! How instances pass signals and room events to each other through Redis:
//! pub/sub (what the server uses) against streams, on a real `redis-server`
//! on loopback, as the instances would use them.
//!
//! - **Latency**: one message at a time, from the sender's command to the
//!   receiver having it (p50 / p99), for an ICE candidate (200 bytes) and an
//!   SDP offer (2,000 bytes).
//! - **Burst**: 20,000 messages sent at once; the time until the receiver has
//!   them all, Redis's CPU time per message, and the memory Redis holds after.
//! - **Hiccup**: the receiver's connection drops for 200 ms while 1,000
//!   messages are sent; how many it gets once back.
//!
//! `cargo xtask bench relay`; writes `benches/results/relay.md`, with why the
//! server uses pub/sub.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gamenet_e2e::redis_server::RedisServer;
use redis::aio::MultiplexedConnection;

/// Why the server uses pub/sub, from what this measures.
const CHOICE: &str = "\n## Why pub/sub\n\n\
One message at a time, pub/sub is as fast or faster (by a few tens of µs, \
more at the tail for SDP-sized messages). A burst drains in about the same \
time either way (which one is ahead varies from run to run), but streams cost \
Redis more CPU per message and keep every message in memory until trimmed (each \
instance would need its own stream, a trim policy and its last read id); \
signaling sends a few messages per peer, never a sustained flood that would \
make the burst column matter. What streams buy is the hiccup column: a receiver that was \
away reads what it missed. The server gets that where it matters without them: \
`PUBLISH` answers how many subscribers heard it, so a sender knows when an \
instance that is alive did not hear a message. A join whose `NewPeer` would be \
lost that way is undone and its client closed with 1013 (it retries); a lost \
signal is covered by the mesh's handshake retry; an instance without its \
subscription is not ready (`/ready` 503) and subscribes again within a third of \
`--instance-ttl`. Messages for a dead instance's clients are not needed: they \
resume elsewhere and are told who is in their room.\n";

const LATENCY_SAMPLES: usize = 5000;
const BURST: usize = 20_000;
const HICCUP: usize = 1000;
const STREAM: &str = "relay:stream";
const CHANNEL: &str = "relay:channel";
/// Streams are trimmed (approximately) to this many entries, as an instance
/// would have to: nothing else ever removes them.
const STREAM_CAP: usize = 10_000;

/// One way of passing messages to an instance.
#[derive(Clone, Copy, PartialEq)]
enum Relay {
    PubSub,
    Streams,
}

impl Relay {
    fn name(self) -> &'static str {
        match self {
            Relay::PubSub => "pub/sub",
            Relay::Streams => "streams (XADD, XREAD BLOCK)",
        }
    }
}

/// The receiving end: what arrives, in order, until told to stop.
struct Receiver {
    messages: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts receiving over a connection of its own; with streams, from the
    /// entry after `after`.
    async fn start(client: &redis::Client, relay: Relay, after: String) -> Self {
        let (tx, messages) = tokio::sync::mpsc::unbounded_channel();
        let task = match relay {
            Relay::PubSub => {
                let mut pubsub = client.get_async_pubsub().await.expect("subscriber");
                pubsub.subscribe(CHANNEL).await.expect("subscribe");
                tokio::spawn(async move {
                    let mut stream = pubsub.into_on_message();
                    while let Some(message) = stream.next().await {
                        if tx.send(message.get_payload_bytes().to_vec()).is_err() {
                            return;
                        }
                    }
                })
            }
            Relay::Streams => {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(
                        &redis::AsyncConnectionConfig::new().set_response_timeout(None),
                    )
                    .await
                    .expect("reader");
                tokio::spawn(async move {
                    let mut last = after;
                    loop {
                        let read: redis::Value = redis::cmd("XREAD")
                            .arg("COUNT")
                            .arg(512)
                            .arg("BLOCK")
                            .arg(0)
                            .arg("STREAMS")
                            .arg(STREAM)
                            .arg(&last)
                            .query_async(&mut conn)
                            .await
                            .expect("XREAD");
                        for (id, payload) in entries(read) {
                            last = id;
                            if tx.send(payload).is_err() {
                                return;
                            }
                        }
                    }
                })
            }
        };
        Self { messages, task }
    }

    async fn next(&mut self) -> Vec<u8> {
        tokio::time::timeout(Duration::from_secs(10), self.messages.recv())
            .await
            .expect("a message within 10 s")
            .expect("receiver running")
    }

    /// Stops receiving (the connection closes).
    fn stop(self) {
        self.task.abort();
    }
}

/// `(id, payload)` of each entry in an `XREAD` reply for one stream.
fn entries(reply: redis::Value) -> Vec<(String, Vec<u8>)> {
    type Reply = Vec<(String, Vec<(String, Vec<(String, Vec<u8>)>)>)>;
    let streams: Reply = redis::from_redis_value(reply).expect("an XREAD reply");
    streams
        .into_iter()
        .flat_map(|(_, entries)| entries)
        .map(|(id, mut fields)| (id, fields.pop().map(|(_, v)| v).unwrap_or_default()))
        .collect()
}

/// Sends one message; with streams, returns its entry id.
async fn send(conn: &mut MultiplexedConnection, relay: Relay, payload: &[u8]) -> String {
    match relay {
        Relay::PubSub => {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(payload)
                .query_async(conn)
                .await
                .expect("PUBLISH");
            String::new()
        }
        Relay::Streams => redis::cmd("XADD")
            .arg(STREAM)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_CAP)
            .arg("*")
            .arg("m")
            .arg(payload)
            .query_async(conn)
            .await
            .expect("XADD"),
    }
}

/// Redis's CPU time so far (user and system), from `/proc`.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime, fields 14 and 15 (11 and 12 after the command).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

async fn used_memory(conn: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:")?.trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// One relay's row: latency at both sizes, the burst, the hiccup.
async fn measure(relay: Relay) -> String {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("sender");
    let mut row = format!("| {} |", relay.name());
    for size in [200, 2000] {
        let payload = vec![b'x'; size];
        let mut receiver = Receiver::start(&client, relay, "$".into()).await;
        // Let the receiver's first read (or subscription) be in place.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
        for _ in 0..LATENCY_SAMPLES {
            let sent = Instant::now();
            send(&mut conn, relay, &payload).await;
            let got = receiver.next().await;
            samples.push(sent.elapsed());
            assert_eq!(got.len(), size);
        }
        receiver.stop();
        samples.sort();
        let _ = write!(
            row,
            " {:.0} / {:.0} |",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
    }
    // The burst, of SDP-sized messages.
    let payload = vec![b'y'; 2000];
    let _: () = redis::cmd("DEL")
        .arg(STREAM)
        .query_async(&mut conn)
        .await
        .expect("DEL");
    let before_memory = used_memory(&mut conn).await;
    let mut receiver = Receiver::start(&client, relay, "$".into()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before_cpu = cpu(redis.pid());
    let started = Instant::now();
    let sends: Vec<_> = (0..BURST)
        .map(|_| {
            let mut conn = conn.clone();
            let payload = payload.clone();
            tokio::spawn(async move { send(&mut conn, relay, &payload).await })
        })
        .collect();
    for _ in 0..BURST {
        receiver.next().await;
    }
    let took = started.elapsed();
    for sent in sends {
        sent.await.expect("sent");
    }
    let redis_cpu = cpu(redis.pid()).saturating_sub(before_cpu);
    receiver.stop();
    let held = used_memory(&mut conn).await.saturating_sub(before_memory);
    let _ = write!(
        row,
        " {:.0} ms | {:.1} | {:.1} |",
        took.as_secs_f64() * 1e3,
        redis_cpu.as_secs_f64() * 1e6 / BURST as f64,
        held as f64 / (1024.0 * 1024.0)
    );
    // The hiccup: the receiver is away while messages are sent.
    let mut receiver = Receiver::start(&client, relay, "$".into()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let last = send(&mut conn, relay, b"before").await;
    assert_eq!(receiver.next().await, b"before");
    receiver.stop();
    for n in 0..HICCUP {
        send(&mut conn, relay, format!("during {n}").as_bytes()).await;
        if n == HICCUP / 2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Back: pub/sub subscribes again from now, streams read on from the
    // last entry seen.
    let mut receiver = Receiver::start(&client, relay, last).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&mut conn, relay, b"after").await;
    let mut got = 0;
    while receiver.next().await != b"after" {
        got += 1;
    }
    receiver.stop();
    let _ = write!(row, " {got} of {HICCUP} |");
    row
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut report = String::from(
        "# Relaying between instances: Redis pub/sub against streams\n\n\
         `cargo xtask bench relay`. A real redis-server on loopback (no persistence), \
         one sender connection and one receiving connection, as one instance sending \
         to another. Latency: one message at a time, from the send to the receiver \
         having it, µs, p50 / p99 of 5,000. Burst: 20,000 SDP-sized (2,000-byte) \
         messages sent at once until the receiver has them all; Redis's CPU per message; \
         memory Redis holds after (streams trimmed to about 10,000 entries). Hiccup: the \
         receiver's connection is gone for 200 ms while 1,000 messages are sent; how many \
         it gets once back.\n\n\
         | relay | ICE candidate (200 B) µs p50 / p99 | SDP (2,000 B) µs p50 / p99 | burst of 20,000 | Redis CPU µs/message | Redis memory after (MiB) | hiccup: received |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for relay in [Relay::PubSub, Relay::Streams] {
        let row = runtime.block_on(measure(relay));
        println!("{row}");
        let _ = writeln!(report, "{row}");
    }
    report.push_str(CHOICE);
    println!("{report}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/relay.md");
    std::fs::write(&path, report).expect("write the report");
    println!("written to {}", path.display());
}
