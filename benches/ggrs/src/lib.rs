//! The bevy_ggrs half of gamenet's rollback benchmark, in a crate of its own
//! outside the workspace so that it keeps the Bevy that bevy_ggrs 0.22 pins.
//!
//! Its one bench, `benches/rollback.rs`, times bevy_ggrs on the game of
//! `benches/benches/rollback/scenario.rs` (shared with the gamenet half) and
//! writes the figures to `benches/results/rollback_bevy_ggrs.json`; the
//! gamenet half, `cargo bench -p gamenet_benches --bench rollback`, reads them
//! and writes the one table of both. `cargo xtask bench rollback` runs the two
//! in turn.
