//! Messages under rollback: they live for one frame, cleared before each
//! rollback frame and on load, so there is nothing to save.

use std::marker::PhantomData;

use bevy_ecs::prelude::*;
use gamenet::rollback::Frame;

use super::{LoadContext, SnapshotError, Snapshotter, StageContext, Staged};

/// Messages in rollback live for one frame (they are cleared before each
/// rollback frame and on load), so there is nothing to save. The last frame's
/// messages stay readable by ordinary systems until the next rollback frame.
pub(crate) struct MessageSnapshot<M: Message>(pub PhantomData<fn() -> M>);

impl<M: Message> Snapshotter for MessageSnapshot<M> {
    fn name(&self) -> &'static str {
        std::any::type_name::<M>()
    }
    fn save(&mut self, _: &mut World, _: usize, _: Frame) -> Option<u64> {
        None
    }
    fn load(&mut self, world: &mut World, _: usize, _: Frame, _: &mut LoadContext<'_>) {
        if let Some(mut m) = world.get_resource_mut::<Messages<M>>() {
            m.clear();
        }
    }
    fn write(&mut self, _: usize, _: Frame) -> Result<Vec<u8>, SnapshotError> {
        Ok(Vec::new())
    }
    fn stage(&mut self, _: &[u8], _: &mut StageContext) -> Result<Staged, SnapshotError> {
        Ok(Box::new(|world: &mut World, _: &mut LoadContext<'_>| {
            clear_messages::<M>(world);
        }))
    }
}

/// Clears every rolled-back message type; run before each rollback frame.
#[derive(Resource, Default, Clone)]
pub(crate) struct MessageClears(pub Vec<fn(&mut World)>);

/// Clears one rolled-back message type.
pub(crate) fn clear_messages<M: Message>(world: &mut World) {
    if let Some(mut m) = world.get_resource_mut::<Messages<M>>() {
        m.clear();
    }
}
