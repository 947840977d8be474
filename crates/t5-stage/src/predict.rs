//! Answering a file of questions with a model: prompts from a template, batched generation,
//! and a predictions file (`{"id", "prediction"}` per line) that `qa-eval score` reads.
//!
//! Long runs survive a kill: answers are appended to `<out>.partial` as batches finish, and a
//! rerun with the same settings skips the questions already answered there
//! ([`prediction_work`], the stages' one resume protocol). The final file is written
//! atomically, in input order, and the partial file removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qa_data::QaRecord;
use qa_data::files::write_jsonl_atomic;
use qa_data::predictions::Prediction;
use qa_data::settings::{Invalid, Placed, Section, check};
use qa_data::template::PromptTemplate;
use qa_stage::plan::{PlannedInput, Planning, StagePlan, format_count};
use qa_stage::resume::{Resume, WorkFiles};
use qa_stage::shard::Shard;
use serde::{Deserialize, Serialize};

use t5_lora::{
    DEFAULT_TEMPLATE, DeviceChoice, GenerationConfig, ModelDtype, T5ForConditionalGeneration,
    T5Tokenizer, generate_from_ids,
};

use crate::error::{Error, Result};
use crate::planning::{GenerationWork, estimate_generation, model_shape, resolve_device};

/// Settings of a prediction run (the `predict:` section of a config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictConfig {
    /// A Hugging Face model id (`org/name`, optionally `@revision`) or a checkpoint directory.
    pub model: String,
    /// A PEFT LoRA adapter directory to apply to the model (merged into its weights on load).
    pub adapter: Option<PathBuf>,
    /// Where to run.
    pub device: DeviceChoice,
    /// The float type of the model's matrices (`f16` or `bf16` halve a GPU's memory; see
    /// [`ModelDtype`]).
    pub dtype: ModelDtype,
    /// Questions generated together.
    pub batch_size: usize,
    /// Prompt tokens kept (longer prompts lose their tail, `</s>` kept).
    pub max_source_len: usize,
    /// The prompt, with `{question}` and `{context}` placeholders.
    pub prompt_template: String,
    /// Decoding settings.
    pub generation: GenerationConfig,
}

impl Placed for PredictConfig {
    const RUN_PLACE: &'static [&'static str] = &["device", "batch_size"];
    const DECIDING: &'static [&'static str] = &[
        "model",
        "adapter",
        "dtype",
        "max_source_len",
        "prompt_template",
        "generation",
    ];
}

impl Section for PredictConfig {
    const NAME: &'static str = qa_data::settings::section_names::PREDICT;

    fn validate(&self) -> std::result::Result<(), Invalid> {
        check::at_least_one("batch_size", self.batch_size)?;
        check::at_least_one("max_source_len", self.max_source_len)?;
        self.generation
            .validate()
            .map_err(|e| e.within("generation"))
    }
}

impl Default for PredictConfig {
    fn default() -> Self {
        PredictConfig {
            model: "google/flan-t5-base".to_string(),
            adapter: None,
            device: DeviceChoice::Auto,
            dtype: ModelDtype::F32,
            batch_size: 16,
            max_source_len: 512,
            prompt_template: DEFAULT_TEMPLATE.to_string(),
            generation: GenerationConfig {
                max_new_tokens: 32,
                ..GenerationConfig::default()
            },
        }
    }
}

/// What a prediction run over `input` would do (see [`qa_stage::plan`]): its questions, and the
/// time to answer them with `config`'s model on the device it chooses, from a calibration
/// cached in the plan directory. The answers are as long as the sample's first gold answers.
pub fn plan_prediction(
    config: &PredictConfig,
    input: &PlannedInput,
    planning: &Planning,
) -> Result<StagePlan> {
    let shape = model_shape(&config.model)?;
    let (device, finding) = resolve_device(config.device)?;
    let template = PromptTemplate::parse_question_prompt(&config.prompt_template)?;
    let prompts: Vec<String> = input.sample.iter().map(|r| template.render(r)).collect();
    let answers: Vec<String> = input
        .sample
        .iter()
        .filter_map(|r| r.answers.first().cloned())
        .collect();
    let work = GenerationWork {
        requests: input.records,
        rows_per_prompt: 1,
        prompts: &prompts,
        outputs: &answers,
        batch_size: config.batch_size,
        max_source_len: config.max_source_len,
        generation: &config.generation,
        dtype: config.dtype,
    };
    let estimate = estimate_generation(&shape, &device, &work, &planning.calibration_dir())?;
    Ok(StagePlan {
        work: format!("{} questions", format_count(input.records)),
        seconds: Some(finding + estimate.seconds),
        device: Some(device.name.clone()),
        on_cpu: device.is_cpu(),
        notes: estimate.notes,
        ..StagePlan::default()
    })
}

/// What a prediction run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictSummary {
    /// Questions answered by this run.
    pub generated: usize,
    /// Questions whose answers an interrupted earlier run had already written.
    pub resumed: usize,
    /// Prompts cut to `max_source_len` tokens.
    pub truncated: usize,
}

