//! The ring of snapshots every strategy keeps: one slot per frame, modulo
//! the ring's length.

use gamenet::rollback::Frame;

use super::SnapshotError;

/// One type's snapshots by frame, in a ring of `len` slots (the frame modulo
/// `len`); callers pass the same `len` every time, and a new length empties
/// the ring.
#[derive(Debug)]
pub(crate) struct Ring<T> {
    /// Per slot, the frame saved in it (`Frame::MAX` if none) and its snapshot.
    slots: Vec<(Frame, T)>,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<T> Ring<T> {
    /// Whether the ring has `len` slots (it has saved something at that length).
    pub fn has_len(&self, len: usize) -> bool {
        self.slots.len() == len.max(1)
    }

    /// The snapshot saved at `frame`, if its slot still holds it.
    pub fn get(&self, len: usize, frame: Frame) -> Option<&T> {
        if !self.has_len(len) {
            return None;
        }
        match &self.slots[frame as usize % self.slots.len()] {
            (f, v) if *f == frame => Some(v),
            _ => None,
        }
    }

    /// The snapshot saved at `frame`, for a late joiner; `name` names the
    /// type in the error.
    pub fn saved(&self, len: usize, frame: Frame, name: &'static str) -> Result<&T, SnapshotError> {
        self.get(len, frame)
            .ok_or(SnapshotError::NotSaved { name, frame })
    }
}

impl<T: Default> Ring<T> {
    /// The slot to save `frame` in, marked as holding it; the ring is sized to
    /// `len` first (emptied if it had another size). The slot keeps what it
    /// held before, for reuse of its allocation.
    pub fn slot_for(&mut self, len: usize, frame: Frame) -> &mut T {
        if !self.has_len(len) {
            self.slots.clear();
            self.slots
                .resize_with(len.max(1), || (Frame::MAX, T::default()));
        }
        let at = frame as usize % self.slots.len();
        let (f, v) = &mut self.slots[at];
        *f = frame;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_found_until_its_slot_is_reused() {
        let mut ring = Ring::<u32>::default();
        *ring.slot_for(4, 10) = 100;
        assert_eq!(ring.get(4, 10), Some(&100));
        assert_eq!(ring.get(4, 11), None);
        *ring.slot_for(4, 14) = 140;
        assert_eq!(ring.get(4, 10), None);
        assert_eq!(ring.get(4, 14), Some(&140));
    }

    #[test]
    fn another_length_empties_the_ring() {
        let mut ring = Ring::<u32>::default();
        *ring.slot_for(4, 1) = 1;
        assert_eq!(ring.get(5, 1), None);
        *ring.slot_for(5, 2) = 2;
        assert_eq!(ring.get(5, 1), None);
        assert_eq!(ring.get(5, 2), Some(&2));
    }
}
