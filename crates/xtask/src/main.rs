//! `cargo xtask <task>`: the project's set-up, build, test, serve and bench tasks.
//!
//! - `setup`: installs what the tests need and is missing: the wasm32 target,
//!   wasm-bindgen-cli at the version in Cargo.lock, Debian's chromium, coturn
//!   (the NAT test's TURN server), iproute2 and iptables, and the npm packages
//!   of the browser tests.
//! - `web-test`: builds the browser test page into `target/web-test`.
//! - `web-game`: builds the example game for the web (profile `web`: release,
//!   size-optimised) into `target/web-game`, when missing or stale, installing
//!   the wasm32 target and wasm-bindgen-cli first if missing.
//! - `layout`: checks that no source file holds more than 700 lines before its
//!   tests and that no two files of a crate import each other (round a loop).
//! - `test`: `setup`, then formatting, the layout check, clippy (native and wasm32), rustdoc, the web
//!   pages, and every test of the workspace.
//! - `serve`: builds the web game and runs the signaling server serving it on
//!   `0.0.0.0:3000` (flags after `--` go to the server).
//! - `bench [name]`: runs the benchmarks (`transport`, in an isolated network
//!   namespace, `rollback`, whose bevy_ggrs half, the crate `benches/ggrs`
//!   outside the workspace, runs first, `statesync` and `signaling`, which
//!   installs matchbox_server 0.15 under `target/bench-tools` to compare with),
//!   or the one named; reports go to `benches/results/`.
//! - `fuzz [target|all|smoke] [seconds]`: builds the cargo-fuzz targets of
//!   `fuzz/` (stable toolchain, `RUSTC_BOOTSTRAP=1`; installs cargo-fuzz when
//!   missing) and runs the one named, all of them (the default) or the smoke
//!   set for 60 seconds each (or as many as given), one after another, seeded
//!   from `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`; fails on
//!   a crash, which libFuzzer saves under `fuzz/artifacts/<target>/`. The test
//!   suite runs the smoke set for a few seconds each.
//! - `soak [minutes]`: four headless players for ten minutes (or as many as
//!   given) with 5 % UDP loss and a 2 s outage every minute, in an isolated
//!   network namespace: no desync, in step at the end, resident memory per
//!   minute and not growing by more than 10 % after the first. The test suite
//!   runs a one-minute version.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod layout;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Bevy 0.20.1's render stack (the `bevy` crate, `wesl`, `wgsl-parse`) declares
/// rust-version 1.97.1 but builds on the workspace's toolchain (1.95); every
/// build of the game's window passes this flag.
const IGNORE_RUST_VERSION: &str = "--ignore-rust-version";
const WASM_CRATES: [&str; 5] = [
    "gamenet_core",
    "gamenet",
    "bevy_gamenet",
    "gamenet_web_test",
    "arena",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    let started = Instant::now();
    match args.first().map(String::as_str) {
        Some("setup") => setup(&root)?,
        Some("web-test") => web_test(&root, false)?,
        Some("web-game") => {
            setup_web(&root)?;
            web_game(&root)?
        }
        // The test summary is the last line printed.
        Some("test") => return test(&root, started),
        Some("serve") => serve(&root, &args[1..])?,
        Some("bench") => bench(&root, &args[1..])?,
        Some("layout") => layout::check(&root)?,
        Some("soak") => soak(&root, &args[1..])?,
        Some("fuzz") => fuzz(&root, &args[1..])?,
        _ => {
            bail!("usage: cargo xtask <setup|web-test|web-game|layout|test|serve|bench|soak|fuzz>")
        }
    }
    eprintln!("xtask: done in {:.0?}", started.elapsed());
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command, failing with its name when it fails.
fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Set by `cargo xtask test`: its builds are made once, so they skip
/// incremental compilation, whose caches would take several GiB of disk.
static ONE_SHOT: AtomicBool = AtomicBool::new(false);

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    if ONE_SHOT.load(Ordering::Relaxed) {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    cmd
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The wasm-bindgen version Cargo.lock pins; the CLI must match it exactly.
fn wasm_bindgen_version(root: &Path) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("read Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_owned());
        }
    }
    bail!("wasm-bindgen is not in Cargo.lock")
}