/// What a partial file records of the settings: all but where and how fast they run
/// ([`PredictConfig`]'s run-place fields: batch size and device), which do not change what is
/// generated.
pub fn resume_settings(config: &PredictConfig) -> PredictConfig {
    config.deciding()
}

/// The work files ([`qa_stage::resume`]) of a run that writes `out`: its answers so far in
/// `<out>.partial`, the settings it was started with in `<out>.partial.settings.json`. Both go
/// once `out` is written.
pub fn prediction_work(out: &Path) -> WorkFiles {
    let beside = |suffix: &str| {
        let mut name = out.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    WorkFiles {
        settings: beside(".partial.settings.json"),
        ledger: beside(".partial"),
    }
}

/// Answers the records that `shard` owns (all of them for [`Shard::WHOLE`]) and writes their
/// predictions to `out` in input order; `on_batch(done, total)` reports progress.
///
/// Record `i` samples from stream `i` of the generation seed, so a resumed, differently
/// batched or sharded run draws the same tokens for it.
pub fn predict_records(
    model: &T5ForConditionalGeneration,
    tokenizer: &T5Tokenizer,
    records: &[QaRecord],
    shard: Shard,
    config: &PredictConfig,
    out: &Path,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<PredictSummary> {
    config.validate()?;
    let template = PromptTemplate::parse_question_prompt(&config.prompt_template)?;
    let mut seen = HashMap::new();
    for (index, record) in records.iter().enumerate() {
        if let Some(first) = seen.insert(record.id.as_str(), index) {
            return Err(Error::Prediction(format!(
                "question id {:?} appears twice in the input (records {} and {})",
                record.id,
                first + 1,
                index + 1
            )));
        }
    }

    // Resuming must not mix answers of different models or settings: a partial file is used
    // only with the settings it was started with (batch size and device aside).
    let work = prediction_work(out);
    let started = work.open::<_, Prediction>(&resume_settings(config), Resume::IfAny)?;
    let mut appender = started.ledger;
    let mut answers: HashMap<String, String> = started
        .done
        .into_iter()
        .map(|p| (p.id, p.prediction))
        .collect();
    let resumed = answers.len();

    // The indices of this part's records, in input order.
    let owned: Vec<usize> = (0..records.len())
        .filter(|&index| shard.owns(&records[index].id))
        .collect();
    let pending: Vec<usize> = owned
        .iter()
        .copied()
        .filter(|&index| !answers.contains_key(&records[index].id))
        .collect();
    let prompts: Vec<String> = pending
        .iter()
        .map(|&index| template.render(&records[index]))
        .collect();
    let encoded = tokenizer.encode(&prompts, config.max_source_len)?;
    // Prompts of similar length go together, so that batches carry little padding.
    let mut todo: Vec<(usize, Vec<u32>)> = pending.into_iter().zip(encoded.ids).collect();
    todo.sort_by_key(|(index, ids)| (ids.len(), *index));

    let total = owned.len();
    let mut done = resumed;
    on_batch(done, total);
    for batch in todo.chunks(config.batch_size) {
        let ids: Vec<Vec<u32>> = batch.iter().map(|(_, ids)| ids.clone()).collect();
        let streams: Vec<u64> = batch.iter().map(|&(index, _)| index as u64).collect();
        let texts = generate_from_ids(model, tokenizer, &ids, &config.generation, &streams)?;
        for (&(index, _), text) in batch.iter().zip(texts) {
            let prediction = Prediction {
                id: records[index].id.clone(),
                prediction: text,
            };
            appender.append(&prediction)?;
            answers.insert(prediction.id, prediction.prediction);
        }
        done += batch.len();
        on_batch(done, total);
    }
    appender.sync()?;
    drop(appender);

    let in_order = owned.iter().map(|&index| Prediction {
        id: records[index].id.clone(),
        prediction: answers.remove(&records[index].id).unwrap_or_default(),
    });
    write_jsonl_atomic(out, in_order)?;
    work.remove()?;
    Ok(PredictSummary {
        generated: todo.len(),
        resumed,
        truncated: encoded.truncated,
    })
}

#[cfg(test)]
mod tests {
    use qa_data::settings::undeclared_fields;
    use qa_stage::config::probe_numeric_settings;

    use super::PredictConfig;

    #[test]
    fn every_setting_is_declared_run_place_or_deciding() {
        assert_eq!(undeclared_fields::<PredictConfig>(), Vec::<String>::new());
    }

    /// Which of 0, -1 and 1.5 each numeric setting refuses at load, naming the key and the
    /// file (`probe_numeric_settings`): counts take neither 0 nor fractions, shares lie within
    /// their bounds, and the rest (the seed, `length_penalty`) take what their type does.
    #[test]
    fn every_numeric_prediction_setting_refuses_what_it_cannot_run_with() {
        assert_eq!(
            probe_numeric_settings::<PredictConfig>().expect("probes"),
            "\
batch_size: 0 -1 1.5
generation.length_penalty: none
generation.max_new_tokens: 0 -1 1.5
generation.num_beams: 0 -1 1.5
generation.seed: -1 1.5
generation.temperature: 0 -1
generation.top_k: -1 1.5
generation.top_p: 0 -1 1.5
max_source_len: 0 -1 1.5
"
        );
    }
}
