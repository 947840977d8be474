//! T5's tokenizer: a checkpoint's `tokenizer.json` read by the `tokenizers` crate (the library
//! behind Hugging Face's fast tokenizers, so ids match `T5TokenizerFast` exactly), plus the
//! padding and truncation conventions T5 training and generation rely on.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// The tokenizer file of a checkpoint.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A `tokenizer.json` with T5's special tokens: padding (id 0 in every T5 checkpoint) and the
/// end-of-sequence token `</s>` that the post-processor appends to every input.
#[derive(Debug, Clone)]
pub struct T5Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    pad_id: u32,
    eos_id: u32,
}

/// Token ids of a batch of texts, before padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// One sequence per text, each ending with `</s>`.
    pub ids: Vec<Vec<u32>>,
    /// How many texts were longer than the limit and lost their tail.
    pub truncated: usize,
    /// For each text, the length in bytes of the prefix its tokens cover (the whole text
    /// unless truncated), to tell what truncation cut away.
    pub covered_bytes: Vec<usize>,
}

impl T5Tokenizer {
    /// Reads `path` (a `tokenizer.json`) and checks that it has T5's `<pad>` and `</s>`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| Error::Tokenizer {
                path: path.to_path_buf(),
                message: format!("no {token} token: not a T5 tokenizer"),
            })
        };
        Ok(T5Tokenizer {
            pad_id: id("<pad>")?,
            eos_id: id("</s>")?,
            inner,
            path: path.to_path_buf(),
        })
    }

    /// The padding token's id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The end-of-sequence token's id.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Tokenizes `texts` with `</s>` appended; a text longer than `max_len` tokens keeps its
    /// first `max_len - 1` tokens and its `</s>`, as `tokenizer(..., truncation=True,
    /// max_length=max_len)` does in Python.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S], max_len: usize) -> Result<Encoded> {
        let mut tokenizer = self.inner.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| self.error(e))?;
        let mut encoded = Encoded {
            ids: Vec::with_capacity(texts.len()),
            truncated: 0,
            covered_bytes: Vec::with_capacity(texts.len()),
        };
        for text in texts {
            let encoding = tokenizer
                .encode(text.as_ref(), true)
                .map_err(|e| self.error(e))?;
            let cut = !encoding.get_overflowing().is_empty();
            encoded.truncated += usize::from(cut);
            let covered = if cut {
                encoding
                    .get_offsets()
                    .iter()
                    .zip(encoding.get_special_tokens_mask())
                    .filter(|&(_, &special)| special == 0)
                    .map(|(&(_, end), _)| end)
                    .max()
                    .unwrap_or(0)
            } else {
                text.as_ref().len()
            };
            encoded.covered_bytes.push(covered);
            encoded.ids.push(encoding.get_ids().to_vec());
        }
        Ok(encoded)
    }

    /// Text of `ids`, without special tokens (padding, `</s>`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| self.error(e))
    }

    fn error(&self, error: tokenizers::Error) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            message: error.to_string(),
        }
    }
}

/// Pads sequences on the right with `pad_id` into `input_ids` and `attention_mask` tensors
/// (mask 1 on tokens, 0 on padding).
///
/// # Shapes
/// - output: two of `[sequences, longest]`
pub fn pad_batch<S: AsRef<[u32]>>(
    sequences: &[S],
    pad_id: u32,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let longest = sequences
        .iter()
        .map(|s| s.as_ref().len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut ids = Vec::with_capacity(sequences.len() * longest);
    let mut mask = Vec::with_capacity(sequences.len() * longest);
    for sequence in sequences {
        let sequence = sequence.as_ref();
        ids.extend(sequence.iter().map(|&id| i64::from(id)));
        ids.extend(std::iter::repeat_n(
            i64::from(pad_id),
            longest - sequence.len(),
        ));
        mask.extend(std::iter::repeat_n(1i64, sequence.len()));
        mask.extend(std::iter::repeat_n(0i64, longest - sequence.len()));
    }
    let shape = [sequences.len(), longest];
    (
        Tensor::from_data(TensorData::new(ids, shape), device),
        Tensor::from_data(TensorData::new(mask, shape), device),
    )
}
