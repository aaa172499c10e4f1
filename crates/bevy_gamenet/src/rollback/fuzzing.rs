//! The late-join snapshot decoder for the fuzz targets (feature `fuzzing`,
//! hidden from the docs): not part of the API, and not to be enabled in a
//! game.
//!
//! [`SnapshotDecoder`] holds the rolled-back types an app registered and
//! decodes and checks a snapshot the way loading it does, without a world:
//! what loading would apply is dropped, and what the checks counted is
//! returned.

use bevy_app::App;

use crate::snapshot::{Registry, SnapshotError, SnapshotLimits};

/// The rolled-back types of an app, taken out of it.
pub struct SnapshotDecoder {
    registry: Registry,
}

/// What a snapshot that decodes holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Its parts (one per rolled-back type).
    pub parts: usize,
    /// Its rollback entities.
    pub entities: usize,
    /// Its component values, over every component type.
    pub component_values: usize,
}

impl SnapshotDecoder {
    /// Takes the rolled-back types registered on `app` (which keeps none);
    /// none if it registered none.
    pub fn take(app: &mut App) -> Option<Self> {
        let registry = app.world_mut().remove_resource::<Registry>()?;
        Some(Self { registry })
    }

    /// Decodes and checks `bytes` within `limits`, as loading a late-join
    /// snapshot from a peer does before it touches the world.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        limits: SnapshotLimits,
    ) -> Result<Decoded, SnapshotError> {
        let (staged, cx) = self.registry.stage_all(bytes, limits)?;
        Ok(Decoded {
            parts: staged.len(),
            entities: cx.ids.len(),
            component_values: limits.max_components - cx.components_left,
        })
    }
}
