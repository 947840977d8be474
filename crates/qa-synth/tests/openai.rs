//! The chat-completions client against a real HTTP server on 127.0.0.1 (wiremock), answering
//! from a script: success, rate limiting, server errors, refusals, garbage and slowness; and
//! what a stage spends through it, up to its budget and on after a resume.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qa_data::QaRecord;
use qa_data::usage::Price;
use qa_synth::Budget;
use qa_synth::contaminate::{ContaminateConfig, OUTPUT_FILE, REPORT_FILE, contaminate};
use qa_synth::run::{RunFiles, Shard};
use qa_synth::{Backend, Completion, Error, Generator, OpenAiConfig, OpenAiGenerator, Request};
use t5_stage::planning::approximate_tokens;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

/// Answers the requests in turn from `script` (its last answer repeats), recording when each
/// request arrived.
struct Script {
    answers: Vec<ResponseTemplate>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Script {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.lock().expect("lock");
        arrivals.push(Instant::now());
        let turn = (arrivals.len() - 1).min(self.answers.len() - 1);
        self.answers[turn].clone()
    }
}

/// A completion whose content names the seed it was asked with, so tests can see which
/// completion is which.
struct EchoSeed;

impl Respond for EchoSeed {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json body");
        let prompt = body["messages"][0]["content"].as_str().expect("prompt");
        let key = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        ResponseTemplate::new(200).set_body_json(completion(&format!(
            "{prompt} seed={} model={} key={key}",
            body["seed"], body["model"]
        )))
    }
}

/// An answer as OpenAI gives it, `usage` included: the prompt's and the content's length in
/// words stand in for their tokens.
fn completion(content: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": content.split_whitespace().count(),
                  "total_tokens": 20 + content.split_whitespace().count()},
    })
}

/// The texts of completions.
fn texts(completions: Vec<Vec<Completion>>) -> Vec<Vec<String>> {
    completions
        .into_iter()
        .map(|c| c.into_iter().map(|c| c.text).collect())
        .collect()
}

/// A mock server on 127.0.0.1 with its own runtime; the client under test blocks on the
/// test's thread while the runtime's workers serve it.
struct Server {
    server: MockServer,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(responder: impl Respond + 'static) -> Server {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let server = runtime.block_on(MockServer::start());
        runtime.block_on(
            Mock::given(method("POST"))
                .and(path("/v1/chat/completions"))
                .respond_with(responder)
                .mount(&server),
        );
        Server { server, runtime }
    }

    fn scripted(answers: Vec<ResponseTemplate>) -> (Server, Arc<Mutex<Vec<Instant>>>) {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let server = Server::start(Script {
            answers,
            arrivals: Arc::clone(&arrivals),
        });
        (server, arrivals)
    }

    fn config(&self) -> OpenAiConfig {
        OpenAiConfig {
            base_url: format!("{}/v1", self.server.uri()),
            model: "test-model".to_string(),
            initial_backoff_s: 0.01,
            max_backoff_s: 0.05,
            request_timeout_s: 5.0,
            ..OpenAiConfig::default()
        }
    }

    fn requests(&self) -> usize {
        self.runtime
            .block_on(self.server.received_requests())
            .map_or(0, |requests| requests.len())
    }
}

fn one(prompt: &str) -> Vec<Request> {
    vec![Request {
        prompt: prompt.to_string(),
        n: 1,
        stream: 0,
    }]
}

fn endpoint_error(result: qa_synth::Result<Vec<Vec<Completion>>>) -> String {
    match result {
        Err(Error::Endpoint { reason, .. }) => reason,
        other => panic!("expected an endpoint error, got {other:?}"),
    }
}

#[test]
fn completions_come_back_in_order_with_their_seeds_and_the_key() {
    let server = Server::start(EchoSeed);
    let config = OpenAiConfig {
        seed: 100,
        concurrency: 3,
        ..server.config()
    };
    let generator = OpenAiGenerator::new(&config, Some("sk-test".to_string())).expect("client");
    let requests = vec![
        Request {
            prompt: "a".to_string(),
            n: 2,
            stream: 5,
        },
        Request {
            prompt: "b".to_string(),
            n: 2,
            stream: 6,
        },
    ];
    let completions = generator.generate(&requests).expect("completions");
    let usage = completions[0][0].usage.expect("usage");
    assert_eq!((usage.prompt_tokens, usage.retries), (20, 0));
    // Completion j of a request with stream s is sent seed 100 + s·n + j.
    let expect =
        |prompt, seed| format!("{prompt} seed={seed} model=\"test-model\" key=Bearer sk-test");
    assert_eq!(
        texts(completions),
        vec![
            vec![expect("a", 110), expect("a", 111)],
            vec![expect("b", 112), expect("b", 113)],
        ]
    );
    assert_eq!(server.requests(), 4);
    assert_eq!(generator.retries(), 0);
}

