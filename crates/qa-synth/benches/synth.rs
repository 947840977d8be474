//! The synthesis stage end to end on FLAN-T5-base-shaped random weights (burn-flex on the CPU
//! unless `BENCH_DEVICE` says otherwise): prompt rendering, tokenization, sampling, the filters
//! and the ledger write of [`qa_synth::synthesize`], over 64 real SQuAD seeds (one question of
//! each of the first 64 passages of `../shared/data/squad/`), 4 candidates each, top-p 0.95,
//! temperature 0.8, 32 new tokens (`</s>` is outside the vocabulary, so every row runs the same
//! length).
//!
//! Variants, timed in one process:
//! - `encode-per-candidate`: the stage as it was before the shared encoder pass, every
//!   candidate's prompt encoded again (a generator written here over
//!   [`t5_lora::generate_with_streams`]);
//! - `encode-once`: today's [`T5Generator`], 8 seeds per call (one model batch of 8 prompts, 32
//!   rows);
//! - `encode-once-grouped`: the same with 64 seeds per call, so that the generator groups
//!   prompts of similar length into its batches of 8.
//!
//! Prints one JSON line per variant (seconds, candidates, the prompts' token counts, from which
//! `cargo xtask bench synth` computes FLOP utilisation, and the file of the PyTorch peer's
//! inputs: the prompts' token ids, the tokenizer and the sampling settings, written to
//! `SYNTH_BENCH_DIR`), and one for the backend's 2048² matmul.
//!
//! The tokenizer has FLAN-T5's 32,100 pieces: the fixture's characters and subwords, then
//! `▁word` pieces for the most frequent words of the SQuAD file, so prompts have about the token
//! counts FLAN-T5's own tokenizer gives them.
//!
//! Run with `cargo xtask bench synth`; figures go to docs/performance.md.

#[path = "../../t5-lora/benches/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use common::{bench_device, flan_t5};
use qa_data::QaRecord;
use qa_data::template::PromptTemplate;
use qa_filters::FilterConfig;
use qa_squad::squad::read_squad;
use qa_stage::shard::Shard;
use qa_synth::run::RunFiles;
use qa_synth::synthesize::{SynthConfig, synthesize};
use qa_synth::{Completion, Generator, GeneratorConfig, Request, T5Generator, T5GeneratorConfig};
use t5_lora::pad_batch;
use t5_lora::{GenerationConfig, T5ForConditionalGeneration, T5Tokenizer, generate_with_streams};

