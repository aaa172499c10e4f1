//! The in-process scenario: the cubes, their motion and quantisation, and
//! the replication between two `Replicator`s over a seeded link, against
//! the naive snapshot.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use gamenet_core::conditioner::SplitMix;
use gamenet_core::quantize::{Position, SmallestThree};
use gamenet_core::replication::{NetId, ReplicationConfig, Replicator, Schema};
use gamenet_core::{Channel, ConditionerConfig, LinkConditioner, PeerId};

/// Cubes in the scenario (one scale of it).
pub const CUBES: usize = 901;
/// Ticks per second.
pub const HZ: u32 = 60;

/// How a cube moves.
#[derive(Clone, Copy)]
pub enum Motion {
    /// Never moves.
    Resting,
    /// Slides along the ground at a constant velocity.
    Sliding { v: [f32; 2] },
    /// Slides, bounces and spins.
    Tumbling { v: [f32; 3], spin: f32 },
}

/// One cube: where it is, how it is turned, how it moves.
#[derive(Clone, Copy)]
pub struct Cube {
    /// Position in metres.
    pub pos: [f32; 3],
    /// Rotation as a unit quaternion `[x, y, z, w]`.
    pub rot: [f32; 4],
    /// How it moves.
    pub motion: Motion,
}

/// The [`CUBES`] cubes of `seed`: 70 % resting, 20 % sliding, 10 % tumbling.
pub fn scenario(seed: u64) -> Vec<Cube> {
    let mut rng = SplitMix::new(seed);
    (0..CUBES)
        .map(|i| {
            let x = (i % 30) as f32 * 2.0 - 30.0;
            let y = (i / 30) as f32 * 2.0 - 30.0;
            let r = rng.next_f64();
            let motion = if r < 0.7 {
                Motion::Resting
            } else if r < 0.9 {
                Motion::Sliding {
                    v: [
                        rng.next_f64() as f32 * 2.0 - 1.0,
                        rng.next_f64() as f32 * 2.0 - 1.0,
                    ],
                }
            } else {
                Motion::Tumbling {
                    v: [
                        rng.next_f64() as f32 * 4.0 - 2.0,
                        rng.next_f64() as f32 * 4.0 - 2.0,
                        rng.next_f64() as f32 * 2.0,
                    ],
                    spin: rng.next_f64() as f32 * 3.0,
                }
            };
            Cube {
                pos: [x, y, 0.5],
                rot: [0.0, 0.0, 0.0, 1.0],
                motion,
            }
        })
        .collect()
}

/// Moves the cubes one tick on, `t` seconds into the run.
pub fn step(cubes: &mut [Cube], t: f32) {
    let dt = 1.0 / HZ as f32;
    for c in cubes {
        match c.motion {
            Motion::Resting => {}
            Motion::Sliding { v } => {
                c.pos[0] = (c.pos[0] + v[0] * dt).clamp(-250.0, 250.0);
                c.pos[1] = (c.pos[1] + v[1] * dt).clamp(-250.0, 250.0);
            }
            Motion::Tumbling { v, spin } => {
                c.pos[0] = (c.pos[0] + v[0] * dt).clamp(-250.0, 250.0);
                c.pos[1] = (c.pos[1] + v[1] * dt).clamp(-250.0, 250.0);
                c.pos[2] = 0.5 + (t * 2.0 + v[2]).sin().abs() * 3.0;
                let a = t * spin * 0.5;
                c.rot = [a.sin() * 0.6, a.sin() * 0.8, 0.0, a.cos()];
            }
        }
    }
}

/// The quantisation of a cube into its seven replicated fields.
pub struct Codec {
    pos: Position,
    rot: SmallestThree,
}

impl Codec {
    /// 1 mm positions within ±256 m, smallest-three rotations with 9 bits.
    pub fn new() -> Self {
        Self {
            pos: Position::cube(256.0, 0.001),
            rot: SmallestThree::new(9),
        }
    }

    /// The replication schema: one entity type of seven fields.
    pub fn schema(&self) -> Schema {
        let p = self.pos.axes[0].bits() as u8;
        Schema {
            types: vec![vec![p, p, p, 2, 9, 9, 9]],
        }
    }

    /// The cube's fields: position, then the rotation's largest component and the other three.
    pub fn fields(&self, c: &Cube) -> [u32; 7] {
        let p = self.pos.quantize(c.pos);
        let (largest, rest) = self.rot.quantize(c.rot);
        [p[0], p[1], p[2], largest as u32, rest[0], rest[1], rest[2]]
    }
}

/// What one in-process replication run measured.
struct Run {
    update_bytes: u64,
    ticks: u64,
    moving_cube_ticks: u64,
    encode: Duration,
    decode: Duration,
    max_lag_ticks: u64,
}

