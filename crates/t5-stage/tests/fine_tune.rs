//! A whole fine-tuning run on files: a tiny model learns sixteen question/answer pairs from a
//! JSONL file by heart (`fine_tune`: log, adapter on disk), then answers them from that adapter
//! (`predict_records`).

use std::path::{Path, PathBuf};

use qa_data::QaRecord;
use qa_data::files::{read_jsonl, write_jsonl_atomic};
use qa_data::predictions::Prediction;
use t5_lora::{
    DeviceChoice, EvalLog, LoraConfig, T5Tokenizer, TrainConfig, ValidationConfig, load_adapter,
    load_pretrained,
};
use t5_stage::{PredictConfig, TrainingFiles, TrainingProgress, fine_tune, predict_records};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Sixteen pairs whose answers appear in their contexts: the fixture tokenizer is nearly
/// character-level and the tiny model's position biases are random, so answers with doubled
/// characters ("Eiffel", "1889") are left out, counting repeats being beyond such a model.
fn records() -> Vec<QaRecord> {
    read_jsonl(fixtures().join("records/sixteen-pairs.jsonl")).expect("the sixteen pairs")
}

#[test]
fn a_tiny_model_learns_sixteen_pairs_by_heart() {
    // The whole path: records in JSONL → fine_tune (log, adapter on disk) → predictions.
    let dir = tempfile::tempdir().expect("tempdir");
    let records = records();
    // The sixteen pairs fifty times over, each copy under its own id (ids are unique in a
    // training file): four epochs of 200 steps, each validated on the pairs themselves.
    let repeated: Vec<QaRecord> = (0..50)
        .flat_map(|copy| {
            records.iter().map(move |record| QaRecord {
                id: format!("{}-copy{copy}", record.id),
                ..record.clone()
            })
        })
        .collect();
    let (train_file, validation_file) =
        (dir.path().join("train.jsonl"), dir.path().join("val.jsonl"));
    write_jsonl_atomic(&train_file, &repeated).expect("writes");
    write_jsonl_atomic(&validation_file, &records).expect("writes");
    let model_dir = fixtures().join("t5/flan-t5-tiny");
    let config = TrainConfig {
        model: model_dir.to_str().expect("utf-8").to_string(),
        batch_size: 4,
        epochs: 4,
        learning_rate: 5e-3,
        warmup_ratio: 0.05,
        seed: 5,
        lora: LoraConfig {
            r: 8,
            lora_dropout: 0.0,
            target_modules: ["q", "k", "v", "o", "wi_0", "wi_1", "wo"]
                .map(String::from)
                .to_vec(),
            ..LoraConfig::default()
        },
        validation: ValidationConfig {
            generate_examples: 16,
            ..ValidationConfig::default()
        },
        device: DeviceChoice::Cpu,
        ..TrainConfig::default()
    };
    let files = TrainingFiles {
        train: train_file,
        validation: Some(validation_file),
        out_dir: dir.path().join("run"),
        resume: false,
    };
    let summary = fine_tune(&config, &files, |progress| {
        if let TrainingProgress::Started { truncation, .. } = progress {
            assert_eq!(truncation.answers_cut_away, 0);
        }
    })
    .expect("trains");
    assert!(!summary.stopped_early);

    let log: Vec<serde_json::Value> = read_jsonl(&summary.log).expect("the log");
    let losses: Vec<f64> = log
        .iter()
        .filter(|line| line["event"] == "step")
        .map(|line| line["loss"].as_f64().expect("a loss"))
        .collect();
    assert_eq!(losses.len(), 4 * 200);
    let first: f64 = losses[..4].iter().sum::<f64>() / 4.0;
    let last: f64 = losses[losses.len() - 4..].iter().sum::<f64>() / 4.0;
    assert!(last < first / 10.0, "loss fell only from {first} to {last}");
    let evaluations: Vec<EvalLog> = log
        .iter()
        .filter(|line| line["event"] == "evaluation")
        .map(|line| serde_json::from_value(line.clone()).expect("an evaluation"))
        .collect();
    let steps: Vec<usize> = evaluations.iter().map(|e| e.step).collect();
    assert_eq!(steps, [200, 400, 600, 800]);
    assert!(
        evaluations
            .windows(2)
            .all(|w| w[1].scores.loss < w[0].scores.loss),
        "validation loss must fall: {evaluations:?}"
    );
    let final_scores = evaluations[3].scores;
    assert_eq!(
        (
            final_scores.exact_match,
            final_scores.f1,
            final_scores.generated
        ),
        (100.0, 100.0, 16)
    );

    // The same answers again, outside training, from the adapter written to disk.
    let device = DeviceChoice::Cpu.resolve().expect("the CPU").device;
    let base = load_pretrained(&model_dir, &device).expect("loads");
    let (adapted, _) = load_adapter(base, &summary.adapter_dir).expect("the adapter");
    let tokenizer = T5Tokenizer::from_file(&model_dir.join("tokenizer.json")).expect("tokenizer");
    let predictions_file = dir.path().join("predictions.jsonl");
    predict_records(
        &adapted.merge_lora(),
        &tokenizer,
        &records,
        qa_stage::shard::Shard::WHOLE,
        &PredictConfig::default(),
        &predictions_file,
        |_, _| {},
    )
    .expect("predicts");
    let predictions: Vec<Prediction> = read_jsonl(&predictions_file).expect("predictions");
    let correct = predictions
        .iter()
        .zip(&records)
        .filter(|(p, record)| qa_metrics::squad::exact_match(&p.prediction, record.answer()) == 1.0)
        .count();
    assert_eq!(correct, 16, "answers after training: {predictions:?}");
}
