//! Both parties' kernels in protocol order on random sets: the receiver finds exactly the
//! common items, each with its sender payload.

use psi_bulk::{
    cuckoo, digests, matrix, ot, tag_bytes, tags, Inputs, KEY_BYTES, WIDTH_BITS, X_BYTES,
};
use sha2::{Digest, Sha256};

fn bytes(label: &str, n: usize) -> Vec<u8> {
    (0..n.div_ceil(32) as u64)
        .flat_map(|c| {
            Sha256::new()
                .chain_update(label)
                .chain_update(c.to_le_bytes())
                .finalize()
        })
        .take(n)
        .collect()
}

fn packed(keys: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    (keys.concat(), keys.iter().map(Vec::len).collect())
}

#[test]
fn intersection_of_random_sets() {
    let common: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("common-{i}").into_bytes())
        .collect();
    let mut receiver: Vec<Vec<u8>> = (0..2000).map(|i| format!("r-{i}").into_bytes()).collect();
    let mut sender: Vec<Vec<u8>> = (0..1500).map(|i| format!("s-{i}").into_bytes()).collect();
    receiver.extend(common.iter().cloned());
    sender.extend(common.iter().cloned());

    // Receiver: items, cuckoo table, base-OT point.
    let (data, lengths) = packed(&receiver);
    let rx = digests(&Inputs::new(&data, lengths).unwrap());
    let bins = (receiver.len() as f64 * 1.27).ceil() as usize + 128;
    let seed = bytes("seed", 16);
    let table = cuckoo::build(&rx, &seed, bins).unwrap().expect("inserts");
    let a = bytes("a", 64);
    let big_a = ot::sender_point(&a).unwrap();

    // Sender: base OTs with choice bits s.
    let s = bytes("s", WIDTH_BITS / 8);
    let (bs, ks) = ot::receiver_choose(&big_a, &bytes("b", WIDTH_BITS * 64), &s).unwrap();
    let code_key = bytes("code", 16);

    // Receiver: corrections in two blocks.
    let (k0, k1) = ot::sender_keys(&a, &bs).unwrap();
    let (c0, c1) = (matrix::ciphers(&k0).unwrap(), matrix::ciphers(&k1).unwrap());
    let split = 1000;
    let (u_a, f_a) = matrix::receiver_rows(&c0, &c1, &code_key, &rx, &table[..split], 0).unwrap();
    let (u_b, f_b) =
        matrix::receiver_rows(&c0, &c1, &code_key, &rx, &table[split..], split).unwrap();

    // Sender: Q, groups, entries, sealed payloads.
    let cs = matrix::ciphers(&ks).unwrap();
    let q = [
        matrix::sender_rows(&cs, &s, &u_a, 0).unwrap(),
        matrix::sender_rows(&cs, &s, &u_b, split).unwrap(),
    ]
    .concat();
    let (sdata, slengths) = packed(&sender);
    let (xs, _) = tags::groups(&digests(&Inputs::new(&sdata, slengths).unwrap())).unwrap();
    let groups = xs.len() / X_BYTES;
    let item_keys = bytes("item keys", groups * KEY_BYTES);
    let position = tags::positions(&item_keys).unwrap();
    let tag_len = tag_bytes(receiver.len() as u64, groups as u64);
    let entries = tags::sender_entries(
        &q, &s, &code_key, &seed, &xs, &item_keys, &position, tag_len,
    )
    .unwrap();
    assert_eq!(entries.len(), 3 * groups * (tag_len + 20));

    // Receiver: index, look-up, open.
    let index = tags::receiver_index(&[f_a, f_b].concat(), &table, tag_len).unwrap();
    let matches = tags::lookup(&index, &entries, tag_len).unwrap();
    let mut found: Vec<Vec<u8>> = Vec::new();
    for m in matches.chunks_exact(tags::MATCH_BYTES) {
        let item = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
        let key = &m[4..20];
        let pos = u32::from_le_bytes(m[20..24].try_into().unwrap()) as usize;
        let g = position
            .iter()
            .position(|&p| p as usize == pos)
            .expect("a real position");
        assert_eq!(key, &item_keys[g * 16..(g + 1) * 16]);
        assert_eq!(&rx[item * 16..(item + 1) * 16], &xs[g * 16..(g + 1) * 16]);
        found.push(receiver[item].clone());
    }
    found.sort();
    let mut want = common.clone();
    want.sort();
    assert_eq!(found, want);
}
