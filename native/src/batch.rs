//! The batch calls: fixed-width elements packed back to back, variable-length inputs as one
//! buffer plus their lengths, every element processed in parallel (rayon).
//!
//! An error names the lowest failing element's index, so both backends report the same one.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::OsRng;
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::oprf::{
    self, ElementError, InputError, Refused, ELEMENT_BYTES, MATERIAL_BYTES, OUTPUT_BYTES,
    SCALAR_BYTES,
};
use crate::seal::{self, SEAL_OVERHEAD};

/// Bytes of a label key: the output's half after the tag material.
const LABEL_KEY_BYTES: usize = OUTPUT_BYTES - MATERIAL_BYTES;
/// Elements per rayon task: enough to outweigh the task's overhead (a multiplication is ~30 us).
const MIN_TASK: usize = 16;
/// Blinds inverted together (Montgomery's trick) by one task.
const INVERT_CHUNK: usize = 256;
/// Products encoded together by one task: one field inversion for the chunk instead of an inverse
/// square root per element (~35,000 of an element's ~400,000 instructions).
const ENCODE_CHUNK: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// Buffer sizes that do not fit each other, or a scalar that is not canonical: a caller's bug.
    Shape(&'static str),
    Element(usize, ElementError),
    Input(usize, InputError),
}

pub use psi_bulk::{Inputs, ShapeError};

impl From<ShapeError> for BatchError {
    fn from(error: ShapeError) -> Self {
        BatchError::Shape(error.0)
    }
}

fn element(packed: &[u8], i: usize) -> &[u8; ELEMENT_BYTES] {
    packed[i * ELEMENT_BYTES..(i + 1) * ELEMENT_BYTES]
        .try_into()
        .expect("whole elements")
}

fn count(packed: &[u8], width: usize, what: &'static str) -> Result<usize, BatchError> {
    if packed.len() % width != 0 {
        return Err(BatchError::Shape(what));
    }
    Ok(packed.len() / width)
}

/// A canonical scalar, zeroed when dropped.
pub fn scalar(bytes: &[u8]) -> Result<Zeroizing<Scalar>, BatchError> {
    let bytes: [u8; SCALAR_BYTES] = bytes
        .try_into()
        .map_err(|_| BatchError::Shape("a scalar is 32 bytes"))?;
    Option::from(Scalar::from_canonical_bytes(bytes))
        .map(Zeroizing::new)
        .ok_or(BatchError::Shape("scalar is not canonical"))
}

fn scalars(packed: &[u8]) -> Result<Zeroizing<Vec<Scalar>>, BatchError> {
    let n = count(packed, SCALAR_BYTES, "blinds are not whole 32-byte scalars")?;
    let mut out = Zeroizing::new(Vec::with_capacity(n));
    for i in 0..n {
        out.push(*scalar(&packed[i * SCALAR_BYTES..(i + 1) * SCALAR_BYTES])?);
    }
    Ok(out)
}

/// The refusal of the lowest failing index, as both backends report it.
fn lowest(refusals: impl ParallelIterator<Item = (usize, Refused)>) -> Result<(), BatchError> {
    match refusals.min_by_key(|(i, _)| *i) {
        Some((i, Refused::Element(e))) => Err(BatchError::Element(i, e)),
        Some((i, Refused::Input(e))) => Err(BatchError::Input(i, e)),
        None => Ok(()),
    }
}

/// `n` outputs of `width` bytes, `f(i, out)` filling each in parallel; the lowest index's refusal.
fn fill(
    n: usize,
    width: usize,
    f: impl Fn(usize, &mut [u8]) -> Result<(), Refused> + Sync,
) -> Result<Vec<u8>, BatchError> {
    let mut out = vec![0u8; n * width];
    lowest(
        out.par_chunks_mut(width)
            .enumerate()
            .with_min_len(MIN_TASK)
            .filter_map(|(i, o)| f(i, o).err().map(|e| (i, e))),
    )?;
    Ok(out)
}

/// 1/2 mod the group order: a product x * P is computed as (x/2) * P, whose double's encoding batches.
fn half() -> Scalar {
    Scalar::from(2u8).invert()
}

