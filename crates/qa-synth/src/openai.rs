//! A [`Generator`] on any OpenAI-compatible chat-completions endpoint: OpenAI itself (GPT-3.5
//! in the original study), or a local vLLM or llama.cpp server.
//!
//! Each completion is its own request with `n = 1` and a `seed` derived from its random
//! stream: llama.cpp refuses `n > 1`, and a per-completion seed keeps the text independent of
//! batching, sharding and resuming, as with the local model.
//!
//! The client is a good citizen of a rate-limited API: at most `concurrency` requests in
//! flight; 408, 409, 429 and 5xx answers and dropped or timed-out connections are retried
//! after an exponential backoff with jitter, and never before the server's `Retry-After` or
//! `retry-after-ms` says; retries are capped per request and per run. The API key is read from
//! the environment and appears in no log, error, manifest or `Debug` output.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use qa_data::settings::{Invalid, Placed, check};
use qa_data::usage::{CompletionUsage, Price};

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::generator::{Completion, Generator, Request};

/// Settings of the chat-completions backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API's base URL, up to the version: `https://api.openai.com/v1`, or e.g.
    /// `http://localhost:8000/v1` for vLLM; `/chat/completions` is appended.
    pub base_url: String,
    /// The model the endpoint serves.
    pub model: String,
    /// The environment variable holding the API key (sent as a bearer token); when it is unset
    /// or empty no key is sent, as local servers expect.
    pub api_key_env: String,
    /// An optional system message sent before each prompt.
    pub system_prompt: Option<String>,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus sampling threshold.
    pub top_p: f32,
    /// Most tokens per completion.
    pub max_tokens: usize,
    /// Base of the per-completion `seed` sent to the endpoint.
    pub seed: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Seconds to wait for a connection.
    pub connect_timeout_s: f64,
    /// Seconds a whole request (connection, upload, answer) may take.
    pub request_timeout_s: f64,
    /// Retries of one completion before the run fails.
    pub max_retries: u32,
    /// Retries over the whole run before it fails: a failing endpoint is not hammered forever.
    pub max_total_retries: usize,
    /// First backoff, in seconds; it doubles with each retry of a completion.
    pub initial_backoff_s: f64,
    /// Longest backoff of our own, in seconds (a server's `Retry-After` may ask for more).
    pub max_backoff_s: f64,
    /// Longest wait a server's `Retry-After` may ask for, in seconds; a longer one fails the
    /// run rather than stalling it.
    pub max_retry_after_s: f64,
    /// Dollars per million tokens, to state what a run costs (none: tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    /// The most a stage may spend, `{tokens: N}` or `{usd: X}` (the latter needs `price`): the
    /// stage stops before a batch could take it past this, and resumes when it is raised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_budget: Option<Budget>,
}

impl Placed for OpenAiConfig {
    // Which variable holds the key, how hard and how fast it asks, and what it may spend: a
    // raised budget or a new price resumes the same run.
    const RUN_PLACE: &'static [&'static str] = &[
        "api_key_env",
        "concurrency",
        "connect_timeout_s",
        "request_timeout_s",
        "max_retries",
        "max_total_retries",
        "initial_backoff_s",
        "max_backoff_s",
        "max_retry_after_s",
        "price",
        "max_budget",
    ];
    const DECIDING: &'static [&'static str] = &[
        "base_url",
        "model",
        "system_prompt",
        "temperature",
        "top_p",
        "max_tokens",
        "seed",
    ];
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "https://api.openai.com/v1".to_string(),
            model: "gpt-3.5-turbo".to_string(),
            api_key_env: "OPENAI_API_KEY".to_string(),
            system_prompt: None,
            // The API's own defaults; each stage's defaults set its own sampling.
            temperature: 1.0,
            top_p: 1.0,
            max_tokens: 256,
            seed: 0,
            concurrency: 4,
            connect_timeout_s: 10.0,
            request_timeout_s: 120.0,
            max_retries: 6,
            max_total_retries: 200,
            initial_backoff_s: 1.0,
            max_backoff_s: 60.0,
            max_retry_after_s: 600.0,
            price: None,
            max_budget: None,
        }
    }
}

