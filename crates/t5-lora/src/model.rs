//! T5 and FLAN-T5 as Burn modules.
//!
//! T5 (Raffel et al., 2020, <https://arxiv.org/abs/1910.10683>) is an encoder-decoder
//! transformer with RMS layer norms, no biases, and a learned relative position bias instead of
//! position embeddings. T5 v1.1 and FLAN-T5 replace the ReLU feed-forward with a gated GELU and
//! untie the output projection from the input embedding. This file follows Hugging Face's
//! `modeling_t5.py`: struct names are its class names and field names its attribute names, so
//! the module tree is the checkpoint tree (the few segments Rust cannot mirror are remapped in
//! `keys.rs`).
//!
//! Shapes use `batch`, `src_len` (encoder positions), `tgt_len` (decoder positions), `heads`,
//! `d_kv` (per-head width), `d_model`, `d_ff` and `vocab`.

#[cfg(test)]
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, relu};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dtype::{ACTIVATIONS, forward_in_weight_dtype};
use crate::kernels;
use crate::lora::LoraLinear;

/// The model's settings, read from a checkpoint's `config.json` (key names are Hugging Face's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct T5Config {
    /// Size of the vocabulary (rows of `shared`).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Width of each attention head.
    pub d_kv: usize,
    /// Width of the feed-forward hidden layer.
    pub d_ff: usize,
    /// Encoder blocks.
    pub num_layers: usize,
    /// Decoder blocks (`num_layers` when absent).
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
    /// Buckets of the relative position bias.
    #[serde(default = "default_num_buckets")]
    pub relative_attention_num_buckets: usize,
    /// Distance beyond which all relative positions share a bucket.
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    /// Epsilon of the RMS layer norms.
    #[serde(default = "default_epsilon")]
    pub layer_norm_epsilon: f64,
    /// The feed-forward kind: `relu` (T5 v1.0), `gated-gelu` (T5 v1.1, FLAN-T5), …
    #[serde(default)]
    pub feed_forward_proj: FeedForwardProj,
    /// Whether `lm_head` is the shared embedding (T5 v1.0) or a separate matrix (v1.1, FLAN).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: u32,
    /// End-of-sequence token id.
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
    /// First decoder input token (T5 uses the padding token).
    #[serde(default)]
    pub decoder_start_token_id: u32,
}

fn default_num_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_epsilon() -> f64 {
    1e-6
}
fn default_true() -> bool {
    true
}
fn default_eos() -> u32 {
    1
}

impl T5Config {
    /// Number of decoder blocks.
    pub fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    /// A model with these settings and freshly initialised weights.
    pub fn init(&self, device: &Device) -> T5ForConditionalGeneration {
        T5ForConditionalGeneration {
            shared: EmbeddingConfig::new(self.vocab_size, self.d_model).init(device),
            encoder: T5Stack::new(self, false, device),
            decoder: T5Stack::new(self, true, device),
            lm_head: (!self.tie_word_embeddings).then(|| {
                LinearConfig::new(self.d_model, self.vocab_size)
                    .with_bias(false)
                    .init(device)
            }),
            config: self.clone(),
            encoded_rows: EncodedRows::default(),
        }
    }
}

/// The activation of the feed-forward layer (Hugging Face's `dense_act_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `relu`.
    Relu,
    /// `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_new`: GELU with the tanh approximation (what `gated-gelu` means).
    GeluNew,
}

/// `feed_forward_proj`: the activation, and whether the layer is gated (`wi_0`/`wi_1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedForwardProj {
    /// Gated (`act(wi_0 x) * wi_1 x`) or plain (`act(wi x)`).
    pub gated: bool,
    /// The activation.
    pub activation: Activation,
}

impl Default for FeedForwardProj {
    fn default() -> Self {
        FeedForwardProj {
            gated: false,
            activation: Activation::Relu,
        }
    }
}

impl FeedForwardProj {
    /// Parses Hugging Face's string (`relu`, `gelu`, `gated-gelu`, `gated-relu`, …), decoding
    /// `gated-gelu` to the tanh-approximated GELU as `T5Config.__init__` does.
    pub fn parse(text: &str) -> Option<Self> {
        let (gated, name) = match text.split_once('-') {
            Some(("gated", name)) => (true, name),
            Some(_) => return None,
            None => (false, text),
        };
        let activation = match (gated, name) {
            (_, "relu") => Activation::Relu,
            (true, "gelu") | (_, "gelu_new") => Activation::GeluNew,
            (false, "gelu") => Activation::Gelu,
            _ => return None,
        };
        Some(FeedForwardProj { gated, activation })
    }

