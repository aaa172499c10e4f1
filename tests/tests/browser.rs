//! Headless Chromium (driven by Playwright) against the real server and native
//! peers, each test in its own isolated network namespace.
//!
//! The page is built by `cargo xtask web-test` (the README's test command does it).

use std::time::Duration;

use gamenet_e2e::{PeerProcess, Scenario, isolated, start_server_serving};

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