impl OpenAiConfig {
    /// Checks every setting, naming the first the endpoint could not be asked with.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        for (name, seconds) in [
            ("connect_timeout_s", self.connect_timeout_s),
            ("request_timeout_s", self.request_timeout_s),
            ("initial_backoff_s", self.initial_backoff_s),
            ("max_backoff_s", self.max_backoff_s),
            ("max_retry_after_s", self.max_retry_after_s),
        ] {
            check::positive(name, seconds)?;
        }
        check::at_least_one("concurrency", self.concurrency)?;
        check::at_least_one("max_tokens", self.max_tokens)?;
        check::non_negative("temperature", self.temperature.into())?;
        check::share("top_p", self.top_p.into())?;
        if let Some(price) = &self.price
            && ![price.prompt_per_million, price.completion_per_million]
                .iter()
                .all(|p| p.is_finite() && *p >= 0.0)
        {
            return Err(Invalid::new(
                "price",
                format!(
                    "must be two non-negative numbers of dollars per million tokens, not \
                     {price:?}"
                ),
            ));
        }
        if let Some(budget) = &self.max_budget {
            budget
                .validate(self.price.as_ref())
                .map_err(|e| e.within("max_budget"))?;
        }
        if !self.base_url.starts_with("http://") && !self.base_url.starts_with("https://") {
            return Err(Invalid::new(
                "base_url",
                format!("must be an http(s) URL, not {:?}", self.base_url),
            ));
        }
        Ok(())
    }
}

/// A secret that never prints.
#[derive(Clone)]
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A chat-completions endpoint as a [`Generator`].
#[derive(Debug)]
pub struct OpenAiGenerator {
    config: OpenAiConfig,
    url: String,
    api_key: Option<ApiKey>,
    agent: ureq::Agent,
    retries: AtomicUsize,
}

/// How one attempt ended.
enum Attempt {
    Done(String, Option<Usage>),
    /// Worth retrying, after at least `not_before` if the server said so.
    Retry {
        reason: String,
        not_before: Option<Duration>,
    },
}

impl OpenAiGenerator {
    /// A client for `config`, with the API key from the variable `config.api_key_env` names.
    pub fn from_env(config: &OpenAiConfig) -> Result<Self> {
        let key = std::env::var(&config.api_key_env)
            .ok()
            .filter(|key| !key.is_empty());
        Self::new(config, key)
    }

