//! Replication settings, and why settings are refused.

use thiserror::Error;

use super::types::Schema;
use super::wire::MIN_PACKET;

/// Replication settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationConfig {
    /// Bytes per second each peer may be sent, by default.
    pub budget_bytes_per_sec: u32,
    /// Largest update packet (fits one SCTP chunk).
    pub max_packet: usize,
    /// Most entities one peer may have spawned at others.
    pub max_entities_per_peer: usize,
}

impl ReplicationConfig {
    /// Checks these settings with the schema they will serve.
    pub fn validate(&self, schema: &Schema) -> Result<(), ConfigError> {
        for (ty, widths) in schema.types.iter().enumerate() {
            if let Some((field, &width)) = widths.iter().enumerate().find(|(_, w)| **w > 32) {
                return Err(ConfigError::FieldWidth { ty, field, width });
            }
        }
        if self.max_packet < MIN_PACKET {
            return Err(ConfigError::MaxPacket {
                max_packet: self.max_packet,
                min: MIN_PACKET,
            });
        }
        Ok(())
    }
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            budget_bytes_per_sec: 64_000,
            max_packet: 1_100,
            max_entities_per_peer: 65_536,
        }
    }
}

/// Why a [`ReplicationConfig`](super::ReplicationConfig) or
/// [`Schema`](super::Schema) is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field wider than the 32 bits an entity's fields hold.
    #[error("field {field} of entity type {ty} is {width} bits wide; 32 at most")]
    FieldWidth {
        /// The entity type.
        ty: usize,
        /// The field's index.
        field: usize,
        /// Its width.
        width: u8,
    },
    /// `max_packet` leaves no room for an entity after the update header.
    #[error("max_packet of {max_packet} B is below the smallest useful update packet, {min} B")]
    MaxPacket {
        /// The setting.
        max_packet: usize,
        /// The smallest allowed.
        min: usize,
    },
}
