//! `qa-eval predict`.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use qa_data::QaRecord;
use qa_stage::cli::{ShardArgs, StageArgs};
use qa_stage::commands::PredictCommand;
use qa_stage::parts::write_part_info;
use serde::Serialize;
use t5_lora::load_model;
use t5_lora::{DeviceChoice, ModelDtype};
use t5_stage::{PredictConfig, plan_prediction, predict_records, resume_settings};

#[derive(clap::Args)]
pub struct PredictArgs {
    #[command(flatten)]
    command: PredictCommand,
    #[command(flatten)]
    shard: ShardArgs,
    #[command(flatten)]
    stage: StageArgs<PredictOverrides>,
}

/// Flags that override single `predict:` keys; an absent flag overrides nothing.
#[derive(clap::Args, Serialize)]
struct PredictOverrides {
    /// Hugging Face model id (org/name[@revision]) or checkpoint directory
    /// [predict.model, default google/flan-t5-base].
    #[arg(long, value_name = "ID|DIR")]
    model: Option<String>,
    /// auto (default), cpu, cuda, wgpu, ndarray or tch [predict.device].
    #[arg(long, value_name = "DEVICE")]
    device: Option<DeviceChoice>,
    /// f32 (default), bf16 or f16: the float type of the model's matrices [predict.dtype].
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<ModelDtype>,
    /// Questions per batch [predict.batch_size, default 16].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Prompt tokens kept [predict.max_source_len, default 512].
    #[arg(long, value_name = "N")]
    max_source_len: Option<usize>,
    /// Prompt with {question} and {context} [predict.prompt_template].
    #[arg(long, value_name = "TEXT")]
    prompt_template: Option<String>,
    #[command(flatten)]
    generation: GenerationOverrides,
}

/// Flags for `predict.generation` keys (Hugging Face's names and meanings).
#[derive(clap::Args, Serialize)]
struct GenerationOverrides {
    /// Most new tokens per answer [default 32].
    #[arg(long, value_name = "N")]
    max_new_tokens: Option<usize>,
    /// Beams of beam search; 1 is greedy or sampling [default 1].
    #[arg(long, value_name = "N")]
    num_beams: Option<usize>,
    /// Length-normalisation exponent of beam search [default 1.0].
    #[arg(long, value_name = "X")]
    length_penalty: Option<f32>,
    /// Stop beam search once num_beams sequences are finished [default false].
    #[arg(long, value_name = "BOOL")]
    early_stopping: Option<bool>,
    /// Sample instead of taking the most likely token [default false].
    #[arg(long, value_name = "BOOL")]
    do_sample: Option<bool>,
    /// Sampling temperature [default 1.0].
    #[arg(long, value_name = "X")]
    temperature: Option<f32>,
    /// Sample among the K most likely tokens; 0 turns it off [default 50].
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Nucleus sampling mass [default 1.0].
    #[arg(long, value_name = "P")]
    top_p: Option<f32>,
    /// Sampling seed [default 0].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Keep decoder keys and values between steps [default true].
    #[arg(long, value_name = "BOOL")]
    use_cache: Option<bool>,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let config: PredictConfig = args.stage.load_with(&args.command)?;
    let PredictCommand { input, out, .. } = args.command;
    if let Some(planning) = args.stage.planning()? {
        let input = planning.input(&input)?;
        return Ok(plan_prediction(&config, &input, &planning)?.print()?);
    }
    let records: Vec<QaRecord> = qa_data::files::read_keyed_jsonl(&input)?;
    let shard = args.shard.resolve().map_err(anyhow::Error::msg)?;
    let (model, tokenizer) = load_model(
        &config.model,
        config.adapter.as_deref(),
        &config.device,
        config.dtype,
    )
    .with_context(|| format!("loading {}", config.model))?;

    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} questions, {per_sec}, ETA {eta}",
        )
        .context("progress bar template")?,
    );
    let summary = predict_records(
        &model,
        &tokenizer,
        &records,
        shard,
        &config,
        &out,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )
    .with_context(|| format!("predicting {}", input.display()))?;
    bar.finish_and_clear();
    if args.shard.shard.is_some() {
        write_part_info(&out, shard, &input, &resume_settings(&config))?;
    }
    if summary.truncated > 0 {
        tracing::warn!(
            "{} prompt(s) longer than {} tokens were cut",
            summary.truncated,
            config.max_source_len
        );
    }
    println!(
        "wrote {} predictions to {} ({} generated now, {} from an interrupted run)",
        summary.generated + summary.resumed,
        out.display(),
        summary.generated,
        summary.resumed
    );
    Ok(())
}