    /// A client for `config` with the given API key (`None`: send none).
    pub fn new(config: &OpenAiConfig, api_key: Option<String>) -> Result<Self> {
        config.validate()?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs_f64(config.connect_timeout_s))
            .timeout(Duration::from_secs_f64(config.request_timeout_s))
            .build();
        Ok(OpenAiGenerator {
            url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            config: config.clone(),
            api_key: api_key.map(ApiKey),
            agent,
            retries: AtomicUsize::new(0),
        })
    }

    /// Retries spent so far in this run.
    pub fn retries(&self) -> usize {
        self.retries.load(Ordering::Relaxed)
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::Endpoint {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    fn body(&self, prompt: &str, seed: u64) -> serde_json::Value {
        let mut messages = Vec::new();
        if let Some(system) = &self.config.system_prompt {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": prompt}));
        serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "top_p": self.config.top_p,
            "max_tokens": self.config.max_tokens,
            "n": 1,
            "seed": seed,
        })
    }

    /// One completion of `prompt` from random stream `stream`, retried as the module says.
    fn complete(&self, prompt: &str, stream: u64) -> Result<Completion> {
        // llama.cpp takes 32-bit seeds; the others take any.
        let seed = self.config.seed.wrapping_add(stream) & 0x7fff_ffff;
        let body = self.body(prompt, seed);
        let mut jitter = ChaCha8Rng::seed_from_u64(self.config.seed ^ stream.rotate_left(32));
        let mut attempt = 0u32;
        loop {
            let (reason, not_before) = match self.attempt(&body)? {
                Attempt::Done(text, usage) => {
                    return Ok(Completion {
                        text,
                        usage: usage.map(|usage| CompletionUsage {
                            prompt_tokens: usage.prompt_tokens,
                            completion_tokens: usage.completion_tokens,
                            retries: attempt,
                        }),
                    });
                }
                Attempt::Retry { reason, not_before } => (reason, not_before),
            };
            if attempt >= self.config.max_retries {
                return Err(self.fail(format!(
                    "{reason}; gave up after {attempt} retries (openai.max_retries)"
                )));
            }
            let spent = self.retries.fetch_add(1, Ordering::Relaxed) + 1;
            if spent > self.config.max_total_retries {
                return Err(self.fail(format!(
                    "{reason}; this run has used its {} retries (openai.max_total_retries)",
                    self.config.max_total_retries
                )));
            }
            if let Some(asked) = not_before
                && asked.as_secs_f64() > self.config.max_retry_after_s
            {
                return Err(self.fail(format!(
                    "{reason}; the server asks to wait {:.0} s, more than \
                     openai.max_retry_after_s = {} s",
                    asked.as_secs_f64(),
                    self.config.max_retry_after_s
                )));
            }
            let wait = retry_wait(&self.config, attempt, jitter.random::<f64>(), not_before);
            tracing::warn!(
                url = %self.url,
                attempt = attempt + 1,
                wait_s = wait.as_secs_f64(),
                "{reason}; retrying"
            );
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    fn attempt(&self, body: &serde_json::Value) -> Result<Attempt> {
        let mut request = self.agent.post(&self.url);
        if let Some(ApiKey(key)) = &self.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let response = match request.send_json(body) {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                return self.refused(status, response);
            }
            Err(ureq::Error::Transport(transport)) => {
                return match transport.kind() {
                    ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io => Ok(Attempt::Retry {
                        reason: format!("request failed: {transport}"),
                        not_before: None,
                    }),
                    _ => Err(self.fail(format!("request failed: {transport}"))),
                };
            }
        };
        let text = match response.into_string() {
            Ok(text) => text,
            Err(e) => {
                return Ok(Attempt::Retry {
                    reason: format!("reading the answer failed: {e}"),
                    not_before: None,
                });
            }
        };
        completion_text(&text)
            .map(|(text, usage)| Attempt::Done(text, usage))
            .map_err(|e| self.fail(e))
    }

    /// An error status: retry the transient ones, explain the others.
    fn refused(&self, status: u16, response: ureq::Response) -> Result<Attempt> {
        let not_before = server_wait(&response, SystemTime::now());
        let message = response
            .into_string()
            .map(|body| server_message(&body))
            .unwrap_or_default();
        let reason = format!("HTTP {status}{message}");
        match status {
            408 | 409 | 429 | 500..=599 => Ok(Attempt::Retry { reason, not_before }),
            401 | 403 => Err(self.fail(format!(
                "{reason}: the endpoint refused the API key; check the variable {} \
                 (openai.api_key_env)",
                self.config.api_key_env
            ))),
            404 => Err(self.fail(format!(
                "{reason}: check openai.base_url (it ends with the API version, e.g. /v1) and \
                 openai.model ({:?})",
                self.config.model
            ))),
            _ => Err(self.fail(reason)),
        }
    }
}

/// The wait before retry number `attempt + 1`: exponential backoff from
/// `initial_backoff_s`, capped at `max_backoff_s`, scaled by a jitter factor in [0.5, 1)
/// (`unit` in [0, 1)), and never shorter than what the server asked for.
fn retry_wait(
    config: &OpenAiConfig,
    attempt: u32,
    unit: f64,
    not_before: Option<Duration>,
) -> Duration {
    let backoff =
        (config.initial_backoff_s * 2f64.powi(attempt.min(62) as i32)).min(config.max_backoff_s);
    let ours = Duration::from_secs_f64(backoff * (0.5 + 0.5 * unit));
    not_before.map_or(ours, |asked| ours.max(asked))
}

/// What the server's `retry-after-ms` (milliseconds, OpenAI's) and `Retry-After` (seconds or
/// an HTTP date, RFC 9110) headers ask for; the longer when both are given.
fn server_wait(response: &ureq::Response, now: SystemTime) -> Option<Duration> {
    let millis = response
        .header("retry-after-ms")
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0));
    let after = response
        .header("retry-after")
        .and_then(|value| parse_retry_after(value, now));
    match (millis, after) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (a date in the past means now).
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The server's own error message from an error body (`{"error": {"message": ...}}` in
/// OpenAI's format), shortened, or the body's start.
fn server_message(body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            value
                .pointer("/error/message")
                .or_else(|| value.get("error"))
                .or_else(|| value.get("message"))
                .and_then(|m| m.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| body.trim().to_string());
    if message.is_empty() {
        return String::new();
    }
    format!(": {}", shorten(&message, 300))
}

fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The token counts of a chat-completions answer's `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// The first choice's message content of a chat-completions answer, and the answer's `usage`
/// when it has one.
fn completion_text(body: &str) -> std::result::Result<(String, Option<Usage>), String> {
    #[derive(Deserialize)]
    struct Answer {
        choices: Vec<Choice>,
        #[serde(default)]
        usage: Option<Usage>,
    }
    #[derive(Deserialize)]
    struct Choice {
        message: Message,
    }
    #[derive(Deserialize)]
    struct Message {
        content: Option<String>,
    }
    let answer: Answer = serde_json::from_str(body).map_err(|e| {
        format!(
            "malformed chat-completions answer ({e}); it began {:?}",
            shorten(body, 200)
        )
    })?;
    let choice = answer
        .choices
        .into_iter()
        .next()
        .ok_or("malformed chat-completions answer: no choices")?;
    let text = choice.message.content.ok_or_else(|| {
        "malformed chat-completions answer: the message has no content".to_string()
    })?;
    Ok((text, answer.usage))
}

