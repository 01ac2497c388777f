//! The published vectors in tests/vectors (RFC 9380, 9496, 9497) through the batch calls.

use std::path::Path;

use curve25519_dalek::ristretto::RistrettoPoint;
use psi_native::batch::{self, BatchError, Inputs};
use psi_native::h2c::expand_message_xmd_sha512;
use psi_native::oprf::{self, ElementError, InputError};
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
    let (outputs, materials) = batch::evaluate(&key, &inputs, &elements, b"domain").unwrap();
    assert_eq!(outputs, field("output").concat());
    assert_eq!(materials.len(), 32 * vectors.len());
    assert_eq!(
        batch::cardinality_materials(&key, &elements, b"domain").unwrap(),
        materials
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
    assert!(matches!(
        Inputs::new(&data, [1, 2]),
        Err(BatchError::Shape(_))
    ));
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
    let (direct, _) =
        batch::evaluate(&key, &inputs, &batch::hash_to_group(&inputs).unwrap(), b"d").unwrap();
    assert_eq!(outputs, direct);
}
