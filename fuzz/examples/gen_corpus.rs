//! Writes the seed corpus, `corpus/<target>/seed-<n>`: valid encodings taken
//! from real sessions, a few per target. Run from the `fuzz` directory:
//! `cargo run --example gen_corpus --features signaling` (without the feature
//! the signaling targets' seeds are left as they are). `bevy_snapshot` and
//! `bevy_snapshot_decode` need none: they patch a valid snapshot they make
//! themselves.

use std::path::Path;

use gamenet_core::{Channel, PeerId};
use gamenet_fuzz::Chunks;
use gamenet_fuzz::rollback::Phase;

fn write(target: &str, seeds: &[Vec<u8>]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), seed)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    let bytes: usize = seeds.iter().map(Vec::len).sum();
    println!("{target}: {} seeds, {bytes} bytes", seeds.len());
}

fn main() {
    mesh();
    rollback();
    replication();
    bits();
    #[cfg(feature = "signaling")]
    signaling();
    write(
        "ice_json",
        &[br#"{"iceServers":[{"urls":["stun:example.org:3478"]},{"urls":"turn:example.org:3478?transport=udp","username":"1700000000:gamenet","credential":"c2VjcmV0"}],"ttl":3600}"#.to_vec()],
    );
}

fn mesh() {
    use gamenet_fuzz::mesh::Pair;
    // The handshake as the fuzzed mesh hears it, then messages of every kind.
    let mut pair = Pair::new(false);
    pair.b.handle_connected(pair.now, gamenet_fuzz::mesh::A);
    let mut heard = pair.pump();
    for (channel, len) in [
        (Channel::Reliable, 10),
        (Channel::Unreliable, 10),
        (Channel::Reliable, 3000),
    ] {
        let _ = pair.b.send(gamenet_fuzz::mesh::A, channel, &vec![7; len]);
        heard.extend(pair.pump());
    }
    pair.advance(std::time::Duration::from_secs(1));
    heard.extend(pair.pump());
    write(
        "mesh_wire",
        &heard
            .iter()
            .take(12)
            .map(|(_, _, d)| d.to_vec())
            .collect::<Vec<_>>(),
    );
    let control = |c: Channel| u8::from(c == Channel::Unreliable) | 0x20;
    let chunks = |from: usize| {
        Chunks::encode(
            heard[from..]
                .iter()
                .map(|(_, c, d)| (control(*c), d.as_ref())),
        )
    };
    let mut fresh = vec![0];
    fresh.extend(chunks(0));
    let mut joined = vec![1];
    joined.extend(chunks(2.min(heard.len())));
    write("mesh_peer", &[fresh, joined]);
}

fn rollback() {
    use gamenet_fuzz::rollback::World;
    let mut seeds = Vec::new();
    // One message of each kind heard in any phase, for the decoder alone.
    let mut kinds: Vec<Vec<u8>> = Vec::new();
    for phase in Phase::ALL {
        // What the target hears in the world of this phase (a joiner: what
        // the late joiner heard).
        let (world, to) = match phase {
            Phase::Joining => (World::new(Phase::LateJoiner, true), PeerId(3)),
            _ => {
                let w = World::new(phase, true);
                let to = w.nodes[w.target].id;
                (w, to)
            }
        };
        for (_, _, m) in &world.log {
            if !kinds.iter().any(|k| k.first() == m.first()) {
                kinds.push(m.clone());
            }
        }
        let heard: Vec<(u8, &[u8])> = world
            .log
            .iter()
            .filter(|(_, t, _)| *t == to)
            .map(|(from, _, d)| ((from.0 as u8).wrapping_sub(1) & 3 | 0x10, d.as_slice()))
            .collect();
        // The first messages and the last, within a few KiB.
        let mut picked: Vec<(u8, &[u8])> = heard.iter().take(6).copied().collect();
        picked.extend(heard.iter().rev().take(6).rev().copied());
        let mut seed = vec![phase.byte()];
        seed.extend(Chunks::encode(picked));
        seed.truncate(4096);
        seeds.push(seed);
    }
    write("rollback_session", &seeds);
    kinds.sort();
    write("rollback_wire", &kinds);
}

fn replication() {
    let world = gamenet_fuzz::replication::World::new(true);
    let heard: Vec<(u8, &[u8])> = world
        .log
        .iter()
        .filter(|(_, to, _)| *to == PeerId(1))
        .map(|(from, _, d)| (if *from == PeerId(2) { 0x04 } else { 0x05 }, d.as_slice()))
        .collect();
    let seeds: Vec<Vec<u8>> = heard
        .chunks(4)
        .take(4)
        .map(|c| Chunks::encode(c.iter().copied()))
        .collect();
    write("replication", &seeds);
    // One message of each kind, for the decoder alone.
    let mut kinds: Vec<Vec<u8>> = Vec::new();
    for (_, _, m) in &world.log {
        if !kinds.iter().any(|k| k.first() == m.first()) {
            kinds.push(m.clone());
        }
    }
    kinds.sort();
    write("replication_wire", &kinds);
}

fn bits() {
    let mut seeds = Vec::new();
    for mode in 0u8..5 {
        let mut s = vec![mode];
        s.extend((0u8..48).map(|i| i.wrapping_mul(37).wrapping_add(mode)));
        seeds.push(s);
    }
    write("bits_quantize", &seeds);
}

#[cfg(feature = "signaling")]
fn signaling() {
    use std::time::{Duration, SystemTime};

    use rtc_stun::message::{BINDING_REQUEST, Message, Setter, TransactionId};

    let signal = br#"{"Signal":{"receiver":"67e55044-10b1-426f-9247-bb680e5fe0c8","data":{"type":"offer","sdp":"v=0"}}}"#;
    let ws = [
        [&[0u8][..], signal].concat(),
        [&[0u8][..], br#""KeepAlive""#].concat(),
        [&[1u8][..], b"arena\x002\x00ctf"].concat(),
        [&[2u8][..], b"K7PQ2M"].concat(),
    ];
    write("signaling_ws", &ws);

    let create: &[u8] = br#"{"name":"Friday","public":true,"max_players":4,"mode":"ctf"}"#;
    let api = Chunks::encode([
        (0, create),
        (0, br#"{"public":false}"#),
        (1, b"K7PQ2M"),
        (2, b"ctf"),
    ]);
    write("signaling_api", &[api]);

    let mut m = Message::new();
    let setters: [Box<dyn Setter>; 2] =
        [Box::new(TransactionId([7; 12])), Box::new(BINDING_REQUEST)];
    m.build(&setters).unwrap_or_else(|e| panic!("{e}"));
    let mut v4 = vec![0, 203, 0, 113, 9];
    v4.extend([0; 12]);
    v4.extend(40000u16.to_le_bytes());
    v4.extend(&m.raw);
    let mut v6 = vec![1, 0x20, 0x01, 0x0d, 0xb8];
    v6.extend([0; 11]);
    v6.push(1);
    v6.extend(5000u16.to_le_bytes());
    v6.extend(&m.raw);
    write("stun", &[v4, v6]);

    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let token =
        gamenet_signaling::auth::issue_token(b"secret", "player-1", Duration::from_secs(60), now)
            .unwrap_or_default();
    let clock = 1_700_000_000u64.to_le_bytes();
    let ttl = 60u64.to_le_bytes();
    let tokens = [
        Chunks::encode([
            (0, &b"secret"[..]),
            (0, token.as_bytes()),
            (0, &ttl),
            (0, &clock),
        ]),
        Chunks::encode([
            (1, &b"secret"[..]),
            (0, b"player-1"),
            (0, &ttl),
            (0, &clock),
        ]),
        Chunks::encode([
            (2, &b"secret"[..]),
            (0, b"0123456789abcdef0123"),
            (0, &ttl),
            (0, &clock),
        ]),
    ];
    write("token", &tokens);
}
