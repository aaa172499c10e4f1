//! Shared pieces of gamenet's benchmarks. Run them with `cargo xtask bench`.
//!
//! Benchmarks measure; they assert nothing. Each writes a markdown report under
//! `benches/results/`.

use std::time::Duration;

/// Outside an isolated network namespace, runs this benchmark again inside a
/// fresh one and exits with its status; inside, returns.
pub fn ensure_isolated() {
    if std::env::var_os(gamenet_e2e::NETNS_ENV).is_none() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let status = gamenet_e2e::reexec_isolated(&args);
        std::process::exit(status.code().unwrap_or(1));
    }
}

/// Throughput of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    /// Messages delivered.
    pub delivered: u64,
    /// Messages sent.
    pub sent: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// From the first send to the last delivery.
    pub elapsed: Duration,
}

impl Throughput {
    /// Messages delivered per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Payload megabytes (10^6 bytes) delivered per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Fraction of messages lost.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            1.0 - self.delivered as f64 / self.sent as f64
        }
    }
}

/// The median of `runs` by messages per second.
pub fn median(runs: &[Throughput]) -> Throughput {
    let mut runs = runs.to_vec();
    runs.sort_by(|a, b| a.msgs_per_sec().total_cmp(&b.msgs_per_sec()));
    runs.get(runs.len() / 2).copied().unwrap_or_default()
}

/// The fastest of `runs` by messages per second: the least disturbed by stalls
/// from elsewhere on a shared machine.
pub fn best(runs: &[Throughput]) -> Throughput {
    runs.iter()
        .copied()
        .max_by(|a, b| a.msgs_per_sec().total_cmp(&b.msgs_per_sec()))
        .unwrap_or_default()
}
