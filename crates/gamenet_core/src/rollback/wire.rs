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
    pub start: Frame,
    pub slots: Vec<u8>,
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
    pub peer: PeerId,
    pub key: u64,
    pub active_from: Frame,
    pub until: Option<Frame>,
}

/// A rollback protocol message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Msg<I> {
    /// Unreliable: the sender's inputs (or a host's confirmed feed), acks and
    /// clock data.
    Inputs {
        ack: Frame,
        frame: Frame,
        time_ms: u32,
        echo_ms: u32,
        echo_hold_ms: u16,
        feed: bool,
        run: InputRun<I>,
    },
    /// Sent to each peer on connect: who I am and what I want.
    Intro {
        key: u64,
        joiner: bool,
        players: u8,
        num_players: u8,
    },
    /// The host admits a peer into slots from a frame.
    Admit {
        peer: PeerId,
        key: u64,
        slots: Vec<u8>,
        from: Frame,
        snapshot: Frame,
    },
    /// The state a joiner starts from, with the slot table and inputs since.
    Snapshot {
        frame: Frame,
        from: Frame,
        your_slots: Vec<u8>,
        table: Vec<SlotEntry>,
        spectators: Vec<(PeerId, u64)>,
        runs: Vec<InputRun<I>>,
        data: Vec<u8>,
    },
    /// What the sender has of a peer that left.
    Lost { peer: PeerId, run: InputRun<I> },
    /// A confirmed frame's checksum, whole and per part.
    Checksum {
        frame: Frame,
        total: u64,
        parts: Vec<(u64, u64)>,
    },
    /// The host refuses a join.
    Refuse { reason: String },
}

const MAX_PARTS: usize = 1024;

impl<I: Input> Msg<I> {
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Msg::Inputs { .. })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Msg::Inputs {
                ack,
                frame,
                time_ms,
                echo_ms,
                echo_hold_ms,
                feed,
                run,
            } => {
                w.u8(INPUTS)
                    .u32(*ack)
                    .u32(*frame)
                    .u32(*time_ms)
                    .u32(*echo_ms)
                    .u16(*echo_hold_ms)
                    .u8(*feed as u8);
                run.write(&mut w);
            }
            Msg::Intro {
                key,
                joiner,
                players,
                num_players,
            } => {
                w.u8(INTRO)
                    .u64(*key)
                    .u8(*joiner as u8)
                    .u8(*players)
                    .u8(*num_players);
            }
            Msg::Admit {
                peer,
                key,
                slots,
                from,
                snapshot,
            } => {
                w.u8(ADMIT).peer(*peer).u64(*key).u8(slots.len() as u8);
                w.0.extend_from_slice(slots);
                w.u32(*from).u32(*snapshot);
            }
            Msg::Snapshot {
                frame,
                from,
                your_slots,
                table,
                spectators,
                runs,
                data,
            } => {
                w.u8(SNAPSHOT)
                    .u32(*frame)
                    .u32(*from)
                    .u8(your_slots.len() as u8);
                w.0.extend_from_slice(your_slots);
                w.u8(table.len() as u8);
                for e in table {
                    w.u8(e.state)
                        .peer(e.peer)
                        .u64(e.key)
                        .u32(e.active_from)
                        .u32(e.until.unwrap_or(Frame::MAX));
                }
                w.u8(spectators.len() as u8);
                for (p, k) in spectators {
                    w.peer(*p).u64(*k);
                }
                w.u8(runs.len() as u8);
                for run in runs {
                    run.write(&mut w);
                }
                w.blob(data);
            }
            Msg::Lost { peer, run } => {
                w.u8(LOST).peer(*peer);
                run.write(&mut w);
            }
            Msg::Checksum {
                frame,
                total,
                parts,
            } => {
                w.u8(CHECKSUM)
                    .u32(*frame)
                    .u64(*total)
                    .u16(parts.len() as u16);
                for (id, v) in parts {
                    w.u64(*id).u64(*v);
                }
            }
            Msg::Refuse { reason } => {
                w.u8(REFUSE);
                w.blob(reason.as_bytes());
            }
        }
        w.0
    }

    /// Decodes a message; `max_snapshot` caps a snapshot's state bytes.
    pub fn decode(bytes: &[u8], max_snapshot: usize) -> Result<Self, DecodeError> {
        let (&kind, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
        let mut r = Reader { bytes: rest };
        let msg = match kind {
            INPUTS => Msg::Inputs {
                ack: frame(&mut r, "ack")?,
                frame: frame(&mut r, "frame")?,
                time_ms: r.u32("time")?,
                echo_ms: r.u32("echo")?,
                echo_hold_ms: r.u16("echo hold")?,
                feed: r.u8("feed")? != 0,
                run: InputRun::read(&mut r, MAX_FRAMES_PER_MESSAGE)?,
            },
            INTRO => Msg::Intro {
                key: r.u64("key")?,
                joiner: r.u8("joiner")? != 0,
                players: r.u8("players")?,
                num_players: r.u8("num players")?,
            },
            ADMIT => Msg::Admit {
                peer: peer(&mut r, "admit peer")?,
                key: r.u64("admit key")?,
                slots: slots(&mut r, "admit slots")?,
                from: frame(&mut r, "admit from")?,
                snapshot: frame(&mut r, "admit snapshot")?,
            },
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
                Msg::Snapshot {
                    frame: frame_no,
                    from,
                    your_slots,
                    table,
                    spectators,
                    runs,
                    data,
                }
            }
            LOST => Msg::Lost {
                peer: peer(&mut r, "lost peer")?,
                run: InputRun::read(&mut r, 4096)?,
            },
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
                Msg::Checksum {
                    frame,
                    total,
                    parts,
                }
            }
            REFUSE => Msg::Refuse {
                reason: String::from_utf8_lossy(blob(&mut r, 1024, "reason")?).into_owned(),
            },
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
            Msg::Inputs {
                ack: 1,
                frame: 2,
                time_ms: 3,
                echo_ms: 4,
                echo_hold_ms: 5,
                feed: true,
                run: run.clone(),
            },
            Msg::Intro {
                key: 9,
                joiner: true,
                players: 1,
                num_players: 4,
            },
            Msg::Admit {
                peer: PeerId(77),
                key: 3,
                slots: vec![1],
                from: 100,
                snapshot: 90,
            },
            Msg::Snapshot {
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
            },
            Msg::Lost {
                peer: PeerId(3),
                run,
            },
            Msg::Checksum {
                frame: 16,
                total: 1,
                parts: vec![(2, 3)],
            },
            Msg::Refuse {
                reason: "full".into(),
            },
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
