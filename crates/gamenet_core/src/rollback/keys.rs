//! Player keys and what other peers see of them.
//!
//! A player's key is the only credential for reclaiming its slots after it
//! left or restarted, so it never goes on the wire. Peers see a *verifier*:
//! the Ed25519 public key derived from the key. A joiner that claims slots
//! proves it holds the key by signing its own peer id (the mesh vouches for
//! the sender's id, so the proof cannot be replayed from another peer); any
//! player, whichever is host by then, checks the proof against the verifier
//! it holds.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};

use crate::PeerId;

/// What peers know of a player's key: the public half of a key pair derived
/// from it. All zeros: no key (a free slot).
pub(crate) type Verifier = [u8; 32];
/// A joiner's proof that it holds the key of a verifier: a signature of its
/// peer id.
pub(crate) type Proof = [u8; 64];

/// What a joiner signs, before its peer id.
const JOIN_CONTEXT: &[u8] = b"gamenet rollback join v1";

/// A player key and the key pair derived from it.
pub(crate) struct PlayerKey {
    /// The key the application gave.
    pub(crate) key: u64,
    /// The signing key derived from it.
    signing: SigningKey,
}

impl std::fmt::Debug for PlayerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayerKey").finish_non_exhaustive()
    }
}

impl PlayerKey {
    /// Derives the key pair of `key`.
    pub(crate) fn new(key: u64) -> Self {
        let digest = Sha512::new()
            .chain_update(b"gamenet rollback key v1")
            .chain_update(key.to_le_bytes())
            .finalize();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&digest[..32]);
        Self {
            key,
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// What other peers may know of this key.
    pub(crate) fn verifier(&self) -> Verifier {
        self.signing.verifying_key().to_bytes()
    }

    /// The proof that the peer `id` holds this key.
    pub(crate) fn prove(&self, id: PeerId) -> Proof {
        self.signing.sign(&message(id)).to_bytes()
    }
}

fn message(id: PeerId) -> Vec<u8> {
    let mut m = JOIN_CONTEXT.to_vec();
    m.extend_from_slice(&id.0.to_le_bytes());
    m
}

/// Whether `proof` shows that peer `id` holds the key of `verifier`.
pub(crate) fn check(verifier: &Verifier, id: PeerId, proof: &Proof) -> bool {
    let Ok(public) = VerifyingKey::from_bytes(verifier) else {
        return false;
    };
    public
        .verify_strict(&message(id), &Signature::from_bytes(proof))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_peer_only() {
        let key = PlayerKey::new(42);
        let proof = key.prove(PeerId(7));
        assert!(check(&key.verifier(), PeerId(7), &proof));
        assert!(!check(&key.verifier(), PeerId(8), &proof));
        assert!(!check(&PlayerKey::new(43).verifier(), PeerId(7), &proof));
        assert!(!check(&[0; 32], PeerId(7), &proof));
        assert_ne!(PlayerKey::new(1).verifier(), PlayerKey::new(2).verifier());
    }
}
