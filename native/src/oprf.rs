//! RFC 9497 OPRF, mode 0x00, suite ristretto255-SHA512, one element at a time (as psi/oprf.py).
//!
//! Scalars are dalek `Scalar`s, whose arithmetic and multiplication are constant time;
//! errors concern only public data (encodings and inputs), never a scalar's value.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::traits::Identity;
use sha2::{Digest, Sha512};

use crate::h2c::expand_message_xmd_sha512;

pub const ELEMENT_BYTES: usize = 32;
pub const SCALAR_BYTES: usize = 32;
pub const OUTPUT_BYTES: usize = 64;
/// Tag material of either kind: an output's first half, or the cardinality hash truncated.
pub const MATERIAL_BYTES: usize = 32;
pub const MAX_INPUT_BYTES: usize = 65535;
const DST_HASH_TO_GROUP: &[u8] = b"HashToGroup-OPRFV1-\x00-ristretto255-SHA512";

/// Why a peer's element was refused (RFC 9497 DeserializeElement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementError {
    Identity,
    NotCanonical,
}

/// Why an input cannot be blinded or evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputError {
    TooLong,
    HashesToIdentity,
}

/// HashToGroup (Section 4.1): expand_message_xmd, then the RFC 9496 one-way map.
pub fn hash_to_group(data: &[u8]) -> RistrettoPoint {
    let uniform =
        expand_message_xmd_sha512(data, DST_HASH_TO_GROUP, 64).expect("fixed lengths are valid");
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&uniform);
    RistrettoPoint::from_uniform_bytes(&wide)
}

/// HashToGroup(input) with the input checks of Blind and Evaluate.
pub fn input_element(data: &[u8]) -> Result<RistrettoPoint, InputError> {
    if data.len() > MAX_INPUT_BYTES {
        return Err(InputError::TooLong);
    }
    let element = hash_to_group(data);
    if element == RistrettoPoint::identity() {
        return Err(InputError::HashesToIdentity);
    }
    Ok(element)
}

/// DeserializeElement: a canonical encoding of a non-identity element.
pub fn deserialize_element(encoded: &[u8; ELEMENT_BYTES]) -> Result<RistrettoPoint, ElementError> {
    if encoded == &[0u8; ELEMENT_BYTES] {
        return Err(ElementError::Identity); // the identity's one canonical encoding
    }
    CompressedRistretto(*encoded)
        .decompress()
        .ok_or(ElementError::NotCanonical)
}

/// The encoding of scalar * element for a peer's element; a zero scalar's identity result is refused
/// like libsodium's multiplication refuses it (the reference reports it as a bad encoding).
pub fn checked_product(encoded: [u8; ELEMENT_BYTES]) -> Result<[u8; ELEMENT_BYTES], ElementError> {
    if encoded == [0u8; ELEMENT_BYTES] {
        return Err(ElementError::NotCanonical);
    }
    Ok(encoded)
}

/// The hash that ends Finalize and Evaluate (Section 3.3.1); `data` is at most MAX_INPUT_BYTES.
fn finalize_hash(data: &[u8], unblinded: &[u8; ELEMENT_BYTES]) -> [u8; OUTPUT_BYTES] {
    Sha512::new()
        .chain_update((data.len() as u16).to_be_bytes())
        .chain_update(data)
        .chain_update((ELEMENT_BYTES as u16).to_be_bytes())
        .chain_update(unblinded)
        .chain_update(b"Finalize")
        .finalize()
        .into()
}

/// Why one element of a batch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Element(ElementError),
    Input(InputError),
}

fn check_length(data: &[u8]) -> Result<(), Refused> {
    if data.len() > MAX_INPUT_BYTES {
        return Err(Refused::Input(InputError::TooLong)); // its two-byte length prefix would wrap
    }
    Ok(())
}

/// The output of Finalize and Evaluate (Section 3.3.1) from the input and the unblinded element.
pub fn finalize_output(
    data: &[u8],
    unblinded: &[u8; ELEMENT_BYTES],
) -> Result<[u8; OUTPUT_BYTES], Refused> {
    check_length(data)?;
    Ok(finalize_hash(data, unblinded))
}

/// The DH-PSI-CA tag material of an evaluated element: SHA-512(domain || element), truncated.
pub fn cardinality_material(
    domain: &[u8],
    evaluated: &[u8; ELEMENT_BYTES],
) -> [u8; MATERIAL_BYTES] {
    let digest = Sha512::new()
        .chain_update(domain)
        .chain_update(evaluated)
        .finalize();
    let mut out = [0u8; MATERIAL_BYTES];
    out.copy_from_slice(&digest[..MATERIAL_BYTES]);
    out
}
