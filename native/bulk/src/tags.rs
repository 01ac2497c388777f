//! OPRF outputs made into what travels: the sender's entries (tag, masked item key and
//! ciphertext position), its sealed payload groups, the receiver's index of its own outputs
//! and the look-up of a chunk of entries in it.
//!
//! An OPRF output F (32 bytes) gives tag = F[0:L] and mask = F[12:32]; an entry is
//! tag || (mask ^ (item key || position as u32 LE)), L + 20 bytes.

use aes_siv::siv::Aes128Siv;
use aes_siv::KeyInit;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{
    aes, bin, code, count, oprf, BulkError, Inputs, EMPTY, F_BYTES, HASHES, KEY_BYTES,
    LABEL_PAYLOAD, LABEL_SEAL, MASKED_BYTES, MAX_TAG_BYTES, MIN_TAG_BYTES, ROW_BYTES, X_BYTES,
};

/// AES-SIV's synthetic IV, before the ciphertext.
pub const SEAL_OVERHEAD: usize = 16;
/// A receiver index record: tag || mask || item (u32 LE).
pub fn record_bytes(tag_len: usize) -> usize {
    tag_len + MASKED_BYTES + 4
}
/// Sender items per task of `sender_entries`: their rows of Q are gathered together.
const GATHER: usize = 256;
/// A match: item (u32 LE) || item key || position (u32 LE).
pub const MATCH_BYTES: usize = 4 + MASKED_BYTES;

fn check_tag(tag_len: usize) -> Result<(), BulkError> {
    if !(MIN_TAG_BYTES..=MAX_TAG_BYTES).contains(&tag_len) {
        return Err(BulkError::Shape("tag length out of range"));
    }
    Ok(())
}

/// The sender's distinct items in order of first appearance, and for each record its group:
/// (packed distinct xs, group index per record). Equal items are found by a parallel sort, not
/// a hash map: at a million records the map's random inserts cost several times more.
pub fn groups(xs: &[u8]) -> Result<(Vec<u8>, Vec<u32>), BulkError> {
    let n = count(xs, X_BYTES, "items are 16 bytes")?;
    let value =
        |r: usize| u128::from_le_bytes(xs[r * X_BYTES..(r + 1) * X_BYTES].try_into().expect("16"));
    let mut order: Vec<(u128, u32)> = (0..n)
        .into_par_iter()
        .map(|r| (value(r), r as u32))
        .collect();
    // Equal items together, each run in record order; then for each record, its item's first.
    order.par_sort_unstable();
    let mut first = vec![0u32; n];
    let mut run_start = 0;
    for k in 0..n {
        if k > 0 && order[k].0 != order[k - 1].0 {
            run_start = k;
        }
        first[order[k].1 as usize] = order[run_start].1;
    }
    drop(order);
    let mut distinct = Vec::new();
    let mut group = vec![0u32; n];
    let mut next = 0u32;
    for r in 0..n {
        let f = first[r] as usize;
        group[r] = if f == r {
            distinct.extend_from_slice(&xs[r * X_BYTES..(r + 1) * X_BYTES]);
            next += 1;
            next - 1
        } else {
            group[f] // an earlier record's, already set
        };
    }
    Ok((distinct, group))
}

/// The ciphertext position of each group: the rank of its (random) item key, ties by index,
/// so that positions are a uniformly random permutation.
pub fn positions(item_keys: &[u8]) -> Result<Vec<u32>, BulkError> {
    let n = count(item_keys, KEY_BYTES, "item keys are 16 bytes")?;
    // Big-endian, so that integer order is the keys' byte order.
    let mut order: Vec<(u128, u32)> = item_keys
        .chunks_exact(KEY_BYTES)
        .enumerate()
        .map(|(g, k)| {
            (
                u128::from_be_bytes(k.try_into().expect("16 bytes")),
                g as u32,
            )
        })
        .collect();
    order.par_sort_unstable();
    let mut position = vec![0u32; n];
    for (p, &(_, g)) in order.iter().enumerate() {
        position[g as usize] = p as u32;
    }
    Ok(position)
}