/// What building for the web needs: the wasm32 target and wasm-bindgen-cli.
fn setup_web(root: &Path) -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]));
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    let version = wasm_bindgen_version(root)?;
    let have = output(Command::new("wasm-bindgen").arg("--version"));
    if !have.split_whitespace().any(|w| w == version) {
        // Not --locked: the CLI's own lock file can name a yanked or lagging patch.
        run(cargo().args(["install", "wasm-bindgen-cli", "--version", &version]))?;
    }
    Ok(())
}

fn setup(root: &Path) -> Result<()> {
    setup_web(root)?;
    let mut packages = Vec::new();
    for (program, package) in [
        ("chromium", "chromium"),
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("iptables", "iptables"),
        ("turnserver", "coturn"),
        ("redis-server", "redis-server"),
        ("nginx", "nginx"),
        ("nsenter", "util-linux"),
        ("node", "nodejs"),
        ("npm", "npm"),
    ] {
        if !found(program) {
            packages.push(package);
        }
    }
    if !packages.is_empty() {
        let sudo = if output(Command::new("id").arg("-u")).trim() == "0" {
            vec![]
        } else {
            vec!["sudo"]
        };
        let apt = |args: &[&str]| {
            let mut cmd = Command::new(sudo.first().copied().unwrap_or("apt-get"));
            if !sudo.is_empty() {
                cmd.arg("apt-get");
            }
            cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            cmd
        };
        run(&mut apt(&["update", "-qq"]))?;
        let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
        run(install.args(&packages))?;
    }
    setup_fuzz()?;
    let browser = root.join("tests/browser");
    if !browser.join("node_modules/playwright-core").exists() {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&browser))?;
    }
    Ok(())
}

/// Builds the browser test page (wasm + bindings + HTML) into `target/web-test`.
fn web_test(root: &Path, release: bool) -> Result<()> {
    let mut build = cargo();
    build.args([
        "build",
        "--package",
        "gamenet_web_test",
        "--target",
        WASM_TARGET,
    ]);
    if release {
        build.arg("--release");
    }
    run(&mut build)?;
    let profile = if release { "release" } else { "debug" };
    let wasm = root.join(format!(
        "target/{WASM_TARGET}/{profile}/gamenet_web_test.wasm"
    ));
    let out = root.join("target/web-test");
    std::fs::create_dir_all(&out)?;
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(out.join("pkg"))
        .arg(&wasm))?;
    std::fs::copy(
        root.join("tests/web/www/index.html"),
        out.join("index.html"),
    )?;
    Ok(())
}

/// Builds the example game for the browser into `target/web-game`: cargo
/// rebuilds the wasm only when a source changed, and the bindings are made
/// again only when the wasm is newer than them.
fn web_game(root: &Path) -> Result<()> {
    run(cargo().args([
        "build",
        IGNORE_RUST_VERSION,
        "--package",
        "arena",
        "--bin",
        "arena",
        "--target",
        WASM_TARGET,
        "--profile",
        "web",
    ]))?;
    let wasm = root.join(format!("target/{WASM_TARGET}/web/arena.wasm"));
    let out = root.join("target/web-game");
    let bound = out.join("pkg/arena_bg.wasm");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&bound) < modified(&wasm) {
        std::fs::create_dir_all(&out)?;
        run(Command::new("wasm-bindgen")
            .args([
                "--target",
                "web",
                "--no-typescript",
                // Function names are a third of the file; panics still say where.
                "--remove-name-section",
                "--remove-producers-section",
                "--out-dir",
            ])
            .arg(out.join("pkg"))
            .arg(&wasm))?;
    }
    std::fs::copy(
        root.join("examples/arena/www/index.html"),
        out.join("index.html"),
    )?;
    let gz = out.join("pkg/arena_bg.wasm.gz");
    if modified(&gz) < modified(&bound) {
        // Served as is to browsers that accept gzip (the server looks for `.gz`).
        run(Command::new("gzip").args(["-9", "-k", "-f"]).arg(&bound))?;
    }
    let mib =
        |p: &Path| -> Result<f64> { Ok(std::fs::metadata(p)?.len() as f64 / (1 << 20) as f64) };
    eprintln!(
        "xtask: web game: {:.1} MiB of wasm, {:.1} MiB gzipped",
        mib(&bound)?,
        mib(&gz)?
    );
    Ok(())
}

