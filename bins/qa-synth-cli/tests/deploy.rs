//! The cluster files under deploy/ are what users submit: the Kubernetes Jobs must parse and
//! have what an Indexed Job needs, agreeing with the shard count passed to the stage, and the
//! Slurm scripts must be valid shell with contiguous arrays.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Yaml};
use serde_json::Value;

fn deploy(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn yaml(path: &Path) -> Value {
    Figment::from(Yaml::file_exact(path))
        .extract()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn kubernetes_jobs_are_indexed_and_agree_with_their_shard_count() {
    let files = deploy("k8s");
    assert_eq!(files.len(), 6, "{files:?}");
    for path in files {
        let name = path.display().to_string();
        let job = yaml(&path);
        assert_eq!(job["apiVersion"], "batch/v1", "{name}");
        assert_eq!(job["kind"], "Job", "{name}");
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never", "{name}");
        let script = pod["containers"][0]["args"][0].as_str().expect("a script");
        if name.ends_with("-merge-job.yaml") {
            assert!(job["spec"].get("completionMode").is_none(), "{name}");
            assert!(script.contains(" merge "), "{name}: {script}");
            continue;
        }
        let spec = &job["spec"];
        assert_eq!(spec["completionMode"], "Indexed", "{name}");
        let completions = spec["completions"].as_u64().expect("completions");
        let parallelism = spec["parallelism"].as_u64().expect("parallelism");
        assert!(parallelism >= 1 && parallelism <= completions, "{name}");
        assert!(script.contains("--shard auto"), "{name}: {script}");
        assert!(
            script.contains(&format!("--shard-count {completions}")),
            "{name}: --shard-count must equal completions ({completions})"
        );
        assert!(script.contains("$JOB_COMPLETION_INDEX"), "{name}");
    }
}

#[test]
fn slurm_scripts_are_valid_shell_with_contiguous_arrays() {
    for path in deploy("slurm") {
        let name = path.display().to_string();
        let check = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("bash runs");
        assert!(
            check.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let text = std::fs::read_to_string(&path).expect("script");
        let is_array = ["synth", "contaminate", "predict"]
            .iter()
            .any(|stage| name.ends_with(&format!("/{stage}.sbatch")));
        if is_array {
            assert!(
                text.contains("#SBATCH --array=0-"),
                "{name}: arrays start at 0"
            );
            // The count comes from the scripts, not the array: a resubmitted task is alone in
            // its array.
            assert!(
                text.contains("--shard auto --shard-count \"$SHARDS\""),
                "{name}"
            );
        }
    }
}