/// The sender's entries, HASHES per group, sorted: for group g and hash function i,
/// j = h_i(x_g), F = oprf(j, q_j ^ (C(x_g, i) & s)).
#[allow(clippy::too_many_arguments)] // the buffers of one step, as psi/bulk.py keeps them
pub fn sender_entries(
    q: &[u8],
    s: &[u8],
    code_key: &[u8],
    hash_seed: &[u8],
    xs: &[u8],
    item_keys: &[u8],
    position: &[u32],
    tag_len: usize,
) -> Result<Vec<u8>, BulkError> {
    check_tag(tag_len)?;
    let (coder, hasher) = (aes(code_key)?, aes(hash_seed)?);
    let bins = count(q, ROW_BYTES, "q is whole rows")?;
    let n = count(xs, X_BYTES, "items are 16 bytes")?;
    if s.len() != ROW_BYTES || bins == 0 {
        return Err(BulkError::Shape("s is one row, q at least one"));
    }
    if item_keys.len() != n * KEY_BYTES || position.len() != n {
        return Err(BulkError::Shape("one item key and position per item"));
    }
    let entry = tag_len + MASKED_BYTES;
    let mut padded = vec![[0u8; F_BYTES]; n * HASHES];
    padded
        .par_chunks_mut(HASHES * GATHER)
        .enumerate()
        .for_each(|(batch, out)| {
            let first = batch * GATHER;
            let x = |k: usize| &xs[(first + k) * X_BYTES..(first + k + 1) * X_BYTES];
            let js: Vec<usize> = (0..out.len())
                .map(|e| bin(&hasher, x(e / HASHES), e % HASHES, bins))
                .collect();
            // The batch's rows of Q gathered in a loop of independent loads before any is used:
            // Q is large and the rows random, so one at a time each would wait for memory.
            let mut t = Zeroizing::new(vec![[0u8; ROW_BYTES]; out.len()]);
            for (row, &j) in t.iter_mut().zip(&js) {
                row.copy_from_slice(&q[j * ROW_BYTES..(j + 1) * ROW_BYTES]);
            }
            let mut secret = Zeroizing::new([0u8; MASKED_BYTES]);
            for (e, (o, row)) in out.iter_mut().zip(t.iter_mut()).enumerate() {
                let (k, i) = (e / HASHES, e % HASHES);
                if i == 0 {
                    let g = first + k;
                    secret[..KEY_BYTES]
                        .copy_from_slice(&item_keys[g * KEY_BYTES..(g + 1) * KEY_BYTES]);
                    secret[KEY_BYTES..].copy_from_slice(&position[g].to_le_bytes());
                }
                let c = code(&coder, x(k), i);
                for ((v, c), s) in row.iter_mut().zip(c).zip(s) {
                    *v ^= c & s;
                }
                let f = Zeroizing::new(oprf(js[e], &row[..]));
                o[..tag_len].copy_from_slice(&f[..tag_len]);
                for (k, v) in o[tag_len..entry].iter_mut().enumerate() {
                    *v = f[F_BYTES - MASKED_BYTES + k] ^ secret[k];
                }
            }
        });
    // Sorted, so that an entry's place says nothing of which item or hash function made it.
    Ok(compact(&bucket_sort(padded), entry))
}

