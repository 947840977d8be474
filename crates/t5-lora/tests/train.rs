//! LoRA training on the tiny FLAN-T5 fixture: autodiff gradients against finite differences,
//! validation, early stopping, resume, and the same run on the test device as on the CPU. (The
//! whole path through files, `fine_tune` then prediction, is t5-stage's test.)

use crate::common;

use std::ops::ControlFlow;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use common::{fixtures, to_vec};
use qa_data::files::read_jsonl;
use qa_data::{QaRecord, Source};
use t5_lora::LoraConfig;
use t5_lora::{BestMetric, Validation, ValidationConfig};
use t5_lora::{
    Checkpointing, EvalLog, Example, Seq2SeqBatch, TrainConfig, TrainEvent, encode_examples,
    seq2seq_loss, train,
};
use t5_lora::{T5ForConditionalGeneration, T5Tokenizer};
use t5_lora::{load_adapter, save_adapter};
use t5_lora::{load_pretrained, read_config};

/// The fixture model with adapters whose B is random (N(0, `b_std`)): a new adapter's B is
/// zero, where the gradient of A vanishes.
fn adapted(device: &Device, config: &LoraConfig, b_std: f64) -> T5ForConditionalGeneration {
    let mut model = read_config(&fixtures().join("flan-t5-tiny"))
        .expect("config")
        .init(device)
        .with_lora(config)
        .expect("attaches");
    for (_, projection) in model.projections_mut() {
        if let Some(adapter) = &mut projection.lora {
            let shape = adapter.lora_b.weight.val().dims();
            let random = Tensor::<2>::random(shape, Distribution::Normal(0.0, b_std), device);
            adapter.lora_b.weight = Param::from_tensor(random);
        }
    }
    model
}

/// The fixture model on an autodiff device seeded with `seed`, with new adapters.
fn trainable(seed: u64, lora: &LoraConfig) -> T5ForConditionalGeneration {
    let device = common::device().autodiff();
    device.seed(seed);
    load_pretrained(&fixtures().join("flan-t5-tiny"), &device)
        .expect("loads")
        .with_lora(lora)
        .expect("attaches")
}

fn loss_value(model: &T5ForConditionalGeneration, batch: &Seq2SeqBatch) -> f64 {
    seq2seq_loss(model, batch).into_scalar::<f64>()
}

/// Replaces entry `index` of adapter `which` (0 = A, 1 = B) of the first adapted projection.
fn perturbed(
    model: &T5ForConditionalGeneration,
    which: usize,
    index: usize,
    delta: f32,
) -> T5ForConditionalGeneration {
    let mut model = model.clone();
    let adapter = model
        .projections_mut()
        .into_iter()
        .find_map(|(_, p)| p.lora.as_mut())
        .expect("an adapter");
    let param = if which == 0 {
        &mut adapter.lora_a.weight
    } else {
        &mut adapter.lora_b.weight
    };
    let tensor = param.val();
    let shape = tensor.dims();
    let mut values = tensor.into_data().try_to_vec::<f32>().expect("f32");
    values[index] += delta;
    *param = Param::from_tensor(Tensor::from_data(
        TensorData::new(values, shape),
        &param.val().device(),
    ));
    model
}

#[test]
fn lora_gradients_match_finite_differences() {
    let _turn = common::seeded();
    let device = common::device().autodiff();
    device.seed(9);
    // Freshly initialised weights (milder than the fixture's, whose loss curves sharply) and an
    // adapter of scale 1.
    let config = LoraConfig {
        r: 2,
        lora_alpha: 2.0,
        lora_dropout: 0.0,
        ..LoraConfig::default()
    };
    let mut model = adapted(&device, &config, 1.0);
    let examples = [
        Example {
            source: vec![17, 45, 99, 120, 8, 1],
            target: vec![33, 71, 1],
        },
        Example {
            source: vec![200, 5, 1],
            target: vec![9, 1],
        },
    ];
    let batch = Seq2SeqBatch::new(&examples.iter().collect::<Vec<_>>(), 0, 0, &device);
    let grads = seq2seq_loss(&model, &batch).backward();
    let adapter = model
        .projections_mut()
        .into_iter()
        .find_map(|(_, p)| {
            p.lora
                .as_ref()
                .map(|a| (a.lora_a.weight.val(), a.lora_b.weight.val()))
        })
        .expect("an adapter");
    // f32 losses: a step of 1e-2 keeps rounding noise near 1e-5 while the loss stays linear
    // enough; errors are relative to the larger gradient, or to 1e-2 for tiny ones.
    let eps = 1e-2f32;
    for (which, weight) in [adapter.0, adapter.1].into_iter().enumerate() {
        let analytic = weight
            .grad(&grads)
            .expect("adapter weights get gradients")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        for index in [0, 3, 7, 11, 20] {
            let up = loss_value(&perturbed(&model, which, index, eps), &batch);
            let down = loss_value(&perturbed(&model, which, index, -eps), &batch);
            let numeric = (up - down) / (2.0 * f64::from(eps));
            let exact = f64::from(analytic[index]);
            let relative = (numeric - exact).abs() / numeric.abs().max(exact.abs()).max(1e-2);
            assert!(
                relative < 1e-2,
                "{} entry {index}: autodiff {exact}, finite differences {numeric}",
                ["A", "B"][which]
            );
        }
    }
}

