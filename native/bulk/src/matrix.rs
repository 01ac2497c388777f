//! The OT-extension matrices, produced a block of rows at a time.
//!
//! Column i of a PRG matrix is the AES-128-CTR keystream of seed k_i: block b (rows 128b to
//! 128b + 127) is AES_{k_i}(b as u128 LE); row r's bit is bit r % 8 (LSB first) of keystream
//! byte r / 8. A row is WIDTH_BITS bits, bit i (column i) at byte i / 8, bit i % 8.
//!
//! Receiver (KKRT16 Fig. 2): t_j = G(k_0)_j, u_j = t_j ^ G(k_1)_j ^ C(x_j) (the correction
//! rows it sends). Sender: q_j = G(k_s)_j ^ (u_j & s) = t_j ^ (C(x_j) & s).

use aes::cipher::{generic_array::GenericArray, BlockEncrypt};
use aes::Aes128;
use rayon::prelude::*;

use crate::{
    aes, code, count, oprf, BulkError, EMPTY, F_BYTES, KEY_BYTES, ROW_BYTES, WIDTH_BITS, X_BYTES,
};

/// Rows per 128-bit keystream block.
const BLOCK_ROWS: usize = 128;
/// Keystream blocks a rayon task encrypts per column (8 pipeline in AES-NI).
const TASK_BLOCKS: usize = 8;

