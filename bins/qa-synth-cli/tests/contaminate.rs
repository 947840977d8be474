//! `qa-contaminate` end to end, its generator an OpenAI-compatible endpoint (a wiremock server
//! on 127.0.0.1) chosen and keyed through config and the environment only.

use std::path::Path;
use std::process::Command;

use wiremock::matchers::{self, header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-do-not-log";

#[test]
fn human_questions_get_the_endpoints_answers_and_a_comparison() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let server = runtime.block_on(MockServer::start());
    // Only a request carrying the key gets an answer; anything else gets wiremock's 404.
    runtime.block_on(
        Mock::given(method("POST"))
            .and(matchers::path("/v1/chat/completions"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "choices": [{"message": {"role": "assistant", "content": " 10 points\n"}}]
            })))
            .mount(&server),
    );

    // 150 games of a season, answers "{game + 10} points".
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/records/season.jsonl");
    let config = dir.path().join("contaminate.yaml");
    std::fs::write(
        &config,
        format!(
            "contaminate:\n  generator:\n    backend: openai\n    openai:\n      base_url: {}/v1\n      \
             model: gpt-3.5-turbo\n      api_key_env: TEST_OPENAI_KEY\n",
            server.uri()
        ),
    )
    .expect("config");
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_qa-contaminate"))
        .args(["run", "--input", path(&input), "--config", path(&config)])
        .args(["--out-dir", path(&out)])
        .env("TEST_OPENAI_KEY", KEY)
        .output()
        .expect("qa-contaminate runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    // One exact match (game 0); the others share one of two words: F1 (1 + 149 · 0.5) / 150.
    let report: serde_json::Value =
        serde_json::from_str(&read(&out.join("contamination.json"))).expect("report");
    assert_eq!(report["differs"], 149);
    assert!((report["exact_match"].as_f64().expect("EM") - 100.0 / 150.0).abs() < 1e-9);
    assert!((report["f1"].as_f64().expect("F1") - 100.0 * 75.5 / 150.0).abs() < 1e-9);
    let table: Vec<String> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for line in [
        "differs from human 149 (99.3% of kept)",
        "EM vs human answers 0.67",
        "F1 vs human answers 50.33",
    ] {
        assert!(table.iter().any(|l| l == line), "{line:?} not in {stdout}");
    }
    let records = read(&out.join("contaminated.jsonl"));
    assert_eq!(records.lines().count(), 150);
    let first: serde_json::Value =
        serde_json::from_str(records.lines().next().expect("a line")).expect("json");
    assert_eq!(first["answers"], serde_json::json!(["10 points"]));
    assert_eq!(first["source"], "ai_contaminated");
    assert_eq!(
        first["provenance"]["generator"],
        format!("gpt-3.5-turbo at {}/v1", server.uri())
    );
    for file in ["contaminated.jsonl", "ledger.jsonl", "settings.json"] {
        assert!(!read(&out.join(file)).contains(KEY), "the key is in {file}");
    }
    assert!(!stderr.contains(KEY) && !stdout.contains(KEY));
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