    fn name(&self) -> String {
        let act = match self.activation {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::GeluNew if self.gated => "gelu",
            Activation::GeluNew => "gelu_new",
        };
        if self.gated {
            format!("gated-{act}")
        } else {
            act.to_string()
        }
    }
}

impl<'de> Deserialize<'de> for FeedForwardProj {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        FeedForwardProj::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unsupported feed_forward_proj {text:?}: expected relu, gelu, gelu_new or gated-<one of those>"
            ))
        })
    }
}

impl Serialize for FeedForwardProj {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

/// T5's layer norm: scales by the root mean square, with no mean subtraction and no bias
/// (`T5LayerNorm`).
#[derive(Module, Debug)]
pub struct T5LayerNorm {
    /// Per-channel scale, `[d_model]`.
    pub weight: Param<Tensor<1>>,
    #[module(skip)]
    epsilon: f64,
}

impl T5LayerNorm {
    fn new(d_model: usize, epsilon: f64, device: &Device) -> Self {
        T5LayerNorm {
            weight: Param::from_tensor(Tensor::ones([d_model], device)),
            epsilon,
        }
    }

    /// # Shapes
    /// - hidden: `[batch, len, d_model]` → `[batch, len, d_model]`
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        kernels::rms_norm(hidden, self.weight.val(), self.epsilon)
    }
}

/// T5's bucketing of relative positions (`T5Attention._relative_position_bucket`): exact
/// buckets for small distances, logarithmic ones up to `max_distance`, one bucket beyond. The
/// encoder is `bidirectional` (half the buckets for each direction); the decoder is causal and
/// maps every key after the query to bucket 0.
///
/// `relative_position` is `key_position - query_position`.
pub fn relative_position_bucket(
    relative_position: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut num_buckets = num_buckets as i64;
    let mut bucket = 0;
    let distance = if bidirectional {
        num_buckets /= 2;
        if relative_position > 0 {
            bucket += num_buckets;
        }
        relative_position.abs()
    } else {
        (-relative_position).max(0)
    };
    let max_exact = num_buckets / 2;
    if distance < max_exact {
        return (bucket + distance) as usize;
    }
    // Computed in f32 like the PyTorch original, so bucket edges fall where HF's fall.
    let log_ratio = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
    let scaled =
        (distance as f32 / max_exact as f32).ln() / log_ratio * (num_buckets - max_exact) as f32;
    let large = (max_exact + scaled as i64).min(num_buckets - 1);
    (bucket + large) as usize
}

/// Multi-head attention with T5's conventions (`T5Attention`): no biases, no 1/√d_kv scaling
/// (folded into the initialisation), and, in the first block of each stack, the relative
/// position bias that every block of the stack then shares.
#[derive(Module, Debug)]
pub struct T5Attention {
    /// Query projection, `[d_model, heads * d_kv]`.
    pub q: LoraLinear,
    /// Key projection.
    pub k: LoraLinear,
    /// Value projection.
    pub v: LoraLinear,
    /// Output projection, `[heads * d_kv, d_model]`.
    pub o: LoraLinear,
    /// Bias per bucket and head, `[num_buckets, heads]`; only in block 0's self-attention.
    pub relative_attention_bias: Option<Embedding>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    d_kv: usize,
    #[module(skip)]
    num_buckets: usize,
    #[module(skip)]
    max_distance: usize,
    #[module(skip)]
    bidirectional: bool,
}

impl T5Attention {
    fn new(config: &T5Config, has_bias: bool, bidirectional: bool, device: &Device) -> Self {
        let inner = config.num_heads * config.d_kv;
        T5Attention {
            q: LoraLinear::new(config.d_model, inner, device),
            k: LoraLinear::new(config.d_model, inner, device),
            v: LoraLinear::new(config.d_model, inner, device),
            o: LoraLinear::new(inner, config.d_model, device),
            relative_attention_bias: has_bias.then(|| {
                EmbeddingConfig::new(config.relative_attention_num_buckets, config.num_heads)
                    .init(device)
            }),
            heads: config.num_heads,
            d_kv: config.d_kv,
            num_buckets: config.relative_attention_num_buckets,
            max_distance: config.relative_attention_max_distance,
            bidirectional,
        }
    }