#[test]
fn rate_limits_are_retried_no_earlier_than_the_server_asks() {
    for (header, value, wait) in [
        ("retry-after-ms", "400", Duration::from_millis(400)),
        ("retry-after", "1", Duration::from_secs(1)),
    ] {
        let (server, arrivals) = Server::scripted(vec![
            ResponseTemplate::new(429)
                .insert_header(header, value)
                .set_body_json(serde_json::json!({"error": {"message": "Rate limit reached"}})),
            ResponseTemplate::new(200).set_body_json(completion("What is it?")),
        ]);
        let generator = OpenAiGenerator::new(&server.config(), None).expect("client");
        let completions = generator.generate(&one("q")).expect("retried to success");
        let usage = completions[0][0].usage.expect("usage");
        assert_eq!(texts(completions), vec![vec!["What is it?".to_string()]]);
        assert_eq!(generator.retries(), 1);
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens, usage.retries),
            (20, 3, 1),
            "the completion's bill counts the retry before it"
        );
        let arrivals = arrivals.lock().expect("lock");
        assert_eq!(arrivals.len(), 2);
        // Our own backoff here is at most 50 ms: the wait is the server's.
        let gap = arrivals[1] - arrivals[0];
        assert!(
            gap >= wait,
            "{header}: retried after {gap:?}, asked {wait:?}"
        );
    }
}

#[test]
fn server_errors_are_retried_until_the_cap_then_fail() {
    let (server, _) = Server::scripted(vec![
        ResponseTemplate::new(500).set_body_string("upstream exploded"),
    ]);
    let config = OpenAiConfig {
        max_retries: 3,
        ..server.config()
    };
    let generator = OpenAiGenerator::new(&config, None).expect("client");
    let reason = endpoint_error(generator.generate(&one("q")));
    assert!(reason.contains("HTTP 500: upstream exploded"), "{reason}");
    assert!(reason.contains("gave up after 3 retries"), "{reason}");
    assert_eq!(server.requests(), 4, "the first try and three retries");
}

#[test]
fn the_run_wide_retry_cap_stops_a_failing_endpoint() {
    let (server, _) = Server::scripted(vec![ResponseTemplate::new(503)]);
    let config = OpenAiConfig {
        max_retries: 10,
        max_total_retries: 2,
        concurrency: 1,
        ..server.config()
    };
    let generator = OpenAiGenerator::new(&config, None).expect("client");
    let reason = endpoint_error(generator.generate(&one("q")));
    assert!(reason.contains("max_total_retries"), "{reason}");
    assert_eq!(server.requests(), 3);
}

#[test]
fn refusals_fail_at_once_with_what_to_check() {
    let (server, _) =
        Server::scripted(vec![ResponseTemplate::new(401).set_body_json(
            serde_json::json!({"error": {"message": "Incorrect API key provided"}}),
        )]);
    let config = OpenAiConfig {
        api_key_env: "TEST_API_KEY".to_string(),
        ..server.config()
    };
    let generator = OpenAiGenerator::new(&config, Some("sk-secret-9".to_string())).expect("client");
    let reason = endpoint_error(generator.generate(&one("q")));
    assert!(
        reason.contains("HTTP 401: Incorrect API key provided"),
        "{reason}"
    );
    assert!(reason.contains("TEST_API_KEY"), "{reason}");
    assert!(!reason.contains("sk-secret-9"), "the key leaked: {reason}");
    assert_eq!(server.requests(), 1, "a refusal is not retried");

    let (server, _) = Server::scripted(vec![ResponseTemplate::new(404)]);
    let generator = OpenAiGenerator::new(&server.config(), None).expect("client");
    let reason = endpoint_error(generator.generate(&one("q")));
    assert!(
        reason.contains("HTTP 404") && reason.contains("base_url"),
        "{reason}"
    );
    assert_eq!(server.requests(), 1);
}

#[test]
fn a_malformed_answer_is_an_error_not_a_question() {
    for body in [
        "<html>Bad gateway</html>".to_string(),
        serde_json::json!({"choices": []}).to_string(),
        serde_json::json!({"choices": [{"message": {"role": "assistant"}}]}).to_string(),
    ] {
        let (server, _) = Server::scripted(vec![ResponseTemplate::new(200).set_body_string(&body)]);
        let generator = OpenAiGenerator::new(&server.config(), None).expect("client");
        let reason = endpoint_error(generator.generate(&one("q")));
        assert!(
            reason.contains("malformed chat-completions answer"),
            "{reason}"
        );
        assert_eq!(server.requests(), 1);
    }
}