/// Sixteen pairs whose answers appear in their contexts (`fixtures/records/sixteen-pairs.jsonl`).
fn records() -> Vec<QaRecord> {
    read_jsonl(fixtures().join("../records/sixteen-pairs.jsonl")).expect("the sixteen pairs")
}

/// Every adapter weight of `model`, in model order.
fn adapter_weights(model: &mut T5ForConditionalGeneration) -> Vec<Vec<f32>> {
    model
        .adapter_params_mut()
        .into_iter()
        .map(|w| w.val().into_data().try_to_vec::<f32>().expect("f32"))
        .collect()
}

/// The evaluations that `event` reports, gathered into `into`.
fn gather(into: &mut Vec<EvalLog>, event: TrainEvent<'_>) {
    if let TrainEvent::Evaluation(log) = event {
        into.push(log.clone());
    }
}

#[test]
fn a_resumed_run_ends_exactly_where_an_uninterrupted_one_does() {
    let _turn = common::seeded();
    let tokenizer = T5Tokenizer::from_file(&fixtures().join("tokenizer.json")).expect("tokenizer");
    // Dropout on, two batches per step, validation, and a stop in the middle of an epoch:
    // everything a resume must restore.
    let config = TrainConfig {
        batch_size: 2,
        grad_accumulation: 2,
        epochs: 2,
        learning_rate: 1e-2,
        validation: ValidationConfig {
            generate_examples: 4,
            best_metric: BestMetric::Loss,
            patience: 0,
        },
        device: common::test_backend(),
        ..TrainConfig::default()
    };
    let (examples, _) =
        encode_examples(&tokenizer, &records(), &config.encoding()).expect("encodes");
    let (validation, _) = Validation::new(
        &tokenizer,
        &records()[..6],
        &config.encoding(),
        &config.validation,
    )
    .expect("encodes");
    let fresh = || trainable(config.seed, &config.lora);
    let dirs = tempfile::tempdir().expect("tempdir");
    let checkpointing = |name: &str| Checkpointing {
        dir: dirs.path().join(name).join("checkpoint"),
        every: 100,
        best_dir: dirs.path().join(name).join("best"),
    };

    let straight = checkpointing("straight");
    let mut straight_evaluations = Vec::new();
    let mut whole = train(
        fresh(),
        &examples,
        Some(&validation),
        &config,
        Some(&straight),
        |event| {
            gather(&mut straight_evaluations, event);
            ControlFlow::Continue(())
        },
    )
    .expect("trains");
    assert_eq!(whole.state.step, 8);
    let steps: Vec<usize> = straight_evaluations.iter().map(|e| e.step).collect();
    assert_eq!(steps, [4, 8]);

    let halves = checkpointing("halves");
    let first = train(
        fresh(),
        &examples,
        Some(&validation),
        &config,
        Some(&halves),
        |event| match event {
            TrainEvent::Step(log) if log.step == 3 => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        },
    )
    .expect("trains");
    assert!(first.interrupted);
    assert_eq!(
        (first.state.step, first.state.epoch, first.state.groups_done),
        (3, 0, 3)
    );
    let mut steps_after_resume = Vec::new();
    let mut evaluations_after_resume = Vec::new();
    let mut second = train(
        fresh(),
        &examples,
        Some(&validation),
        &config,
        Some(&halves),
        |event| {
            if let TrainEvent::Step(log) = event {
                steps_after_resume.push(log.step);
            }
            gather(&mut evaluations_after_resume, event);
            ControlFlow::Continue(())
        },
    )
    .expect("resumes");
    assert_eq!(steps_after_resume, [4, 5, 6, 7, 8]);
    assert_eq!(
        adapter_weights(&mut second.model),
        adapter_weights(&mut whole.model)
    );
    assert_eq!(evaluations_after_resume, straight_evaluations);
    assert_eq!(
        (second.state.best, second.state.epochs_since_best),
        (whole.state.best, whole.state.epochs_since_best)
    );
}

