//! The client's last step on each hit's payload (label key || sealed label, as the server's
//! store keeps it): the label opened and the follow-up key derived, in one parallel pass
//! instead of two Python calls per hit. The formats are psi/tags.py's (AES-128-SIV under the
//! 32-byte label key, its associated data given) and psi/followup.py's (HKDF-Expand with
//! SHA-256, RFC 5869, 32 bytes: one HMAC block, T(1) = HMAC(label key, info || 0x01)).

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
/// The length that marks a payload whose label does not open (a false tag match).
pub const NOT_OPENED: u32 = u32::MAX;

/// For each payload: (its label, or nothing), packed as (labels back to back, each one's
/// length or NOT_OPENED, follow-up keys back to back, zeros where the label did not open).
pub fn open_labels(payloads: &Inputs, ad: &[u8], info: &[u8]) -> (Vec<u8>, Vec<u32>, Vec<u8>) {
    let opened: Vec<Option<(Vec<u8>, [u8; FOLLOWUP_BYTES])>> = (0..payloads.len())
        .into_par_iter()
        .with_min_len(256)
        .map(|i| open(payloads.get(i), ad, info))
        .collect();
    let mut labels = Vec::new();
    let mut lengths = Vec::with_capacity(opened.len());
    let mut keys = vec![0u8; opened.len() * FOLLOWUP_BYTES];
    for (o, key) in opened
        .into_iter()
        .zip(keys.chunks_exact_mut(FOLLOWUP_BYTES))
    {
        match o {
            Some((label, followup)) => {
                lengths.push(label.len() as u32);
                labels.extend_from_slice(&label);
                key.copy_from_slice(&followup);
            }
            None => lengths.push(NOT_OPENED),
        }
    }
    (labels, lengths, keys)
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
        let data = [&good[..], &bad, b"short"].concat();
        let payloads = Inputs::new(&data, [good.len(), bad.len(), 5]).unwrap();
        let (labels, lengths, keys) = open_labels(&payloads, ad, b"");
        assert_eq!(labels, b"REF-1\x1fwanted".to_vec());
        assert_eq!(lengths, vec![12, NOT_OPENED, NOT_OPENED]);
        assert_eq!(
            hex::encode(&keys[..32]),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
        assert_eq!(&keys[32..], &[0u8; 64][..]);
    }
}