    /// The relative position bias for queries at `query_offset..query_offset + q_len` and keys
    /// at `0..k_len` (`T5Attention.compute_bias`), or zeros for a layer without a bias table.
    ///
    /// # Shapes
    /// - output: `[1, heads, q_len, k_len]`
    pub fn compute_bias(
        &self,
        query_offset: usize,
        q_len: usize,
        k_len: usize,
        device: &Device,
    ) -> Tensor<4> {
        let Some(table) = &self.relative_attention_bias else {
            return Tensor::zeros([1, self.heads, q_len, k_len], device);
        };
        let buckets: Vec<i64> = (0..q_len)
            .flat_map(|i| {
                (0..k_len).map(move |j| {
                    let relative = j as i64 - (query_offset + i) as i64;
                    relative_position_bucket(
                        relative,
                        self.bidirectional,
                        self.num_buckets,
                        self.max_distance,
                    ) as i64
                })
            })
            .collect();
        let buckets = Tensor::<2, Int>::from_data(TensorData::new(buckets, [q_len, k_len]), device);
        let values = table.forward(buckets); // [q_len, k_len, heads]
        values.permute([2, 0, 1]).unsqueeze::<4>() // [1, heads, q_len, k_len]
    }

    /// Splits the last dimension into heads.
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [batch, len, _] = x.dims();
        x.reshape([batch, len, self.heads, self.d_kv])
            .swap_dims(1, 2) // [batch, heads, len, d_kv]
    }

    /// Keys and values of `source` for this layer, split into heads.
    ///
    /// # Shapes
    /// - source: `[batch, k_len, d_model]` → two of `[batch, heads, k_len, d_kv]`
    pub fn key_value(&self, source: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        (
            self.split_heads(self.k.forward(source.clone())),
            self.split_heads(self.v.forward(source)),
        )
    }

    /// Attends from `hidden` to precomputed keys and values.
    ///
    /// `bias` already holds the position bias plus the masks (large negative where a key must
    /// not be seen), exactly as Hugging Face passes `position_bias` between layers.
    ///
    /// # Shapes
    /// - hidden: `[batch, q_len, d_model]`
    /// - key, value: `[batch, heads, k_len, d_kv]`
    /// - bias: `[batch or 1, heads, q_len, k_len]`
    /// - output: `[batch, q_len, d_model]`
    pub fn attend(
        &self,
        hidden: Tensor<3>,
        key: Tensor<4>,
        value: Tensor<4>,
        bias: Tensor<4>,
    ) -> Tensor<3> {
        let [batch, q_len, _] = hidden.dims();
        let query = self.split_heads(self.q.forward(hidden)); // [batch, heads, q_len, d_kv]
        // softmax(Q Kᵀ + bias) V with scale 1: T5 folds 1/√d_kv into its initialisation.
        let context = kernels::attention(query, key, value, bias); // [batch, heads, q_len, d_kv]
        let context = context
            .swap_dims(1, 2)
            .reshape([batch, q_len, self.heads * self.d_kv]);
        self.o.forward(context) // [batch, q_len, d_model]
    }
}

/// Self-attention sub-layer with its pre-norm and residual (`T5LayerSelfAttention`).
#[derive(Module, Debug)]
pub struct T5LayerSelfAttention {
    /// The attention (`SelfAttention` in checkpoints).
    pub self_attention: T5Attention,
    /// Pre-norm.
    pub layer_norm: T5LayerNorm,
}

impl T5LayerSelfAttention {
    /// Self-attention over `hidden` and, when decoding with a cache, the keys and values of the
    /// positions before it (which are then extended by `hidden`'s).
    ///
    /// # Shapes
    /// - hidden: `[batch, len, d_model]`
    /// - bias: `[batch or 1, heads, len, past + len]`
    /// - past: `[batch, heads, past, d_kv]` each
    /// - output: `[batch, len, d_model]`
    pub fn forward(
        &self,
        hidden: Tensor<3>,
        bias: Tensor<4>,
        past: Option<&mut Option<KeyValue>>,
    ) -> Tensor<3> {
        let normed = self.layer_norm.forward(hidden.clone());
        let (mut key, mut value) = self.self_attention.key_value(normed.clone());
        if let Some(slot) = past {
            if let Some(previous) = slot.take() {
                key = Tensor::cat(vec![previous.key, key], 2);
                value = Tensor::cat(vec![previous.value, value], 2);
            }
            *slot = Some(KeyValue {
                key: key.clone(),
                value: value.clone(),
            });
        }
        residual(hidden, self.self_attention.attend(normed, key, value, bias))
    }
}

/// Cross-attention sub-layer of a decoder block (`T5LayerCrossAttention`).
#[derive(Module, Debug)]
pub struct T5LayerCrossAttention {
    /// The attention (`EncDecAttention` in checkpoints).
    pub enc_dec_attention: T5Attention,
    /// Pre-norm.
    pub layer_norm: T5LayerNorm,
}

