//! The optional round-trip consistency filter (Alberti et al., 2019): a QA model answers each
//! generated question from its context, and the candidate is kept only if that answer agrees
//! with the answer the candidate carries.
//!
//! It runs a model, batched over many candidates, so it is not one of `qa-filters`' per-record
//! filters; the synthesis stage applies it to the candidates that passed those, and counts its
//! refusals in the same funnel under [`RoundTrip::NAME`].

use qa_data::QaRecord;
use qa_data::settings::{Invalid, Placed, PlacedTable, Section};
use qa_data::template::PromptTemplate;
use qa_filters::Rejected;
use serde::{Deserialize, Serialize};
use t5_lora::load_model;
use t5_lora::{T5ForConditionalGeneration, T5Tokenizer, generate_text};
use t5_stage::PredictConfig;

use crate::error::Result;

/// Settings of the round-trip filter (`synth.round_trip`; absent or null turns it off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoundTripConfig {
    /// The QA model that answers (a model id or directory, an optional adapter, prompt and
    /// decoding settings, as for `qa-eval predict`).
    pub qa_model: PredictConfig,
    /// Smallest SQuAD F1 (in [0, 1]) of the model's answer against the candidate's answers;
    /// 1.0 asks for the same words after SQuAD normalisation.
    pub min_f1: f64,
}

impl RoundTripConfig {
    /// Checks the agreement threshold and the QA model's settings, naming the first that is
    /// wrong.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if !(0.0..=1.0).contains(&self.min_f1) {
            return Err(Invalid::new(
                "min_f1",
                format!("must be in [0, 1], not {}", self.min_f1),
            ));
        }
        self.qa_model.validate().map_err(|e| e.within("qa_model"))
    }
}

impl Placed for RoundTripConfig {
    const RUN_PLACE: &'static [&'static str] = &[];
    const DECIDING: &'static [&'static str] = &["qa_model", "min_f1"];
    const WITHIN: &'static [PlacedTable] = &[("qa_model", PredictConfig::strip_run_place)];
}

impl Default for RoundTripConfig {
    fn default() -> Self {
        RoundTripConfig {
            qa_model: PredictConfig::default(),
            min_f1: 1.0,
        }
    }
}

/// A loaded QA model checking candidates.
pub struct RoundTrip {
    config: RoundTripConfig,
    template: PromptTemplate,
    model: T5ForConditionalGeneration,
    tokenizer: T5Tokenizer,
}

impl RoundTrip {
    /// The filter's name in funnels and rejections.
    pub const NAME: &str = "round_trip";

    /// Loads the QA model `config` names.
    pub fn load(config: &RoundTripConfig) -> Result<Self> {
        config.validate()?;
        let qa = &config.qa_model;
        let template = PromptTemplate::parse_question_prompt(&qa.prompt_template)?;
        let (model, tokenizer) =
            load_model(&qa.model, qa.adapter.as_deref(), &qa.device, qa.dtype)?;
        Ok(RoundTrip {
            config: config.clone(),
            template,
            model,
            tokenizer,
        })
    }

    /// The verdict on each candidate: `None` when the model's answer agrees; `streams` are
    /// the candidates' random streams (used only if the QA model samples).
    pub fn check(&self, candidates: &[QaRecord], streams: &[u64]) -> Result<Vec<Option<Rejected>>> {
        let qa = &self.config.qa_model;
        let mut verdicts = Vec::with_capacity(candidates.len());
        for (batch, batch_streams) in candidates
            .chunks(qa.batch_size)
            .zip(streams.chunks(qa.batch_size))
        {
            let prompts: Vec<String> = batch.iter().map(|c| self.template.render(c)).collect();
            let answers = generate_text(
                &self.model,
                &self.tokenizer,
                &prompts,
                qa.max_source_len,
                &qa.generation,
                batch_streams,
            )?;
            for (candidate, answer) in batch.iter().zip(answers) {
                verdicts.push(self.verdict(candidate, &answer));
            }
        }
        Ok(verdicts)
    }

    fn verdict(&self, candidate: &QaRecord, answer: &str) -> Option<Rejected> {
        let f1 = qa_metrics::squad::score_question(answer, &candidate.answers).f1;
        (f1 < self.config.min_f1).then(|| Rejected {
            filter: Self::NAME.to_string(),
            field: "question".to_string(),
            reason: format!(
                "the QA model answered {answer:?} (F1 {f1:.2} against the kept answer, needs \
                 {:.2})",
                self.config.min_f1
            ),
        })
    }
}
