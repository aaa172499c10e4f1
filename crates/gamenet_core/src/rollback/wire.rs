//! Rollback messages on the wire, and the compact encoding of input runs.
//!
//! Inputs travel as records: per frame, per slot, one flag byte (0 = the slot
//! is disconnected, 1 = an input follows) and the input's bytes. Each record is
//! XORed with the one before it (inputs change rarely) and the result is
//! run-length encoded for zero bytes, so a held button over 64 frames costs a
//! few bytes.

use crate::PeerId;
use crate::codec::{DecodeError, Reader, Writer};

use super::{Frame, Input};

/// Most frames one input message carries.
pub(crate) const MAX_FRAMES_PER_MESSAGE: usize = 64;
/// Most slots a session can have.
pub const MAX_PLAYERS: usize = 64;

const INPUTS: u8 = 0x01;
const INTRO: u8 = 0x10;
const ADMIT: u8 = 0x11;
const SNAPSHOT: u8 = 0x12;
const LOST: u8 = 0x13;
const CHECKSUM: u8 = 0x14;
const REFUSE: u8 = 0x15;

/// A frame-major block of slot inputs: `records[frame][slot]`, `None` meaning
/// disconnected.
pub(crate) type Records<I> = Vec<Vec<Option<I>>>;

/// Largest frame number a peer may name: frames never get near it (at 60 fps
/// it is a year of play), and sums of frames and counts cannot overflow.
pub(crate) const MAX_FRAME: Frame = Frame::MAX / 2;

fn frame(r: &mut Reader<'_>, what: &'static str) -> Result<Frame, DecodeError> {
    let f = r.u32(what)?;
    if f > MAX_FRAME {
        return Err(DecodeError::Invalid(what));
    }
    Ok(f)
}

fn peer(r: &mut Reader<'_>, what: &'static str) -> Result<PeerId, DecodeError> {
    Ok(PeerId(u128::from_le_bytes(r.array(what)?)))
}

fn blob<'a>(r: &mut Reader<'a>, max: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
    let len = r.u32(what)? as usize;
    if len > max {
        return Err(DecodeError::Invalid(what));
    }
    r.take(len, what)
}