/// Records sorted by bytes: scattered into buckets by their first two bytes (tags are uniform),
/// then each bucket sorted, in parallel; the same order as a plain sort.
fn bucket_sort<const N: usize>(records: Vec<[u8; N]>) -> Vec<[u8; N]> {
    const BUCKETS: usize = 1 << 16;
    let bucket = |r: &[u8; N]| usize::from(u16::from_be_bytes([r[0], r[1]]));
    let mut starts = vec![0usize; BUCKETS + 1];
    for r in &records {
        starts[bucket(r) + 1] += 1;
    }
    for b in 0..BUCKETS {
        starts[b + 1] += starts[b];
    }
    let mut next = starts.clone();
    let mut out = vec![[0u8; N]; records.len()];
    for r in records {
        let b = bucket(&r);
        out[next[b]] = r;
        next[b] += 1;
    }
    let mut slices = Vec::with_capacity(BUCKETS);
    let mut rest = out.as_mut_slice();
    for b in 0..BUCKETS {
        let (head, tail) = rest.split_at_mut(starts[b + 1] - starts[b]);
        slices.push(head);
        rest = tail;
    }
    slices
        .into_par_iter()
        .with_min_len(64)
        .for_each(|s| s.sort_unstable());
    out
}

/// The first `width` bytes of each padded record, back to back.
fn compact<const N: usize>(padded: &[[u8; N]], width: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(padded.len() * width);
    for p in padded {
        out.extend_from_slice(&p[..width]);
    }
    out
}

fn seal_key(item_key: &[u8]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(
        Sha256::new()
            .chain_update(LABEL_SEAL)
            .chain_update(item_key)
            .finalize()
            .into(),
    )
}

/// Each group's plaintext: (u32 LE length || payload) of its records, in record order.
pub fn group_payloads(
    group: &[u32],
    groups: usize,
    payloads: &Inputs,
) -> Result<(Vec<u8>, Vec<u32>), BulkError> {
    if group.len() != payloads.len() || group.iter().any(|&g| g as usize >= groups) {
        return Err(BulkError::Shape("one group below the count per payload"));
    }
    let mut lengths = vec![0u32; groups];
    for (r, &g) in group.iter().enumerate() {
        lengths[g as usize] += 4 + payloads.get(r).len() as u32;
    }
    let mut at = Vec::with_capacity(groups);
    let mut end = 0usize;
    for &l in &lengths {
        at.push(end);
        end += l as usize;
    }
    let mut data = vec![0u8; end];
    for (r, &g) in group.iter().enumerate() {
        let p = payloads.get(r);
        let a = &mut at[g as usize];
        data[*a..*a + 4].copy_from_slice(&(p.len() as u32).to_le_bytes());
        data[*a + 4..*a + 4 + p.len()].copy_from_slice(p);
        *a += 4 + p.len();
    }
    Ok((data, lengths))
}

/// AES-128-SIV of each group's plaintext under SHA-256(LABEL_SEAL || its item key), with
/// LABEL_PAYLOAD as associated data, in position order (`order[p]` is the group at position
/// p): (u32 LE length || IV || ciphertext) each, back to back.
pub fn seal(item_keys: &[u8], plains: &Inputs, order: &[u32]) -> Result<Vec<u8>, BulkError> {
    let n = count(item_keys, KEY_BYTES, "item keys are 16 bytes")?;
    if n != plains.len() || order.len() != n || order.iter().any(|&g| g as usize >= n) {
        return Err(BulkError::Shape("one item key and position per plaintext"));
    }
    let sealed: Vec<Vec<u8>> = order
        .par_iter()
        .with_min_len(256)
        .map(|&g| {
            let g = g as usize;
            let key = seal_key(&item_keys[g * KEY_BYTES..(g + 1) * KEY_BYTES]);
            let plain = plains.get(g);
            let mut out = Vec::with_capacity(4 + SEAL_OVERHEAD + plain.len());
            out.extend_from_slice(&((SEAL_OVERHEAD + plain.len()) as u32).to_le_bytes());
            out.extend_from_slice(&[0u8; SEAL_OVERHEAD]);
            out.extend_from_slice(plain);
            let tag = Aes128Siv::new((&*key).into())
                .encrypt_in_place_detached([LABEL_PAYLOAD], &mut out[4 + SEAL_OVERHEAD..])
                .expect("one header is within RFC 5297's limit");
            out[4..4 + SEAL_OVERHEAD].copy_from_slice(&tag);
            out
        })
        .collect();
    Ok(sealed.concat())
}

