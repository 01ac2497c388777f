//! The published vectors in tests/vectors (RFC 9380, 9496, 9497) through the batch calls.

use std::path::Path;

use curve25519_dalek::ristretto::RistrettoPoint;
use psi_native::batch::{self, BatchError, Inputs, ShapeError};
use psi_native::h2c::expand_message_xmd_sha512;
use psi_native::oprf::{self, ElementError, InputError};
use psi_native::seal::{self, SEAL_OVERHEAD};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("json")
}

fn hex(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("hex string")).expect("hex")
}

fn packed(items: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    (items.concat(), items.iter().map(Vec::len).collect())
}

#[test]
fn rfc9380_expand_message_xmd_sha512() {
    let file = load("rfc9380_expand_message_xmd_sha512.json");
    let dst = file["dst"].as_str().unwrap().as_bytes();
    for v in file["vectors"].as_array().unwrap() {
        let out = expand_message_xmd_sha512(
            v["msg"].as_str().unwrap().as_bytes(),
            dst,
            v["len_in_bytes"].as_u64().unwrap() as usize,
        );
        assert_eq!(out.unwrap(), hex(&v["uniform_bytes"]));
    }
    assert!(expand_message_xmd_sha512(b"", dst, 64 * 256).is_none());
}

#[test]
fn rfc9496_one_way_map_generator_multiples_and_invalid_encodings() {
    let file = load("rfc9496_ristretto255.json");
    for v in file["one_way_map"].as_array().unwrap() {
        let wide: [u8; 64] = hex(&v["input"]).try_into().unwrap();
        assert_eq!(
            RistrettoPoint::from_uniform_bytes(&wide)
                .compress()
                .to_bytes()
                .to_vec(),
            hex(&v["output"])
        );
    }
    let multiples = file["generator_multiples"].as_array().unwrap();
    assert_eq!(
        oprf::deserialize_element(&[0; 32]),
        Err(ElementError::Identity)
    );
    for m in &multiples[1..] {
        assert!(oprf::deserialize_element(&hex(m).try_into().unwrap()).is_ok());
    }
    for e in file["invalid_encodings"].as_array().unwrap() {
        assert_eq!(
            oprf::deserialize_element(&hex(e).try_into().unwrap()),
            Err(ElementError::NotCanonical)
        );
    }
}

#[test]
fn rfc9497_oprf_through_the_batch_calls() {
    let file = load("rfc9497_ristretto255_sha512_oprf.json");
    let key = hex(&file["skSm"]);
    let vectors = file["vectors"].as_array().unwrap();
    let field = |name: &str| vectors.iter().map(|v| hex(&v[name])).collect::<Vec<_>>();
    let (data, lengths) = packed(&field("input"));
    let inputs = Inputs::new(&data, lengths).unwrap();
    let blinds = field("blind").concat();
    let blinded = batch::blind(&inputs, &blinds).unwrap();
    assert_eq!(blinded, field("blinded_element").concat());
    let evaluated = batch::blind_evaluate(&key, &blinded).unwrap();
    assert_eq!(evaluated, field("evaluation_element").concat());
    assert_eq!(
        batch::finalize(&inputs, &blinds, &evaluated).unwrap(),
        field("output").concat()
    );
    let elements = batch::hash_to_group(&inputs).unwrap();
    let labels = [b"REF-1\x1farrest".to_vec(), Vec::new()];
    let (label_data, label_lengths) = packed(&labels);
    let entries = batch::epoch_entries(
        &key,
        &inputs,
        &elements,
        &Inputs::new(&label_data, label_lengths).unwrap(),
        b"domain",
        b"ad",
    )
    .unwrap();
    let expected = expected_entries(&field("output"), &labels, b"ad");
    assert_eq!(
        (
            &entries.tag_materials,
            &entries.sealed_labels,
            &entries.label_keys
        ),
        (&expected.0, &expected.1, &expected.2)
    );
    assert_eq!(
        batch::cardinality_materials(&key, &elements, b"domain").unwrap(),
        entries.cardinality_materials
    );
}

/// Epoch entries' tag materials and sealed labels from whole outputs, one at a time.
/// (tag materials, sealed labels, label keys) as psi/tags.py makes them from the outputs.
fn expected_entries(
    outputs: &[Vec<u8>],
    labels: &[Vec<u8>],
    ad: &[u8],
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut sealed = Vec::new();
    for (output, label) in outputs.iter().zip(labels) {
        let mut one = vec![0u8; label.len() + SEAL_OVERHEAD];
        seal::seal(output[32..].try_into().unwrap(), ad, label, &mut one);
        sealed.extend(one);
    }
    (
        outputs.iter().flat_map(|o| o[..32].to_vec()).collect(),
        sealed,
        outputs.iter().flat_map(|o| o[32..].to_vec()).collect(),
    )
}

