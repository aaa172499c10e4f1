//! Messages under rollback: they live for one frame, cleared before each
//! rollback frame and on load, so there is nothing to save.

use std::marker::PhantomData;

use bevy_ecs::prelude::*;
use gamenet::rollback::Frame;

use super::{LoadContext, SnapshotError, Snapshotter};

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
    fn read(
        &mut self,
        world: &mut World,
        _: &[u8],
        cx: &mut LoadContext<'_>,
    ) -> Result<(), SnapshotError> {
        self.load(world, 0, 0, cx);
        Ok(())
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