/// The hits of a chunk of sealed payloads (u32 LE length || sealed, back to back) that starts
/// at position `first`: `pending` are the receiver's matches sorted by position (position u32
/// LE || item u32 LE || item key, 24 bytes each). Returns (payloads in the chunk, and for each
/// payload of each match that opens: its item, the payload). A match whose key opens nothing
/// is a false tag match and is dropped.
#[allow(clippy::type_complexity)]
pub fn open_sealed(
    body: &[u8],
    first: usize,
    pending: &[u8],
) -> Result<(usize, Vec<u32>, Vec<u8>, Vec<u32>), BulkError> {
    const P: usize = 24;
    let n_pending = count(pending, P, "pending matches are 24 bytes")?;
    let pos =
        |k: usize| u32::from_le_bytes(pending[k * P..k * P + 4].try_into().expect("4")) as usize;
    let mut records = Vec::new();
    let mut at = 0;
    while at < body.len() {
        if at + 4 > body.len() {
            return Err(BulkError::Malformed("sealed chunk is not whole payloads"));
        }
        let length = u32::from_le_bytes(body[at..at + 4].try_into().expect("4")) as usize;
        if body.len() - at - 4 < length {
            return Err(BulkError::Malformed("sealed chunk is not whole payloads"));
        }
        records.push(&body[at + 4..at + 4 + length]);
        at += 4 + length;
    }
    let (mut k, mut high) = (0, n_pending);
    while k < high {
        let mid = (k + high) / 2;
        if pos(mid) < first {
            k = mid + 1;
        } else {
            high = mid;
        }
    }
    let mut wanted = Vec::new();
    while k < n_pending && pos(k) < first + records.len() {
        wanted.push(k);
        k += 1;
    }
    let opened: Vec<Option<Vec<u8>>> = wanted
        .par_iter()
        .map(|&k| {
            let s = records[pos(k) - first];
            if s.len() < SEAL_OVERHEAD {
                return None;
            }
            let key = seal_key(&pending[k * P + 8..(k + 1) * P]);
            let mut plain = s[SEAL_OVERHEAD..].to_vec();
            Aes128Siv::new((&*key).into())
                .decrypt_in_place_detached([LABEL_PAYLOAD], &mut plain, s[..SEAL_OVERHEAD].into())
                .ok()
                .map(|()| plain)
        })
        .collect();
    let (mut items, mut data, mut lengths) = (Vec::new(), Vec::new(), Vec::new());
    for (&k, plain) in wanted.iter().zip(opened) {
        let Some(plain) = plain else { continue };
        let item = u32::from_le_bytes(pending[k * P + 4..k * P + 8].try_into().expect("4"));
        let mut at = 0;
        while at < plain.len() {
            if plain.len() - at < 4 {
                return Err(BulkError::Malformed("payload group is not whole payloads"));
            }
            let length = u32::from_le_bytes(plain[at..at + 4].try_into().expect("4")) as usize;
            if plain.len() - at - 4 < length {
                return Err(BulkError::Malformed("payload group is not whole payloads"));
            }
            items.push(item);
            data.extend_from_slice(&plain[at + 4..at + 4 + length]);
            lengths.push(length as u32);
            at += 4 + length;
        }
    }
    Ok((records.len(), items, data, lengths))
}

