//! Finding and loading checkpoints: the Hugging Face cache layout (offline), sharded
//! checkpoints in it, damaged files, and checkpoints whose tensors do not fit the model.

use crate::common;

use std::path::{Path, PathBuf};

use common::fixtures;
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;
use t5_lora::Error;
use t5_lora::load_pretrained;
use t5_lora::{HubOptions, resolve_model};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Copies the fixture checkpoint `fixture` into a Hugging Face cache under `cache` as
/// `org/name`: files are blobs, linked from `snapshots/<commit>/` as `huggingface_hub` does.
fn cache_model(cache: &Path, id: &str, fixture: &str) -> PathBuf {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snapshot).expect("snapshot dir");
    std::fs::create_dir_all(repo.join("blobs")).expect("blobs dir");
    std::fs::create_dir_all(repo.join("refs")).expect("refs dir");
    std::fs::write(repo.join("refs/main"), COMMIT).expect("ref");
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join(fixture))
        .expect("fixture dir")
        .map(|entry| entry.expect("entry").path())
        .collect();
    if !files.iter().any(|f| f.ends_with("tokenizer.json")) {
        files.push(fixtures().join("tokenizer.json"));
    }
    for (i, file) in files.iter().enumerate() {
        let blob = repo.join("blobs").join(format!("blob{i}"));
        std::fs::copy(file, &blob).expect("copy");
        let name = file.file_name().expect("file name");
        link(&format!("../../blobs/blob{i}"), &snapshot.join(name));
    }
    snapshot
}

#[cfg(unix)]
fn link(target: &str, at: &Path) {
    std::os::unix::fs::symlink(target, at).expect("symlink");
}

#[cfg(not(unix))]
fn link(target: &str, at: &Path) {
    let blob = at.parent().expect("snapshot").join(target);
    std::fs::copy(blob, at).expect("copy");
}

fn offline(cache: &Path) -> HubOptions {
    HubOptions {
        cache_dir: cache.to_path_buf(),
        offline: true,
    }
}

#[test]
fn model_ids_resolve_in_the_hugging_face_cache() {
    let _turn = common::drawing();
    let cache = tempfile::tempdir().expect("tempdir");
    let snapshot = cache_model(cache.path(), "google/tiny-flan", "flan-t5-tiny");
    let sharded = cache_model(
        cache.path(),
        "google/tiny-flan-sharded",
        "flan-t5-tiny-sharded",
    );
    let options = offline(cache.path());
    assert_eq!(
        resolve_model("google/tiny-flan", &options).expect("found"),
        snapshot
    );
    let dir = resolve_model("google/tiny-flan-sharded@main", &options).expect("found");
    assert_eq!(dir, sharded);
    let model = load_pretrained(&dir, &common::device()).expect("sharded checkpoint loads");
    assert_eq!(model.config().decoder_layers(), 3);

    // A local directory is used as it is.
    let local = fixtures().join("t5-v1_0-tiny");
    assert_eq!(
        resolve_model(local.to_str().expect("utf-8"), &options).expect("local"),
        local
    );
}

#[test]
fn a_model_missing_from_the_cache_offline_is_an_error_naming_the_cache() {
    let _turn = common::drawing();
    let cache = tempfile::tempdir().expect("tempdir");
    let error = resolve_model("google/flan-t5-base", &offline(cache.path()))
        .expect_err("not cached")
        .to_string();
    assert!(
        error.contains("google/flan-t5-base") && error.contains("HF_HUB_OFFLINE"),
        "{error}"
    );
    assert!(
        error.contains(&cache.path().display().to_string()),
        "{error}"
    );
    let error = resolve_model("./no/such/dir", &offline(cache.path()))
        .expect_err("missing directory")
        .to_string();
    assert!(error.contains("no such directory"), "{error}");
}

#[test]
fn a_truncated_download_is_reported_with_the_blob_to_delete() {
    let _turn = common::drawing();
    let cache = tempfile::tempdir().expect("tempdir");
    let snapshot = cache_model(cache.path(), "google/tiny-flan", "flan-t5-tiny");
    let weights = snapshot.join("model.safetensors");
    let blob = std::fs::canonicalize(&weights).expect("blob");
    let bytes = std::fs::read(&blob).expect("read");
    std::fs::write(&blob, &bytes[..bytes.len() - 1000]).expect("truncate");
    let error = load_pretrained(&snapshot, &common::device()).expect_err("damaged");
    match &error {
        Error::CorruptWeights { path, delete, .. } => {
            assert_eq!(path, &weights);
            assert_eq!(delete, &blob);
        }
        other => panic!("expected CorruptWeights, got {other}"),
    }
    assert!(error.to_string().contains("download it again"), "{error}");

    // A header cut in the middle, and a file that is not safetensors at all.
    for damaged in [&bytes[..200], &b"<html>rate limited</html>"[..]] {
        std::fs::write(&blob, damaged).expect("write");
        let error = load_pretrained(&snapshot, &common::device()).expect_err("damaged");
        assert!(matches!(error, Error::CorruptWeights { .. }), "{error}");
    }
}

/// What to do with one tensor of a checkpoint copy.
enum Edit {
    Keep,
    Drop,
    Rename(&'static str),
    Reshape(Vec<usize>),
}

/// A copy of the flan-t5-tiny checkpoint with `edit` applied to tensor `target`.
fn edited_checkpoint(target: &str, edit: Edit) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = fixtures().join("flan-t5-tiny");
    std::fs::copy(source.join("config.json"), dir.path().join("config.json")).expect("config");
    let bytes = std::fs::read(source.join("model.safetensors")).expect("weights");
    let tensors = SafeTensors::deserialize(&bytes).expect("safetensors");
    let zeros = vec![0u8; 1 << 20];
    let mut kept = Vec::new();
    for (name, view) in tensors.tensors() {
        match if name == target { &edit } else { &Edit::Keep } {
            Edit::Keep => kept.push((name, view)),
            Edit::Drop => {}
            Edit::Rename(new_name) => kept.push((new_name.to_string(), view)),
            Edit::Reshape(shape) => {
                let size = shape.iter().product::<usize>() * view.dtype().bitsize() / 8;
                let view =
                    TensorView::new(view.dtype(), shape.clone(), &zeros[..size]).expect("view");
                kept.push((name, view));
            }
        }
    }
    safetensors::serialize_to_file(kept, None, &dir.path().join("model.safetensors"))
        .expect("write");
    dir
}

#[test]
fn missing_unexpected_and_misshaped_tensors_are_named() {
    let _turn = common::drawing();
    const Q: &str = "encoder.block.1.layer.0.SelfAttention.q.weight";
    let load = |dir: tempfile::TempDir| {
        load_pretrained(dir.path(), &common::device())
            .expect_err("refused")
            .to_string()
    };
    // Messages use checkpoint names, not module paths.
    let error = load(edited_checkpoint(Q, Edit::Drop));
    assert!(
        error.contains(&format!("missing 1 tensor(s): {Q}")),
        "{error}"
    );
    let renamed = "encoder.block.1.layer.0.SelfAttention.q_proj.weight";
    let error = load(edited_checkpoint(Q, Edit::Rename(renamed)));
    assert!(
        error.contains(&format!("missing 1 tensor(s): {Q}"))
            && error.contains(&format!("1 unexpected tensor(s): {renamed}")),
        "{error}"
    );
    let error = load(edited_checkpoint(Q, Edit::Reshape(vec![32, 48])));
    assert!(error.contains(&format!("tensor {Q} has shape")), "{error}");
}