/// Replicates the cubes of `seed` from one `Replicator` to another over a
/// seeded link with a budget of `budget` bytes per second.
fn replicate(seed: u64, budget: u32) -> Run {
    let codec = Codec::new();
    let (a_id, b_id) = (PeerId(1), PeerId(2));
    let config = ReplicationConfig {
        budget_bytes_per_sec: budget,
        ..ReplicationConfig::default()
    };
    let mut a = Replicator::new(config.clone(), codec.schema(), a_id).expect("config");
    let mut b = Replicator::new(config, codec.schema(), b_id).expect("config");
    a.handle_peer_joined(Instant::now(), b_id);
    b.handle_peer_joined(Instant::now(), a_id);
    let link = |seed| ConditionerConfig {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(5),
        loss: 0.01,
        duplicate: 0.0,
        seed,
    };
    let mut ab: LinkConditioner<(Channel, gamenet_core::Bytes)> = LinkConditioner::new(link(seed));
    let mut ba: LinkConditioner<(Channel, gamenet_core::Bytes)> =
        LinkConditioner::new(link(seed + 1));
    let mut cubes = scenario(seed);
    let ids: Vec<NetId> = cubes
        .iter()
        .map(|c| a.spawn(0, &codec.fields(c)).expect("spawn"))
        .collect();
    let start = Instant::now();
    let tick = Duration::from_nanos(1_000_000_000 / HZ as u64);
    let warmup = 2 * HZ as u64;
    let measured = 10 * HZ as u64;
    let mut run = Run {
        update_bytes: 0,
        ticks: 0,
        moving_cube_ticks: 0,
        encode: Duration::ZERO,
        decode: Duration::ZERO,
        max_lag_ticks: 0,
    };
    let mut history: Vec<Vec<[u32; 7]>> = Vec::new();
    for n in 0..warmup + measured {
        let now = start + tick * n as u32;
        let before: Vec<[u32; 7]> = cubes.iter().map(|c| codec.fields(c)).collect();
        step(&mut cubes, n as f32 / HZ as f32);
        let mut moving = 0;
        let fields: Vec<[u32; 7]> = cubes.iter().map(|c| codec.fields(c)).collect();
        for ((f, was), id) in fields.iter().zip(&before).zip(&ids) {
            if f != was {
                moving += 1;
            }
            let _ = a.set(*id, f);
        }
        history.push(fields);
        let t0 = Instant::now();
        a.tick(now);
        let encode = t0.elapsed();
        b.tick(now);
        let measuring = n >= warmup;
        while let Some(t) = a.poll_transmit() {
            if measuring && t.channel == Channel::Unreliable {
                run.update_bytes += t.data.len() as u64;
            }
            ab.send(now, (t.channel, t.data), t.channel == Channel::Reliable);
        }
        while let Some(t) = b.poll_transmit() {
            ba.send(now, (t.channel, t.data), t.channel == Channel::Reliable);
        }
        let t1 = Instant::now();
        while let Some((_, data)) = ab.poll(now) {
            b.handle_message(now, a_id, &data);
        }
        let decode = t1.elapsed();
        while let Some((_, data)) = ba.poll(now) {
            a.handle_message(now, b_id, &data);
        }
        while b.poll_event().is_some() {}
        while a.poll_event().is_some() {}
        if measuring {
            run.ticks += 1;
            run.moving_cube_ticks += moving;
            run.encode += encode;
            run.decode += decode;
            // How many ticks behind the owner the receiver's view is.
            let lag = ids
                .iter()
                .enumerate()
                .map(|(k, id)| {
                    let seen = b.entity(*id).map(|e| &e.fields[..]);
                    (0..history.len())
                        .rev()
                        .position(|h| Some(&history[h][k][..]) == seen)
                        .unwrap_or(history.len()) as u64
                })
                .max()
                .unwrap_or(0);
            run.max_lag_ticks = run.max_lag_ticks.max(lag);
        }
    }
    run
}

/// The size of the naive bincode snapshot of the cubes of `seed`.
fn naive_bytes_per_tick(seed: u64) -> usize {
    let cubes = scenario(seed);
    let snapshot: Vec<([f32; 3], [f32; 4])> = cubes.iter().map(|c| (c.pos, c.rot)).collect();
    bincode::serialize(&snapshot).map(|b| b.len()).unwrap_or(0)
}

/// Runs the in-process scenario and returns its part of the report.
pub fn in_process_report() -> String {
    let seed = 901;
    let naive = naive_bytes_per_tick(seed);
    let naive_kbps = naive as f64 * 8.0 * HZ as f64 / 1000.0;
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# State sync: 901 cubes at 60 Hz (in-process, no WebRTC)\n"
    );
    let _ = writeln!(
        report,
        "Seed {seed}: 70 % resting, 20 % sliding, 10 % tumbling (about 285 cubes change \
         every tick); 1 mm positions within ±256 m, smallest-three rotations with 9 bits; \
         link 50 ms ± 5 ms each way, 1 % loss; 10 s measured after 2 s warm-up. The naive \
         baseline is a bincode full snapshot (`[f32; 3]` + `[f32; 4]` per cube) every tick: \
         {naive} bytes, {naive_kbps:.1} kbps.\n"
    );
    let _ = writeln!(
        report,
        "| budget | kbps per link | vs naive | bits per cube per tick | bytes per moving cube per tick | encode ms/tick | decode ms/tick | worst lag (ticks) |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (label, budget) in [("none (1 MB/s)", 1_000_000u32), ("256 kbps", 32_000)] {
        let run = replicate(seed, budget);
        let ticks = run.ticks.max(1) as f64;
        let kbps = run.update_bytes as f64 * 8.0 / 1000.0 / (ticks / HZ as f64);
        // Moving-cube ticks: what a receiver would need to follow every move.
        let per_moving = run.update_bytes as f64 / run.moving_cube_ticks.max(1) as f64;
        let bits_per_cube = run.update_bytes as f64 * 8.0 / ticks / CUBES as f64;
        let _ = writeln!(
            report,
            "| {label} | {kbps:.1} | {:.1}x smaller | {bits_per_cube:.2} | {per_moving:.2} | {:.3} | {:.3} | {} |",
            naive_kbps / kbps.max(1e-9),
            run.encode.as_secs_f64() * 1e3 / ticks,
            run.decode.as_secs_f64() * 1e3 / ticks,
            run.max_lag_ticks,
        );
    }
    let _ = writeln!(
        report,
        "\nGoals: ≤ 256 kbps per link and ≤ 6 bytes per moving cube per tick. Worst lag: \
         how many ticks behind the owner the receiver's most outdated cube is (the link \
         alone accounts for 3). Run with `cargo xtask bench statesync`."
    );
    report
}
