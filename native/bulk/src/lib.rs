//! Bulk mode of psi-match: the kernels of a semi-honest KKRT16 PSI (Kolesnikov, Kumaresan,
//! Rosulek, Trieu, "Efficient Batched Oblivious PRF with Applications to Private Set
//! Intersection", CCS 2016), specified in docs/protocol.md ("Bulk mode").
//!
//! Every function here is deterministic: all randomness comes in as bytes from the caller
//! (`psi/bulk.py`), so that the Python reference (`psi/bulk_kernels.py`) gives the same bytes.
//! The protocol state machine lives in Python; these are its heavy loops over packed buffers,
//! parallel with rayon.
//!
//! - `ot`: the 512 base OTs (Chou–Orlandi "simplest OT" over ristretto255).
//! - `matrix`: the OT-extension matrices (AES-CTR column PRG, bit transpose, rows).
//! - `cuckoo`: the receiver's cuckoo table.
//! - `tags`: OPRF outputs, the sender's entries, the receiver's index and look-up, payload sealing.
//! - `labels`: the client's opening of each hit's label and its follow-up key.

pub mod cuckoo;
pub mod labels;
pub mod matrix;
pub mod ot;
pub mod tags;

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::{Aes128, Block};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Code width k in bits: one base OT per bit. A random-oracle code from 4 AES blocks
/// (KKRT16 Section 4: a pseudorandom code of width >= 424 bits for 2^-40, 128-bit security).
pub const WIDTH_BITS: usize = 512;
/// One row of the OT-extension matrices (one bin).
pub const ROW_BYTES: usize = WIDTH_BITS / 8;
/// An item's identity: SHA-256 of its key, truncated (collisions < n^2 / 2^129).
pub const X_BYTES: usize = 16;
/// AES-128 keys: base-OT seeds, code key, hash seed, per-item payload keys.
pub const KEY_BYTES: usize = 16;
/// Cuckoo hash functions.
pub const HASHES: usize = 3;
/// A cuckoo bin holding no item.
pub const EMPTY: u32 = u32::MAX;
/// An OPRF output: SHA-256.
pub const F_BYTES: usize = 32;
/// The masked part of an entry: the item key and the ciphertext position (u32).
pub const MASKED_BYTES: usize = KEY_BYTES + 4;
/// Tags are at most F_BYTES - MASKED_BYTES bytes: the mask is F's last 20 bytes.
pub const MAX_TAG_BYTES: usize = F_BYTES - MASKED_BYTES;
pub const MIN_TAG_BYTES: usize = 8;

pub const LABEL_ITEM: &[u8] = b"psi-bulk-v1-item";
pub const LABEL_BASE_OT: &[u8] = b"psi-bulk-v1-base-ot";
pub const LABEL_OPRF: &[u8] = b"psi-bulk-v1-oprf";
pub const LABEL_SEAL: &[u8] = b"psi-bulk-v1-seal";
pub const LABEL_PAYLOAD: &[u8] = b"psi-bulk-v1-payload";

/// Items per rayon task for the cheap per-item loops.
const MIN_TASK: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkError {
    /// Buffers that do not fit each other: the caller's bug.
    Shape(&'static str),
    /// A peer's value that the protocol does not allow.
    Malformed(&'static str),
}

impl std::fmt::Display for BulkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BulkError::Shape(m) | BulkError::Malformed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BulkError {}

/// Lengths that do not describe their buffer: the caller's bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeError(pub &'static str);

impl From<ShapeError> for BulkError {
    fn from(error: ShapeError) -> Self {
        BulkError::Shape(error.0)
    }
}

/// Variable-length values: one buffer and where each starts (the OPRF batch calls of the parent
/// crate take them too).
pub struct Inputs<'a> {
    data: &'a [u8],
    starts: Vec<usize>, // one more than there are inputs: the last is data.len()
}

impl<'a> Inputs<'a> {
    pub fn new(
        data: &'a [u8],
        lengths: impl IntoIterator<Item = usize>,
    ) -> Result<Self, ShapeError> {
        let mut starts = vec![0];
        let mut end = 0usize;
        for length in lengths {
            end = end
                .checked_add(length)
                .ok_or(ShapeError("input lengths overflow"))?;
            starts.push(end);
        }
        if end != data.len() {
            return Err(ShapeError("input lengths do not add up to the data"));
        }
        Ok(Inputs { data, starts })
    }

    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The inputs' bytes in all.
    pub fn total_bytes(&self) -> usize {
        self.data.len()
    }

    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.data[self.starts[i]..self.starts[i + 1]]
    }
}

pub(crate) fn count(buffer: &[u8], width: usize, what: &'static str) -> Result<usize, BulkError> {
    if buffer.len() % width != 0 {
        return Err(BulkError::Shape(what));
    }
    Ok(buffer.len() / width)
}

