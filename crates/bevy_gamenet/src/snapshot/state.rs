//! States under rollback: `State<S>` saved by value and rebuilt on load
//! (`NextState<S>` is a resource snapshot).

use bevy_ecs::prelude::*;
use bevy_state::state::{FreelyMutableState, State};
use gamenet::rollback::Frame;

use super::serde::{decode, encode};
use super::{LoadContext, Ring, SnapshotError, Snapshotter, StageContext, Staged};

/// Whether any state is rolled back (then transitions run in rollback frames).
#[derive(Resource, Default)]
pub(crate) struct RollbackStates(pub bool);

/// `State<S>` snapshots (it is not `Clone`, so it is rebuilt on load).
pub(crate) struct StateSnapshot<S: FreelyMutableState + Clone> {
    /// The state (none if absent), per frame.
    ring: Ring<Option<S>>,
}

impl<S: FreelyMutableState + Clone> StateSnapshot<S> {
    /// An empty ring.
    pub fn new() -> Self {
        Self {
            ring: Ring::default(),
        }
    }
}

impl<S: FreelyMutableState + Clone + serde::Serialize + serde::de::DeserializeOwned> Snapshotter
    for StateSnapshot<S>
{
    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, SnapshotError> {
        encode(self.ring.saved(len, frame, self.name())?)
    }
    fn stage(&mut self, bytes: &[u8], _: &mut StageContext) -> Result<Staged, SnapshotError> {
        let value = decode::<Option<S>>(bytes)?;
        Ok(Box::new(
            move |world: &mut World, _: &mut LoadContext<'_>| match value {
                Some(s) => world.insert_resource(State::new(s)),
                None => {
                    world.remove_resource::<State<S>>();
                }
            },
        ))
    }
    fn name(&self) -> &'static str {
        std::any::type_name::<State<S>>()
    }
    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        *self.ring.slot_for(len, frame) = world.get_resource::<State<S>>().map(|s| s.get().clone());
        None
    }
    fn load(&mut self, world: &mut World, len: usize, frame: Frame, _: &mut LoadContext<'_>) {
        if !self.ring.has_len(len) {
            return;
        }
        match self.ring.get(len, frame) {
            Some(Some(s)) => world.insert_resource(State::new(s.clone())),
            Some(None) => {
                world.remove_resource::<State<S>>();
            }
            None => tracing::error!("rollback: no snapshot of {} at frame {frame}", self.name()),
        }
    }
}
