//! What an input is, how an input handed to the game came about, who plays a
//! slot, and how a missing input is predicted.

use std::fmt;

use crate::PeerId;

/// An input of one player for one frame: plain bytes of a fixed size.
///
/// Implemented for integers, `bool` and byte arrays; a game's input struct
/// implements it by writing its fields (`bevy_gamenet` derives it).
pub trait Input: Copy + PartialEq + Default + fmt::Debug + Send + Sync + 'static {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Writes the input into `out` (exactly `SIZE` bytes).
    fn write(&self, out: &mut [u8]);
    /// Reads an input from `bytes` (exactly `SIZE` bytes). Any bytes must give
    /// some input: they come from peers.
    fn read(bytes: &[u8]) -> Self;
}

macro_rules! int_input {
    ($($t:ty),*) => {$(
        impl Input for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn write(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn read(bytes: &[u8]) -> Self {
                let mut b = [0; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
        }
    )*};
}
int_input!(u8, u16, u32, u64, i8, i16, i32, i64);

/// One byte; any byte but 0 reads as `true`.
impl Input for bool {
    const SIZE: usize = 1;
    fn write(&self, out: &mut [u8]) {
        out[0] = u8::from(*self);
    }
    fn read(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

impl<const N: usize> Input for [u8; N]
where
    [u8; N]: Default,
{
    const SIZE: usize = N;
    fn write(&self, out: &mut [u8]) {
        out.copy_from_slice(self);
    }
    fn read(bytes: &[u8]) -> Self {
        let mut b = [0; N];
        b.copy_from_slice(bytes);
        b
    }
}

/// How an input handed to the game came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputStatus {
    /// The player's real input.
    Confirmed,
    /// A guess; a rollback follows if the real one differs.
    Predicted,
    /// The slot has no player for this frame; the input is the default.
    Disconnected,
}

/// Who plays a slot, as given to [`RollbackSession::start`](super::RollbackSession::start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerKind {
    /// A player on this peer.
    Local,
    /// A player on another peer.
    Remote(PeerId),
    /// Nobody yet: a peer joining later can take it.
    Open,
}

/// Input prediction: the input to assume for a slot whose input is not known,
/// given that slot's last known input.
pub type Predictor<I> = Box<dyn Fn(Option<I>) -> I + Send + Sync>;

/// The default prediction: the last known input again (the default input if
/// none is known).
pub(crate) fn repeat_last<I: Input>() -> Predictor<I> {
    Box::new(|last| last.unwrap_or_default())
}
