//! The T5 stages of provenance-qa on files: answering a file of questions
//! ([`predict_records`], `qa-eval predict`) and LoRA fine-tuning on files of records
//! ([`fine_tune()`], `qa-train`), both resuming after a kill, and each stage's `--plan` estimate
//! from a calibration of the model's shape on the device ([`planning`]). The model itself is
//! `t5-lora`'s, which knows nothing of these files.
//!
//! Answering two questions with the tiny fixture model:
//!
//! ```
//! use std::path::Path;
//! use qa_data::{QaRecord, Source};
//! use qa_stage::shard::Shard;
//! use t5_lora::{DeviceChoice, ModelDtype, load_model};
//! use t5_stage::{PredictConfig, predict_records};
//!
//! let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/t5/flan-t5-tiny");
//! let (model, tokenizer) =
//!     load_model(fixture.to_str().unwrap(), None, &DeviceChoice::Cpu, ModelDtype::F32)?;
//! let question = |id: &str| QaRecord {
//!     id: id.into(),
//!     question: "Who ran?".into(),
//!     context: "Ann ran.".into(),
//!     answers: vec!["Ann".into()],
//!     source: Source::Human,
//!     provenance: None,
//! };
//! let dir = tempfile::tempdir()?;
//! let out = dir.path().join("predictions.jsonl");
//! let config = PredictConfig::default();
//! let summary = predict_records(
//!     &model, &tokenizer, &[question("q1"), question("q2")], Shard::WHOLE, &config, &out,
//!     |_, _| {},
//! )?;
//! assert_eq!(summary.generated, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod error;
mod fine_tune;
pub mod planning;
mod predict;

pub use error::{Error, Result};
pub use fine_tune::{
    ADAPTER_DIR, BEST_ADAPTER_DIR, CHECKPOINT_DIR, TRAIN_LOG_FILE, TrainingFiles, TrainingProgress,
    TrainingSummary, fine_tune, plan_training,
};
pub use predict::{
    PredictConfig, PredictSummary, partial_path, partial_settings_path, plan_prediction,
    predict_records, resume_settings,
};
