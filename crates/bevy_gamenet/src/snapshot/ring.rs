//! The ring of snapshots every strategy keeps: one slot per frame, modulo
//! the ring's length.

use gamenet::rollback::Frame;

/// The ring slot of `frame`, the ring grown to `len` first.
pub(crate) fn slot_of<T: Default>(ring: &mut Vec<(Frame, T)>, len: usize, frame: Frame) -> usize {
    if ring.len() != len {
        ring.clear();
        ring.resize_with(len.max(1), || (Frame::MAX, T::default()));
    }
    frame as usize % ring.len()
}
