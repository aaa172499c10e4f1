//! The schema the plugins' meshes carry in their handshake: every rollback
//! and replication type the app registered, in order, so that two builds
//! that would read each other's bytes as the wrong types never link (see
//! [`gamenet::TypeSchema`]).

use bevy_app::App;
use bevy_ecs::prelude::*;
use gamenet::TypeSchema;

/// The replicated types registered so far, as schema entries, in order.
#[derive(Resource, Default)]
pub(crate) struct Registered(Vec<String>);

/// Records a registration (`"replication state game::Ball [16, 16]"`).
pub(crate) fn register(app: &mut App, entry: String) {
    app.world_mut()
        .get_resource_or_insert_with(Registered::default)
        .0
        .push(entry);
}

/// The app's schema: `first` (a rollback app's input and rolled-back
/// types), then the replicated types in the order they were registered.
pub(crate) fn of(world: &World, first: Vec<String>) -> TypeSchema {
    let mut schema = TypeSchema::new();
    for entry in first {
        schema.push(entry);
    }
    for entry in world.get_resource::<Registered>().map_or(&[][..], |r| &r.0) {
        schema.push(entry.clone());
    }
    schema
}
