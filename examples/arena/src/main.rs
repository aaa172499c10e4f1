//! Arena from the command line: in a window, or with `--headless` without
//! one (scripted inputs, a status line every second with the confirmed frame,
//! the checksum of the rolled-back state, the ball and the score; it stops
//! after `--frames` if given).
//!
//! ```text
//! cargo run -p arena -- --room NAME [--server ws://localhost:3000] [--players 2] [--headless]
//! ```
//!
//! Built for `wasm32-unknown-unknown`, the same game runs in a canvas; the
//! room comes from the page's URL (`cargo xtask serve` builds and serves it).

#[cfg(not(target_arch = "wasm32"))]
mod native;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> bevy_app::AppExit {
    native::main()
}

/// In the browser: room and server from the page's URL (see `arena::web`).
#[cfg(target_arch = "wasm32")]
fn main() {
    arena::web::start();
}
