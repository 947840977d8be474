//! The file names inside a trained model's directory (training writes the first four), and
//! those of a PEFT adapter directory: what the trainer writes, the stages read and the report
//! exports.

/// The adapter the model is evaluated with (the best epoch's, with validation).
pub const ADAPTER: &str = "adapter";
/// The best epoch's adapter, kept while training goes on.
pub const BEST_ADAPTER: &str = "best_adapter";
/// The checkpoint a killed training resumes from.
pub const CHECKPOINT: &str = "checkpoint";
/// The training log.
pub const TRAIN_LOG: &str = "train_log.jsonl";
/// Its answers to the test questions.
pub const PREDICTIONS: &str = "predictions.jsonl";
/// PEFT's adapter settings, in an adapter directory.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// PEFT's adapter weights, in an adapter directory.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