impl T5LayerCrossAttention {
    /// # Shapes
    /// - hidden: `[batch, tgt_len, d_model]`
    /// - encoder: `[batch, heads, src_len, d_kv]` each (from the encoder output)
    /// - bias: `[batch, 1, 1, src_len]` (the encoder padding mask)
    /// - output: `[batch, tgt_len, d_model]`
    pub fn forward(&self, hidden: Tensor<3>, encoder: &KeyValue, bias: Tensor<4>) -> Tensor<3> {
        let normed = self.layer_norm.forward(hidden.clone());
        let attended =
            self.enc_dec_attention
                .attend(normed, encoder.key.clone(), encoder.value.clone(), bias);
        residual(hidden, attended)
    }
}

/// The plain feed-forward network (`T5DenseActDense`: T5 v1.0's ReLU).
#[derive(Module, Debug)]
pub struct T5DenseActDense {
    /// Input projection, `[d_model, d_ff]`.
    pub wi: LoraLinear,
    /// Output projection, `[d_ff, d_model]`.
    pub wo: LoraLinear,
    #[module(skip)]
    activation: Activation,
}

impl T5DenseActDense {
    /// # Shapes
    /// - hidden: `[batch, len, d_model]` → `[batch, len, d_model]`
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        let inner = activate(self.activation, self.wi.forward(hidden)); // [batch, len, d_ff]
        self.wo.forward(inner)
    }
}

/// The gated feed-forward network (`T5DenseGatedActDense`: T5 v1.1 and FLAN-T5).
#[derive(Module, Debug)]
pub struct T5DenseGatedActDense {
    /// Activated input projection, `[d_model, d_ff]`.
    pub wi_0: LoraLinear,
    /// Linear (gate) input projection, `[d_model, d_ff]`.
    pub wi_1: LoraLinear,
    /// Output projection, `[d_ff, d_model]`.
    pub wo: LoraLinear,
    #[module(skip)]
    activation: Activation,
}

impl T5DenseGatedActDense {
    /// # Shapes
    /// - hidden: `[batch, len, d_model]` → `[batch, len, d_model]`
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        let gate = self.wi_0.forward(hidden.clone());
        let up = self.wi_1.forward(hidden);
        let inner = match self.activation {
            // FLAN-T5's: one pass on the CPU.
            Activation::GeluNew => kernels::gated_gelu_new(gate, up),
            activation => activate(activation, gate) * up,
        }; // [batch, len, d_ff]
        self.wo.forward(inner)
    }
}

/// A block's feed-forward network, plain or gated as `feed_forward_proj` says. The variant
/// is not part of the parameters' paths (the stores skip enum variants), which stay
/// `…dense_relu_dense.wi_0…` as Hugging Face names them.
#[derive(Module, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per block, built once: the gated variant's third projection costs nothing"
)]
pub enum T5Dense {
    /// `wi`, then `wo`.
    Plain(T5DenseActDense),
    /// `wi_0` activated times `wi_1`, then `wo`.
    Gated(T5DenseGatedActDense),
}

impl T5Dense {
    fn new(config: &T5Config, device: &Device) -> Self {
        let proj = config.feed_forward_proj;
        let input = || LoraLinear::new(config.d_model, config.d_ff, device);
        let wo = LoraLinear::new(config.d_ff, config.d_model, device);
        match proj.gated {
            false => T5Dense::Plain(T5DenseActDense {
                wi: input(),
                wo,
                activation: proj.activation,
            }),
            true => T5Dense::Gated(T5DenseGatedActDense {
                wi_0: input(),
                wi_1: input(),
                wo,
                activation: proj.activation,
            }),
        }
    }

    /// # Shapes
    /// - hidden: `[batch, len, d_model]` → `[batch, len, d_model]`
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        match self {
            T5Dense::Plain(dense) => dense.forward(hidden),
            T5Dense::Gated(dense) => dense.forward(hidden),
        }
    }

    /// Its projections with their PEFT target names.
    fn projections_mut(&mut self) -> Vec<(&'static str, &mut LoraLinear)> {
        match self {
            T5Dense::Plain(T5DenseActDense { wi, wo, .. }) => vec![("wi", wi), ("wo", wo)],
            T5Dense::Gated(T5DenseGatedActDense { wi_0, wi_1, wo, .. }) => {
                vec![("wi_0", wi_0), ("wi_1", wi_1), ("wo", wo)]
            }
        }
    }
}