/// The receiver's index: one record per occupied bin (tag || mask || item u32 LE), sorted.
pub fn receiver_index(f: &[u8], table: &[u32], tag_len: usize) -> Result<Vec<u8>, BulkError> {
    check_tag(tag_len)?;
    if count(f, F_BYTES, "outputs are 32 bytes")? != table.len() {
        return Err(BulkError::Shape("one output per bin"));
    }
    let width = record_bytes(tag_len);
    let records: Vec<[u8; F_BYTES + 4]> = table
        .par_iter()
        .enumerate()
        .filter(|(_, &e)| e != EMPTY)
        .map(|(j, &e)| {
            let mut r = [0u8; F_BYTES + 4];
            r[..tag_len].copy_from_slice(&f[j * F_BYTES..j * F_BYTES + tag_len]);
            r[tag_len..tag_len + MASKED_BYTES]
                .copy_from_slice(&f[(j + 1) * F_BYTES - MASKED_BYTES..(j + 1) * F_BYTES]);
            r[tag_len + MASKED_BYTES..width].copy_from_slice(&(e / 3).to_le_bytes());
            r
        })
        .collect();
    Ok(compact(&bucket_sort(records), width))
}

/// The entries of a chunk (sorted by tag, else Malformed) whose tag is in the index: for
/// each, in entry order, item || unmasked item key || unmasked position.
pub fn lookup(index: &[u8], entries: &[u8], tag_len: usize) -> Result<Vec<u8>, BulkError> {
    check_tag(tag_len)?;
    let width = record_bytes(tag_len);
    let records = count(index, width, "index records are whole")?;
    let entry = tag_len + MASKED_BYTES;
    let n = count(entries, entry, "entries are whole")?;
    let tag = |k: usize| &index[k * width..k * width + tag_len];
    let mut out = Vec::new();
    if n == 0 {
        return Ok(out);
    }
    // A merge from the first entry's place: linear in the chunk and the index range it spans.
    let (mut k, mut high) = (0, records);
    while k < high {
        let mid = (k + high) / 2;
        if tag(mid) < &entries[..tag_len] {
            k = mid + 1;
        } else {
            high = mid;
        }
    }
    let mut previous: &[u8] = &[];
    for e in entries.chunks_exact(entry) {
        let t = &e[..tag_len];
        if t < previous {
            return Err(BulkError::Malformed("entries are not sorted"));
        }
        previous = t;
        while k < records && tag(k) < t {
            k += 1;
        }
        let mut m = k;
        while m < records && tag(m) == t {
            let r = &index[m * width..(m + 1) * width];
            out.extend_from_slice(&r[tag_len + MASKED_BYTES..]);
            out.extend(
                r[tag_len..tag_len + MASKED_BYTES]
                    .iter()
                    .zip(&e[tag_len..])
                    .map(|(a, b)| a ^ b),
            );
            m += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::bytes;

    #[test]
    fn sealed_groups_open_with_their_keys_only() {
        let keys = bytes("keys", 32);
        let payloads = Inputs::new(b"helloworld!", [5, 5, 1]).unwrap();
        let (plains, lengths) = group_payloads(&[1, 0, 1], 2, &payloads).unwrap();
        assert_eq!(
            plains,
            b"\x05\0\0\0world\x05\0\0\0hello\x01\0\0\0!".to_vec()
        );
        let plains = Inputs::new(&plains, lengths.iter().map(|&l| l as usize)).unwrap();
        // Group 1 at position 0, group 0 at position 1.
        let sealed = seal(&keys, &plains, &[1, 0]).unwrap();
        assert_eq!(u32::from_le_bytes(sealed[..4].try_into().unwrap()), 16 + 14);
        let pending = |p: u32, item: u32, key: &[u8]| {
            [&p.to_le_bytes()[..], &item.to_le_bytes(), key].concat()
        };
        let both = [pending(0, 7, &keys[16..]), pending(1, 9, &keys[..16])].concat();
        let (n, items, data, lengths) = open_sealed(&sealed, 0, &both).unwrap();
        assert_eq!(
            (n, items, data, lengths),
            (2, vec![7, 7, 9], b"hello!world".to_vec(), vec![5, 1, 5])
        );
        // From position 1 on: the chunk holds the second payload only; a wrong key opens nothing.
        let second = &sealed[4 + 30..];
        let wrong = [pending(1, 9, &keys[16..])].concat();
        assert_eq!(
            open_sealed(second, 1, &wrong).unwrap(),
            (1, vec![], vec![], vec![])
        );
        assert!(matches!(
            open_sealed(&sealed[..20], 0, &both),
            Err(BulkError::Malformed(_))
        ));
    }

    #[test]
    fn bucket_sort_is_a_sort() {
        let mut records: Vec<[u8; 3]> = bytes("r", 3 * 5000)
            .chunks_exact(3)
            .map(|c| c.try_into().unwrap())
            .collect();
        records.extend([[0, 0, 1], [0, 0, 0], [255, 255, 255], [0, 0, 1]]);
        let mut want = records.clone();
        want.sort_unstable();
        assert_eq!(bucket_sort(records), want);
    }

    #[test]
    fn groups_and_positions() {
        let xs = [[1u8; 16], [2; 16], [1; 16], [3; 16]].concat();
        let (distinct, group) = groups(&xs).unwrap();
        assert_eq!(distinct, [[1u8; 16], [2; 16], [3; 16]].concat());
        assert_eq!(group, vec![0, 1, 0, 2]);
        let keys = [[9u8; 16], [3; 16], [5; 16]].concat();
        assert_eq!(positions(&keys).unwrap(), vec![2, 0, 1]);
    }

    #[test]
    fn lookup_finds_equal_tags() {
        let tag_len = 8;
        let f: Vec<u8> = bytes("f", 4 * 32);
        let table = vec![0, EMPTY, 5 * 3 + 2, 7 * 3 + 1];
        let index = receiver_index(&f, &table, tag_len).unwrap();
        assert_eq!(index.len(), 3 * record_bytes(tag_len));
        // An entry for bin 2's output with a known secret.
        let secret = [7u8; 20];
        let mut e = f[64..72].to_vec();
        e.extend(f[64 + 12..96].iter().zip(secret).map(|(a, b)| a ^ b));
        let other = [0xffu8; 28];
        let entries = [e.clone(), other.to_vec()].concat();
        let found = lookup(&index, &entries, tag_len).unwrap();
        assert_eq!(
            found,
            [5u32.to_le_bytes().to_vec(), secret.to_vec()].concat()
        );
        let unsorted = [other.to_vec(), e].concat();
        assert_eq!(
            lookup(&index, &unsorted, tag_len),
            Err(BulkError::Malformed("entries are not sorted"))
        );
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use crate::testing::bytes;
    use std::time::Instant;

    /// `cargo test --release -- --ignored --nocapture timing`: per-step costs at 2^20 items.
    #[test]
    #[ignore]
    fn timing_sender_steps() {
        let n = 1 << 20;
        let bins = 1_400_000;
        let q = bytes("q", bins * ROW_BYTES);
        let xs = bytes("xs", n * X_BYTES);
        let keys = bytes("keys", n * KEY_BYTES);
        let start = Instant::now();
        let position = positions(&keys).unwrap();
        println!("positions {:?}", start.elapsed());
        let start = Instant::now();
        let e = sender_entries(
            &q,
            &bytes("s", 64),
            &[1; 16],
            &[2; 16],
            &xs,
            &keys,
            &position,
            11,
        )
        .unwrap();
        println!("entries {:?} ({} bytes)", start.elapsed(), e.len());
        let plain = vec![7u8; 84 * n];
        let plains = Inputs::new(&plain, std::iter::repeat(84).take(n)).unwrap();
        let start = Instant::now();
        let sealed = seal(&keys, &plains, &(0..n as u32).collect::<Vec<_>>()).unwrap();
        println!("seal {:?} ({} bytes)", start.elapsed(), sealed.len());
        let start = Instant::now();
        let (d, _) = groups(&xs).unwrap();
        println!("groups {:?} ({} bytes)", start.elapsed(), d.len());
    }
}
