//! The receiver's cuckoo table: its distinct items into `bins` bins, HASHES hash functions
//! keyed by the hello's seed, no stash. Deterministic (the Python reference runs the same
//! walk): item k tries its bins h_0, h_1, h_2 for a free one in that order; if none is free it
//! evicts the holder of h_i (i starting at 0), which then goes on from its next hash function.

use rayon::prelude::*;

use crate::{aes, bin, count, BulkError, EMPTY, HASHES, X_BYTES};

/// Evictions allowed for one insertion before the table counts as failed (the caller
/// re-seeds). At load 1/1.27 with 3 hash functions, walks are short.
pub const MAX_EVICTIONS: usize = 500;

/// The bins of each item under each hash function.
pub fn bins_of(xs: &[u8], seed: &[u8], bins: usize) -> Result<Vec<[u32; HASHES]>, BulkError> {
    let hasher = aes(seed)?;
    count(xs, X_BYTES, "items are 16 bytes")?;
    if bins == 0 || bins > u32::MAX as usize {
        return Err(BulkError::Shape("bins out of range"));
    }
    Ok(xs
        .par_chunks(X_BYTES)
        .with_min_len(1024)
        .map(|x| std::array::from_fn(|i| bin(&hasher, x, i, bins) as u32))
        .collect())
}

/// The table (item * 3 + hash index per bin, or EMPTY), or None when an insertion failed.
pub fn build(xs: &[u8], seed: &[u8], bins: usize) -> Result<Option<Vec<u32>>, BulkError> {
    let candidates = bins_of(xs, seed, bins)?;
    if candidates.len() >= (EMPTY as usize) / 3 {
        return Err(BulkError::Shape("too many items"));
    }
    let mut table = vec![EMPTY; bins];
    for item in 0..candidates.len() {
        let (mut current, mut i) = (item, 0usize);
        let mut evictions = 0;
        loop {
            let free = (0..HASHES)
                .map(|d| (i + d) % HASHES)
                .find(|&h| table[candidates[current][h] as usize] == EMPTY);
            if let Some(h) = free {
                table[candidates[current][h] as usize] = (current * 3 + h) as u32;
                break;
            }
            if evictions == MAX_EVICTIONS {
                return Ok(None);
            }
            evictions += 1;
            let slot = candidates[current][i] as usize;
            let evicted = table[slot] as usize;
            table[slot] = (current * 3 + i) as u32;
            (current, i) = (evicted / 3, (evicted % 3 + 1) % HASHES);
        }
    }
    Ok(Some(table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::bytes;

    #[test]
    fn every_item_in_one_of_its_bins() {
        let n = 20_000;
        let xs = bytes("items", n * X_BYTES);
        let seed = bytes("seed", 16);
        let bins = (n as f64 * 1.27).ceil() as usize;
        let table = build(&xs, &seed, bins).unwrap().expect("inserts");
        let candidates = bins_of(&xs, &seed, bins).unwrap();
        let mut seen = vec![false; n];
        for (j, &e) in table.iter().enumerate() {
            if e != EMPTY {
                let (item, h) = (e as usize / 3, e as usize % 3);
                assert_eq!(candidates[item][h] as usize, j);
                assert!(!seen[item]);
                seen[item] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn overfull_table_fails() {
        let xs = bytes("items", 10 * X_BYTES);
        assert_eq!(build(&xs, &bytes("seed", 16), 9).unwrap(), None);
    }
}
