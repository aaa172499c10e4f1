//! The rollback schedules and what the game reads and writes in them: local
//! players and inputs, every player's inputs, the frame, the rollback clock;
//! and running one rollback frame.

use std::collections::BTreeMap;
use std::time::Duration;

use bevy_ecs::prelude::*;
use bevy_ecs::reflect::ReflectResource;
use bevy_ecs::schedule::ScheduleLabel;
use bevy_reflect::Reflect;
use bevy_reflect::std_traits::ReflectDefault;
use bevy_state::state::StateTransition;
use bevy_time::Time;
use gamenet::rollback::{Frame, Input, InputStatus, RollbackEvent};

use crate::snapshot::{MessageClears, RollbackStates};

/// The schedule the game's simulation runs in, once per rollback frame.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct RollbackSchedule;

/// The schedule that reads local input, before each new frame: fill
/// [`LocalInputs`] for every slot in [`LocalPlayers`].
///
/// It runs in `PreUpdate` within [`GamenetSet::ReceivePackets`](crate::GamenetSet);
/// a game reading Bevy's input resources orders that set after
/// `bevy::input::InputSystems`, or a key press reaches the inputs a frame late.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadInputs;

/// The context of the rollback clock: `Res<Time<RollbackTime>>` advances by
/// exactly one frame per simulated frame and rolls back with the state. While
/// the rollback schedule runs, plain `Res<Time>` shows the same.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RollbackTime;

/// The slots played on this peer.
#[derive(Resource, Reflect, Debug, Clone, Default, PartialEq, Eq)]
#[reflect(Resource, Debug, Default, PartialEq)]
pub struct LocalPlayers(pub Vec<usize>);

/// Local inputs for the next frame, by slot; filled in [`ReadInputs`].
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub struct LocalInputs<I: Input>(pub BTreeMap<usize, I>);

impl<I: Input> Default for LocalInputs<I> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

/// Every slot's input for the frame being simulated.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct PlayerInputs<I: Input>(pub Vec<(I, InputStatus)>);

/// The frame being simulated (in the rollback schedule) or the next one.
#[derive(Resource, Reflect, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[reflect(Resource, Debug, Default, PartialEq)]
pub struct RollbackFrame(pub Frame);

/// A session event, as a Bevy message.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct SessionEvent(pub RollbackEvent);

/// Runs one rollback frame with the rollback clock as `Time`.
pub(super) fn advance(world: &mut World, step: Duration) {
    world.resource_mut::<Time<RollbackTime>>().advance_by(step);
    let rollback_time = world.resource::<Time<RollbackTime>>().as_generic();
    let outer = world.remove_resource::<Time>();
    world.insert_resource(rollback_time);
    let clears = world.get_resource::<MessageClears>().map(|c| c.0.clone());
    for clear in clears.into_iter().flatten() {
        clear(world);
    }
    if world.get_resource::<RollbackStates>().is_some_and(|s| s.0) {
        let _ = world.try_run_schedule(StateTransition);
    }
    world.run_schedule(RollbackSchedule);
    match outer {
        Some(outer) => world.insert_resource(outer),
        None => {
            world.remove_resource::<Time>();
        }
    }
}
