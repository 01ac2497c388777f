//! The sealed follow-up label of psi/tags.py: AES-SIV (RFC 5297) with a 256-bit key, i.e.
//! AES-128-SIV, one associated-data string and no nonce (deterministic, one key per label).

use aes_siv::siv::Aes128Siv;
use aes_siv::KeyInit;

/// The synthetic IV that precedes the ciphertext.
pub const SEAL_OVERHEAD: usize = 16;
pub const KEY_BYTES: usize = 32;

/// Seal `plain` under `key` and `ad` into `out` (SEAL_OVERHEAD bytes longer than `plain`):
/// the IV, then the ciphertext, as RFC 5297 and the Python reference lay them out.
pub fn seal(key: &[u8; KEY_BYTES], ad: &[u8], plain: &[u8], out: &mut [u8]) {
    let (iv, body) = out.split_at_mut(SEAL_OVERHEAD);
    body.copy_from_slice(plain);
    let tag = Aes128Siv::new(key.into())
        .encrypt_in_place_detached([ad], body)
        .expect("one header is within RFC 5297's limit");
    iv.copy_from_slice(&tag);
}
