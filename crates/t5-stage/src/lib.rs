#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod error;
mod fine_tune;
pub mod planning;
mod predict;

pub use error::{Error, Result};
pub use fine_tune::{
    ADAPTER_DIR, BEST_ADAPTER_DIR, CHECKPOINT_DIR, TRAIN_LOG_FILE, TRAINING_SETTINGS_FILE,
    TrainingFiles, TrainingProgress, TrainingSummary, fine_tune, plan_training, training_work,
};
pub use predict::{
    PredictConfig, PredictSummary, plan_prediction, predict_records, prediction_work,
    resume_settings,
};
