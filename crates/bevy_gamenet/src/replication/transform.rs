//! Ready-made states for an entity's `Transform` ([`Transform2d`],
//! [`Transform3d`]) and [`TransformState`], the link from any state to it:
//! taken from `Transform` on the owner, written to it on other peers.

use bevy_ecs::prelude::*;
use bevy_ecs::reflect::ReflectComponent;
use bevy_math::{Quat, Vec2, Vec3};
use bevy_reflect::Reflect;
use bevy_reflect::std_traits::ReflectDefault;
use bevy_transform::components::Transform;

use super::{NetState, Remote, Replicated};

/// A state that stands for an entity's `Transform`: registered with
/// [`replicate_transform`](super::ReplicationApp::replicate_transform), it
/// is taken from the `Transform` of this peer's entities when that changes,
/// and written to the `Transform` of remote ones (inserted if missing).
pub trait TransformState: NetState + PartialEq {
    /// Copies what the state carries from `transform`, keeping the rest.
    fn copy_from(&mut self, transform: &Transform);
    /// Writes the state to `transform`, leaving what it does not carry.
    fn apply(&self, transform: &mut Transform);
}

/// A field that can stand for a `Transform`'s translation: `Vec3`, or
/// `Vec2` on the XY plane (the `Transform`'s Z is kept). What
/// `#[net(transform = translation)]` links.
pub trait AsTranslation {
    /// The field from a translation.
    fn from_translation(translation: Vec3) -> Self;
    /// The translation from the field; `old` is the one it replaces.
    fn to_translation(&self, old: Vec3) -> Vec3;
}

impl AsTranslation for Vec3 {
    fn from_translation(translation: Vec3) -> Self {
        translation
    }
    fn to_translation(&self, _: Vec3) -> Vec3 {
        *self
    }
}

impl AsTranslation for Vec2 {
    fn from_translation(translation: Vec3) -> Self {
        translation.truncate()
    }
    fn to_translation(&self, old: Vec3) -> Vec3 {
        self.extend(old.z)
    }
}

/// A field that can stand for a `Transform`'s rotation: `Quat`, or an
/// `f32` angle in radians about Z (2D). What `#[net(transform = rotation)]`
/// links.
pub trait AsRotation {
    /// The field from a rotation.
    fn from_rotation(rotation: Quat) -> Self;
    /// The rotation from the field.
    fn to_rotation(&self) -> Quat;
}

impl AsRotation for Quat {
    fn from_rotation(rotation: Quat) -> Self {
        rotation
    }
    fn to_rotation(&self) -> Quat {
        *self
    }
}

impl AsRotation for f32 {
    fn from_rotation(rotation: Quat) -> Self {
        let (axis, angle) = rotation.to_axis_angle();
        if axis.z < 0.0 { -angle } else { angle }
    }
    fn to_rotation(&self) -> Quat {
        Quat::from_rotation_z(*self)
    }
}

/// A field that can stand for a `Transform`'s scale: `Vec3`, `Vec2` (the
/// `Transform`'s Z kept) or a uniform `f32` (its X taken). What
/// `#[net(transform = scale)]` links.
pub trait AsScale {
    /// The field from a scale.
    fn from_scale(scale: Vec3) -> Self;
    /// The scale from the field; `old` is the one it replaces.
    fn to_scale(&self, old: Vec3) -> Vec3;
}

impl AsScale for Vec3 {
    fn from_scale(scale: Vec3) -> Self {
        scale
    }
    fn to_scale(&self, _: Vec3) -> Vec3 {
        *self
    }
}

impl AsScale for Vec2 {
    fn from_scale(scale: Vec3) -> Self {
        scale.truncate()
    }
    fn to_scale(&self, old: Vec3) -> Vec3 {
        self.extend(old.z)
    }
}

impl AsScale for f32 {
    fn from_scale(scale: Vec3) -> Self {
        scale.x
    }
    fn to_scale(&self, _: Vec3) -> Vec3 {
        Vec3::splat(*self)
    }
}