/// Transpose an 8x8 bit matrix held as bytes = rows, bit = column (Hacker's Delight 7-3).
fn transpose8(mut x: u64) -> u64 {
    let mut t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// One seed's cipher per column.
pub fn ciphers(keys: &[u8]) -> Result<Vec<Aes128>, BulkError> {
    if count(keys, KEY_BYTES, "keys are 16 bytes")? != WIDTH_BITS {
        return Err(BulkError::Shape("one seed per column"));
    }
    keys.chunks_exact(KEY_BYTES).map(aes).collect()
}

/// Rows of keystream blocks [first, first + n) into `out` (n * 128 rows).
fn block_rows(ciphers: &[Aes128], first: usize, n: usize, out: &mut [u8]) {
    // columns[i * n + b]: column i's keystream block first + b.
    let mut columns = vec![GenericArray::default(); WIDTH_BITS * n];
    for (i, cipher) in ciphers.iter().enumerate() {
        let blocks = &mut columns[i * n..(i + 1) * n];
        for (b, block) in blocks.iter_mut().enumerate() {
            *block = GenericArray::from(((first + b) as u128).to_le_bytes());
        }
        cipher.encrypt_blocks(blocks);
    }
    for b in 0..n {
        let rows = &mut out[b * BLOCK_ROWS * ROW_BYTES..(b + 1) * BLOCK_ROWS * ROW_BYTES];
        for group in 0..WIDTH_BITS / 8 {
            for row_byte in 0..BLOCK_ROWS / 8 {
                let mut x = [0u8; 8];
                for (c, v) in x.iter_mut().enumerate() {
                    *v = columns[(group * 8 + c) * n + b][row_byte];
                }
                let t = transpose8(u64::from_le_bytes(x)).to_le_bytes();
                for (r, v) in t.iter().enumerate() {
                    rows[(row_byte * 8 + r) * ROW_BYTES + group] = *v;
                }
            }
        }
    }
}

/// Rows [r0, r1) of the PRG matrix of the column seeds: (r1 - r0) * ROW_BYTES bytes.
pub fn prg_rows(ciphers: &[Aes128], r0: usize, r1: usize) -> Vec<u8> {
    assert!(r0 <= r1);
    let first = r0 / BLOCK_ROWS;
    let blocks = r1.div_ceil(BLOCK_ROWS) - first;
    let mut out = vec![0u8; blocks * BLOCK_ROWS * ROW_BYTES];
    out.par_chunks_mut(TASK_BLOCKS * BLOCK_ROWS * ROW_BYTES)
        .enumerate()
        .for_each(|(task, chunk)| {
            let n = chunk.len() / (BLOCK_ROWS * ROW_BYTES);
            block_rows(ciphers, first + task * TASK_BLOCKS, n, chunk);
        });
    let skip = (r0 - first * BLOCK_ROWS) * ROW_BYTES;
    out.drain(..skip);
    out.truncate((r1 - r0) * ROW_BYTES);
    out
}

/// The receiver's rows [r0, r0 + table.len()): (correction rows u, OPRF outputs F(j, t_j)
/// of the occupied bins, zeros for the empty ones). `table` holds item * 3 + hash index, or EMPTY.
pub fn receiver_rows(
    k0: &[Aes128],
    k1: &[Aes128],
    code_key: &[u8],
    xs: &[u8],
    table: &[u32],
    r0: usize,
) -> Result<(Vec<u8>, Vec<u8>), BulkError> {
    let coder = aes(code_key)?;
    let items = count(xs, X_BYTES, "items are 16 bytes")?;
    if table.iter().any(|&e| e != EMPTY && e as usize / 3 >= items) {
        return Err(BulkError::Shape("a bin names no item"));
    }
    let r1 = r0 + table.len();
    let mut u = prg_rows(k0, r0, r1);
    let g1 = prg_rows(k1, r0, r1);
    let mut f = vec![0u8; table.len() * F_BYTES];
    u.par_chunks_mut(ROW_BYTES)
        .zip(f.par_chunks_mut(F_BYTES))
        .zip(g1.par_chunks(ROW_BYTES))
        .enumerate()
        .with_min_len(256)
        .for_each(|(row, ((u, f), g1))| {
            let entry = table[row];
            if entry != EMPTY {
                // u holds t_j here: its OPRF output first, then the correction.
                f.copy_from_slice(&oprf(r0 + row, u));
                let item = entry as usize / 3;
                let c = code(
                    &coder,
                    &xs[item * X_BYTES..(item + 1) * X_BYTES],
                    entry as usize % 3,
                );
                u.iter_mut().zip(c).for_each(|(v, c)| *v ^= c);
            }
            u.iter_mut().zip(g1).for_each(|(v, g)| *v ^= g);
        });
    Ok((u, f))
}

/// The sender's rows q_j = G(k_s)_j ^ (u_j & s) for the correction rows u from row r0.
pub fn sender_rows(ks: &[Aes128], s: &[u8], u: &[u8], r0: usize) -> Result<Vec<u8>, BulkError> {
    if s.len() != ROW_BYTES {
        return Err(BulkError::Shape("s is one row"));
    }
    let rows = count(u, ROW_BYTES, "corrections are whole rows")?;
    let mut q = prg_rows(ks, r0, r0 + rows);
    q.par_chunks_mut(ROW_BYTES)
        .zip(u.par_chunks(ROW_BYTES))
        .with_min_len(256)
        .for_each(|(q, u)| {
            for ((q, u), s) in q.iter_mut().zip(u).zip(s) {
                *q ^= u & s;
            }
        });
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::bytes;

    fn bit(row: &[u8], i: usize) -> u8 {
        (row[i / 8] >> (i % 8)) & 1
    }

    #[test]
    fn transpose8_is_the_transpose() {
        let x = u64::from_le_bytes(bytes("t", 8).try_into().unwrap());
        let t = transpose8(x);
        for r in 0..8 {
            for c in 0..8 {
                assert_eq!((x >> (8 * r + c)) & 1, (t >> (8 * c + r)) & 1);
            }
        }
    }

    #[test]
    fn rows_are_the_transposed_ctr_keystream() {
        let keys = bytes("k", WIDTH_BITS * 16);
        let c = ciphers(&keys).unwrap();
        let rows = prg_rows(&c, 0, 300);
        for i in [0, 1, 7, 8, 200, 511] {
            let mut stream = Vec::new();
            for b in 0..3u128 {
                let mut block = GenericArray::from(b.to_le_bytes());
                c[i].encrypt_block(&mut block);
                stream.extend_from_slice(&block);
            }
            for r in 0..300 {
                assert_eq!(
                    bit(&rows[r * 64..], i),
                    bit(&stream, r),
                    "column {i} row {r}"
                );
            }
        }
        // Any window is the same rows.
        assert_eq!(
            prg_rows(&c, 129, 1100),
            prg_rows(&c, 0, 1100)[129 * 64..].to_vec()
        );
        assert!(prg_rows(&c, 5, 5).is_empty());
    }

    #[test]
    fn ot_extension_correlation() {
        // q_j = t_j ^ (C(x_j) & s), for OT seeds where the sender holds k_{i, s_i}.
        let k0 = bytes("k0", WIDTH_BITS * 16);
        let k1 = bytes("k1", WIDTH_BITS * 16);
        let s = bytes("s", 64);
        let ks: Vec<u8> = (0..WIDTH_BITS)
            .flat_map(|i| {
                let src = if bit(&s, i) == 1 { &k1 } else { &k0 };
                src[i * 16..(i + 1) * 16].to_vec()
            })
            .collect();
        let xs = bytes("xs", 10 * 16);
        let table: Vec<u32> = (0..300u32)
            .map(|j| {
                if j % 30 < 10 {
                    (j % 30) * 3 + j % 3
                } else {
                    EMPTY
                }
            })
            .collect();
        let code_key = bytes("code", 16);
        let (c0, c1, cs) = (
            ciphers(&k0).unwrap(),
            ciphers(&k1).unwrap(),
            ciphers(&ks).unwrap(),
        );
        let (u, f) = receiver_rows(&c0, &c1, &code_key, &xs, &table, 0).unwrap();
        let q = sender_rows(&cs, &s, &u, 0).unwrap();
        let t = prg_rows(&c0, 0, 300);
        let coder = aes(&code_key).unwrap();
        for (j, &e) in table.iter().enumerate() {
            let c = if e == EMPTY {
                [0u8; 64]
            } else {
                code(&coder, &xs[(e as usize / 3) * 16..][..16], e as usize % 3)
            };
            let want: Vec<u8> = (0..64).map(|b| t[j * 64 + b] ^ (c[b] & s[b])).collect();
            assert_eq!(&q[j * 64..(j + 1) * 64], &want[..]);
            if e != EMPTY {
                let unmasked: Vec<u8> = (0..64).map(|b| q[j * 64 + b] ^ (c[b] & s[b])).collect();
                assert_eq!(&f[j * 32..(j + 1) * 32], &oprf(j, &unmasked)[..]);
            } else {
                assert_eq!(&f[j * 32..(j + 1) * 32], &[0u8; 32]);
            }
        }
        // A block of rows at an offset is the same as the whole.
        let (u2, f2) = receiver_rows(&c0, &c1, &code_key, &xs, &table[100..200], 100).unwrap();
        assert_eq!(u2, u[100 * 64..200 * 64].to_vec());
        assert_eq!(f2, f[100 * 32..200 * 32].to_vec());
    }
}