/// Relative difference of two losses.
fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn training_on_the_test_device_follows_the_same_run_on_the_cpu() {
    let _turn = common::seeded();
    let tokenizer = T5Tokenizer::from_file(&fixtures().join("tokenizer.json")).expect("tokenizer");
    // No dropout: each backend draws its masks from its own generator.
    let lora = LoraConfig {
        lora_dropout: 0.0,
        ..LoraConfig::default()
    };
    let config = TrainConfig {
        batch_size: 2,
        epochs: 1,
        learning_rate: 1e-2,
        lora: lora.clone(),
        ..TrainConfig::default()
    };
    let (examples, _) =
        encode_examples(&tokenizer, &records(), &config.encoding()).expect("encodes");
    // One start for both: adapters initialised on the CPU and saved as PEFT files, then loaded
    // onto each device.
    let base_dir = fixtures().join("flan-t5-tiny");
    let cpu = Device::flex().autodiff();
    cpu.seed(config.seed);
    let start = load_pretrained(&base_dir, &cpu)
        .expect("loads")
        .with_lora(&lora)
        .expect("attaches");
    let adapter_dir = tempfile::tempdir().expect("tempdir");
    save_adapter(&start, &lora, "flan-t5-tiny", adapter_dir.path()).expect("saves");
    let on = |device: Device| {
        let base = load_pretrained(&base_dir, &device.autodiff()).expect("loads");
        load_adapter(base, adapter_dir.path())
            .expect("the adapter")
            .0
    };
    let losses = |model: T5ForConditionalGeneration| {
        let mut losses = Vec::new();
        train(model, &examples, None, &config, None, |event| {
            if let TrainEvent::Step(log) = event {
                losses.push(log.loss);
            }
            ControlFlow::Continue(())
        })
        .expect("trains");
        losses
    };
    let on_cpu = losses(on(Device::flex()));
    let on_test_device = losses(on(common::device()));
    assert_eq!(on_cpu.len(), 8);
    // Bit for bit on the CPU. On a GPU each step's f32 rounding (GPU_RERUN_TOLERANCE) carries
    // into the next step's weights through the update; over eight AdamW steps at a learning
    // rate of 1e-2 that stays below 1e-3 of the loss, while a wrong gradient or update moves
    // the loss by far more (the first step's update alone changes it by several percent).
    let tolerance = match common::tolerance(0.0) {
        0.0 => 0.0,
        _ => 1e-3,
    };
    let worst = on_cpu
        .iter()
        .zip(&on_test_device)
        .map(|(cpu, device)| relative(*cpu, *device))
        .fold(0.0, f64::max);
    eprintln!("largest relative difference of a loss from the CPU's: {worst:e}");
    for (step, (cpu, device)) in on_cpu.iter().zip(&on_test_device).enumerate() {
        assert!(
            relative(*cpu, *device) <= tolerance,
            "step {}: loss {device} on the test device, {cpu} on the CPU",
            step + 1
        );
    }
    assert!(
        relative(on_cpu[0], on_cpu[7]) > 1e-2,
        "training moved the loss: {on_cpu:?}"
    );
}

/// Logits of `model` for the first four training examples.
fn logits(model: &T5ForConditionalGeneration, examples: &[Example]) -> Vec<f32> {
    let chosen: Vec<&Example> = examples.iter().take(4).collect();
    let config = model.config();
    let batch = Seq2SeqBatch::new(
        &chosen,
        config.pad_token_id,
        config.decoder_start_token_id,
        &model.device(),
    );
    to_vec(model.forward(
        batch.input_ids,
        batch.attention_mask,
        batch.decoder_input_ids,
    ))
}

