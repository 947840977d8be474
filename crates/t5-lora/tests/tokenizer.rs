//! The tokenizer against the ids and texts Hugging Face `tokenizers` (Python) produced for the
//! fixture `tokenizer.json`.

use crate::common;

use burn::prelude::*;
use common::fixtures;
use t5_lora::T5Tokenizer;
use t5_lora::pad_batch;

#[derive(serde::Deserialize)]
struct TokenizerReference {
    samples: Vec<String>,
    ids: Vec<Vec<u32>>,
    decoded: Vec<String>,
}

fn load() -> (T5Tokenizer, TokenizerReference) {
    let tokenizer = T5Tokenizer::from_file(&fixtures().join("tokenizer.json")).expect("loads");
    let text = std::fs::read_to_string(fixtures().join("tokenizer_reference.json")).expect("read");
    (
        tokenizer,
        serde_json::from_str(&text).expect("reference JSON"),
    )
}

#[test]
fn encodes_and_decodes_like_python() {
    let (tokenizer, reference) = load();
    assert_eq!((tokenizer.pad_id(), tokenizer.eos_id()), (0, 1));
    let encoded = tokenizer.encode(&reference.samples, 512).expect("encodes");
    assert_eq!(encoded.ids, reference.ids);
    assert_eq!(encoded.truncated, 0);
    for (ids, expected) in encoded.ids.iter().zip(&reference.decoded) {
        assert_eq!(&tokenizer.decode(ids).expect("decodes"), expected);
    }
}

#[test]
fn truncation_keeps_the_end_of_sequence_token_and_is_counted() {
    let (tokenizer, reference) = load();
    let encoded = tokenizer.encode(&reference.samples, 10).expect("encodes");
    assert_eq!(
        encoded.truncated, 2,
        "the two long samples lose their tails"
    );
    for (ids, full) in encoded.ids.iter().zip(&reference.ids) {
        let expected: Vec<u32> = if full.len() > 10 {
            full[..9].iter().copied().chain([1]).collect()
        } else {
            full.clone()
        };
        assert_eq!(ids, &expected);
    }
}

#[test]
fn batches_are_padded_on_the_right_with_a_mask() {
    let device = common::device();
    let (ids, mask) = pad_batch(&[vec![5, 6, 1], vec![7, 1]], 0, &device);
    let values = |t: Tensor<2, Int>| {
        t.into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .expect("ints")
    };
    assert_eq!(values(ids), [5, 6, 1, 7, 1, 0]);
    assert_eq!(values(mask), [1, 1, 1, 1, 1, 0]);
}

#[test]
fn a_file_that_is_not_a_t5_tokenizer_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{\"not\": \"a tokenizer\"}").expect("write");
    let error = T5Tokenizer::from_file(&path)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("tokenizer.json"), "{error}");
}
