//! `#[derive(Input)]`: a struct of inputs and an enum of unit variants
//! round-trip through their bytes, any bytes read as some input, and two
//! apps play a rollback game on a derived input in step.

mod common;

use std::time::Duration;

use bevy_app::{App, Startup};
use bevy_ecs::prelude::*;
use bevy_gamenet::prelude::*;
use bevy_gamenet::rollback::{
    LocalInputs, LocalPlayers, PlayerInputs, ReadInputs, RollbackApp, RollbackFrame,
    RollbackSchedule, RollbackSocket,
};
use bevy_gamenet::test_app::TestNetwork;
use gamenet::MemoryTransport;

use common::{Pos, Slot, bad_link};

/// Where a player aims.
#[derive(Input, Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Aim {
    #[default]
    Ahead,
    Left,
    Right,
}

/// A pad: a stick, two buttons and an aim.
#[derive(Input, Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Pad {
    x: i8,
    y: i8,
    fire: bool,
    jump: bool,
    aim: Aim,
    held: u16,
}

/// A tuple struct of a derived input and a byte array.
#[derive(Input, Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Framed(Pad, [u8; 3]);

fn round_trip<I: Input>(input: I) -> I {
    let mut bytes = vec![0; I::SIZE];
    input.write(&mut bytes);
    I::read(&bytes)
}

#[test]
fn derived_inputs_round_trip_and_any_bytes_read() {
    assert_eq!(Aim::SIZE, 1);
    assert_eq!(Pad::SIZE, 1 + 1 + 1 + 1 + 1 + 2);
    assert_eq!(Framed::SIZE, Pad::SIZE + 3);
    let pad = Pad {
        x: -128,
        y: 127,
        fire: true,
        jump: false,
        aim: Aim::Right,
        held: 0xbeef,
    };
    assert_eq!(round_trip(pad), pad);
    assert_eq!(round_trip(Framed(pad, [1, 2, 3])), Framed(pad, [1, 2, 3]));
    for aim in [Aim::Ahead, Aim::Left, Aim::Right] {
        assert_eq!(round_trip(aim), aim);
    }
    // The fields, in order, little-endian.
    let mut bytes = [0; 7];
    pad.write(&mut bytes);
    assert_eq!(bytes, [0x80, 0x7f, 1, 0, 2, 0xef, 0xbe]);
    // A peer's bytes: a variant that does not exist is the default, a
    // `bool` byte other than 0 is true.
    assert_eq!(Aim::read(&[200]), Aim::Ahead);
    let odd = Pad::read(&[0, 0, 7, 0, 9, 0, 0]);
    assert!(odd.fire && odd.aim == Aim::Ahead);
    for b in 0..=255u8 {
        let _ = Framed::read(&[b; 10]);
    }
}

/// A game on [`Pad`]s: each pad moves its player.
fn game(transport: MemoryTransport) -> App {
    let key = transport.id().0 as u64;
    let config = RollbackConfig {
        num_players: 2,
        fps: 60,
        ..RollbackConfig::default()
    };
    let mut app = App::new();
    app.add_plugins(RollbackPlugin::<Pad>::memory(
        config,
        transport,
        RollbackStart::Players(2),
        key,
    ))
    .rollback_component_with_serde::<Pos>()
    .checksum_component_with_hash::<Pos>()
    .rollback_component_with_serde::<Slot>()
    .add_systems(Startup, |mut commands: Commands| {
        for slot in 0..2 {
            commands.spawn((Slot(slot), Pos(0))).add_rollback();
        }
    })
    .add_systems(ReadInputs, read_pads)
    .add_systems(RollbackSchedule, move_players);
    app
}

fn read_pads(
    players: Res<LocalPlayers>,
    frame: Res<RollbackFrame>,
    mut inputs: ResMut<LocalInputs<Pad>>,
) {
    for &slot in &players.0 {
        let t = (frame.0 / 5) as i32 + slot as i32 * 3;
        let aim = [Aim::Ahead, Aim::Left, Aim::Right][(t % 3) as usize];
        let pad = Pad {
            x: (t % 7 - 3) as i8,
            y: (t % 5 - 2) as i8,
            fire: t % 4 == 0,
            jump: t % 6 == 1,
            aim,
            held: (t * 37) as u16,
        };
        inputs.0.insert(slot, pad);
    }
}

fn move_players(inputs: Res<PlayerInputs<Pad>>, mut q: Query<(&Slot, &mut Pos)>) {
    for (slot, mut pos) in &mut q {
        let pad = inputs.0[slot.0].0;
        let step = i64::from(pad.x) * 3
            + i64::from(pad.y) * 5
            + i64::from(pad.fire) * 7
            + i64::from(pad.jump) * 11
            + pad.aim as i64 * 13
            + i64::from(pad.held);
        pos.0 = pos.0.wrapping_mul(31).wrapping_add(step);
    }
}

#[test]
fn two_apps_play_a_derived_input_in_step() {
    const TARGET: u32 = 160;
    let mut net = TestNetwork::new(bad_link(11));
    net.add_app(PeerId(1), game);
    net.add_app(PeerId(2), game);
    let confirmed = |app: &App| {
        let socket = app.world().resource::<RollbackSocket<Pad>>();
        socket.session()?.confirmed_checksum(TARGET).cloned()
    };
    net.run_until(Duration::from_secs(8), |apps| {
        apps.iter().all(|app| confirmed(app).is_some())
    });
    let (a, b) = (confirmed(net.app(0)), confirmed(net.app(1)));
    assert_eq!(a, b, "both confirm the same state at frame {TARGET}");
    for app in net.apps() {
        let stats = app
            .world()
            .resource::<RollbackSocket<Pad>>()
            .stats()
            .expect("started");
        assert!(
            stats.rollbacks > 0 && stats.checksums_matched > 0,
            "{stats:?}"
        );
    }
    println!(
        "RESULT a {}-byte derived input: both apps confirmed checksum {:?} at frame {TARGET}",
        Pad::SIZE,
        a.map(|c| c.total)
    );
}