/// The encodings of n products x_i * P_i, given as their halves (x_i / 2) * P_i by `halved(i)`
/// (or its refusal), a chunk at a time with `double_and_compress_batch`.
fn encode_products<E: Copy + Send>(
    n: usize,
    halved: impl Fn(usize) -> Result<RistrettoPoint, E> + Sync,
) -> Vec<Result<[u8; ELEMENT_BYTES], E>> {
    let mut out = vec![Ok([0u8; ELEMENT_BYTES]); n];
    out.par_chunks_mut(ENCODE_CHUNK)
        .enumerate()
        .for_each(|(c, block)| {
            let first = c * ENCODE_CHUNK;
            let points: Vec<_> = (first..first + block.len()).map(&halved).collect();
            let valid: Vec<RistrettoPoint> = points.iter().filter_map(|p| p.ok()).collect();
            let mut encoded = RistrettoPoint::double_and_compress_batch(&valid).into_iter();
            for (slot, point) in block.iter_mut().zip(points) {
                *slot = point.map(|_| encoded.next().expect("one per valid point").to_bytes());
            }
        });
    out
}

/// HashToGroup of each input, with the checks of Blind and Evaluate: packed elements.
pub fn hash_to_group(inputs: &Inputs) -> Result<Vec<u8>, BatchError> {
    fill(inputs.len(), ELEMENT_BYTES, |i, out| {
        out.copy_from_slice(
            oprf::input_element(inputs.get(i))
                .map_err(Refused::Input)?
                .compress()
                .as_bytes(),
        );
        Ok(())
    })
}

/// `n` uniformly random non-zero scalars from the OS generator, packed.
pub fn random_scalars(n: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(n * SCALAR_BYTES));
    for _ in 0..n {
        let mut r = Zeroizing::new(Scalar::ZERO);
        while *r == Scalar::ZERO {
            *r = Scalar::random(&mut OsRng);
        }
        out.extend_from_slice(r.as_bytes());
    }
    out
}

/// `n` uniformly random elements (the padding of cardinality-mode groups), packed.
pub fn random_elements(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|_| RistrettoPoint::random(&mut OsRng).compress().to_bytes())
        .collect()
}

/// Blind each input with its own blind (packed scalars, one per input): packed blinded elements.
pub fn blind(inputs: &Inputs, blinds: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut halves = scalars(blinds)?;
    if halves.len() != inputs.len() {
        return Err(BatchError::Shape("one blind per input"));
    }
    let one_half = half();
    halves.iter_mut().for_each(|r| *r *= one_half);
    let blinded = encode_products(inputs.len(), |i| {
        oprf::input_element(inputs.get(i)).map(|element| halves[i] * element)
    });
    fill(inputs.len(), ELEMENT_BYTES, |i, out| {
        out.copy_from_slice(&blinded[i].map_err(Refused::Input)?);
        Ok(())
    })
}

/// `scalar` times each of a peer's packed elements, each validated: their encodings.
fn peer_products(
    scalar: &Scalar,
    packed: &[u8],
) -> Result<Vec<Result<[u8; ELEMENT_BYTES], ElementError>>, BatchError> {
    let n = count(
        packed,
        ELEMENT_BYTES,
        "elements are not whole 32-byte encodings",
    )?;
    let half_scalar = Zeroizing::new(scalar * half());
    let products = encode_products(n, |i| {
        oprf::deserialize_element(element(packed, i)).map(|p| *half_scalar * p)
    });
    Ok(products
        .into_iter()
        .map(|p| p.and_then(oprf::checked_product))
        .collect())
}

/// BlindEvaluate of a peer's packed blinded elements, each validated.
pub fn blind_evaluate(key: &[u8], packed: &[u8]) -> Result<Vec<u8>, BatchError> {
    let evaluated = peer_products(&*scalar(key)?, packed)?;
    fill(evaluated.len(), ELEMENT_BYTES, |i, out| {
        out.copy_from_slice(&evaluated[i].map_err(Refused::Element)?);
        Ok(())
    })
}

/// Finalize each input with its blind and the peer's evaluation: packed 64-byte outputs.
pub fn finalize(inputs: &Inputs, blinds: &[u8], evaluated: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut inverses = scalars(blinds)?;
    let n = count(
        evaluated,
        ELEMENT_BYTES,
        "elements are not whole 32-byte encodings",
    )?;
    if inverses.len() != inputs.len() || n != inputs.len() {
        return Err(BatchError::Shape(
            "one blind and one evaluated element per input",
        ));
    }
    if inverses.contains(&Scalar::ZERO) {
        return Err(BatchError::Shape("a blind is zero"));
    }
    // 1/(2r): the halved scalar of encode_products, for the price of one addition.
    inverses.iter_mut().for_each(|r| *r += *r);
    inverses.par_chunks_mut(INVERT_CHUNK).for_each(|chunk| {
        Scalar::batch_invert(chunk);
    });
    let unblinded = encode_products(n, |i| {
        oprf::deserialize_element(element(evaluated, i)).map(|p| inverses[i] * p)
    });
    fill(n, OUTPUT_BYTES, |i, out| {
        let unblinded = unblinded[i]
            .and_then(oprf::checked_product)
            .map_err(Refused::Element)?;
        out.copy_from_slice(&oprf::finalize_output(inputs.get(i), &unblinded)?);
        Ok(())
    })
}