pub(crate) fn aes(key: &[u8]) -> Result<Aes128, BulkError> {
    if key.len() != KEY_BYTES {
        return Err(BulkError::Shape("an AES key is 16 bytes"));
    }
    Ok(Aes128::new(GenericArray::from_slice(key)))
}

/// AES_k(x XOR (a, b, 0, ...)): the tweaked fixed-key block of the hash functions and the code.
pub(crate) fn tweaked(cipher: &Aes128, x: &[u8], a: u8, b: u8) -> [u8; 16] {
    let mut block = GenericArray::clone_from_slice(x);
    block[0] ^= a;
    block[1] ^= b;
    cipher.encrypt_block(&mut block);
    block.into()
}

/// x = SHA-256(LABEL_ITEM || key)[0:16] of each key: packed.
pub fn digests(keys: &Inputs) -> Vec<u8> {
    let mut out = vec![0u8; keys.len() * X_BYTES];
    out.par_chunks_mut(X_BYTES)
        .enumerate()
        .with_min_len(MIN_TASK)
        .for_each(|(i, o)| {
            let d = Sha256::new()
                .chain_update(LABEL_ITEM)
                .chain_update(keys.get(i))
                .finalize();
            o.copy_from_slice(&d[..X_BYTES]);
        });
    out
}

/// The bin of x under hash function i: the first 8 bytes of AES_seed(x ^ (i)) as a
/// little-endian integer, modulo the number of bins (bias < bins / 2^64).
pub fn bin(hasher: &Aes128, x: &[u8], i: usize, bins: usize) -> usize {
    let block = tweaked(hasher, x, i as u8, 0);
    let value = u64::from_le_bytes(block[..8].try_into().expect("8 bytes"));
    (value % bins as u64) as usize
}

/// The codeword C(x, i): AES_codekey(x ^ (i, c)) for c = 0..4, concatenated (512 bits).
pub fn code(coder: &Aes128, x: &[u8], i: usize) -> [u8; ROW_BYTES] {
    let mut blocks: [Block; 4] = std::array::from_fn(|c| {
        let mut block = GenericArray::clone_from_slice(x);
        block[0] ^= i as u8;
        block[1] ^= c as u8;
        block
    });
    coder.encrypt_blocks(&mut blocks); // four at once: AES-NI pipelines them
    let mut out = [0u8; ROW_BYTES];
    for (o, b) in out.chunks_exact_mut(16).zip(&blocks) {
        o.copy_from_slice(b);
    }
    out
}

/// The OPRF output of bin j on row t (the receiver's t_j, or the sender's q_j ^ (C(y) & s)).
pub fn oprf(j: usize, t: &[u8]) -> [u8; F_BYTES] {
    Sha256::new()
        .chain_update(LABEL_OPRF)
        .chain_update((j as u64).to_le_bytes())
        .chain_update(t)
        .finalize()
        .into()
}

/// Tag length in bytes for n_r receiver items and n_s sender items: the chance that any
/// of the receiver's bins falsely matches any of the sender's 3 n_s entries is < 2^-40.
pub fn tag_bytes(receiver_items: u64, sender_items: u64) -> usize {
    let pairs = (receiver_items.max(1) as f64) * (sender_items.max(1) as f64) * HASHES as f64;
    let bits = 40.0 + pairs.log2();
    ((bits / 8.0).ceil() as usize).clamp(MIN_TAG_BYTES, MAX_TAG_BYTES)
}

#[cfg(test)]
pub(crate) mod testing {
    /// Deterministic test bytes: SHA-256 in counter mode over a label.
    pub fn bytes(label: &str, n: usize) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let mut out = Vec::with_capacity(n + 32);
        let mut counter = 0u64;
        while out.len() < n {
            out.extend_from_slice(
                &Sha256::new()
                    .chain_update(label.as_bytes())
                    .chain_update(counter.to_le_bytes())
                    .finalize(),
            );
            counter += 1;
        }
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_known_answer() {
        let keys = Inputs::new(b"abc", [3]).unwrap();
        // SHA-256("psi-bulk-v1-itemabc")[0:16]
        let expected = Sha256::digest(b"psi-bulk-v1-itemabc");
        assert_eq!(digests(&keys), expected[..16].to_vec());
    }

    #[test]
    fn tag_lengths() {
        assert_eq!(tag_bytes(0, 0), 8);
        assert_eq!(tag_bytes(1 << 20, 1 << 20), 11); // 40 + 40 + 1.58 bits
        assert_eq!(tag_bytes(1 << 26, 1 << 26), 12);
    }

    #[test]
    fn aes_known_answer() {
        // FIPS-197 Appendix C.1 (AES-128), through the tweak with a = b = 0.
        let key = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let x = hex::decode("00112233445566778899aabbccddeeff").unwrap();
        let out = tweaked(&aes(&key).unwrap(), &x, 0, 0);
        assert_eq!(hex::encode(out), "69c4e0d86a7b0430d8cdb78070b4c55a");
    }
}