/// `activation(x)`, as the feed-forward layer's `act`.
fn activate(activation: Activation, x: Tensor<3>) -> Tensor<3> {
    match activation {
        Activation::Relu => relu(x),
        Activation::Gelu => gelu(x),
        Activation::GeluNew => kernels::gelu_new(x),
    }
}

/// Feed-forward sub-layer with its pre-norm and residual (`T5LayerFF`).
#[derive(Module, Debug)]
pub struct T5LayerFF {
    /// The network (`DenseReluDense` in checkpoints, whatever its activation).
    pub dense_relu_dense: T5Dense,
    /// Pre-norm.
    pub layer_norm: T5LayerNorm,
}

impl T5LayerFF {
    /// # Shapes
    /// - hidden: `[batch, len, d_model]` → `[batch, len, d_model]`
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        let normed = self.layer_norm.forward(hidden.clone());
        residual(hidden, self.dense_relu_dense.forward(normed))
    }
}

/// `hidden + update`, in the residual stream's type (a sub-layer's output is in its output
/// projection's type, which is f16 or bf16 for attention in reduced precision).
fn residual(hidden: Tensor<3>, update: Tensor<3>) -> Tensor<3> {
    let dtype = hidden.dtype();
    hidden + update.cast(dtype)
}

/// One block (`T5Block`): self-attention, cross-attention in the decoder, feed-forward.
/// Hugging Face keeps the sub-layers in a list (`layer.0`, `layer.1`, `layer.2`); they are named
/// fields here.
#[derive(Module, Debug)]
pub struct T5Block {
    /// `layer.0`.
    pub layer_self_attention: T5LayerSelfAttention,
    /// `layer.1` of a decoder block.
    pub layer_cross_attention: Option<T5LayerCrossAttention>,
    /// `layer.1` (encoder) or `layer.2` (decoder).
    pub layer_ff: T5LayerFF,
}

/// The encoder or decoder (`T5Stack`), without the embedding (shared, held by the model).
#[derive(Module, Debug)]
pub struct T5Stack {
    /// The blocks.
    pub block: Vec<T5Block>,
    /// Norm after the last block.
    pub final_layer_norm: T5LayerNorm,
    #[module(skip)]
    is_decoder: bool,
}

/// Hugging Face's additive mask value: `torch.finfo(float32).min`.
const MASKED: f32 = f32::MIN;

impl T5Stack {
    fn new(config: &T5Config, is_decoder: bool, device: &Device) -> Self {
        let layers = if is_decoder {
            config.decoder_layers()
        } else {
            config.num_layers
        };
        let norm = || T5LayerNorm::new(config.d_model, config.layer_norm_epsilon, device);
        let block = (0..layers)
            .map(|i| T5Block {
                layer_self_attention: T5LayerSelfAttention {
                    self_attention: T5Attention::new(config, i == 0, !is_decoder, device),
                    layer_norm: norm(),
                },
                layer_cross_attention: is_decoder.then(|| T5LayerCrossAttention {
                    enc_dec_attention: T5Attention::new(config, false, false, device),
                    layer_norm: norm(),
                }),
                layer_ff: T5LayerFF {
                    dense_relu_dense: T5Dense::new(config, device),
                    layer_norm: norm(),
                },
            })
            .collect();
        T5Stack {
            block,
            final_layer_norm: norm(),
            is_decoder,
        }
    }

    /// Runs every block over already embedded inputs.
    ///
    /// `self_bias` is the position bias of block 0 plus the padding (encoder) or causal
    /// (decoder) mask. The decoder also takes its [`DecoderCache`]: each block's encoder keys
    /// and values, the encoder padding mask, and the self-attention keys and values of the
    /// positions decoded so far, which this call extends.
    ///
    /// # Shapes
    /// - hidden: `[batch, len, d_model]`
    /// - self_bias: `[batch or 1, heads, len, past + len]`
    /// - output: `[batch, len, d_model]`
    fn forward(
        &self,
        mut hidden: Tensor<3>,
        self_bias: Tensor<4>,
        mut cache: Option<&mut DecoderCache>,
    ) -> Tensor<3> {
        for (i, block) in self.block.iter().enumerate() {
            let layer_cache = cache
                .as_deref_mut()
                .map(|c| (&mut c.layers[i], &c.encoder_bias));
            match (layer_cache, &block.layer_cross_attention) {
                (Some((layer, encoder_bias)), Some(cross)) => {
                    hidden = block.layer_self_attention.forward(
                        hidden,
                        self_bias.clone(),
                        Some(&mut layer.self_attention),
                    );
                    hidden = cross.forward(hidden, &layer.cross_attention, encoder_bias.clone());
                }
                (None, None) => {
                    hidden = block
                        .layer_self_attention
                        .forward(hidden, self_bias.clone(), None);
                }
                _ => unreachable!("the decoder always runs with a DecoderCache, the encoder never"),
            }
            hidden = block.layer_ff.forward(hidden);
        }
        self.final_layer_norm.forward(hidden)
    }

