//! Headless Chromium (driven by Playwright) against the real server and native
//! peers, each test in its own isolated network namespace.
//!
//! The page is built by `cargo xtask web-test` (the README's test command does it).

use std::time::Duration;

use gamenet_e2e::{PeerProcess, Scenario, isolated, start_server_serving};
use serde_json::json;
use uuid::Uuid;

mod rogue;
use rogue::{OFFER_WITHOUT_MID, Rogue};

const APP: &str = "e2e";

async fn start() -> String {
    start_server_serving("web-test", "pkg/gamenet_web_test_bg.wasm").await
}

/// Runs one scenario of `browser/run.mjs`; returns its lines.
async fn scenario(name: &str) -> Vec<String> {
    Scenario::start("run.mjs", name).finish().await
}

#[test]
fn two_tabs_exchange_a_thousand_messages_each_way() {
    isolated("two_tabs_exchange_a_thousand_messages_each_way", || async {
        start().await;
        let lines = scenario("two-tabs").await;
        assert!(
            lines
                .iter()
                .any(|l| l == "reliable: a->b 1000/1000, b->a 1000/1000")
        );
    });
}

#[test]
fn a_native_peer_and_a_tab_exchange_messages() {
    isolated("a_native_peer_and_a_tab_exchange_messages", || async {
        let url = start().await;
        let _native = PeerProcess::spawn(&format!("{url}/native"), APP, "echo");
        let lines = scenario("native-echo").await;
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("echoed back: reliable 500/500"))
        );
    });
}

#[test]
fn a_closed_tab_is_reported_left_by_the_native_peer() {
    isolated(
        "a_closed_tab_is_reported_left_by_the_native_peer",
        || async {
            let url = start().await;
            let native = PeerProcess::spawn(&format!("{url}/close"), APP, "idle");
            let lines = scenario("tab-close").await;
            let closed: u128 = lines
                .iter()
                .find_map(|l| l.strip_prefix("closed "))
                .and_then(|t| t.parse().ok())
                .expect("the scenario prints when it closed the tab");
            let left = tokio::task::spawn_blocking(move || {
                native.wait_line("left ", Duration::from_secs(10))
            })
            .await
            .expect("wait");
            // left <peer> <unix-ms> <reason>
            let at: u128 = left
                .split_whitespace()
                .nth(2)
                .and_then(|t| t.parse().ok())
                .expect("time");
            let after = at.saturating_sub(closed);
            println!("native peer reported the tab left {after} ms after it closed: {left}");
            let timeout = gamenet::MeshConfig::default().disconnect_timeout;
            assert!(after <= (timeout + Duration::from_secs(1)).as_millis());
        },
    );
}

/// `native` waits for a line starting with `prefix` (off the runtime, which
/// serves the signaling server); both come back.
async fn native_line(native: PeerProcess, prefix: &'static str) -> (PeerProcess, String) {
    tokio::task::spawn_blocking(move || {
        let line = native.wait_line(prefix, Duration::from_secs(30));
        (native, line)
    })
    .await
    .expect("wait")
}

fn uuid_in(line: &str) -> Uuid {
    line.split_whitespace()
        .find_map(|w| w.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("no peer id in {line:?}"))
}

#[test]
fn rogue_signals_cost_a_browser_tab_nothing() {
    isolated("rogue_signals_cost_a_browser_tab_nothing", || async {
        let url = start().await;
        let room = format!("{url}/rogue");
        let native = PeerProcess::spawn(&room, APP, "echo");
        let mut scenario = Scenario::start("run.mjs", "rogue-signals");
        let tab = uuid_in(&scenario.wait_line("tab is ").await);
        let (native, line) = native_line(native, "id ").await;
        let honest = [tab, uuid_in(&line)];

        // Signals that do not parse: refused before the browser's WebRTC
        // stack sees them (where a panic would abort the module).
        let mut garbler = Rogue::join(&room).await;
        let offers = garbler.wait_for("Offer", &honest).await;
        for bad in [
            json!({ "Answer": "garbage" }),
            json!({ "Offer": "garbage" }),
            json!({ "IceCandidate": r#"{"candidate":"candidate:garbage","sdpMid":"0","sdpMLineIndex":0}"# }),
        ] {
            for peer in honest {
                garbler.signal(peer, bad.clone()).await;
            }
        }
        garbler
            .signal(tab, json!({ "Offer": offers[&honest[1]] }))
            .await;
        garbler
            .expect_silence(&honest, Duration::from_secs(2))
            .await;
        let garbler_id = garbler.id;
        drop(garbler);
        let refused = scenario.wait_line("refused ").await;
        assert_eq!(uuid_in(&refused), garbler_id, "the tab names the garbler");
        let (native, line) = native_line(native, "signal-refused ").await;
        assert_eq!(
            uuid_in(&line),
            garbler_id,
            "the native peer names the garbler"
        );

        // Signals that parse but that the browser rejects: that handshake fails.
        let mut rogue = Rogue::join(&room).await;
        rogue.wait_for("Offer", &honest).await;
        for peer in honest {
            rogue
                .signal(peer, json!({ "Offer": OFFER_WITHOUT_MID }))
                .await;
            rogue
                .signal(peer, json!({ "IceCandidate": r#"{"candidate":"candidate:1 1 UDP 1 10.77.0.9 9 typ host","sdpMid":"7","sdpMLineIndex":7}"# }))
                .await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(rogue);
        assert!(
            native
                .try_wait_line("left ", Duration::from_millis(100))
                .is_none(),
            "the native peer kept its link to the tab"
        );
        scenario.tell("rogues gone").await;
        let lines = scenario.finish().await;
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("after the rogues: echoed 300/300"))
        );
    });
}
