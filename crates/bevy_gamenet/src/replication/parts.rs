//! Several replicated states on one entity. The first state an entity
//! publishes is the entity itself on the wire ([`NetEntity`](super::NetEntity));
//! each further one travels as an object of its own, of that state's *part*
//! type, whose first two fields carry the entity's id so that every peer
//! puts it on the same entity. A part follows its entity: spawned, shown,
//! hidden, handed over and despawned with it, and despawned alone when its
//! component is removed.
//!
//! Who may send a part: the owner of the entity it names. A part naming an
//! entity of another peer, or a second part of one type on one entity, is
//! ignored (and logged); one naming an entity not seen yet waits for it.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use gamenet::replication::{Fields, NetId};

use super::interpolation::Buffer;

/// An entity's further states, by part type.
#[derive(Component, Default)]
pub(super) struct Parts(pub BTreeMap<u16, Part>);

/// One further state of an entity.
pub(super) struct Part {
    /// Its replication id.
    pub id: NetId,
    /// Its received states, while the entity is another peer's.
    pub buffer: Option<Buffer>,
}

/// The fields of a part of the entity `of`: its id, then the state's.
pub(super) fn part_fields(of: NetId, state: &[u32]) -> Vec<u32> {
    let mut fields = Vec::with_capacity(state.len() + 2);
    fields.extend([(of.0 >> 32) as u32, of.0 as u32]);
    fields.extend_from_slice(state);
    fields
}

/// The entity a part names, and the state it carries.
pub(super) fn split(fields: &[u32]) -> Option<(NetId, Fields)> {
    let [hi, lo, state @ ..] = fields else {
        return None;
    };
    Some((
        NetId(((*hi as u64) << 32) | *lo as u64),
        Fields::from(state),
    ))
}

/// Puts the part `id` of type `ty` on `entity` (a second part of one type
/// is ignored).
pub(super) fn add(entity: Entity, ty: u16, id: NetId, buffer: Option<Buffer>) -> impl Command {
    move |world: &mut World| {
        let Ok(mut e) = world.get_entity_mut(entity) else {
            return;
        };
        if !e.contains::<Parts>() {
            e.insert(Parts::default());
        }
        if let Some(mut parts) = e.get_mut::<Parts>() {
            match parts.0.get(&ty) {
                // The same part spawned again (whole, after a lost message).
                Some(part) if part.id == id => {}
                Some(_) => {
                    tracing::warn!("replication: a second part of type {ty} for {entity}; ignored");
                }
                None => {
                    parts.0.insert(ty, Part { id, buffer });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_names_its_entity_in_two_fields() {
        let of = NetId(0x1234_5678_9abc_def0);
        let fields = part_fields(of, &[7, 8]);
        assert_eq!(fields.len(), 4);
        let (back, state) = split(&fields).unwrap();
        assert_eq!((back, &state[..]), (of, &[7, 8][..]));
        assert!(split(&[1]).is_none());
    }
}