/// One key epoch's entries, packed: per input, its tag material, its cardinality material and its
/// sealed label (`labels.get(i)` plus SEAL_OVERHEAD bytes, back to back).
#[derive(Debug, PartialEq, Eq)]
pub struct Entries {
    pub tag_materials: Vec<u8>,
    pub cardinality_materials: Vec<u8>,
    pub sealed_labels: Vec<u8>,
    /// The second half of each output, kept so that bulk mode can hand it to a client that holds the key.
    pub label_keys: Vec<u8>,
}

/// Evaluate on the server's own inputs and their stored HashToGroup elements, then what psi/tags.py
/// publishes of each: the output's first half as tag material, the cardinality material of
/// key * element under `domain`, and the label sealed (AES-SIV, `label_ad`) under the output's
/// second half. The whole entry is made here so that the caller does no per-key work.
pub fn epoch_entries(
    key: &[u8],
    inputs: &Inputs,
    elements: &[u8],
    labels: &Inputs,
    domain: &[u8],
    label_ad: &[u8],
) -> Result<Entries, BatchError> {
    let key = scalar(key)?;
    let n = inputs.len();
    if count(
        elements,
        ELEMENT_BYTES,
        "elements are not whole 32-byte encodings",
    )? != n
        || labels.len() != n
    {
        return Err(BatchError::Shape("one element and one label per input"));
    }
    let products = peer_products(&key, elements)?;
    let mut entries = Entries {
        tag_materials: vec![0u8; n * MATERIAL_BYTES],
        cardinality_materials: vec![0u8; n * MATERIAL_BYTES],
        sealed_labels: vec![0u8; labels.total_bytes() + n * SEAL_OVERHEAD],
        label_keys: vec![0u8; n * LABEL_KEY_BYTES],
    };
    let mut sealed = Vec::with_capacity(n);
    let mut rest = entries.sealed_labels.as_mut_slice();
    for i in 0..n {
        let (label, tail) = rest.split_at_mut(labels.get(i).len() + SEAL_OVERHEAD);
        sealed.push(label);
        rest = tail;
    }
    lowest(
        entries
            .tag_materials
            .par_chunks_mut(MATERIAL_BYTES)
            .zip(entries.cardinality_materials.par_chunks_mut(MATERIAL_BYTES))
            .zip(entries.label_keys.par_chunks_mut(LABEL_KEY_BYTES))
            .zip(sealed)
            .enumerate()
            .with_min_len(MIN_TASK)
            .filter_map(|(i, (((tag, cardinality), kept_key), sealed))| {
                let output = match products[i]
                    .map_err(Refused::Element)
                    .and_then(|evaluated| oprf::finalize_output(inputs.get(i), &evaluated))
                {
                    Ok(output) => Zeroizing::new(output), // its second half is the label's key
                    Err(refused) => return Some((i, refused)),
                };
                let (material, label_key) = output.split_at(MATERIAL_BYTES);
                tag.copy_from_slice(material);
                kept_key.copy_from_slice(label_key);
                cardinality.copy_from_slice(&oprf::cardinality_material(
                    domain,
                    &products[i].expect("checked above"),
                ));
                seal::seal(
                    label_key.try_into().expect("the output's second half"),
                    label_ad,
                    labels.get(i),
                    sealed,
                );
                None
            }),
    )?;
    Ok(entries)
}

/// Cardinality tag material of `scalar` times each of a peer's packed elements, each validated.
pub fn cardinality_materials(
    scalar_bytes: &[u8],
    packed: &[u8],
    domain: &[u8],
) -> Result<Vec<u8>, BatchError> {
    let products = peer_products(&*scalar(scalar_bytes)?, packed)?;
    fill(products.len(), MATERIAL_BYTES, |i, out| {
        out.copy_from_slice(&oprf::cardinality_material(
            domain,
            &products[i].map_err(Refused::Element)?,
        ));
        Ok(())
    })
}
