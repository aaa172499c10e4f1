//! Golden byte vectors of every wire message kind (mesh, rollback and
//! replication), held in `golden/wire.txt`: the protocol must not change
//! without a new protocol version, so any change to these bytes fails here.
//!
//! `GOLDEN_RECORD=1 cargo test -p gamenet_core golden` rewrites the file; do that
//! only when a message kind is added, and say so in the commit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::replication::{ReplicationConfig, Replicator, Schema};
use crate::rollback::wire::{
    AdmitMsg, ChecksumMsg, InputRun, InputsMsg, IntroMsg, LostMsg, Msg, RefuseMsg, SlotEntry,
    SnapshotMsg,
};
use crate::wire::{GoodbyeReason, ReliablePacket, UnreliablePacket};
use crate::{Instant, PeerId};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/wire.txt");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn mesh_vectors(out: &mut Vec<(String, Vec<u8>)>) {
    let u = [
        (
            "ping",
            UnreliablePacket::Ping {
                seq: 7,
                acked: 1 << 40,
            },
        ),
        ("pong", UnreliablePacket::Pong { seq: 7, acked: 3 }),
        ("unreliable_data", UnreliablePacket::Data(b"xyz")),
        ("ack", UnreliablePacket::Ack { acked: 65_537 }),
    ];
    for (name, p) in u {
        out.push((format!("mesh.{name}"), p.encode().into_vec()));
    }
    let r = [
        (
            "hello",
            ReliablePacket::Hello {
                version: 3,
                link: 0x0102_0304,
                app_id: "arena",
                schema: &[1, 2, 3, 4, 5, 6, 7, 8],
            },
        ),
        ("hello_ack", ReliablePacket::HelloAck),
        (
            "goodbye",
            ReliablePacket::Goodbye(GoodbyeReason::ProtocolViolation),
        ),
        ("reliable_data", ReliablePacket::Data(b"hello")),
        (
            "fragment_start",
            ReliablePacket::FragmentStart {
                total_len: 3000,
                chunk: b"abc",
            },
        ),
        ("fragment_cont", ReliablePacket::FragmentCont(b"def")),
    ];
    for (name, p) in r {
        out.push((format!("mesh.{name}"), p.encode().into_vec()));
    }
}

fn run(start: u32) -> InputRun<u16> {
    InputRun {
        start,
        slots: vec![0, 2],
        records: vec![
            vec![Some(1), Some(0x0203)],
            vec![Some(1), None],
            vec![Some(0x8001), None],
        ],
    }
}

fn rollback_vectors(out: &mut Vec<(String, Vec<u8>)>) {
    let peer = PeerId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
    let msgs: [(&str, Msg<u16>); 8] = [
        (
            "inputs",
            Msg::Inputs(InputsMsg {
                ack: 40,
                frame: 44,
                time_ms: 123_456,
                echo_ms: 123_400,
                echo_hold_ms: 5,
                feed: false,
                run: run(42),
            }),
        ),
        (
            "intro",
            Msg::Intro(IntroMsg {
                key: [0xde; 32],
                proof: Some([0xad; 64]),
                attempt: 7,
                joiner: true,
                players: 1,
                num_players: 3,
            }),
        ),
        (
            "admit",
            Msg::Admit(AdmitMsg {
                peer,
                key: [0xbe; 32],
                slots: vec![2],
                from: 130,
                snapshot: 120,
                attempt: 7,
            }),
        ),
        (
            "snapshot",
            Msg::Snapshot(SnapshotMsg {
                frame: 120,
                from: 130,
                your_slots: vec![2],
                table: vec![
                    SlotEntry {
                        state: 1,
                        peer,
                        key: [9; 32],
                        active_from: 0,
                        until: None,
                    },
                    SlotEntry {
                        state: 2,
                        peer: PeerId(5),
                        key: [10; 32],
                        active_from: 3,
                        until: Some(90),
                    },
                ],
                spectators: vec![(PeerId(77), [11; 32])],
                runs: vec![run(120)],
                data: b"state".to_vec(),
            }),
        ),
        ("lost", Msg::Lost(LostMsg { peer, run: run(60) })),
        ("dropped", Msg::Dropped(LostMsg { peer, run: run(60) })),
        (
            "checksum",
            Msg::Checksum(ChecksumMsg {
                frame: 64,
                total: 0x0123_4567_89ab_cdef,
                parts: vec![(1, 2), (3, 4)],
            }),
        ),
        (
            "refuse",
            Msg::Refuse(RefuseMsg {
                reason: "session full".into(),
            }),
        ),
    ];
    for (name, m) in msgs {
        out.push((format!("rollback.{name}"), m.encode()));
    }
}

