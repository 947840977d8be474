//! The Hugging Face hub cache as Python's `huggingface_hub` lays it out: where it is, and which
//! commit a cached model id stands for. `t5-lora` loads checkpoints from it; the dataset and
//! model cards name the commit a run used.
//!
//! ```
//! use qa_data::hub_cache::snapshot_commit;
//!
//! let snapshot = "/cache/models--google--flan-t5-xl/snapshots/7d6315df2c2fb742f0f5b556879d730926ca9001";
//! assert_eq!(snapshot_commit(snapshot.as_ref()).as_deref(), Some("7d6315df2c2fb742f0f5b556879d730926ca9001"));
//! ```

use std::path::{Path, PathBuf};

/// The `hub` cache directory: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HF_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/huggingface")
        });
    home.join("hub")
}

/// The commit a model (`org/name[@revision]`, or a directory) stands for in the cache at
/// `cache`, when it is known there: a revision that is a commit already, the cache's
/// `refs/<revision>` (`main` by default), or a snapshot directory's own name.
pub fn cached_commit(model: &str, cache: &Path) -> Option<String> {
    let path = Path::new(model);
    if path.is_dir() {
        return snapshot_commit(path);
    }
    let (id, revision) = model.split_once('@').unwrap_or((model, "main"));
    if is_commit(revision) {
        return Some(revision.to_string());
    }
    let repo = format!("models--{}", id.replace('/', "--"));
    let commit = std::fs::read_to_string(cache.join(repo).join("refs").join(revision)).ok()?;
    Some(commit.trim().to_string()).filter(|c| is_commit(c))
}

/// The commit of a directory that is a cache snapshot (`…/snapshots/<commit>`).
pub fn snapshot_commit(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_str()?;
    let parent = dir.parent()?.file_name()?;
    (parent == "snapshots" && is_commit(name)).then(|| name.to_string())
}

fn is_commit(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_id_names_the_commit_its_ref_points_at() {
        let cache = tempfile::tempdir().expect("tempdir");
        let refs = cache.path().join("models--google--flan-t5-base/refs");
        std::fs::create_dir_all(&refs).expect("refs");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(refs.join("main"), format!("{commit}\n")).expect("ref");
        let known = |model: &str| cached_commit(model, cache.path());
        assert_eq!(known("google/flan-t5-base").as_deref(), Some(commit));
        assert_eq!(known("google/flan-t5-base@v2"), None, "no such ref");
        assert_eq!(known("google/flan-t5-xl"), None, "not cached");
        assert_eq!(known(&format!("x/y@{commit}")).as_deref(), Some(commit));
    }
}
