//! Well-formed hostile rollback messages (feature `rogue`), for testing that
//! a game's peers withstand a player who breaks the protocol on purpose. Each
//! function returns a message as the rollback layer puts it on the wire
//! (without the layer's tag); every rule it breaks is one the receivers check
//! (see the "Who may send this" notes in the session's wire format). Never
//! enable this feature in a game you ship.

use crate::peer::PeerId;

use super::wire::{
    AdmitMsg, ChecksumMsg, InputRun, InputsMsg, IntroMsg, LostMsg, Msg, SnapshotMsg,
};
use super::{Frame, Input};

/// A report that `victim`, playing `slot`, was lost, with its inputs from
/// `start` on: a lie when the victim is connected.
pub fn lost_report<I: Input>(victim: PeerId, slot: u8, start: Frame, input: I) -> Vec<u8> {
    Msg::Lost(LostMsg {
        peer: victim,
        run: InputRun {
            start,
            slots: vec![slot],
            records: vec![vec![Some(input)]; 4],
        },
    })
    .encode()
}

/// An admission of a made-up `peer` into `slots` (none: as a spectator),
/// which only the host may send.
pub fn admit<I: Input>(peer: PeerId, slots: Vec<u8>, from: Frame) -> Vec<u8> {
    Msg::<I>::Admit(AdmitMsg {
        peer,
        key: [7; 32],
        slots,
        from,
        snapshot: from.saturating_sub(1),
        attempt: 7,
    })
    .encode()
}

/// A checksum claimed for `frame` (far ahead of the present, say).
pub fn checksum<I: Input>(frame: Frame, total: u64) -> Vec<u8> {
    Msg::<I>::Checksum(ChecksumMsg {
        frame,
        total,
        parts: Vec::new(),
    })
    .encode()
}

/// A snapshot of made-up state for a joiner, which only the host may send.
pub fn snapshot<I: Input>(frame: Frame, your_slots: Vec<u8>) -> Vec<u8> {
    Msg::<I>::Snapshot(SnapshotMsg {
        frame,
        from: frame,
        your_slots,
        table: Vec::new(),
        spectators: Vec::new(),
        runs: Vec::new(),
        data: vec![1, 2, 3],
    })
    .encode()
}

/// An inputs message (a `feed` to a spectator or a player's own) of `input`
/// for `slots` over `frames` frames from `start`, sent at frame `frame`.
fn inputs<I: Input>(
    feed: bool,
    frame: Frame,
    start: Frame,
    slots: Vec<u8>,
    frames: usize,
    input: I,
) -> Vec<u8> {
    let records = vec![vec![Some(input); slots.len()]; frames];
    Msg::Inputs(InputsMsg {
        ack: start,
        frame,
        time_ms: 0,
        echo_ms: 0,
        echo_hold_ms: 0,
        feed,
        run: InputRun {
            start,
            slots,
            records,
        },
    })
    .encode()
}

/// Inputs for 255 copies of one slot over 256 frames: about a kilobyte that
/// would expand to 65,280 records, refused before decoding.
pub fn duplicate_slots<I: Input>(start: Frame, input: I) -> Vec<u8> {
    inputs(false, start, start, vec![0; 255], 256, input)
}

/// A feed of made-up inputs for all `slots` slots from `start`, which only
/// the host may send a spectator.
pub fn feed<I: Input>(slots: u8, start: Frame, input: I) -> Vec<u8> {
    inputs(true, start + 8, start, (0..slots).collect(), 8, input)
}

/// Inputs for `slot`, which the sender does not play.
pub fn inputs_for<I: Input>(slot: u8, start: Frame, input: I) -> Vec<u8> {
    inputs(false, start + 8, start, vec![slot], 8, input)
}

/// An introduction claiming another player's key verifier, with a proof
/// that is not that player's signature.
pub fn intro_claiming<I: Input>(verifier: [u8; 32], players: u8, num_players: u8) -> Vec<u8> {
    Msg::<I>::Intro(IntroMsg {
        key: verifier,
        proof: Some([0; 64]),
        attempt: 7,
        joiner: true,
        players,
        num_players,
    })
    .encode()
}