fn test(root: &Path, started: Instant) -> Result<()> {
    ONE_SHOT.store(true, Ordering::Relaxed);
    disk_report(root, "start");
    timed("setup", || setup(root))?;
    timed("fmt", || {
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        // The crates outside the workspace.
        for krate in ["benches/ggrs", "fuzz"] {
            run(cargo()
                .args(["fmt", "--manifest-path"])
                .arg(root.join(krate).join("Cargo.toml"))
                .args(["--", "--check"]))?;
        }
        Ok(())
    })?;
    timed("layout", || layout::check(root))?;
    timed("clippy", || {
        run(cargo().args([
            "clippy",
            IGNORE_RUST_VERSION,
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    timed("clippy wasm32", || {
        let mut wasm_clippy = cargo();
        wasm_clippy.args(["clippy", IGNORE_RUST_VERSION, "--target", WASM_TARGET]);
        for krate in WASM_CRATES {
            wasm_clippy.args(["--package", krate]);
        }
        run(wasm_clippy.args(["--", "-D", "warnings"]))
    })?;
    timed("doc", || {
        run(cargo()
            .args(["doc", IGNORE_RUST_VERSION, "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"))
    })?;
    timed("web-test", || web_test(root, false))?;
    timed("web-game", || web_game(root))?;
    timed("fuzz smoke", || {
        let smoke: Vec<&FuzzTarget> = FUZZ_TARGETS.iter().filter(|t| t.smoke).collect();
        run_fuzz(root, &smoke, FUZZ_SMOKE_SECONDS)
    })?;
    // The fuzz build is not needed again in this run; its working corpus is kept.
    remove_fuzz_builds(root)?;
    disk_report(root, "before the tests");
    // The example game's tests and the end-to-end tests run it headless: its
    // window (Bevy's render stack, arena's only default feature) is not built
    // for them. Clippy above and the web build check the window's code.
    let mut tally = Tally::default();
    let tested = timed("tests", || {
        cargo_test(
            &["--workspace", "--no-default-features", "--no-fail-fast"],
            &mut tally,
        )
    });
    disk_report(root, "after the tests");
    eprintln!("xtask: test took {:.0?}", started.elapsed());
    println!(
        "tests: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    tested
}

/// Removes the fuzz targets' builds under `fuzz/target`, keeping the
/// working corpus.
fn remove_fuzz_builds(root: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root.join("fuzz/target")) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name() != "corpus" && entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Says how much disk the build directories take and how much is free, so
/// that a run that fills the disk shows where it went.
fn disk_report(root: &Path, when: &str) {
    let du = output(
        Command::new("du")
            .args(["-sh", "--", "target", "fuzz/target"])
            .current_dir(root),
    );
    let df = output(Command::new("df").args(["-h", "--output=avail"]).arg(root));
    let sizes: Vec<&str> = du.lines().collect();
    let free = df.lines().nth(1).unwrap_or("?").trim();
    eprintln!("xtask: disk {when}: {}; {free} free", sizes.join(", "));
}

/// Runs `f` and says how long it took.
fn timed<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    let result = f();
    eprintln!("xtask: {name} took {:.0?}", start.elapsed());
    result
}

/// Test counts over several `cargo test` runs.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Runs `cargo test` with `args`, passing its output through and counting
/// its tests into `tally`.
fn cargo_test(args: &[&str], tally: &mut Tally) -> Result<()> {
    let mut cmd = cargo();
    cmd.arg("test").args(args).env("RUST_BACKTRACE", "1");
    eprintln!("xtask: {cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("run cargo test")?;
    let stdout = child.stdout.take().context("cargo test output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        // End-to-end tests re-run themselves one at a time inside a network
        // namespace; those inner runs filter out the rest and are not counted twice.
        if line.starts_with("test result: ") && line.contains(" 0 filtered out;") {
            tally.passed += summary_field(&line, "passed");
            tally.failed += summary_field(&line, "failed");
            tally.ignored += summary_field(&line, "ignored");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo test failed: {status}");
    }
    Ok(())
}

/// The number before `word` in a libtest summary line such as
/// `test result: ok. 3 passed; 0 failed; 1 ignored; ...`.
fn summary_field(line: &str, word: &str) -> u64 {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| w[1] == word)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or(0)
}

fn serve(root: &Path, extra: &[String]) -> Result<()> {
    let extra = extra.strip_prefix(&["--".to_owned()]).unwrap_or(extra);
    setup_web(root)?;
    web_game(root)?;
    let web_dir = root.join("target/web-game");
    run(cargo()
        .args([
            "run",
            "--release",
            "--package",
            "gamenet_signaling",
            "--bin",
            "gamenet-signaling",
            "--",
            "--web-dir",
        ])
        .arg(web_dir)
        .args(extra))
}

/// The long soak run (ten minutes unless given): four headless players
/// through loss and an outage a minute; the test suite runs one minute of it.
fn soak(root: &Path, extra: &[String]) -> Result<()> {
    setup(root)?;
    let minutes = match extra.first() {
        Some(m) => m
            .parse::<u64>()
            .context("usage: cargo xtask soak [minutes]")?,
        None => 10,
    };
    run(cargo()
        .args(["test", "--package", "gamenet_e2e", "--test", "soak", "--"])
        .args(["--nocapture", "--test-threads", "1"])
        .env("GAMENET_SOAK_MINUTES", minutes.to_string()))
}

fn bench(root: &Path, extra: &[String]) -> Result<()> {
    let names = ["transport", "rollback", "statesync", "signaling", "relay"];
    let chosen: Vec<&str> = match extra.first().map(String::as_str) {
        Some(name) if names.contains(&name) => vec![name],
        Some(other) => bail!("unknown benchmark {other}; there are {names:?}"),
        None => names.to_vec(),
    };
    for name in chosen {
        let mut bench = cargo();
        bench.args(["bench", "--package", "gamenet_benches", "--bench", name]);
        if name == "rollback" {
            // The bevy_ggrs half first: a crate of its own on the Bevy that
            // bevy_ggrs pins, writing the figures the gamenet half reads. In
            // the workspace's target directory, to share what builds alike.
            let mut theirs = cargo();
            theirs
                .args(["bench", "--locked", "--manifest-path"])
                .arg(root.join("benches/ggrs/Cargo.toml"));
            if std::env::var_os("CARGO_TARGET_DIR").is_none() {
                theirs.env("CARGO_TARGET_DIR", root.join("target"));
            }
            run(&mut theirs)?;
        }
        if name == "signaling" {
            // Both servers as release-built processes: ours from the workspace,
            // matchbox_server 0.15 from crates.io (bench-only, under target/).
            run(cargo().args(["build", "--release", "--package", "gamenet_signaling"]))?;
            let tools = root.join("target/bench-tools");
            let matchbox = tools.join("bin/matchbox_server");
            if !matchbox.exists() {
                run(cargo()
                    .args([
                        "install",
                        "matchbox_server",
                        "--version",
                        "=0.15.0",
                        "--locked",
                    ])
                    .arg("--root")
                    .arg(&tools))?;
            }
            bench
                .env(
                    "GAMENET_SIGNALING_BIN",
                    root.join("target/release/gamenet-signaling"),
                )
                .env("MATCHBOX_SERVER_BIN", matchbox);
        }
        run(&mut bench)?;
    }
    Ok(())
}

/// A cargo-fuzz target of `fuzz/`.
struct FuzzTarget {
    /// Its binary's name.
    name: &'static str,
    /// The cargo feature of the fuzz crate it needs, if any.
    feature: Option<&'static str>,
    /// Whether the test suite's smoke runs it: the targets whose instrumented
    /// build takes a minute or two. The others pull in the signaling server,
    /// the WebRTC stack or Bevy, whose instrumented builds take many minutes
    /// on a small machine; `cargo xtask fuzz` runs them.
    smoke: bool,
}

/// Every target of `fuzz/` (see its `src/lib.rs`).
const FUZZ_TARGETS: [FuzzTarget; 14] = [
    fuzz_target("mesh_wire", None, true),
    fuzz_target("mesh_peer", None, true),
    fuzz_target("rollback_wire", None, true),
    fuzz_target("rollback_session", None, true),
    fuzz_target("replication_wire", None, true),
    fuzz_target("replication", None, true),
    fuzz_target("bits_quantize", None, true),
    fuzz_target("signaling_ws", Some("signaling"), false),
    fuzz_target("signaling_api", Some("signaling"), false),
    fuzz_target("stun", Some("signaling"), false),
    fuzz_target("token", Some("signaling"), false),
    fuzz_target("ice_json", Some("net"), false),
    fuzz_target("bevy_snapshot", Some("bevy"), false),
    fuzz_target("bevy_snapshot_decode", Some("bevy"), false),
];

const fn fuzz_target(name: &'static str, feature: Option<&'static str>, smoke: bool) -> FuzzTarget {
    FuzzTarget {
        name,
        feature,
        smoke,
    }
}

/// Seconds each smoke target runs in the test suite.
const FUZZ_SMOKE_SECONDS: u64 = 15;

/// Installs cargo-fuzz when missing.
fn setup_fuzz() -> Result<()> {
    let have = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        run(cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }
    Ok(())
}

/// `cargo xtask fuzz [target|all|smoke] [seconds]`.
fn fuzz(root: &Path, extra: &[String]) -> Result<()> {
    let usage = || {
        let names: Vec<&str> = FUZZ_TARGETS.iter().map(|t| t.name).collect();
        format!("usage: cargo xtask fuzz [target|all|smoke] [seconds]; the targets are {names:?}")
    };
    let targets: Vec<&FuzzTarget> = match extra.first().map(String::as_str) {
        None | Some("all") => FUZZ_TARGETS.iter().collect(),
        Some("smoke") => FUZZ_TARGETS.iter().filter(|t| t.smoke).collect(),
        Some(name) => match FUZZ_TARGETS.iter().find(|t| t.name == name) {
            Some(t) => vec![t],
            None => bail!("unknown fuzz target {name}; {}", usage()),
        },
    };
    let seconds = match extra.get(1) {
        Some(s) => s.parse::<u64>().with_context(usage)?,
        None => 60,
    };
    run_fuzz(root, &targets, seconds)
}

/// A cargo-fuzz command in `fuzz/`: the stable toolchain with
/// `RUSTC_BOOTSTRAP=1`, since cargo-fuzz passes nightly-only `-Z` flags for
/// the coverage instrumentation; no sanitizer (the workspace forbids unsafe
/// code: the targets hunt panics, with overflow checks and debug assertions
/// on, and hangs).
fn cargo_fuzz(root: &Path, subcommand: &str, features: &[&str]) -> Command {
    let mut cmd = cargo();
    cmd.args(["fuzz", subcommand, "--sanitizer", "none"])
        .current_dir(root.join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1");
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    cmd
}

/// Builds `targets` and runs each for `seconds`, one at a time; fails on
/// the first crash.
fn run_fuzz(root: &Path, targets: &[&FuzzTarget], seconds: u64) -> Result<()> {
    setup_fuzz()?;
    let mut features: Vec<&str> = targets.iter().filter_map(|t| t.feature).collect();
    features.sort_unstable();
    features.dedup();
    let mut build = cargo_fuzz(root, "build", &features);
    if let [one] = targets {
        build.arg(one.name);
    }
    timed("fuzz build", || run(&mut build))?;
    for target in targets {
        let dir = |d: &str| root.join("fuzz").join(d).join(target.name);
        // New inputs go to a working corpus under target/, not the committed one.
        let work = root.join("fuzz/target/corpus").join(target.name);
        std::fs::create_dir_all(&work)?;
        // The build's features, so that nothing is built again.
        let mut cmd = cargo_fuzz(root, "run", &features);
        cmd.arg(target.name).arg(&work);
        for seeds in [dir("corpus"), dir("regressions")] {
            if seeds.is_dir() {
                cmd.arg(seeds);
            }
        }
        cmd.args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
        ]);
        run_fuzz_target(target.name, &mut cmd)?;
    }
    Ok(())
}

/// Runs one target, passing libFuzzer's output through but its progress
/// lines, and says how many inputs it ran.
fn run_fuzz_target(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run fuzz target {name}"))?;
    let stderr = child.stderr.take().context("fuzz target output")?;
    let mut runs = String::from("?");
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        if let Some(n) = line
            .strip_prefix("stat::number_of_executed_units:")
            .map(str::trim)
        {
            runs = n.to_owned();
        }
        // Progress lines start with `#<count>`; the rest (crashes with their
        // stacks, the final stats) passes through.
        if !line.starts_with('#') && !line.starts_with("INFO:") {
            eprintln!("{line}");
        }
    }
    let status = child.wait()?;
    eprintln!(
        "xtask: fuzz {name}: {runs} inputs in {:.0?}",
        start.elapsed()
    );
    if !status.success() {
        bail!("fuzz target {name} failed ({status}): the input is under fuzz/artifacts/{name}/");
    }
    Ok(())
}
