//! The client's last step on each hit's payload (label key || sealed label, as the server's
//! store keeps it): the label opened and the follow-up key derived, in one parallel pass
//! instead of two Python calls per hit, and equal labels numbered once over the session
//! (each of a partner record's keys brings its label), so no label crosses into Python until
//! the hits are built. The formats are psi/tags.py's (AES-128-SIV under the 32-byte label
//! key, its associated data given; a label is reference || 0x1f || category) and
//! psi/followup.py's (HKDF-Expand with SHA-256, RFC 5869, 32 bytes: one HMAC block,
//! T(1) = HMAC(label key, info || 0x01)).

use std::collections::HashMap;

use aes_siv::siv::Aes128Siv;
use aes_siv::KeyInit;
use hmac::{Hmac, Mac};
use rayon::prelude::*;
use sha2::Sha256;

use crate::tags::SEAL_OVERHEAD;
use crate::Inputs;

/// A label key: the 32 bytes of an AES-128-SIV key, and HKDF's pseudorandom key.
pub const LABEL_KEY_BYTES: usize = 32;
/// A follow-up key: HKDF-Expand's 32 bytes.
pub const FOLLOWUP_BYTES: usize = 32;
/// The label number of a payload whose label does not open (a false tag match).
pub const NOT_OPENED: u32 = u32::MAX;
/// Between a label's reference and its category.
const SEPARATOR: u8 = 0x1f;

/// A session's labels, each distinct one numbered once, in the order they first appear.
#[derive(Debug, Default)]
pub struct Book {
    numbers: HashMap<Vec<u8>, u32>,
}

impl Book {
    /// For each payload: its label's number, or NOT_OPENED; and the follow-up keys back to back,
    /// zeros where the label did not open.
    pub fn open(&mut self, payloads: &Inputs, ad: &[u8], info: &[u8]) -> (Vec<u32>, Vec<u8>) {
        let opened: Vec<Option<(Vec<u8>, [u8; FOLLOWUP_BYTES])>> = (0..payloads.len())
            .into_par_iter()
            .with_min_len(256)
            .map(|i| open(payloads.get(i), ad, info))
            .collect();
        let mut numbers = Vec::with_capacity(opened.len());
        let mut keys = vec![0u8; opened.len() * FOLLOWUP_BYTES];
        for (o, key) in opened
            .into_iter()
            .zip(keys.chunks_exact_mut(FOLLOWUP_BYTES))
        {
            match o {
                Some((label, followup)) => {
                    key.copy_from_slice(&followup);
                    let next = self.numbers.len() as u32;
                    numbers.push(*self.numbers.entry(label).or_insert(next));
                }
                None => numbers.push(NOT_OPENED),
            }
        }
        (numbers, keys)
    }

    /// The labels in the order of their numbers, each as (reference, category): split at the
    /// first separator, as psi/tags.py's `decode_label` (no separator: an empty category).
    pub fn labels(&self) -> Vec<(&[u8], &[u8])> {
        let mut out: Vec<(&[u8], &[u8])> = vec![(&[], &[]); self.numbers.len()];
        for (label, &number) in &self.numbers {
            out[number as usize] = match label.iter().position(|&b| b == SEPARATOR) {
                Some(at) => (&label[..at], &label[at + 1..]),
                None => (label, &[]),
            };
        }
        out
    }
}

fn open(payload: &[u8], ad: &[u8], info: &[u8]) -> Option<(Vec<u8>, [u8; FOLLOWUP_BYTES])> {
    if payload.len() < LABEL_KEY_BYTES + SEAL_OVERHEAD {
        return None;
    }
    let (key, sealed) = payload.split_at(LABEL_KEY_BYTES);
    let mut label = sealed[SEAL_OVERHEAD..].to_vec();
    Aes128Siv::new(key.into())
        .decrypt_in_place_detached([ad], &mut label, sealed[..SEAL_OVERHEAD].into())
        .ok()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(info);
    mac.update(&[1]);
    Some((label, mac.finalize().into_bytes().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_labels_and_derives_followup_keys() {
        // RFC 5869 test case 3's PRK and empty info, as HKDF-Expand to 32 bytes (its OKM's start).
        let prk = hex::decode("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04")
            .unwrap();
        let mut label = b"REF-1\x1fwanted".to_vec();
        let ad = b"ad";
        let tag = Aes128Siv::new(prk.as_slice().into())
            .encrypt_in_place_detached([&ad[..]], &mut label)
            .unwrap();
        let good = [&prk[..], &tag[..], &label].concat();
        let mut bad = good.clone();
        bad[40] ^= 1;
        let data = [&good[..], &bad, b"short", &good].concat();
        let payloads = Inputs::new(&data, [good.len(), bad.len(), 5, good.len()]).unwrap();
        let mut book = Book::default();
        let (numbers, keys) = book.open(&payloads, ad, b"");
        assert_eq!(numbers, vec![0, NOT_OPENED, NOT_OPENED, 0]);
        let okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d";
        assert_eq!(hex::encode(&keys[..32]), okm);
        assert_eq!(&keys[32..96], &[0u8; 64][..]);
        assert_eq!(hex::encode(&keys[96..]), okm);
        let again = Inputs::new(&good, [good.len()]).unwrap();
        assert_eq!(book.open(&again, ad, b"").0, vec![0]);
        assert_eq!(book.labels(), vec![(&b"REF-1"[..], &b"wanted"[..])]);
    }

    #[test]
    fn splits_labels_at_the_first_separator() {
        let mut book = Book::default();
        for (number, label) in [&b"a\x1fb\x1fc"[..], b"plain", b"\x1f"]
            .into_iter()
            .enumerate()
        {
            book.numbers.insert(label.to_vec(), number as u32);
        }
        let expected: Vec<(&[u8], &[u8])> = vec![(b"a", b"b\x1fc"), (b"plain", b""), (b"", b"")];
        assert_eq!(book.labels(), expected);
    }
}