fn slots(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<u8>, DecodeError> {
    let n = r.u8(what)? as usize;
    let s = r.take(n, what)?.to_vec();
    if s.iter().any(|&s| s as usize >= MAX_PLAYERS) {
        return Err(DecodeError::Invalid(what));
    }
    Ok(s)
}

/// Encodes `records` (each with `width` slots) into `out`.
pub(crate) fn encode_records<I: Input>(records: &[Vec<Option<I>>], out: &mut Vec<u8>) {
    let Some(first) = records.first() else {
        return;
    };
    let len = first.len() * (1 + I::SIZE);
    let mut prev = vec![0u8; len];
    let mut cur = vec![0u8; len];
    let mut zeros = 0usize;
    let flush = |zeros: &mut usize, out: &mut Vec<u8>| {
        while *zeros > 0 {
            let n = (*zeros).min(256);
            out.push(0);
            out.push((n - 1) as u8);
            *zeros -= n;
        }
    };
    for record in records {
        for (slot, input) in record.iter().enumerate() {
            let at = slot * (1 + I::SIZE);
            match input {
                Some(i) => {
                    cur[at] = 1;
                    i.write(&mut cur[at + 1..at + 1 + I::SIZE]);
                }
                None => cur[at..at + 1 + I::SIZE].fill(0),
            }
        }
        for (c, p) in cur.iter().zip(&prev) {
            let x = c ^ p;
            if x == 0 {
                zeros += 1;
            } else {
                flush(&mut zeros, out);
                out.push(x);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    flush(&mut zeros, out);
}

/// Decodes `count` records of `width` slots; never reads or allocates past what
/// the counts allow.
pub(crate) fn decode_records<I: Input>(
    bytes: &[u8],
    width: usize,
    count: usize,
) -> Result<Records<I>, DecodeError> {
    let len = width * (1 + I::SIZE);
    let total = len * count;
    if total > 1 << 24 {
        return Err(DecodeError::Invalid("input block too large"));
    }
    let mut flat = Vec::with_capacity(total.min(1 << 16));
    let mut it = bytes.iter();
    while let Some(&b) = it.next() {
        if b == 0 {
            let n = *it.next().ok_or(DecodeError::Truncated("input run"))? as usize + 1;
            if flat.len() + n > total {
                return Err(DecodeError::Invalid("input run too long"));
            }
            flat.resize(flat.len() + n, 0);
        } else {
            if flat.len() >= total {
                return Err(DecodeError::Invalid("input run too long"));
            }
            flat.push(b);
        }
    }
    if flat.len() != total {
        return Err(DecodeError::Truncated("inputs"));
    }
    for i in len..total {
        flat[i] ^= flat[i - len];
    }
    let mut records = Vec::with_capacity(count);
    for record in flat.chunks_exact(len.max(1)).take(count) {
        let mut row = Vec::with_capacity(width);
        for slot in record.chunks_exact(1 + I::SIZE) {
            match slot[0] {
                0 => row.push(None),
                1 => row.push(Some(I::read(&slot[1..]))),
                _ => return Err(DecodeError::Invalid("input flag")),
            }
        }
        records.push(row);
    }
    if len == 0 {
        records.resize(count, Vec::new());
    }
    Ok(records)
}

/// A run of inputs of some slots from a start frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputRun<I> {
    /// The frame of the first record.
    pub start: Frame,
    /// The slots, in the order of each record's entries.
    pub slots: Vec<u8>,
    /// One record per frame from `start` on.
    pub records: Records<I>,
}

impl<I: Input> InputRun<I> {
    fn write(&self, w: &mut Writer) {
        w.u32(self.start).u8(self.slots.len() as u8);
        w.0.extend_from_slice(&self.slots);
        w.u16(self.records.len() as u16);
        let mut enc = Vec::new();
        encode_records(&self.records, &mut enc);
        w.blob(&enc);
    }

    fn read(r: &mut Reader<'_>, max_frames: usize) -> Result<Self, DecodeError> {
        let start = frame(r, "run start")?;
        let slots = slots(r, "run slots")?;
        let count = r.u16("run count")? as usize;
        if count > max_frames {
            return Err(DecodeError::Invalid("run count"));
        }
        let data = blob(r, 1 << 20, "run data")?;
        let records = decode_records(data, slots.len(), count)?;
        Ok(Self {
            start,
            slots,
            records,
        })
    }
}

/// One slot's entry in a snapshot's slot table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlotEntry {
    /// 0 free, 1 occupied, 2 vacant (its player left; reclaimable by key).
    pub state: u8,
    /// The peer playing it (or that last played it).
    pub peer: PeerId,
    /// That player's key.
    pub key: u64,
    /// Its player's first frame (`Frame::MAX`: never played).
    pub active_from: Frame,
    /// The first frame without its player, once it left.
    pub until: Option<Frame>,
}

/// Inputs, acks and clock data: the sender's own slots' inputs, or a host's
/// confirmed feed of every slot to a spectator.
///
/// Who may send this: any member. Today's checks: from a non-member or a
/// member being reported lost only the acks and clock count; a feed is taken
/// only by a spectator and a player's run only by a player; a player's run
/// must name exactly the sender's slots, a feed every slot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputsMsg<I> {
    /// Frames of the receiver's inputs (or feed) below this the sender has.
    pub ack: Frame,
    /// The sender's next frame to simulate.
    pub frame: Frame,
    /// The sender's clock, in milliseconds since its first call.
    pub time_ms: u32,
    /// The last `time_ms` the sender heard from the receiver (0: none).
    pub echo_ms: u32,
    /// How long the sender held that echo before sending, in milliseconds.
    pub echo_hold_ms: u16,
    /// Whether `run` is a host's confirmed feed to a spectator.
    pub feed: bool,
    /// The inputs.
    pub run: InputRun<I>,
}

/// Sent to each peer on connect: who I am and what I want.
///
/// Who may send this: any connected peer. Today's checks: the session size
/// must match ours; a joiner's intro is taken only by a running player and
/// only from a peer that is not a member yet; any other intro only from a
/// member, once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IntroMsg {
    /// The sender's player key (for reconnecting).
    pub key: u64,
    /// Whether the sender asks to join a running session.
    pub joiner: bool,
    /// Slots the sender plays (0: a spectator).
    pub players: u8,
    /// Slots of the sender's session.
    pub num_players: u8,
}

