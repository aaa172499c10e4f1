//! FNV-1a, the one stable hash of the crate: part ids of checksums and the
//! hasher that state checksums are computed with. Stable across builds,
//! platforms and runs, unlike `std`'s `DefaultHasher`.

use std::hash::{BuildHasherDefault, Hasher};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline]
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// A stable 64-bit hash of a part name (FNV-1a), so peers can name parts
/// without sending the names.
pub fn part_id(name: &str) -> u64 {
    fnv1a(OFFSET, name.as_bytes())
}

/// A stable [`Hasher`] (FNV-1a with a final mix, so that sums of many hashes
/// stay well spread) for checksums that peers compare.
#[derive(Debug, Default, Clone)]
pub struct StableHasher(u64);

impl Hasher for StableHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let mut z = self.0 ^ OFFSET;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let start = if self.0 == 0 { OFFSET } else { self.0 };
        self.0 = fnv1a(start, bytes);
    }
}

/// Builds [`StableHasher`]s, for `BuildHasher::hash_one`.
pub type StableState = BuildHasherDefault<StableHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn part_ids_are_fnv1a() {
        assert_eq!(part_id(""), OFFSET);
        assert_eq!(part_id("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_stable_hasher_is_stable() {
        assert_eq!(
            StableState::default().hash_one(42u32),
            StableState::default().hash_one(42u32)
        );
        assert_ne!(
            StableState::default().hash_one(1u32),
            StableState::default().hash_one(2u32)
        );
    }
}
