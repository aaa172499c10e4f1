//! State-sync bandwidth: Gaffer on Games' cube scenario (901 cubes at 60 Hz),
//! gamenet's replication against a naive full snapshot every tick.
//!
//! The cubes come from a seed: most rest, some slide, some tumble. The owner
//! replicates them to one receiver through a seeded link (50 ms each way,
//! 1 % loss); positions are quantised to 1 mm within ±256 m, rotations to
//! smallest-three with 9 bits. After a 2 s warm-up, 10 s are measured:
//! update bytes on the wire, per link and per moving cube, and the CPU time of
//! encoding (the owner's tick) and decoding (the receiver's). The naive
//! baseline serializes every cube's `[f32; 3]` position and `[f32; 4]`
//! rotation with bincode each tick.
//!
//! Then the same replication runs over real WebRTC inside an isolated network
//! namespace (`webrtc.rs`). Writes `benches/results/statesync.md`.
//!
//! `cargo bench -p gamenet_benches --bench statesync -- --in-process` runs the
//! in-process half alone and only prints its table (no namespace needed).

mod plot;
mod scenario;
mod webrtc;

fn main() {
    // `cargo bench` passes `--bench`; `--in-process` is the only flag taken.
    if std::env::args().any(|a| a == "--in-process") {
        println!("{}", scenario::in_process_report());
        return;
    }
    gamenet_benches::ensure_isolated();
    let mut report = scenario::in_process_report();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let results = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/results"));
    report.push_str(&runtime.block_on(webrtc::report(&results.join("statesync.svg"))));
    let path = results.join("statesync.md");
    std::fs::write(path, &report).expect("write the report");
    println!("{report}\nwritten to benches/results/statesync.md and statesync.svg");
}