#[test]
fn rfc5297_aes_siv_deterministic_vector() {
    // RFC 5297 Appendix A.1: AES-SIV-CMAC-256 (AES-128-SIV), one header, no nonce.
    let key: [u8; 32] =
        hex::decode("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
            .unwrap()
            .try_into()
            .unwrap();
    let ad = hex::decode("101112131415161718191a1b1c1d1e1f2021222324252627").unwrap();
    let plain = hex::decode("112233445566778899aabbccddee").unwrap();
    let mut out = vec![0u8; plain.len() + SEAL_OVERHEAD];
    seal::seal(&key, &ad, &plain, &mut out);
    assert_eq!(
        hex::encode(out),
        "85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c"
    );
}

#[test]
fn errors_name_the_lowest_failing_element() {
    let key = batch::random_scalars(1);
    let mut elements = batch::random_elements(100);
    elements[70 * 32..71 * 32].fill(0);
    elements[40 * 32 + 31] |= 0x80;
    assert_eq!(
        batch::blind_evaluate(&key, &elements),
        Err(BatchError::Element(40, ElementError::NotCanonical))
    );
    elements[10 * 32..11 * 32].fill(0);
    assert_eq!(
        batch::blind_evaluate(&key, &elements),
        Err(BatchError::Element(10, ElementError::Identity))
    );
    assert!(matches!(
        batch::blind_evaluate(&key, &elements[..33]),
        Err(BatchError::Shape(_))
    ));
    let long = vec![7u8; oprf::MAX_INPUT_BYTES + 1];
    let (data, lengths) = packed(&[b"a".to_vec(), long.clone(), long]);
    let inputs = Inputs::new(&data, lengths).unwrap();
    assert_eq!(
        batch::hash_to_group(&inputs),
        Err(BatchError::Input(1, InputError::TooLong))
    );
    assert!(matches!(Inputs::new(&data, [1, 2]), Err(ShapeError(_))));
}

#[test]
fn non_canonical_and_zero_scalars_are_refused() {
    let order_plus_one =
        hex::decode("eed3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").unwrap();
    assert!(matches!(
        batch::blind_evaluate(&order_plus_one, &batch::random_elements(1)),
        Err(BatchError::Shape(_))
    ));
    let zero = [0u8; 32];
    assert_eq!(
        batch::blind_evaluate(&zero, &batch::random_elements(1)),
        Err(BatchError::Element(0, ElementError::NotCanonical))
    );
    let (data, lengths) = packed(&[b"x".to_vec()]);
    let inputs = Inputs::new(&data, lengths).unwrap();
    assert!(matches!(
        batch::finalize(&inputs, &zero, &batch::random_elements(1)),
        Err(BatchError::Shape(_))
    ));
}

#[test]
fn blinding_and_unblinding_cancel_out_across_parallel_chunks() {
    let items: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let (data, lengths) = packed(&items);
    let inputs = Inputs::new(&data, lengths).unwrap();
    let key = batch::random_scalars(1);
    let blinds = batch::random_scalars(items.len());
    let evaluated = batch::blind_evaluate(&key, &batch::blind(&inputs, &blinds).unwrap()).unwrap();
    let outputs = batch::finalize(&inputs, &blinds, &evaluated).unwrap();
    // labels of many lengths, so that each entry's sealed label must land at its own offset
    let labels: Vec<Vec<u8>> = (0..1000usize).map(|i| vec![i as u8; i % 37]).collect();
    let (label_data, label_lengths) = packed(&labels);
    let entries = batch::epoch_entries(
        &key,
        &inputs,
        &batch::hash_to_group(&inputs).unwrap(),
        &Inputs::new(&label_data, label_lengths).unwrap(),
        b"d",
        b"ad",
    )
    .unwrap();
    let outputs: Vec<Vec<u8>> = outputs.chunks(64).map(<[u8]>::to_vec).collect();
    assert_eq!(
        (entries.tag_materials, entries.sealed_labels, entries.label_keys),
        expected_entries(&outputs, &labels, b"ad")
    );
}

#[test]
fn epoch_entries_name_the_lowest_failing_input() {
    let key = batch::random_scalars(1);
    let items: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let (mut data, mut lengths) = packed(&items);
    let mut elements = batch::hash_to_group(&Inputs::new(&data, lengths.clone()).unwrap()).unwrap();
    elements[60 * 32..61 * 32].fill(0);
    let (labels, label_lengths) = packed(&vec![b"label".to_vec(); 100]);
    let entries = |data: &[u8], lengths: &[usize], label_count: usize| {
        batch::epoch_entries(
            &key,
            &Inputs::new(data, lengths.to_vec()).unwrap(),
            &elements,
            &Inputs::new(
                &labels[..5 * label_count],
                label_lengths[..label_count].to_vec(),
            )
            .unwrap(),
            b"d",
            b"ad",
        )
    };
    assert_eq!(
        entries(&data, &lengths, 100),
        Err(BatchError::Element(60, ElementError::Identity))
    );
    assert!(matches!(
        entries(&data, &lengths, 99),
        Err(BatchError::Shape(_))
    ));
    data.splice(40 * 4..41 * 4, vec![0u8; oprf::MAX_INPUT_BYTES + 1]);
    lengths[40] = oprf::MAX_INPUT_BYTES + 1;
    assert_eq!(
        entries(&data, &lengths, 100),
        Err(BatchError::Input(40, InputError::TooLong))
    );
}