const SEEDS: usize = 64;
const CANDIDATES: usize = 4;
const BATCH: usize = 8;
const NEW_TOKENS: usize = 32;
const VOCAB_PIECES: usize = 32_100;

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One question of each of the first [`SEEDS`] passages of the SQuAD train file.
fn seeds() -> Vec<QaRecord> {
    let path = project_root().join("../shared/data/squad/train-v1.1-first44.json");
    let squad = read_squad(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut contexts = HashSet::new();
    squad
        .articles
        .into_iter()
        .flat_map(|article| article.records)
        .filter(|record| contexts.insert(record.context.clone()))
        .take(SEEDS)
        .collect()
}

/// A Unigram tokenizer with T5's layout and FLAN-T5's number of pieces, from the fixture's
/// tokenizer and the word counts of `texts`.
fn tokenizer_json(texts: &[&str]) -> serde_json::Value {
    let fixture = project_root().join("fixtures/t5/tokenizer.json");
    let text = std::fs::read_to_string(&fixture).expect("the fixture tokenizer");
    let mut tokenizer: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let vocab = tokenizer["model"]["vocab"]
        .as_array_mut()
        .expect("a Unigram vocabulary");
    let known: HashSet<String> = vocab
        .iter()
        .filter_map(|piece| piece[0].as_str().map(str::to_string))
        .collect();
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for text in texts {
        for word in text.split_whitespace() {
            let word = word.trim_matches(|c: char| c.is_ascii_punctuation());
            if !word.is_empty() {
                *counts.entry(word).or_default() += 1;
            }
        }
    }
    let total: u64 = counts.values().sum();
    let mut words: Vec<(&str, u64)> = counts.into_iter().collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (word, count) in words {
        if vocab.len() == VOCAB_PIECES {
            break;
        }
        let piece = format!("▁{word}");
        if !known.contains(&piece) {
            let score = (count as f64 / total as f64).ln();
            vocab.push(serde_json::json!([piece, score]));
        }
    }
    // Too few distinct words: the rest are pieces no text contains.
    while vocab.len() < VOCAB_PIECES {
        let filler = format!("<unused_{}>", vocab.len());
        vocab.push(serde_json::json!([filler, -30.0]));
    }
    tokenizer
}

/// The generator as it was before the shared encoder pass: every candidate is a row of its
/// own, encoded again.
struct EncodePerCandidate {
    config: T5GeneratorConfig,
    model: T5ForConditionalGeneration,
    tokenizer: T5Tokenizer,
}

impl Generator for EncodePerCandidate {
    fn name(&self) -> String {
        self.config.model.clone()
    }

    fn sampling(&self) -> BTreeMap<String, serde_json::Value> {
        BTreeMap::new()
    }

    fn generate(&self, requests: &[Request]) -> qa_synth::Result<Vec<Vec<Completion>>> {
        let mut out = Vec::new();
        for batch in requests.chunks(self.config.batch_size) {
            let mut prompts = Vec::new();
            let mut streams = Vec::new();
            for request in batch {
                for j in 0..request.n {
                    prompts.push(request.prompt.as_str());
                    streams.push(request.stream * request.n as u64 + j as u64);
                }
            }
            let encoded = self
                .tokenizer
                .encode(&prompts, self.config.max_source_len)?;
            let device = self.model.device();
            let (ids, mask) = pad_batch(&encoded.ids, self.tokenizer.pad_id(), &device);
            let tokens =
                generate_with_streams(&self.model, ids, mask, &self.config.generation, &streams)?;
            let mut texts = tokens
                .iter()
                .map(|t| self.tokenizer.decode(t).map(Completion::unbilled));
            for request in batch {
                out.push(texts.by_ref().take(request.n).collect::<Result<_, _>>()?);
            }
        }
        Ok(out)
    }
}

/// Runs the stage over `seeds_file` (holding `seeds` records) into a fresh `out_dir`; returns
/// its wall time in seconds.
fn run_stage(
    generator: &dyn Generator,
    synth: &SynthConfig,
    seeds_file: &Path,
    seeds: usize,
    out_dir: &Path,
) -> f64 {
    let _ = std::fs::remove_dir_all(out_dir);
    let files = RunFiles {
        input: seeds_file.to_path_buf(),
        shard: Shard::WHOLE,
        out_dir: out_dir.to_path_buf(),
        resume: false,
    };
    let start = Instant::now();
    let summary = synthesize(synth, &FilterConfig::default(), &files, generator, |_| {})
        .expect("the synthesis stage runs");
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(summary.seeds, seeds);
    assert_eq!(summary.funnel.input, seeds * CANDIDATES);
    seconds
}

fn matmul_gflops(device: &Device) -> f64 {
    let n = 2048;
    let a = Tensor::<2>::random([n, n], Distribution::Default, device);
    let b = Tensor::<2>::random([n, n], Distribution::Default, device);
    let mut times: Vec<f64> = (0..6)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(a.clone().matmul(b.clone()).into_data());
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * (n as f64).powi(3) / times[times.len() / 2] / 1e9
}

fn main() {
    let device = bench_device();
    let out = std::env::var_os("SYNTH_BENCH_DIR")
        .map_or_else(|| std::env::temp_dir().join("synth-bench"), PathBuf::from);
    std::fs::create_dir_all(&out).expect("the bench directory");

    let seeds = seeds();
    let seeds_file = out.join("seeds.jsonl");
    qa_data::files::write_jsonl_atomic(&seeds_file, &seeds).expect("seeds written");
    let texts: Vec<&str> = seeds.iter().map(|s| s.context.as_str()).collect();
    let tokenizer_file = out.join("tokenizer.json");
    let tokenizer = tokenizer_json(&texts);
    std::fs::write(&tokenizer_file, tokenizer.to_string()).expect("tokenizer written");
    let tokenizer = T5Tokenizer::from_file(&tokenizer_file).expect("the tokenizer loads");

    let mut synth = SynthConfig::default();
    let template = PromptTemplate::parse(&synth.prompt_template).expect("the default prompt");
    let prompts: Vec<String> = seeds.iter().map(|s| template.render(s)).collect();
    let max_source_len = GeneratorConfig::default().t5.max_source_len;
    let ids = tokenizer
        .encode(&prompts, max_source_len)
        .expect("prompts encode")
        .ids;
    let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
    eprintln!(
        "{SEEDS} seeds, prompts of {}–{} tokens (mean {:.0})",
        lengths.iter().min().expect("seeds"),
        lengths.iter().max().expect("seeds"),
        lengths.iter().sum::<usize>() as f64 / lengths.len() as f64
    );

    let gflops = matmul_gflops(&device);
    println!(
        "{}",
        serde_json::json!({"bench": "matmul", "gflops": gflops})
    );

    let config = T5GeneratorConfig {
        model: "random FLAN-T5-base shapes".to_string(),
        batch_size: BATCH,
        max_source_len,
        generation: GenerationConfig {
            do_sample: true,
            temperature: 0.8,
            top_p: 0.95,
            max_new_tokens: NEW_TOKENS,
            ..GenerationConfig::default()
        },
        ..T5GeneratorConfig::default()
    };
    // What the PyTorch peer needs to generate as this stage does.
    let peer_inputs = out.join("prompts.json");
    let inputs = serde_json::json!({
        "prompts": ids,
        "tokenizer": tokenizer_file,
        "seeds_per_batch": config.batch_size,
        "candidates": CANDIDATES,
        "max_new_tokens": config.generation.max_new_tokens,
        "temperature": config.generation.temperature,
        "top_p": config.generation.top_p,
    });
    std::fs::write(&peer_inputs, inputs.to_string()).expect("peer inputs written");
    let model = flan_t5("base").init(&device);
    synth.generator.t5 = config.clone();
    synth.candidates = CANDIDATES;
    synth.target = SEEDS;
    synth.min_acceptance = 0.0;

    let per_candidate = EncodePerCandidate {
        config: config.clone(),
        model: model.clone(),
        tokenizer: tokenizer.clone(),
    };
    let once = T5Generator::new(&config, model, tokenizer).expect("the generator");

    // A warm-up run over the first batch of seeds.
    let warm_up = out.join("warm-up.jsonl");
    let first: Vec<&QaRecord> = seeds.iter().take(BATCH).collect();
    qa_data::files::write_jsonl_atomic(&warm_up, first).expect("warm-up seeds written");
    synth.seeds_per_batch = BATCH;
    run_stage(&once, &synth, &warm_up, BATCH, &out.join("run"));

    let variants: [(&str, &dyn Generator, usize); 3] = [
        ("encode-per-candidate", &per_candidate, BATCH),
        ("encode-once", &once, BATCH),
        ("encode-once-grouped", &once, SEEDS),
    ];
    let mut ledgers = Vec::new();
    for (name, generator, seeds_per_batch) in variants {
        synth.seeds_per_batch = seeds_per_batch;
        let run_dir = out.join("run");
        let seconds = run_stage(generator, &synth, &seeds_file, SEEDS, &run_dir);
        ledgers.push(std::fs::read_to_string(run_dir.join("ledger.jsonl")).expect("ledger"));
        let candidates = SEEDS * CANDIDATES;
        eprintln!(
            "{name}: {seconds:.1} s, {:.2} candidates/s",
            candidates as f64 / seconds
        );
        println!(
            "{}",
            serde_json::json!({
                "bench": "synth",
                "variant": name,
                "seconds": seconds,
                "candidates": candidates,
                "candidates_per_second": candidates as f64 / seconds,
                "source_lengths": lengths,
                "new_tokens": NEW_TOKENS,
                "peer_inputs": peer_inputs,
            })
        );
    }
    // The variants differ in speed only.
    assert!(
        ledgers.windows(2).all(|pair| pair[0] == pair[1]),
        "the variants' ledgers differ"
    );
}