/// Two replicators talking directly: spawn, updates, an event, an authority
/// request and hand-over, a resync and a despawn, every packet recorded.
fn replication_vectors(out: &mut Vec<(String, Vec<u8>)>) {
    let schema = Schema {
        types: vec![vec![16, 16, 9], vec![8]],
    };
    let (a_id, b_id) = (PeerId(1), PeerId(2));
    let mut a = Replicator::new(ReplicationConfig::default(), schema.clone(), a_id).unwrap();
    let mut b = Replicator::new(ReplicationConfig::default(), schema, b_id).unwrap();
    let start = Instant::now();
    a.handle_peer_joined(start, b_id);
    b.handle_peer_joined(start, a_id);
    let mut count = BTreeMap::<u8, usize>::new();
    let mut step =
        |a: &mut Replicator, b: &mut Replicator, ms: u64, out: &mut Vec<(String, Vec<u8>)>| {
            let now = start + Duration::from_millis(ms);
            a.tick(now);
            b.tick(now);
            for (from_id, to_id) in [(a_id, b_id), (b_id, a_id)] {
                let (from, to) = if from_id == a_id {
                    (&mut *a, &mut *b)
                } else {
                    (&mut *b, &mut *a)
                };
                while let Some(t) = from.poll_transmit() {
                    let kind = t.data.first().copied().unwrap_or(0xff);
                    let n = count.entry(kind).or_default();
                    *n += 1;
                    out.push((
                        format!("replication.{}.{kind:02x}.{n}", from_id.0),
                        t.data.to_vec(),
                    ));
                    assert_eq!(t.peer, to_id);
                    to.handle_message(now, from_id, &t.data);
                }
            }
        };
    let id = a.spawn(0, &[100, 200, 300]).unwrap();
    let other = a.spawn(1, &[7]).unwrap();
    step(&mut a, &mut b, 0, out);
    step(&mut a, &mut b, 16, out);
    a.set(id, &[101, 200, 300]).unwrap();
    step(&mut a, &mut b, 33, out);
    step(&mut a, &mut b, 50, out);
    a.send_event(b_id, b"boom");
    a.set(id, &[140, 180, 2]).unwrap();
    step(&mut a, &mut b, 66, out);
    b.request_authority(id);
    step(&mut a, &mut b, 83, out);
    step(&mut a, &mut b, 100, out);
    a.hand_over(other, b_id).unwrap();
    step(&mut a, &mut b, 116, out);
    // B forgets what it had of A (as after a reconnect): A's next delta has no
    // baseline at B, which asks for the entity whole.
    b.handle_peer_left(start, a_id);
    b.handle_peer_joined(start, a_id);
    a.set(id, &[150, 181, 3]).unwrap();
    step(&mut a, &mut b, 133, out);
    step(&mut a, &mut b, 150, out);
    assert!(a.despawn(id).is_ok() || b.despawn(id).is_ok());
    step(&mut a, &mut b, 166, out);
    step(&mut a, &mut b, 183, out);
}

fn vectors() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    mesh_vectors(&mut out);
    rollback_vectors(&mut out);
    replication_vectors(&mut out);
    appended_vectors(&mut out);
    out
}

#[test]
fn wire_bytes_match_the_golden_vectors() {
    let got: String = vectors()
        .iter()
        .map(|(name, bytes)| format!("{name} {}\n", hex(bytes)))
        .collect();
    if std::env::var_os("GOLDEN_RECORD").is_some() {
        std::fs::write(FILE, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(FILE).unwrap();
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g, w, "a wire message changed");
    }
    assert_eq!(
        got.lines().count(),
        want.lines().count(),
        "message kinds differ"
    );
}

/// Message kinds added after the first recording, appended to the file in
/// the order they were added so that no earlier line moves.
fn appended_vectors(out: &mut Vec<(String, Vec<u8>)>) {
    out.push((
        "mesh.reset".into(),
        ReliablePacket::Reset.encode().into_vec(),
    ));
    // A request for an entity whole; the replication scenario above no longer
    // makes one (a returning peer's entities are sent again whole).
    out.push((
        "replication.resync".into(),
        crate::replication::wire::id_msg(
            crate::replication::wire::RESYNC,
            crate::replication::NetId(2 << 48),
        ),
    ));
}
