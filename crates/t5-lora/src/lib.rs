#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod adapter;
mod calibrate;
mod checkpoint;
mod device;
mod dtype;
mod error;
mod generation;
mod hub;
mod kernels;
mod keys;
mod lora;
mod malloc;
mod model;
#[cfg(test)]
mod test_random;
mod tokenizer;
mod train;

pub use adapter::{
    ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, load_adapter, read_adapter_config, save_adapter,
};
pub use calibrate::{
    GenerationBatch, GenerationCost, TrainingBatch, TrainingCost, measure_generation,
    measure_training,
};
pub use checkpoint::{
    CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE, load_pretrained, load_pretrained_as, published_shape,
    read_config, shard_names, verify_weights, weight_files,
};
pub use device::{DeviceChoice, Found, ResolvedDevice, auto_choice, probe};
pub use dtype::{KEPT_IN_F32, ModelDtype};
pub use error::{Error, Result};
pub use generation::{
    GenerationConfig, generate, generate_from_ids, generate_repeated, generate_text,
    generate_with_streams,
};
pub use hub::{HubOptions, load_model, local_file, resolve_model};
pub use lora::{LoraAdapter, LoraConfig, LoraLinear, TARGETS};
pub use malloc::{MALLOC_TUNABLES, with_malloc_tunables};
pub use model::{
    Activation, DecoderCache, FeedForwardProj, KeyValue, T5Attention, T5Block, T5Config, T5Dense,
    T5DenseActDense, T5DenseGatedActDense, T5ForConditionalGeneration, T5LayerCrossAttention,
    T5LayerFF, T5LayerNorm, T5LayerSelfAttention, T5Stack, relative_position_bucket,
};
pub use tokenizer::{Encoded, T5Tokenizer, TOKENIZER_FILE, pad_batch};
pub use train::{
    BestMetric, Checkpointing, DEFAULT_TEMPLATE, Encoding, EvalLog, EvalScores, Example,
    OPTIMIZER_FILE, STATE_FILE, Seq2SeqBatch, StepLog, TrainConfig, TrainEvent, TrainLog,
    TrainOutcome, TrainingState, TruncationCounts, Validation, ValidationConfig, checkpoint_state,
    encode_examples, epoch_batches, generation_config, learning_rate, seq2seq_loss, total_steps,
    train,
};
