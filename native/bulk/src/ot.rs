//! The base OTs: Chou–Orlandi's "simplest OT" (LATINCRYPT 2015) over ristretto255, in the
//! semi-honest setting, WIDTH_BITS of them in parallel with one sender point.
//!
//! The KKRT receiver (client) is the base-OT *sender*: secret a, A = a·G. The KKRT sender
//! (server) is the base-OT *receiver* with choice bits s: B_i = b_i·G + s_i·A. Keys:
//! k_i0 = H(i, A, B_i, a·B_i), k_i1 = H(i, A, B_i, a·B_i − a·A), and the receiver's
//! k_{i,s_i} = H(i, A, B_i, b_i·A), with H = SHA-256(LABEL_BASE_OT || i as u16 LE || A || B || P)[0:16].

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable};
use zeroize::Zeroizing;

use crate::{count, BulkError, KEY_BYTES, LABEL_BASE_OT, WIDTH_BITS};

pub const POINT_BYTES: usize = 32;
/// A scalar arrives as 64 uniform bytes, reduced modulo the group order.
pub const WIDE_BYTES: usize = 64;

fn scalar(wide: &[u8]) -> Result<Zeroizing<Scalar>, BulkError> {
    let wide: [u8; WIDE_BYTES] = wide
        .try_into()
        .map_err(|_| BulkError::Shape("a scalar is drawn from 64 bytes"))?;
    let s = Zeroizing::new(Scalar::from_bytes_mod_order_wide(&wide));
    if *s == Scalar::ZERO {
        return Err(BulkError::Shape("zero scalar"));
    }
    Ok(s)
}

/// A peer's point: canonical and not the identity.
fn point(bytes: &[u8]) -> Result<RistrettoPoint, BulkError> {
    let p = CompressedRistretto::from_slice(bytes)
        .map_err(|_| BulkError::Malformed("a point is 32 bytes"))?
        .decompress()
        .ok_or(BulkError::Malformed(
            "point is not a canonical ristretto255 encoding",
        ))?;
    if p == RistrettoPoint::identity() {
        return Err(BulkError::Malformed("point is the identity"));
    }
    Ok(p)
}

fn key(i: usize, a: &[u8], b: &[u8], p: &RistrettoPoint) -> [u8; KEY_BYTES] {
    let d = Sha256::new()
        .chain_update(LABEL_BASE_OT)
        .chain_update((i as u16).to_le_bytes())
        .chain_update(a)
        .chain_update(b)
        .chain_update(p.compress().as_bytes())
        .finalize();
    d[..KEY_BYTES].try_into().expect("16 bytes")
}

/// The base-OT sender's first message A = a·G.
pub fn sender_point(a_wide: &[u8]) -> Result<[u8; POINT_BYTES], BulkError> {
    let a = scalar(a_wide)?;
    Ok((&*a * RISTRETTO_BASEPOINT_TABLE).compress().to_bytes())
}

/// The base-OT receiver's answer to A with choice bits s (WIDTH_BITS bits, LSB first) and
/// WIDTH_BITS wide scalars b_i: (packed B_i, packed chosen keys k_{i,s_i}).
pub fn receiver_choose(
    a_point: &[u8],
    b_wides: &[u8],
    choices: &[u8],
) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), BulkError> {
    let a = point(a_point)?;
    if count(b_wides, WIDE_BYTES, "scalars are 64 bytes each")? != WIDTH_BITS
        || choices.len() * 8 != WIDTH_BITS
    {
        return Err(BulkError::Shape(
            "one scalar and one choice bit per base OT",
        ));
    }
    type Pair = Result<([u8; POINT_BYTES], [u8; KEY_BYTES]), BulkError>;
    let pairs: Vec<Pair> = (0..WIDTH_BITS)
        .into_par_iter()
        .map(|i| {
            let b = scalar(&b_wides[i * WIDE_BYTES..(i + 1) * WIDE_BYTES])?;
            let bg = &*b * RISTRETTO_BASEPOINT_TABLE;
            // Constant time in the choice bit: both candidates computed, one selected.
            let chosen = Choice::from((choices[i / 8] >> (i % 8)) & 1);
            let big_b = RistrettoPoint::conditional_select(&bg, &(bg + a), chosen)
                .compress()
                .to_bytes();
            Ok((big_b, key(i, a_point, &big_b, &(a * *b))))
        })
        .collect();
    let mut points = Vec::with_capacity(WIDTH_BITS * POINT_BYTES);
    let mut keys = Zeroizing::new(Vec::with_capacity(WIDTH_BITS * KEY_BYTES));
    for pair in pairs {
        let (p, k) = pair?;
        points.extend_from_slice(&p);
        keys.extend_from_slice(&k);
    }
    Ok((points, keys))
}