impl Generator for OpenAiGenerator {
    fn name(&self) -> String {
        format!("{} at {}", self.config.model, self.config.base_url)
    }

    fn sampling(&self) -> BTreeMap<String, serde_json::Value> {
        let mut sampling = BTreeMap::new();
        sampling.insert("temperature".to_string(), self.config.temperature.into());
        sampling.insert("top_p".to_string(), self.config.top_p.into());
        sampling.insert("max_tokens".to_string(), self.config.max_tokens.into());
        sampling.insert("seed".to_string(), self.config.seed.into());
        if let Some(system) = &self.config.system_prompt {
            sampling.insert("system_prompt".to_string(), system.as_str().into());
        }
        sampling
    }

    /// Completion `j` of request `r` is sent with seed `stream(r) · n + j`; up to
    /// `concurrency` are in flight; the first failure stops the rest.
    fn generate(&self, requests: &[Request]) -> Result<Vec<Vec<Completion>>> {
        let jobs: Vec<(usize, &str, u64)> = requests
            .iter()
            .enumerate()
            .flat_map(|(r, request)| {
                (0..request.n).map(move |j| {
                    (
                        r,
                        request.prompt.as_str(),
                        request.stream * request.n as u64 + j as u64,
                    )
                })
            })
            .collect();
        let results: Vec<Mutex<Option<Result<Completion>>>> =
            jobs.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..self.config.concurrency.min(jobs.len()) {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(_, prompt, stream)) = jobs.get(i) else {
                            break;
                        };
                        let result = self.complete(prompt, stream);
                        failed.fetch_or(result.is_err(), Ordering::Relaxed);
                        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                    }
                });
            }
        });
        let mut out: Vec<Vec<Completion>> = requests.iter().map(|_| Vec::new()).collect();
        // The earliest failure is the one reported; jobs after a failure may not have run,
        // but only a failure leaves any unrun.
        for (&(r, _, _), result) in jobs.iter().zip(results) {
            match result.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some(Ok(completion)) => out[r].push(completion),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_caps_and_yields_to_the_server() {
        let config = OpenAiConfig {
            initial_backoff_s: 1.0,
            max_backoff_s: 8.0,
            ..OpenAiConfig::default()
        };
        let secs = |attempt, unit, asked: Option<f64>| {
            retry_wait(&config, attempt, unit, asked.map(Duration::from_secs_f64)).as_secs_f64()
        };
        assert_eq!(secs(0, 0.0, None), 0.5);
        assert_eq!(secs(2, 0.0, None), 2.0);
        assert!(secs(2, 0.999, None) < 4.0 && secs(2, 0.999, None) > 3.99);
        assert_eq!(
            secs(10, 0.0, None),
            4.0,
            "capped at max_backoff_s, then jittered"
        );
        assert_eq!(secs(0, 0.0, Some(30.0)), 30.0, "the server's wait wins");
        assert_eq!(secs(3, 0.5, Some(0.1)), 6.0, "ours wins when longer");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 25 Nov 2026 12:00:00 GMT").expect("date");
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn answers_are_read_strictly() {
        let ok = r#"{"choices":[{"message":{"role":"assistant","content":"Why?"}}]}"#;
        assert_eq!(completion_text(ok), Ok(("Why?".to_string(), None)));
        let billed = r#"{"choices":[{"message":{"content":"Why?"}}],
            "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        assert_eq!(
            completion_text(billed),
            Ok((
                "Why?".to_string(),
                Some(Usage {
                    prompt_tokens: 12,
                    completion_tokens: 3
                })
            ))
        );
        for bad in [
            "not json",
            r#"{"choices":[]}"#,
            r#"{"choices":[{"message":{"role":"assistant"}}]}"#,
            r#"{"data":1}"#,
        ] {
            let error = completion_text(bad).expect_err(bad);
            assert!(error.contains("malformed"), "{error}");
        }
        assert_eq!(
            server_message(r#"{"error":{"message":"Rate limit reached"}}"#),
            ": Rate limit reached"
        );
    }

    #[test]
    fn the_api_key_never_prints() {
        let generator =
            OpenAiGenerator::new(&OpenAiConfig::default(), Some("sk-secret-123".to_string()))
                .expect("valid config");
        let shown = format!(
            "{generator:?} {} {:?}",
            generator.name(),
            generator.sampling()
        );
        assert!(!shown.contains("sk-secret-123"), "{shown}");
    }
}