#[test]
fn early_stopping_ends_a_run_that_stops_improving_and_keeps_the_best_epoch() {
    let _turn = common::seeded();
    let tokenizer = T5Tokenizer::from_file(&fixtures().join("tokenizer.json")).expect("tokenizer");
    let config = TrainConfig {
        batch_size: 4,
        epochs: 6,
        learning_rate: 5e-3,
        validation: ValidationConfig {
            generate_examples: 3,
            best_metric: BestMetric::F1,
            patience: 2,
        },
        device: common::test_backend(),
        ..TrainConfig::default()
    };
    let (examples, _) =
        encode_examples(&tokenizer, &records(), &config.encoding()).expect("encodes");
    // Questions whose answers share no word with anything the model sees: F1 stays 0, so
    // the first evaluation stays the best and the run stops two epochs later.
    let unrelated: Vec<QaRecord> = ["zqxj", "vwkq", "jxqz"]
        .iter()
        .enumerate()
        .map(|(i, answer)| QaRecord {
            id: format!("u{i}"),
            question: "What is the word?".to_string(),
            context: format!("The word is {answer}."),
            answers: vec![answer.to_string()],
            source: Source::Human,
            provenance: None,
        })
        .collect();
    let (validation, _) = Validation::new(
        &tokenizer,
        &unrelated,
        &config.encoding(),
        &config.validation,
    )
    .expect("encodes");
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpointing = Checkpointing {
        dir: dir.path().join("checkpoint"),
        every: 100,
        best_dir: dir.path().join("best"),
    };
    let mut evaluations = Vec::new();
    let mut steps = 0;
    let outcome = train(
        trainable(config.seed, &config.lora),
        &examples,
        Some(&validation),
        &config,
        Some(&checkpointing),
        |event| {
            steps += usize::from(matches!(event, TrainEvent::Step(_)));
            gather(&mut evaluations, event);
            ControlFlow::Continue(())
        },
    )
    .expect("trains");
    let f1s: Vec<f64> = evaluations.iter().map(|e| e.scores.f1).collect();
    assert_eq!(f1s, [0.0, 0.0, 0.0]);
    let best: Vec<bool> = evaluations.iter().map(|e| e.best).collect();
    assert_eq!(best, [true, false, false]);
    assert!(outcome.stopped_early && !outcome.interrupted);
    assert_eq!((steps, outcome.state.epoch), (3 * 4, 3));
    let best_log = outcome.state.best.clone().expect("a best evaluation");
    assert_eq!((best_log.epoch, best_log.step), (0, 4));

    // The best model is epoch 0's, not the last one, and is what `best_dir` holds.
    let best_model = outcome.best_model.expect("a best model");
    let last_model = outcome.model.valid();
    let from_disk = load_adapter(last_model.clone().strip_lora(), &checkpointing.best_dir)
        .expect("loads")
        .0;
    assert_eq!(
        logits(&best_model, &examples),
        logits(&from_disk, &examples)
    );
    assert_ne!(
        logits(&best_model, &examples),
        logits(&last_model, &examples)
    );

    // Resuming a run that stopped early trains no further, and restores its best model.
    let again = train(
        trainable(config.seed, &config.lora),
        &examples,
        Some(&validation),
        &config,
        Some(&checkpointing),
        |_| ControlFlow::Continue(()),
    )
    .expect("resumes");
    assert!(again.stopped_early);
    assert_eq!(again.state.step, 12);
    assert_eq!(
        logits(&again.best_model.expect("restored"), &examples),
        logits(&from_disk, &examples)
    );
}

#[test]
fn a_diverging_run_stops_with_the_step_and_keeps_the_last_checkpoint() {
    let _turn = common::seeded();
    let tokenizer = T5Tokenizer::from_file(&fixtures().join("tokenizer.json")).expect("tokenizer");
    // An absurd learning rate, no clipping: the first update blows the adapters up.
    let config = TrainConfig {
        batch_size: 4,
        epochs: 3,
        learning_rate: 1e30,
        warmup_ratio: 0.0,
        max_grad_norm: 0.0,
        device: common::test_backend(),
        ..TrainConfig::default()
    };
    let (examples, _) =
        encode_examples(&tokenizer, &records(), &config.encoding()).expect("encodes");
    let model = trainable(config.seed, &config.lora);
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpointing = Checkpointing {
        dir: dir.path().join("checkpoint"),
        every: 1,
        best_dir: dir.path().join("best"),
    };
    let error = train(
        model,
        &examples,
        None,
        &config,
        Some(&checkpointing),
        |_| ControlFlow::Continue(()),
    )
    .err()
    .expect("the run diverges")
    .to_string();
    assert!(
        error.contains("the loss became") && error.contains("at step"),
        "{error}"
    );
    let state = t5_lora::checkpoint_state(&checkpointing.dir)
        .expect("readable")
        .expect("a checkpoint of the last good step");
    assert!(
        state.step >= 1 && error.contains(&format!("at step {}", state.step + 1)),
        "{error}"
    );
}