/// A 2D `Transform`: x and y within ±16 384 units to 0.01 (21 bits each),
/// the angle about z to a 65 536th of a turn; z and scale stay as each peer
/// has them. 58 bits.
#[derive(Component, Reflect, Clone, Copy, PartialEq, Debug, Default, NetState)]
#[reflect(Component, Debug, Default, PartialEq)]
#[require(Transform)]
pub struct Transform2d {
    /// x and y.
    #[net(range = -16384.0..16384.0, precision = 0.01, transform = translation)]
    pub translation: Vec2,
    /// Radians about z.
    #[net(angle, bits = 16, transform = rotation)]
    pub angle: f32,
}

/// A 3D `Transform`: each axis within ±16 384 units to 0.001 (24 bits),
/// the rotation in smallest-three form with 14 bits per component (about
/// 0.01°); scale stays as each peer has it. 116 bits.
#[derive(Component, Reflect, Clone, Copy, PartialEq, Debug, Default, NetState)]
#[reflect(Component, Debug, Default, PartialEq)]
#[require(Transform)]
pub struct Transform3d {
    /// Position.
    #[net(range = -16384.0..16384.0, precision = 0.001, transform = translation)]
    pub translation: Vec3,
    /// Rotation.
    #[net(rotation, bits = 14, transform = rotation)]
    pub rotation: Quat,
}

/// This peer's replicated entities whose `Transform` changed.
type MovedHere = (With<Replicated>, Without<Remote>, Changed<Transform>);

/// Remote entities whose state changed.
type ChangedThere<T> = (With<Remote>, Changed<T>);

/// Takes this peer's entities' state from their `Transform` when it changed.
pub(super) fn from_transforms<T: TransformState>(mut q: Query<(&Transform, &mut T), MovedHere>) {
    for (transform, mut state) in &mut q {
        let mut new = state.clone();
        new.copy_from(transform);
        state.set_if_neq(new);
    }
}

/// Writes remote entities' state to their `Transform`.
pub(super) fn to_transforms<T: TransformState>(
    mut commands: Commands,
    mut q: Query<(Entity, &T, Option<&mut Transform>), ChangedThere<T>>,
) {
    for (entity, state, transform) in &mut q {
        match transform {
            Some(mut t) => state.apply(&mut t),
            None => {
                let mut t = Transform::default();
                state.apply(&mut t);
                commands.entity(entity).insert(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2d_transform_round_trips_within_its_bounds() {
        let t =
            Transform::from_xyz(1234.567, -89.012, 5.0).with_rotation(Quat::from_rotation_z(-2.5));
        let mut state = Transform2d::default();
        state.copy_from(&t);
        let back = Transform2d::from_fields(&state.to_fields());
        assert!((back.translation - state.translation).abs().max_element() <= 0.01);
        assert!((back.angle - -2.5).abs() <= std::f32::consts::PI / 65535.0);
        let mut out = Transform::from_xyz(0.0, 0.0, 7.0);
        back.apply(&mut out);
        assert_eq!(out.translation.z, 7.0);
        assert!(out.rotation.angle_between(t.rotation) < 1e-3);
        let bits: u32 = Transform2d::WIDTHS.iter().map(|&w| w as u32).sum();
        assert_eq!(bits, 58);
    }

    #[test]
    fn a_3d_transform_round_trips_within_its_bounds() {
        let rotation = Quat::from_euler(bevy_math::EulerRot::YXZ, 1.0, -0.4, 2.9);
        let t = Transform::from_xyz(-16000.5, 3.25, 999.999).with_rotation(rotation);
        let mut state = Transform3d::default();
        state.copy_from(&t);
        let back = Transform3d::from_fields(&state.to_fields());
        assert!((back.translation - t.translation).abs().max_element() <= 0.001);
        assert!(back.rotation.angle_between(rotation) < 0.001);
        let bits: u32 = Transform3d::WIDTHS.iter().map(|&w| w as u32).sum();
        assert_eq!(bits, 116);
    }
}