/// The base-OT sender's two keys per OT from the receiver's B_i: (packed k_i0, packed k_i1).
#[allow(clippy::type_complexity)]
pub fn sender_keys(
    a_wide: &[u8],
    b_points: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>), BulkError> {
    let a = scalar(a_wide)?;
    let big_a = &*a * RISTRETTO_BASEPOINT_TABLE;
    let a_bytes = big_a.compress().to_bytes();
    let aa = big_a * *a;
    if count(b_points, POINT_BYTES, "points are 32 bytes each")? != WIDTH_BITS {
        return Err(BulkError::Malformed("one point per base OT"));
    }
    let pairs: Vec<Result<([u8; KEY_BYTES], [u8; KEY_BYTES]), BulkError>> = (0..WIDTH_BITS)
        .into_par_iter()
        .map(|i| {
            let bytes = &b_points[i * POINT_BYTES..(i + 1) * POINT_BYTES];
            let ab = point(bytes)? * *a;
            Ok((
                key(i, &a_bytes, bytes, &ab),
                key(i, &a_bytes, bytes, &(ab - aa)),
            ))
        })
        .collect();
    let mut k0 = Zeroizing::new(Vec::with_capacity(WIDTH_BITS * KEY_BYTES));
    let mut k1 = Zeroizing::new(Vec::with_capacity(WIDTH_BITS * KEY_BYTES));
    for pair in pairs {
        let (a, b) = pair?;
        k0.extend_from_slice(&a);
        k1.extend_from_slice(&b);
    }
    Ok((k0, k1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::bytes;

    #[test]
    fn receiver_gets_the_chosen_key_only() {
        let a = bytes("a", WIDE_BYTES);
        let big_a = sender_point(&a).unwrap();
        let s = bytes("s", WIDTH_BITS / 8);
        let (bs, chosen) =
            receiver_choose(&big_a, &bytes("b", WIDTH_BITS * WIDE_BYTES), &s).unwrap();
        let (k0, k1) = sender_keys(&a, &bs).unwrap();
        for i in 0..WIDTH_BITS {
            let bit = (s[i / 8] >> (i % 8)) & 1;
            let got = &chosen[i * 16..(i + 1) * 16];
            let (want, other) = if bit == 1 { (&k1, &k0) } else { (&k0, &k1) };
            assert_eq!(got, &want[i * 16..(i + 1) * 16]);
            assert_ne!(got, &other[i * 16..(i + 1) * 16]);
        }
    }

    #[test]
    fn refuses_bad_points() {
        let a = bytes("a", WIDE_BYTES);
        assert!(matches!(
            receiver_choose(&[0u8; 32], &bytes("b", WIDTH_BITS * 64), &[0u8; 64]),
            Err(BulkError::Malformed(_))
        ));
        assert!(matches!(
            sender_keys(&a, &[0xffu8; WIDTH_BITS * 32]),
            Err(BulkError::Malformed(_))
        ));
        assert!(matches!(
            sender_keys(&a, &[0u8; 32]),
            Err(BulkError::Malformed(_))
        ));
    }
}
