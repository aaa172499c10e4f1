//! Rollback messages on the wire, and the compact encoding of input runs.
//!
//! Inputs travel as records: per frame, per slot, one flag byte (0 = the slot
//! is disconnected, 1 = an input follows) and the input's bytes. Each record is
//! XORed with the one before it (inputs change rarely) and the result is
//! run-length encoded for zero bytes, so a held button over 64 frames costs a
//! few bytes.

use crate::PeerId;
use crate::codec::{DecodeError, Reader, Writer};

use super::keys::{Proof, Verifier};
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
const DROPPED: u8 = 0x16;

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

/// A list of distinct slots below [`MAX_PLAYERS`].
fn slots(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<u8>, DecodeError> {
    let n = r.u8(what)? as usize;
    if n > MAX_PLAYERS {
        return Err(DecodeError::Invalid(what));
    }
    let s = r.take(n, what)?.to_vec();
    let mut seen = 0u64;
    for &slot in &s {
        if slot as usize >= MAX_PLAYERS || seen & (1 << slot) != 0 {
            return Err(DecodeError::Invalid(what));
        }
        seen |= 1 << slot;
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
/// the counts allow, nor more than `budget` decoded bytes (taken off it).
pub(crate) fn decode_records<I: Input>(
    bytes: &[u8],
    width: usize,
    count: usize,
    budget: &mut usize,
) -> Result<Records<I>, DecodeError> {
    let len = width * (1 + I::SIZE);
    let total = len * count;
    if total > *budget {
        return Err(DecodeError::Invalid("inputs beyond the decode limit"));
    }
    *budget -= total;
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

    fn read(
        r: &mut Reader<'_>,
        max_frames: usize,
        budget: &mut usize,
    ) -> Result<Self, DecodeError> {
        let start = frame(r, "run start")?;
        let slots = slots(r, "run slots")?;
        let count = r.u16("run count")? as usize;
        if count > max_frames {
            return Err(DecodeError::Invalid("run count"));
        }
        let data = blob(r, 1 << 20, "run data")?;
        let records = decode_records(data, slots.len(), count, budget)?;
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
    /// That player's key verifier.
    pub key: Verifier,
    /// Its player's first frame (`Frame::MAX`: never played).
    pub active_from: Frame,
    /// The first frame without its player, once it left.
    pub until: Option<Frame>,
}

/// Inputs, acks and clock data: the sender's own slots' inputs, or a host's
/// confirmed feed of every slot to a spectator.
///
/// Who may send this: any member, of its own slots; a feed only the host.
/// Checked on receipt: from a non-member nothing counts, from a member being
/// reported lost only the acks and clock; a player's run must name exactly
/// the sender's slots (else [`Misbehavior`](crate::Misbehavior)); a feed is
/// taken only by a spectator, only from the host it knows (the player that
/// admitted it, or the lowest-id player after that one left), and must name
/// every slot; inputs further ahead than the receiver takes are dropped.
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
/// Who may send this: any connected peer. Checked on receipt: the session
/// size must match ours; a joiner's intro must prove its verifier for its own
/// peer id (else [`Misbehavior`](crate::Misbehavior)), and is taken only by a
/// running player; only such a proof ends the membership of an older member
/// with the same verifier (a restarted player); any other intro only from a
/// member, once. A joiner's intro from a member admitted on that same attempt
/// is the request the admit answered (it came over a link that was up only
/// later) and changes nothing; a forger gains nothing by repeating an
/// attempt, since the member it names is admitted already.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IntroMsg {
    /// The verifier of the sender's player key: the key itself never leaves
    /// its peer.
    pub key: Verifier,
    /// A joiner's proof that it holds that key (`None` from a start player).
    pub proof: Option<Proof>,
    /// A joiner's attempt: a number fresh for each of its joins, repeated in
    /// the host's admit (0 from a start player; not sent).
    pub attempt: u64,
    /// Whether the sender asks to join a running session.
    pub joiner: bool,
    /// Slots the sender plays (0: a spectator).
    pub players: u8,
    /// Slots of the sender's session.
    pub num_players: u8,
}

/// The host admits a peer into slots from a frame.
///
/// Who may send this: the host only. Checked on receipt: the sender must be
/// the host as the receiver sees it (else
/// [`Misbehavior`](crate::Misbehavior)); the receiver must be a running
/// player; the admit must fit (a new peer, slots not occupied, a frame not
/// final yet, room for a spectator).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdmitMsg {
    /// The peer admitted.
    pub peer: PeerId,
    /// Its key's verifier.
    pub key: Verifier,
    /// Its slots (none: a spectator).
    pub slots: Vec<u8>,
    /// Its first frame.
    pub from: Frame,
    /// The frame of the snapshot it gets.
    pub snapshot: Frame,
    /// The attempt of the join request admitted ([`IntroMsg::attempt`]).
    pub attempt: u64,
}

/// The state a joiner starts from, with the slot table and inputs since.
///
/// Who may send this: the host that admitted the receiver. Checked on
/// receipt: from a peer other than the host outside joining, a forgery; taken
/// only while joining, only from the peer the joiner takes
/// for the host (the lowest-id peer that introduced itself as a running
/// player), which must also be the lowest-id player of the snapshot's own
/// table, and only if it fits this session (else
/// [`Misbehavior`](crate::Misbehavior)). A rogue host is out of reach of
/// these checks: whoever holds the lowest id admits.
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
    /// Spectators and their key verifiers.
    pub spectators: Vec<(PeerId, Verifier)>,
    /// Inputs of the occupied slots from `frame` on.
    pub runs: Vec<InputRun<I>>,
    /// The game's serialized state.
    pub data: Vec<u8>,
}

/// What the sender has of a peer that left: a vote that it left.
///
/// Who may send this: a player member that lost the peer. Checked on
/// receipt: taken only by a player, only from a player member not itself
/// being reported lost, and only for the departed peer's slots (else
/// [`Misbehavior`](crate::Misbehavior)); a report naming the receiver is
/// taken from any introduced player member. One report alone makes nobody
/// leave: the receiver joins the agreement on its own evidence (its link
/// lost the peer, it went silent or withheld its inputs), when more than
/// half of the other players report it, or when two members report each
/// other (a link between them broke: the higher id goes). A report on the
/// receiver itself is only a sign that the sender waits on it (answered with
/// an intro); as [`Msg::Dropped`] (the sender plays on without it) it is
/// believed from a player the receiver lost while cut off (the other side of
/// a split played on), or from more than half of the other players it has
/// not lost. Kept for later (bounded) while the receiver joins or does not
/// know the departed peer yet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LostMsg<I> {
    /// The peer that left.
    pub peer: PeerId,
    /// The sender's inputs of its slots.
    pub run: InputRun<I>,
}