/// The host admits a peer into slots from a frame.
///
/// Who may send this: the host only. Today's checks: the sender must be a
/// player member (not that it is the host); the receiver must be a running
/// player; the admit must fit (a new peer, slots not occupied, a frame not
/// final yet).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdmitMsg {
    /// The peer admitted.
    pub peer: PeerId,
    /// Its player key.
    pub key: u64,
    /// Its slots (none: a spectator).
    pub slots: Vec<u8>,
    /// Its first frame.
    pub from: Frame,
    /// The frame of the snapshot it gets.
    pub snapshot: Frame,
}

/// The state a joiner starts from, with the slot table and inputs since.
///
/// Who may send this: the host only. Today's checks: taken only while
/// joining (from any peer) and only if it fits this session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SnapshotMsg<I> {
    /// The frame the state is the state at.
    pub frame: Frame,
    /// The joiner's first frame.
    pub from: Frame,
    /// The joiner's slots.
    pub your_slots: Vec<u8>,
    /// Every slot's entry.
    pub table: Vec<SlotEntry>,
    /// Spectators and their keys.
    pub spectators: Vec<(PeerId, u64)>,
    /// Inputs of the occupied slots from `frame` on.
    pub runs: Vec<InputRun<I>>,
    /// The game's serialized state.
    pub data: Vec<u8>,
}

/// What the sender has of a peer that left.
///
/// Who may send this: a player. Today's checks: taken only by a player, only
/// from a player member not itself being reported lost, and only for the
/// departed peer's slots; kept for later while the receiver joins or does
/// not know the departed peer yet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LostMsg<I> {
    /// The peer that left.
    pub peer: PeerId,
    /// The sender's inputs of its slots.
    pub run: InputRun<I>,
}

/// A confirmed frame's checksum, whole and per part.
///
/// Who may send this: a player. Today's checks: taken from any member.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChecksumMsg {
    /// The frame.
    pub frame: Frame,
    /// The whole state's checksum.
    pub total: u64,
    /// Parts, as (hash of the part's name, checksum).
    pub parts: Vec<(u64, u64)>,
}

/// The host refuses a join.
///
/// Who may send this: the host only. Today's checks: taken only while
/// joining, from any peer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefuseMsg {
    /// Why.
    pub reason: String,
}

/// A rollback protocol message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Msg<I> {
    /// Unreliable: inputs, acks and clock data.
    Inputs(InputsMsg<I>),
    /// Who I am and what I want.
    Intro(IntroMsg),
    /// The host admits a peer.
    Admit(AdmitMsg),
    /// The state a joiner starts from.
    Snapshot(SnapshotMsg<I>),
    /// What the sender has of a peer that left.
    Lost(LostMsg<I>),
    /// A confirmed frame's checksum.
    Checksum(ChecksumMsg),
    /// The host refuses a join.
    Refuse(RefuseMsg),
}

const MAX_PARTS: usize = 1024;

