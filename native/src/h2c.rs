//! expand_message_xmd with SHA-512 (RFC 9380, Section 5.3.1), as psi/h2c.py.

use sha2::{Digest, Sha512};

const B_IN_BYTES: usize = 64; // SHA-512 output size
const S_IN_BYTES: usize = 128; // SHA-512 block size

/// `len_in_bytes` uniform bytes for `msg` under the tag `dst`; None for lengths the RFC forbids.
pub fn expand_message_xmd_sha512(msg: &[u8], dst: &[u8], len_in_bytes: usize) -> Option<Vec<u8>> {
    let ell = len_in_bytes.div_ceil(B_IN_BYTES);
    if ell > 255 || len_in_bytes > 65535 || dst.len() > 255 {
        return None;
    }
    let dst_len = [dst.len() as u8];
    let b_0 = Sha512::new()
        .chain_update([0u8; S_IN_BYTES])
        .chain_update(msg)
        .chain_update((len_in_bytes as u16).to_be_bytes())
        .chain_update([0u8])
        .chain_update(dst)
        .chain_update(dst_len)
        .finalize();
    let mut out = Vec::with_capacity(ell * B_IN_BYTES);
    let mut b_i = Sha512::new()
        .chain_update(b_0)
        .chain_update([1u8])
        .chain_update(dst)
        .chain_update(dst_len)
        .finalize();
    out.extend_from_slice(&b_i);
    for i in 2..=ell {
        let mut mixed = [0u8; B_IN_BYTES];
        for (m, (x, y)) in mixed.iter_mut().zip(b_0.iter().zip(b_i.iter())) {
            *m = x ^ y;
        }
        b_i = Sha512::new()
            .chain_update(mixed)
            .chain_update([i as u8])
            .chain_update(dst)
            .chain_update(dst_len)
            .finalize();
        out.extend_from_slice(&b_i);
    }
    out.truncate(len_in_bytes);
    Some(out)
}