    /// The self-attention module of block 0, which owns the stack's position bias.
    fn bias_owner(&self) -> &T5Attention {
        &self.block[0].layer_self_attention.self_attention
    }
}

/// Keys and values of one attention layer, split into heads.
///
/// # Shapes
/// - key, value: `[batch, heads, len, d_kv]`
#[derive(Debug, Clone)]
pub struct KeyValue {
    /// Keys.
    pub key: Tensor<4>,
    /// Values.
    pub value: Tensor<4>,
}

/// What one decoder block keeps between decoding steps.
#[derive(Debug, Clone)]
struct LayerCache {
    /// Keys and values of the positions decoded so far (none before the first step).
    self_attention: Option<KeyValue>,
    /// Keys and values of the encoder output, computed once per input.
    cross_attention: KeyValue,
}

/// The decoder's state during incremental decoding (Hugging Face's `EncoderDecoderCache`):
/// per block, the self-attention keys and values of every position decoded so far and the
/// cross-attention keys and values of the encoder output, which are computed once. Each step
/// then costs one position instead of the whole prefix.
#[derive(Debug, Clone)]
pub struct DecoderCache {
    layers: Vec<LayerCache>,
    /// The encoder padding mask, `[batch, 1, 1, src_len]`.
    encoder_bias: Tensor<4>,
    /// Decoder positions processed so far.
    len: usize,
}

impl DecoderCache {
    /// Decoder positions processed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position has been decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps only the given rows, in the given order (`rows` indexes the current batch), e.g.
    /// to drop finished sequences.
    pub fn keep_rows(&mut self, rows: Tensor<1, Int>) {
        self.encoder_bias = self.encoder_bias.clone().select(0, rows.clone());
        for layer in &mut self.layers {
            layer.cross_attention = select_rows(&layer.cross_attention, &rows);
            layer.self_attention = layer
                .self_attention
                .as_ref()
                .map(|kv| select_rows(kv, &rows));
        }
    }

    /// Reorders the decoded prefixes among rows that share one encoder input (beam search:
    /// row `i` continues the prefix of row `rows[i]`), leaving the encoder keys and values
    /// alone because they are the same for every such row.
    pub fn reorder_beams(&mut self, rows: Tensor<1, Int>) {
        for layer in &mut self.layers {
            layer.self_attention = layer
                .self_attention
                .as_ref()
                .map(|kv| select_rows(kv, &rows));
        }
    }
}

fn select_rows(kv: &KeyValue, rows: &Tensor<1, Int>) -> KeyValue {
    KeyValue {
        key: kv.key.clone().select(0, rows.clone()),
        value: kv.value.clone().select(0, rows.clone()),
    }
}

/// An additive padding mask: 0 where `attention_mask` is 1, [`MASKED`] where it is 0.
///
/// # Shapes
/// - attention_mask: `[batch, k_len]` → `[batch, 1, 1, k_len]`
fn padding_bias(attention_mask: Tensor<2, Int>) -> Tensor<4> {
    let [batch, k_len] = attention_mask.dims();
    let mask_pad = attention_mask.equal_elem(0); // [batch, k_len]
    let device = mask_pad.device();
    Tensor::<2>::zeros([batch, k_len], &device)
        .mask_fill(mask_pad, MASKED)
        .reshape([batch, 1, 1, k_len])
}

/// An additive causal mask for queries at `offset..offset + q_len` over keys `0..k_len`.
///
/// # Shapes
/// - output: `[1, 1, q_len, k_len]`
fn causal_bias(offset: usize, q_len: usize, k_len: usize, device: &Device) -> Tensor<4> {
    let masked: Vec<bool> = (0..q_len)
        .flat_map(|i| (0..k_len).map(move |j| j > offset + i))
        .collect();
    let mask_attn = Tensor::<2, Bool>::from_data(TensorData::new(masked, [q_len, k_len]), device);
    Tensor::<2>::zeros([q_len, k_len], device)
        .mask_fill(mask_attn, MASKED)
        .reshape([1, 1, q_len, k_len])
}

