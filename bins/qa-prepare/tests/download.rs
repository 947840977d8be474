//! `qa-prepare` fetches missing SQuAD files on first use, from a real HTTP server on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> Vec<u8> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/squad")
        .join(name);
    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A server on 127.0.0.1 answering `GET /<name>` with `body`; each route expects `hits`
/// requests, checked when the server is dropped.
fn serve(routes: &[(&str, Vec<u8>, u64)]) -> (MockServer, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let server = runtime.block_on(MockServer::start());
    for (name, body, hits) in routes {
        runtime.block_on(
            Mock::given(method("GET"))
                .and(path(format!("/{name}")))
                .respond_with(ResponseTemplate::new(200).set_body_bytes(body.clone()))
                .expect(*hits)
                .mount(&server),
        );
    }
    (server, runtime)
}

/// Runs `qa-prepare --fetch-only` with the SQuAD files at `dir/raw/` and these URLs.
fn fetch(dir: &Path, train_url: &str, test_url: &str) -> (Output, [PathBuf; 2]) {
    let files = [dir.join("raw/train.json"), dir.join("raw/dev.json")];
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "prepare:\n  train_file: {}\n  test_file: {}\n  train_url: {train_url}\n  test_url: {test_url}\n",
            files[0].display(),
            files[1].display()
        ),
    )
    .expect("config");
    let output = Command::new(env!("CARGO_BIN_EXE_qa-prepare"))
        .arg("--fetch-only")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("qa-prepare runs");
    (output, files)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn missing_files_are_downloaded_checked_and_kept() {
    let (train, dev) = (fixture("train-slice.json"), fixture("dev-slice.json"));
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _runtime) = serve(&[
        ("train.json", train.clone(), 1),
        ("dev.json", dev.clone(), 1),
    ]);
    let url = |name: &str| format!("{}/{name}", server.uri());
    let (output, files) = fetch(dir.path(), &url("train.json"), &url("dev.json"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&files[0]).expect("train saved"), train);
    assert_eq!(std::fs::read(&files[1]).expect("dev saved"), dev);
    assert!(String::from_utf8_lossy(&output.stdout).contains("downloaded"));
    // Present now: a second run asks the server nothing (each route expects one request).
    let (output, _) = fetch(dir.path(), &url("train.json"), &url("dev.json"));
    assert!(output.status.success(), "{}", stderr(&output));
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("raw"))
        .expect("raw dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "only the two files, no partial download: {entries:?}"
    );
}

#[test]
fn a_page_that_is_not_squad_is_refused_and_nothing_is_left_behind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = b"<html><body>Sign in to continue</body></html>".to_vec();
    let (server, _runtime) = serve(&[("train.json", page, 1)]);
    let url = format!("{}/train.json", server.uri());
    let (output, files) = fetch(dir.path(), &url, &url);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&files[0].display().to_string()),
        "{message}"
    );
    assert!(message.contains("is not SQuAD"), "{message}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("raw"))
        .expect("raw dir")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn offline_it_stops_at_once_naming_the_file_and_where_to_put_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Nothing listens on port 1 of the loopback address: the connection is refused at once.
    let (output, files) = fetch(dir.path(), "http://127.0.0.1:1/train.json", "null");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "{} is missing and could not be downloaded from http://127.0.0.1:1/train.json",
            files[0].display()
        )),
        "{message}"
    );
    assert!(message.contains("download it there by hand"), "{message}");
}

#[test]
fn without_a_url_the_error_says_where_the_file_belongs() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("raw")).expect("raw dir");
    std::fs::write(
        dir.path().join("raw/train.json"),
        fixture("train-slice.json"),
    )
    .expect("train");
    let (output, files) = fetch(dir.path(), "null", "null");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&files[1].display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("put the SQuAD file there, or set prepare.test_url to download it"),
        "{message}"
    );
}