#[test]
fn a_response_slower_than_the_timeout_fails_after_the_retries() {
    let (server, _) = Server::scripted(vec![
        ResponseTemplate::new(200)
            .set_body_json(completion("too late"))
            .set_delay(Duration::from_secs(30)),
    ]);
    let config = OpenAiConfig {
        request_timeout_s: 0.3,
        max_retries: 1,
        ..server.config()
    };
    let generator = OpenAiGenerator::new(&config, None).expect("client");
    let started = Instant::now();
    let reason = endpoint_error(generator.generate(&one("q")));
    assert!(reason.contains("timed out"), "{reason}");
    assert!(reason.contains("gave up after 1 retries"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the client waited for the slow answer"
    );
}

/// Answers every request with "10 points" and the usage [`completion`] gives, recording the
/// seed each request was sent with.
struct AnswerAndRecordSeeds(Arc<Mutex<Vec<u64>>>);

impl Respond for AnswerAndRecordSeeds {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json body");
        let seed = body["seed"].as_u64().expect("a seed");
        self.0.lock().expect("lock").push(seed);
        ResponseTemplate::new(200).set_body_json(completion("10 points"))
    }
}

#[test]
fn contamination_stops_at_its_budget_and_resumes_without_paying_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The first six records of the committed season.
    let season = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/records/season.jsonl");
    let human: Vec<QaRecord> = qa_data::files::read_jsonl(&season).expect("season");
    let input = dir.path().join("human.jsonl");
    qa_data::files::write_jsonl_atomic(&input, &human[..6]).expect("input");
    let seeds = Arc::new(Mutex::new(Vec::new()));
    let server = Server::start(AnswerAndRecordSeeds(Arc::clone(&seeds)));
    let price = Price {
        prompt_per_million: 1.0,
        completion_per_million: 2.0,
    };
    let mut config = ContaminateConfig {
        prompt_template: "{question}".to_string(),
        records_per_batch: 2,
        ..ContaminateConfig::default()
    };
    config.generator.backend = Backend::Openai;
    config.generator.openai = OpenAiConfig {
        max_tokens: 8,
        price: Some(price),
        ..server.config()
    };
    // Each completion bills 20 + 2 tokens. A batch may cost at most its prompts at a token
    // per four characters and 8 tokens per answer: the budget lets two batches through and
    // stops the third.
    let bound: u64 = human[..2]
        .iter()
        .map(|r| (approximate_tokens(&r.question) + 8) as u64)
        .sum();
    config.generator.openai.max_budget = Some(Budget::Tokens(2 * 2 * 22 + bound - 1));
    let out = dir.path().join("out");
    let files = |resume| RunFiles {
        input: input.clone(),
        shard: Shard::WHOLE,
        out_dir: out.clone(),
        resume,
    };
    let run = |config: &ContaminateConfig, resume| {
        let generator = OpenAiGenerator::new(&config.generator.openai, None).expect("client");
        contaminate(config, &files(resume), &generator, |_| {})
    };

    let stop = run(&config, false).expect_err("the budget stops the run");
    let message = stop.to_string();
    assert!(matches!(stop, Error::OverBudget { .. }), "{message}");
    assert!(
        message.contains("spent so far: 80 prompt + 8 completion tokens, $0.0001 in 4 completions"),
        "{message}"
    );
    assert!(message.contains("Raise openai.max_budget"), "{message}");
    assert_eq!(
        server.requests(),
        4,
        "two batches of two, and nothing of the third"
    );
    let ledger = std::fs::read_to_string(out.join("ledger.jsonl")).expect("ledger");
    assert_eq!(
        ledger.lines().count(),
        4,
        "what was paid for is in the ledger"
    );

    // The same settings but the budget resume the run; a budget change is no other run.
    config.generator.openai.max_budget = Some(Budget::Usd(1.0));
    let summary = run(&config, true).expect("resumes within the raised budget");
    assert_eq!(
        server.requests(),
        6,
        "only the two unanswered records were asked for"
    );
    let mut sent = seeds.lock().expect("lock").clone();
    sent.sort_unstable();
    sent.dedup();
    assert_eq!(sent.len(), 6, "no completion was requested twice");

    let usage = summary.report.usage.expect("usage totals");
    assert_eq!(
        (
            usage.completions,
            usage.prompt_tokens,
            usage.completion_tokens
        ),
        (6, 120, 12)
    );
    assert_eq!(usage.cost_usd, Some(price.of(120, 12)));
    let report: serde_json::Value =
        qa_data::files::read_json(out.join(REPORT_FILE)).expect("contamination.json");
    assert_eq!(report["usage"]["prompt_tokens"], 120);
    let records: Vec<QaRecord> =
        qa_data::files::read_jsonl(out.join(OUTPUT_FILE)).expect("records");
    let billed = records[5].provenance.as_ref().and_then(|p| p.usage);
    assert_eq!(billed.map(|u| u.completion_tokens), Some(2));

    // A budget in dollars needs a price to count in.
    config.generator.openai.price = None;
    let refused = OpenAiGenerator::new(&config.generator.openai, None).expect_err("no price");
    assert!(refused.to_string().contains("openai.price"), "{refused}");
}