impl<I: Input> Msg<I> {
    /// Whether it goes on the reliable channel (all but inputs).
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Msg::Inputs(_))
    }

    /// The message's bytes: a type byte, then the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Msg::Inputs(m) => {
                w.u8(INPUTS)
                    .u32(m.ack)
                    .u32(m.frame)
                    .u32(m.time_ms)
                    .u32(m.echo_ms)
                    .u16(m.echo_hold_ms)
                    .u8(m.feed as u8);
                m.run.write(&mut w);
            }
            Msg::Intro(m) => {
                w.u8(INTRO)
                    .u64(m.key)
                    .u8(m.joiner as u8)
                    .u8(m.players)
                    .u8(m.num_players);
            }
            Msg::Admit(m) => {
                w.u8(ADMIT).peer(m.peer).u64(m.key).u8(m.slots.len() as u8);
                w.0.extend_from_slice(&m.slots);
                w.u32(m.from).u32(m.snapshot);
            }
            Msg::Snapshot(m) => {
                w.u8(SNAPSHOT)
                    .u32(m.frame)
                    .u32(m.from)
                    .u8(m.your_slots.len() as u8);
                w.0.extend_from_slice(&m.your_slots);
                w.u8(m.table.len() as u8);
                for e in &m.table {
                    w.u8(e.state)
                        .peer(e.peer)
                        .u64(e.key)
                        .u32(e.active_from)
                        .u32(e.until.unwrap_or(Frame::MAX));
                }
                w.u8(m.spectators.len() as u8);
                for (p, k) in &m.spectators {
                    w.peer(*p).u64(*k);
                }
                w.u8(m.runs.len() as u8);
                for run in &m.runs {
                    run.write(&mut w);
                }
                w.blob(&m.data);
            }
            Msg::Lost(m) => {
                w.u8(LOST).peer(m.peer);
                m.run.write(&mut w);
            }
            Msg::Checksum(m) => {
                w.u8(CHECKSUM)
                    .u32(m.frame)
                    .u64(m.total)
                    .u16(m.parts.len() as u16);
                for (id, v) in &m.parts {
                    w.u64(*id).u64(*v);
                }
            }
            Msg::Refuse(m) => {
                w.u8(REFUSE);
                w.blob(m.reason.as_bytes());
            }
        }
        w.0
    }

    /// Decodes a message; `max_snapshot` caps a snapshot's state bytes.
    pub fn decode(bytes: &[u8], max_snapshot: usize) -> Result<Self, DecodeError> {
        let (&kind, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
        let mut r = Reader { bytes: rest };
        let msg = match kind {
            INPUTS => Msg::Inputs(InputsMsg {
                ack: frame(&mut r, "ack")?,
                frame: frame(&mut r, "frame")?,
                time_ms: r.u32("time")?,
                echo_ms: r.u32("echo")?,
                echo_hold_ms: r.u16("echo hold")?,
                feed: r.u8("feed")? != 0,
                run: InputRun::read(&mut r, MAX_FRAMES_PER_MESSAGE)?,
            }),
            INTRO => Msg::Intro(IntroMsg {
                key: r.u64("key")?,
                joiner: r.u8("joiner")? != 0,
                players: r.u8("players")?,
                num_players: r.u8("num players")?,
            }),
            ADMIT => Msg::Admit(AdmitMsg {
                peer: peer(&mut r, "admit peer")?,
                key: r.u64("admit key")?,
                slots: slots(&mut r, "admit slots")?,
                from: frame(&mut r, "admit from")?,
                snapshot: frame(&mut r, "admit snapshot")?,
            }),
            SNAPSHOT => {
                let frame_no = frame(&mut r, "snapshot frame")?;
                let from = frame(&mut r, "snapshot from")?;
                let your_slots = slots(&mut r, "snapshot slots")?;
                let n = r.u8("table")? as usize;
                if n > MAX_PLAYERS {
                    return Err(DecodeError::Invalid("table"));
                }
                let mut table = Vec::with_capacity(n);
                for _ in 0..n {
                    let state = r.u8("slot state")?;
                    if state > 2 {
                        return Err(DecodeError::Invalid("slot state"));
                    }
                    table.push(SlotEntry {
                        state,
                        peer: peer(&mut r, "slot peer")?,
                        key: r.u64("slot key")?,
                        active_from: match r.u32("slot from")? {
                            Frame::MAX => Frame::MAX,
                            f if f > MAX_FRAME => return Err(DecodeError::Invalid("slot from")),
                            f => f,
                        },
                        until: match r.u32("slot until")? {
                            Frame::MAX => None,
                            f if f > MAX_FRAME => return Err(DecodeError::Invalid("slot until")),
                            f => Some(f),
                        },
                    });
                }
                let n = r.u8("spectators")? as usize;
                let mut spectators = Vec::with_capacity(n);
                for _ in 0..n {
                    spectators.push((peer(&mut r, "spectator")?, r.u64("spectator key")?));
                }
                let n = r.u8("runs")? as usize;
                if n > MAX_PLAYERS {
                    return Err(DecodeError::Invalid("runs"));
                }
                let mut runs = Vec::with_capacity(n);
                for _ in 0..n {
                    runs.push(InputRun::read(&mut r, 4096)?);
                }
                let data = blob(&mut r, max_snapshot, "snapshot data")?.to_vec();
                Msg::Snapshot(SnapshotMsg {
                    frame: frame_no,
                    from,
                    your_slots,
                    table,
                    spectators,
                    runs,
                    data,
                })
            }
            LOST => Msg::Lost(LostMsg {
                peer: peer(&mut r, "lost peer")?,
                run: InputRun::read(&mut r, 4096)?,
            }),
            CHECKSUM => {
                let frame = frame(&mut r, "checksum frame")?;
                let total = r.u64("checksum")?;
                let n = r.u16("parts")? as usize;
                if n > MAX_PARTS {
                    return Err(DecodeError::Invalid("parts"));
                }
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push((r.u64("part id")?, r.u64("part value")?));
                }
                Msg::Checksum(ChecksumMsg {
                    frame,
                    total,
                    parts,
                })
            }
            REFUSE => Msg::Refuse(RefuseMsg {
                reason: String::from_utf8_lossy(blob(&mut r, 1024, "reason")?).into_owned(),
            }),
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_round_trip_compactly() {
        let mut records: Records<u16> = Vec::new();
        for f in 0..64u16 {
            records.push(vec![Some(f / 16), None, Some(7)]);
        }
        let mut enc = Vec::new();
        encode_records(&records, &mut enc);
        assert!(enc.len() < 40, "{} bytes", enc.len());
        assert_eq!(decode_records::<u16>(&enc, 3, 64).unwrap(), records);
    }

    #[test]
    fn messages_round_trip() {
        let run = InputRun {
            start: 5,
            slots: vec![0, 2],
            records: vec![vec![Some(1u8), Some(2)], vec![Some(1), None]],
        };
        let msgs: Vec<Msg<u8>> = vec![
            Msg::Inputs(InputsMsg {
                ack: 1,
                frame: 2,
                time_ms: 3,
                echo_ms: 4,
                echo_hold_ms: 5,
                feed: true,
                run: run.clone(),
            }),
            Msg::Intro(IntroMsg {
                key: 9,
                joiner: true,
                players: 1,
                num_players: 4,
            }),
            Msg::Admit(AdmitMsg {
                peer: PeerId(77),
                key: 3,
                slots: vec![1],
                from: 100,
                snapshot: 90,
            }),
            Msg::Snapshot(SnapshotMsg {
                frame: 90,
                from: 100,
                your_slots: vec![1],
                table: vec![SlotEntry {
                    state: 1,
                    peer: PeerId(1),
                    key: 2,
                    active_from: 0,
                    until: None,
                }],
                spectators: vec![(PeerId(5), 6)],
                runs: vec![run.clone()],
                data: vec![1, 2, 3],
            }),
            Msg::Lost(LostMsg {
                peer: PeerId(3),
                run,
            }),
            Msg::Checksum(ChecksumMsg {
                frame: 16,
                total: 1,
                parts: vec![(2, 3)],
            }),
            Msg::Refuse(RefuseMsg {
                reason: "full".into(),
            }),
        ];
        for m in msgs {
            assert_eq!(Msg::decode(&m.encode(), 1 << 20).unwrap(), m);
        }
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = Msg::<u32>::decode(&bytes, 1 << 16) {
                let _ = m.encode();
            }
        }

        #[test]
        fn typed_garbage_never_panics(kind in prop::sample::select(vec![1u8, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15]),
                                      tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = vec![kind];
            bytes.extend(tail);
            let _ = Msg::<[u8; 3]>::decode(&bytes, 1 << 16);
        }

        #[test]
        fn records_decode_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..100), width in 0usize..5, count in 0usize..70) {
            let _ = decode_records::<u16>(&bytes, width, count);
        }
    }
}