/// A confirmed frame's checksum, whole and per part.
///
/// Who may send this: a player member. Checked on receipt: from a player
/// member only, for a checksum frame within the window the receiver keeps
/// (from its oldest kept checksum to the inputs it would take ahead); one
/// per peer and frame.
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
/// Who may send this: the host only. Checked on receipt: taken only while
/// joining, and only from the peer the joiner takes for the host.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefuseMsg {
    /// Why: at most [`MAX_REASON`] bytes go on the wire.
    pub reason: String,
}

/// Most bytes of a refusal's reason.
const MAX_REASON: usize = 1024;

/// The first [`MAX_REASON`] bytes of `reason`, cut at a character boundary.
fn cut_reason(reason: &str) -> &str {
    &reason[..reason.floor_char_boundary(MAX_REASON)]
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
    /// The sender plays on without the receiver: its departure was agreed.
    /// Who may send this: a player member, to the departed peer only
    /// (`peer` is the receiver; naming anyone else breaks the rule). Believed
    /// as [`LostMsg`] says; a [`Msg::Lost`] on the receiver is only a vote
    /// (the sender may be cut off or still deciding), answered with an intro.
    Dropped(LostMsg<I>),
    /// A confirmed frame's checksum.
    Checksum(ChecksumMsg),
    /// The host refuses a join.
    Refuse(RefuseMsg),
}

const MAX_PARTS: usize = 1024;
/// Most spectators a session has (a host admits no more).
pub(crate) const MAX_SPECTATORS: usize = 32;