/// The whole encoder-decoder with its language-model head (`T5ForConditionalGeneration`).
#[derive(Module, Debug)]
pub struct T5ForConditionalGeneration {
    /// Token embedding shared by encoder and decoder, `[vocab, d_model]`.
    pub shared: Embedding,
    /// The encoder.
    pub encoder: T5Stack,
    /// The decoder.
    pub decoder: T5Stack,
    /// Output projection `[d_model, vocab]`; absent when tied to `shared` (T5 v1.0).
    pub lm_head: Option<Linear>,
    #[module(skip)]
    config: T5Config,
    #[module(skip)]
    encoded_rows: EncodedRows,
}

/// Input rows [`T5ForConditionalGeneration::encode`] has run on, shared by a model's clones:
/// counted in this crate's tests (what shows that generation encodes a repeated prompt once),
/// and an empty type elsewhere.
#[derive(Clone, Debug, Default)]
struct EncodedRows(#[cfg(test)] Arc<AtomicUsize>);

impl EncodedRows {
    fn add(&self, _rows: usize) {
        #[cfg(test)]
        self.0.fetch_add(_rows, Ordering::Relaxed);
    }
}

impl T5ForConditionalGeneration {
    /// The model's settings.
    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// The device the weights are on.
    pub fn device(&self) -> Device {
        self.shared.weight.val().device()
    }

    /// How many input rows this model (and its clones) has encoded since it was made.
    #[cfg(test)]
    pub(crate) fn encoded_rows(&self) -> usize {
        self.encoded_rows.0.load(Ordering::Relaxed)
    }

    /// Encodes a padded batch.
    ///
    /// # Shapes
    /// - input_ids, attention_mask: `[batch, src_len]` (mask 1 for tokens, 0 for padding)
    /// - output: `[batch, src_len, d_model]`
    pub fn encode(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<3> {
        let [batch, src_len] = input_ids.dims();
        self.encoded_rows.add(batch);
        let device = input_ids.device();
        let hidden = self.embed(input_ids); // [batch, src_len, d_model]
        let bias = self
            .encoder
            .bias_owner()
            .compute_bias(0, src_len, src_len, &device)
            + padding_bias(attention_mask); // [batch, heads, src_len, src_len]
        self.encoder.forward(hidden, bias, None)
    }

    /// Teacher-forced decoding: logits for every decoder position at once.
    ///
    /// # Shapes
    /// - decoder_input_ids: `[batch, tgt_len]` (starting with `decoder_start_token_id`)
    /// - encoder_hidden: `[batch, src_len, d_model]`
    /// - attention_mask: `[batch, src_len]`, the encoder's
    /// - output: `[batch, tgt_len, vocab]`
    pub fn decode(
        &self,
        decoder_input_ids: Tensor<2, Int>,
        encoder_hidden: Tensor<3>,
        attention_mask: Tensor<2, Int>,
    ) -> Tensor<3> {
        let mut cache = self.start_decoding(encoder_hidden, attention_mask);
        self.decode_step(decoder_input_ids, &mut cache)
    }

    /// A decoder cache for a batch of encoded inputs: computes every block's cross-attention
    /// keys and values once.
    ///
    /// # Shapes
    /// - encoder_hidden: `[batch, src_len, d_model]`
    /// - attention_mask: `[batch, src_len]`, the encoder's
    pub fn start_decoding(
        &self,
        encoder_hidden: Tensor<3>,
        attention_mask: Tensor<2, Int>,
    ) -> DecoderCache {
        let layers = self
            .decoder
            .block
            .iter()
            .filter_map(|b| b.layer_cross_attention.as_ref())
            .map(|layer| {
                let (key, value) = layer.enc_dec_attention.key_value(encoder_hidden.clone());
                LayerCache {
                    self_attention: None,
                    cross_attention: KeyValue { key, value },
                }
            })
            .collect();
        DecoderCache {
            layers,
            encoder_bias: padding_bias(attention_mask),
            len: 0,
        }
    }

    /// Decodes the next positions after those already in `cache` (one position per step when
    /// generating, or a whole target at once) and extends the cache with them.
    ///
    /// # Shapes
    /// - decoder_input_ids: `[batch, new_len]`
    /// - output: `[batch, new_len, vocab]`
    pub fn decode_step(
        &self,
        decoder_input_ids: Tensor<2, Int>,
        cache: &mut DecoderCache,
    ) -> Tensor<3> {
        let [_, new_len] = decoder_input_ids.dims();
        let device = decoder_input_ids.device();
        let (past, total) = (cache.len, cache.len + new_len);
        let hidden = self.embed(decoder_input_ids); // [batch, new_len, d_model]
        let self_bias = self
            .decoder
            .bias_owner()
            .compute_bias(past, new_len, total, &device)
            + causal_bias(past, new_len, total, &device); // [1, heads, new_len, total]
        let hidden = self.decoder.forward(hidden, self_bias, Some(cache));
        cache.len = total;
        self.lm_logits(hidden)
    }

    /// Encodes and decodes (teacher forcing).
    ///
    /// # Shapes
    /// - input_ids, attention_mask: `[batch, src_len]`
    /// - decoder_input_ids: `[batch, tgt_len]`
    /// - output: `[batch, tgt_len, vocab]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        decoder_input_ids: Tensor<2, Int>,
    ) -> Tensor<3> {
        let encoder_hidden = self.encode(input_ids, attention_mask.clone());
        self.decode(decoder_input_ids, encoder_hidden, attention_mask)
    }

    /// Every projection that can carry an adapter, with its PEFT target name.
    pub fn projections_mut(&mut self) -> Vec<(&'static str, &mut LoraLinear)> {
        let mut projections = Vec::new();
        for stack in [&mut self.encoder, &mut self.decoder] {
            for block in &mut stack.block {
                let mut attentions = vec![&mut block.layer_self_attention.self_attention];
                if let Some(cross) = &mut block.layer_cross_attention {
                    attentions.push(&mut cross.enc_dec_attention);
                }
                for T5Attention { q, k, v, o, .. } in attentions {
                    projections.extend([("q", q), ("k", k), ("v", v), ("o", o)]);
                }
                projections.extend(block.layer_ff.dense_relu_dense.projections_mut());
            }
        }
        projections
    }

    /// The token embeddings of `ids`, starting the residual stream (f32 whatever the
    /// embedding's type; see `dtype.rs`).
    ///
    /// # Shapes
    /// - ids: `[batch, len]` → `[batch, len, d_model]`
    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.shared.forward(ids).cast(ACTIVATIONS)
    }

    /// The language-model head, multiplied in its weight's type; the logits are f32.
    ///
    /// # Shapes
    /// - hidden: `[batch, len, d_model]` → `[batch, len, vocab]`
    fn lm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let logits = match &self.lm_head {
            Some(head) => forward_in_weight_dtype(head, hidden),
            None => {
                // Tied embeddings: rescale by d_model^-0.5 before projecting
                // (`T5ForConditionalGeneration.forward`, only when `tie_word_embeddings`).
                let scaled = hidden * (self.config.d_model as f64).powf(-0.5);
                let embedding = self.shared.weight.val().transpose(); // [d_model, vocab]
                kernels::project(scaled.cast(embedding.dtype()), embedding)
            }
        };
        logits.cast(ACTIVATIONS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_edges() {
        let bi = |r| relative_position_bucket(r, true, 32, 128);
        let causal = |r| relative_position_bucket(r, false, 32, 128);
        // Bidirectional: 16 buckets a side, exact below 8, key after query in the upper half.
        assert_eq!([bi(0), bi(1), bi(-1), bi(7), bi(-7)], [0, 17, 1, 23, 7]);
        assert_eq!([bi(8), bi(-8), bi(9), bi(-9)], [24, 8, 24, 8]);
        assert_eq!(
            [bi(127), bi(128), bi(1000), bi(-128), bi(-1000)],
            [31, 31, 31, 15, 15]
        );
        // Causal: keys after the query all share bucket 0; exact below 16.
        assert_eq!(
            [causal(1), causal(100), causal(0), causal(-1), causal(-15)],
            [0, 0, 0, 1, 15]
        );
        assert_eq!([causal(-16), causal(-128), causal(-1000)], [16, 31, 31]);
    }

    #[test]
    fn feed_forward_proj_strings() {
        let parse = |s| FeedForwardProj::parse(s).map(|p| (p.gated, p.activation));
        assert_eq!(parse("relu"), Some((false, Activation::Relu)));
        assert_eq!(parse("gated-gelu"), Some((true, Activation::GeluNew)));
        assert_eq!(parse("gelu"), Some((false, Activation::Gelu)));
        assert_eq!(parse("gated-silu"), None);
        assert_eq!(parse("dense-relu"), None);
        for text in ["relu", "gated-gelu", "gelu", "gelu_new", "gated-relu"] {
            assert_eq!(FeedForwardProj::parse(text).expect("parses").name(), text);
        }
    }
}
