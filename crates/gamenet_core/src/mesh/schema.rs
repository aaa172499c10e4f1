//! The types a game registers for its layers (rollback components,
//! resources and inputs, replicated states, typed messages), in order: both
//! peers of a link must register the same ones in the same order, or one
//! reads the other's bytes as the wrong type. Each hello
//! ([`ReliablePacket::Hello`](super::wire::ReliablePacket::Hello)) carries a
//! 32-bit hash per entry; a peer whose list differs fails the handshake with
//! [`HandshakeError::SchemaMismatch`], which names our type where the lists
//! part.

use super::event::HandshakeError;
use super::wire::MAX_SCHEMA_ENTRIES;

/// The types a game registers, in registration order, as text such as
/// `"replication state arena::Ball [16, 16, 12, 12]"`: what both ends of a
/// link must agree on. Empty by default (a mesh without typed layers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeSchema {
    entries: Vec<String>,
}

impl TypeSchema {
    /// An empty schema.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry.
    pub fn push(&mut self, entry: impl Into<String>) {
        self.entries.push(entry.into());
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The hashes the hello carries: one per entry, the last one covering
    /// every entry from [`MAX_SCHEMA_ENTRIES`]` - 1` on when there are more.
    pub fn hashes(&self) -> Vec<u32> {
        let mut hashes: Vec<u32> = self
            .entries
            .iter()
            .take(MAX_SCHEMA_ENTRIES - 1)
            .map(|e| hash(0, e))
            .collect();
        if self.entries.len() >= MAX_SCHEMA_ENTRIES {
            let rest = &self.entries[MAX_SCHEMA_ENTRIES - 1..];
            hashes.push(rest.iter().fold(0, |h, e| hash(h, e)));
        }
        hashes
    }

    /// The hashes as the hello carries them: 4 bytes each, little-endian.
    pub(crate) fn encode(&self) -> Vec<u8> {
        self.hashes().iter().flat_map(|h| h.to_le_bytes()).collect()
    }

    /// Compares the peer's hashes (as [`TypeSchema::encode`] packs them) with
    /// ours: the first entry where they part, named from our side.
    pub(crate) fn check(&self, theirs: &[u8]) -> Result<(), HandshakeError> {
        let ours = self.hashes();
        let theirs: Vec<u32> = theirs
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let Some(at) = (0..ours.len().max(theirs.len())).find(|&i| ours.get(i) != theirs.get(i))
        else {
            return Ok(());
        };
        let ours_at = match self.entries.get(at) {
            Some(entry) if at + 1 < MAX_SCHEMA_ENTRIES => format!("ours is `{entry}`"),
            Some(entry) => format!("ours is `{entry}` or one after it"),
            None => "we register no more types".to_owned(),
        };
        let theirs_at = if at < theirs.len() {
            "the peer registers another type there"
        } else {
            "the peer registers no more types"
        };
        Err(HandshakeError::SchemaMismatch {
            index: at,
            detail: format!("{ours_at}; {theirs_at}"),
        })
    }
}

/// FNV-1a (32 bits) of `entry`, continuing from `h` (0 to start).
fn hash(h: u32, entry: &str) -> u32 {
    const PRIME: u32 = 0x0100_0193;
    let start = if h == 0 { 0x811c_9dc5 } else { h };
    entry
        .bytes()
        .fold(start, |h, b| (h ^ u32::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(entries: &[&str]) -> TypeSchema {
        let mut s = TypeSchema::new();
        for e in entries {
            s.push(*e);
        }
        s
    }

    #[test]
    fn equal_lists_pass_and_the_first_difference_is_named() {
        let a = schema(&["rollback input u8", "replication state game::Ball"]);
        assert_eq!(a.check(&a.encode()), Ok(()));
        let b = schema(&["rollback input u8", "replication state game::Score"]);
        let err = a.check(&b.encode()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the peer registers other types: at #1, ours is `replication state game::Ball`; \
             the peer registers another type there"
        );
        let shorter = schema(&["rollback input u8"]);
        let err = a.check(&shorter.encode()).unwrap_err().to_string();
        assert!(err.contains("`replication state game::Ball`"), "{err}");
        assert!(err.contains("no more types"), "{err}");
        let err = shorter.check(&a.encode()).unwrap_err().to_string();
        assert!(err.contains("we register no more types"), "{err}");
    }

    #[test]
    fn a_long_list_folds_its_tail_into_the_last_hash() {
        let names: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
        let mut a = TypeSchema::new();
        for n in &names {
            a.push(n.clone());
        }
        assert_eq!(a.hashes().len(), MAX_SCHEMA_ENTRIES);
        let mut b = a.clone();
        b.push("one more");
        let err = a.check(&b.encode()).unwrap_err().to_string();
        assert!(err.contains("#254"), "{err}");
        assert!(err.contains("or one after it"), "{err}");
    }
}