/// Bounds on what one message may decode to, checked before allocating.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limits {
    /// A snapshot's state, in bytes.
    pub snapshot: usize,
    /// Decoded input records of one message, in bytes.
    pub decoded_inputs: usize,
}

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
                w.u8(INTRO);
                w.0.extend_from_slice(&m.key);
                w.u8(m.joiner as u8).u8(m.players).u8(m.num_players);
                if let Some(proof) = &m.proof {
                    w.0.extend_from_slice(proof);
                    w.u64(m.attempt);
                }
            }
            Msg::Admit(m) => {
                w.u8(ADMIT).peer(m.peer);
                w.0.extend_from_slice(&m.key);
                w.u8(m.slots.len() as u8);
                w.0.extend_from_slice(&m.slots);
                w.u32(m.from).u32(m.snapshot).u64(m.attempt);
            }
            Msg::Snapshot(m) => {
                w.u8(SNAPSHOT)
                    .u32(m.frame)
                    .u32(m.from)
                    .u8(m.your_slots.len() as u8);
                w.0.extend_from_slice(&m.your_slots);
                w.u8(m.table.len() as u8);
                for e in &m.table {
                    w.u8(e.state).peer(e.peer);
                    w.0.extend_from_slice(&e.key);
                    w.u32(e.active_from).u32(e.until.unwrap_or(Frame::MAX));
                }
                w.u8(m.spectators.len() as u8);
                for (p, k) in &m.spectators {
                    w.peer(*p);
                    w.0.extend_from_slice(k);
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
            Msg::Dropped(m) => {
                w.u8(DROPPED).peer(m.peer);
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
                w.blob(cut_reason(&m.reason).as_bytes());
            }
        }
        w.0
    }

    /// Decodes a message within `limits`, before anything else looks at it.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        let (&kind, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
        let mut r = Reader { bytes: rest };
        let budget = &mut limits.decoded_inputs.clone();
        let max_snapshot = limits.snapshot;
        let msg = match kind {
            INPUTS => Msg::Inputs(InputsMsg {
                ack: frame(&mut r, "ack")?,
                frame: frame(&mut r, "frame")?,
                time_ms: r.u32("time")?,
                echo_ms: r.u32("echo")?,
                echo_hold_ms: r.u16("echo hold")?,
                feed: r.u8("feed")? != 0,
                run: InputRun::read(&mut r, MAX_FRAMES_PER_MESSAGE, budget)?,
            }),
            INTRO => {
                let key = r.array("key")?;
                let joiner = r.u8("joiner")? != 0;
                Msg::Intro(IntroMsg {
                    key,
                    joiner,
                    players: r.u8("players")?,
                    num_players: r.u8("num players")?,
                    proof: if joiner {
                        Some(r.array("proof")?)
                    } else {
                        None
                    },
                    attempt: if joiner { r.u64("attempt")? } else { 0 },
                })
            }
            ADMIT => Msg::Admit(AdmitMsg {
                peer: peer(&mut r, "admit peer")?,
                key: r.array("admit key")?,
                slots: slots(&mut r, "admit slots")?,
                from: frame(&mut r, "admit from")?,
                snapshot: frame(&mut r, "admit snapshot")?,
                attempt: r.u64("admit attempt")?,
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
                        key: r.array("slot key")?,
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
                if n > MAX_SPECTATORS {
                    return Err(DecodeError::Invalid("spectators"));
                }
                let mut spectators = Vec::with_capacity(n);
                for _ in 0..n {
                    spectators.push((peer(&mut r, "spectator")?, r.array("spectator key")?));
                }
                let n = r.u8("runs")? as usize;
                if n > MAX_PLAYERS {
                    return Err(DecodeError::Invalid("runs"));
                }
                let mut runs = Vec::with_capacity(n);
                for _ in 0..n {
                    runs.push(InputRun::read(&mut r, 4096, budget)?);
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
                run: InputRun::read(&mut r, 4096, budget)?,
            }),
            DROPPED => Msg::Dropped(LostMsg {
                peer: peer(&mut r, "dropped peer")?,
                run: InputRun::read(&mut r, 4096, budget)?,
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
            REFUSE => {
                // Read leniently, but within the limit: each malformed byte
                // becomes a 3-byte replacement character.
                let reason = String::from_utf8_lossy(blob(&mut r, MAX_REASON, "reason")?);
                Msg::Refuse(RefuseMsg {
                    reason: cut_reason(&reason).to_owned(),
                })
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        snapshot: 1 << 16,
        decoded_inputs: 1 << 20,
    };

    #[test]
    fn records_round_trip_compactly() {
        let mut records: Records<u16> = Vec::new();
        for f in 0..64u16 {
            records.push(vec![Some(f / 16), None, Some(7)]);
        }
        let mut enc = Vec::new();
        encode_records(&records, &mut enc);
        assert!(enc.len() < 40, "{} bytes", enc.len());
        assert_eq!(
            decode_records::<u16>(&enc, 3, 64, &mut (1 << 20)).unwrap(),
            records
        );
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
                key: [9; 32],
                proof: Some([4; 64]),
                attempt: 7,
                joiner: true,
                players: 1,
                num_players: 4,
            }),
            Msg::Admit(AdmitMsg {
                peer: PeerId(77),
                key: [3; 32],
                slots: vec![1],
                from: 100,
                snapshot: 90,
                attempt: 7,
            }),
            Msg::Snapshot(SnapshotMsg {
                frame: 90,
                from: 100,
                your_slots: vec![1],
                table: vec![SlotEntry {
                    state: 1,
                    peer: PeerId(1),
                    key: [2; 32],
                    active_from: 0,
                    until: None,
                }],
                spectators: vec![(PeerId(5), [6; 32])],
                runs: vec![run.clone()],
                data: vec![1, 2, 3],
            }),
            Msg::Lost(LostMsg {
                peer: PeerId(3),
                run: run.clone(),
            }),
            Msg::Dropped(LostMsg {
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
            assert_eq!(Msg::decode(&m.encode(), &LIMITS).unwrap(), m);
        }
    }

    /// Found by the `rollback_wire` fuzz target
    /// (`fuzz/regressions/rollback_wire/refuse-reason-expands`): a reason of
    /// malformed bytes read as replacement characters, three bytes each, so
    /// that the refusal encoded past the limit the decoder holds it to. The
    /// reason is now cut to the limit, and encodes back to itself.
    #[test]
    fn refusal_reasons_stay_within_the_limit_both_ways() {
        let mut bytes = vec![REFUSE];
        bytes.extend_from_slice(&400u32.to_le_bytes());
        bytes.extend_from_slice(&[0xff; 400]);
        let m = Msg::<u16>::decode(&bytes, &LIMITS).unwrap();
        let Msg::Refuse(RefuseMsg { reason }) = &m else {
            panic!("{m:?}");
        };
        assert_eq!(reason.len(), 1023);
        assert_eq!(Msg::decode(&m.encode(), &LIMITS).unwrap(), m);
        // A longer reason of the host's is cut on the way out, not refused by
        // the joiner.
        let long = Msg::<u16>::Refuse(RefuseMsg {
            reason: "é".repeat(600),
        });
        let Msg::Refuse(RefuseMsg { reason }) =
            Msg::<u16>::decode(&long.encode(), &LIMITS).unwrap()
        else {
            panic!("not a refusal");
        };
        assert_eq!(reason, "é".repeat(512));
    }

    #[test]
    fn duplicate_slots_and_expanding_runs_are_refused_before_allocating() {
        let mut run = InputRun {
            start: 0,
            slots: vec![1, 1],
            records: vec![vec![Some(1u8), Some(2)]],
        };
        let inputs = |run: &InputRun<u8>| {
            Msg::Inputs(InputsMsg {
                ack: 0,
                frame: 0,
                time_ms: 0,
                echo_ms: 0,
                echo_hold_ms: 0,
                feed: false,
                run: run.clone(),
            })
        };
        assert_eq!(
            Msg::<u8>::decode(&inputs(&run).encode(), &LIMITS),
            Err(DecodeError::Invalid("run slots"))
        );
        // 64 frames of 64 slots, all zeros: a few hundred bytes that decode
        // to 8 KiB; a budget below that refuses it.
        run.slots = (0..64).collect();
        run.records = vec![vec![Some(0u8); 64]; 64];
        let bytes = inputs(&run).encode();
        assert!(bytes.len() < 600, "{} bytes", bytes.len());
        let tight = Limits {
            snapshot: 0,
            decoded_inputs: (8 << 10) - 1,
        };
        assert!(Msg::<u8>::decode(&bytes, &LIMITS).is_ok());
        assert_eq!(
            Msg::<u8>::decode(&bytes, &tight),
            Err(DecodeError::Invalid("inputs beyond the decode limit"))
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = Msg::<u32>::decode(&bytes, &LIMITS) {
                let _ = m.encode();
            }
        }

        #[test]
        fn typed_garbage_never_panics(kind in prop::sample::select(vec![1u8, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15]),
                                      tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = vec![kind];
            bytes.extend(tail);
            let _ = Msg::<[u8; 3]>::decode(&bytes, &LIMITS);
        }

        #[test]
        fn records_decode_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..100), width in 0usize..5, count in 0usize..70) {
            let _ = decode_records::<u16>(&bytes, width, count, &mut (1 << 20));
        }
    }
}
