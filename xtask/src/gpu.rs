//! The GPU backends of a build: which to compile in on this machine (`run-experiment`,
//! `test`), and the `gpu` test group (`gpu-tests`) that proves the wgpu path on whatever
//! adapter exists, Mesa's software Vulkan device (lavapipe) included.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::artifacts::{TestTarget, test_executable};
use crate::project_root;

/// A GPU backend, by its cargo feature (the same name in t5-lora, qa-synth and the stage
/// binaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuFeature {
    Wgpu,
    Cuda,
}

impl GpuFeature {
    fn name(self) -> &'static str {
        match self {
            GpuFeature::Wgpu => "wgpu",
            GpuFeature::Cuda => "cuda",
        }
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "wgpu" => Ok(GpuFeature::Wgpu),
            "cuda" => Ok(GpuFeature::Cuda),
            other => bail!("unknown feature {other:?}: --features takes wgpu, cuda or both"),
        }
    }

    /// A comma-separated list: `wgpu`, `cuda` or `wgpu,cuda`.
    pub fn parse_list(list: &str) -> anyhow::Result<Vec<Self>> {
        list.split(',')
            .filter(|name| !name.is_empty())
            .map(GpuFeature::parse)
            .collect()
    }
}

/// The stage packages, whose features switch the backends on through t5-lora.
pub const STAGE_PACKAGES: [&str; 6] = [
    "qa-prepare",
    "qa-synth-cli",
    "qa-train",
    "qa-eval",
    "qa-report-cli",
    "qa-experiment-cli",
];

/// The packages that have the GPU features.
const GPU_PACKAGES: [&str; 3] = ["qa-synth-cli", "qa-train", "qa-eval"];

/// `--features` for cargo: each backend on every stage package that has it (empty for none).
/// The same string serves `cargo test` and `cargo build -p <stages>`, so that both resolve
/// the same features and share what they compiled.
pub fn cargo_features(features: &[GpuFeature]) -> String {
    let mut list = Vec::new();
    for feature in features {
        for package in GPU_PACKAGES {
            list.push(format!("{package}/{}", feature.name()));
        }
    }
    list.join(",")
}

/// Takes xtask's backend flags out of `args`: `--features wgpu,cuda` and `--cpu-only`. Without
/// either, the machine decides: CUDA where an NVIDIA driver is present, and nothing extra
/// elsewhere (on a Mac t5-lora always has wgpu, which reaches Metal). Says what it picked.
pub fn take_features(args: &mut Vec<String>) -> anyhow::Result<Vec<GpuFeature>> {
    let mut named = None;
    if let Some(at) = args.iter().position(|arg| arg == "--features") {
        let Some(value) = args.get(at + 1).cloned() else {
            bail!("--features needs a value: wgpu, cuda or wgpu,cuda");
        };
        args.drain(at..at + 2);
        named = Some(GpuFeature::parse_list(&value)?);
    }
    let cpu_only = crate::take_flag(args, "--cpu-only");
    let (features, why) = match (named, cpu_only) {
        (Some(_), true) => bail!("--features and --cpu-only exclude each other"),
        (Some(features), false) => (features, "as asked".to_string()),
        (None, true) => (Vec::new(), "as asked".to_string()),
        (None, false) => match nvidia_driver() {
            Some(sign) => (
                vec![GpuFeature::Cuda],
                format!("an NVIDIA driver is here ({sign})"),
            ),
            None if cfg!(target_os = "macos") => (
                Vec::new(),
                "a Mac: wgpu (Metal) is always built in".to_string(),
            ),
            None => (Vec::new(), "no NVIDIA driver found".to_string()),
        },
    };
    let names: Vec<&str> = features.iter().map(|f| f.name()).collect();
    eprintln!(
        "xtask: GPU backends: {} ({why}; --features wgpu,cuda or --cpu-only to choose)",
        match names.is_empty() {
            true => "none".to_string(),
            false => names.join(", "),
        }
    );
    Ok(features)
}

/// A sign of an NVIDIA driver: its device node, its kernel module's version file, `nvidia-smi`
/// on the PATH, or its user-space library where the loader looks.
fn nvidia_driver() -> Option<String> {
    let files = [
        "/dev/nvidia0",
        "/proc/driver/nvidia/version",
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "/usr/lib/aarch64-linux-gnu/libcuda.so.1",
        "/usr/lib64/libcuda.so.1",
        "/usr/lib/wsl/lib/libcuda.so.1",
    ];
    if let Some(file) = files.iter().find(|file| Path::new(file).exists()) {
        return Some(file.to_string());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nvidia-smi"))
        .find(|smi| smi.is_file())
        .map(|smi| smi.display().to_string())
}

/// t5-lora's test binary (`tests/t5_lora.rs`).
const TEST_BINARY: &str = "t5_lora";

/// The t5-lora test modules and tests of the `gpu` group (every test of a module listed
/// without names): Hugging Face parity of the encoder
/// output and logits (in f32, and in f16 with bf16 refused), greedy and beam strings, the
/// cache, LoRA against PEFT (on an f16 base too), and eight
/// training steps whose losses follow the same run on the CPU. The other training tests
/// (finite differences, exact resume, early stopping) and the
/// sampling tests pass on lavapipe too, but take over ten minutes there on 2 cores; they stay
/// in the CPU suite, which CI runs on the same build.
const GPU_GROUP: [(&str, &[&str]); 4] = [
    ("parity", &[]),
    (
        "generation",
        &[
            "t5_v1_0_generates_what_hugging_face_generates",
            "flan_t5_generates_what_hugging_face_generates",
            "bf16_flan_t5_generates_what_hugging_face_generates",
            "f16_flan_t5_generates_what_hugging_face_generates",
            "cached_decoding_gives_the_logits_of_full_recomputation",
        ],
    ),
    ("lora", &[]),
    (
        "train",
        &["training_on_the_test_device_follows_the_same_run_on_the_cpu"],
    ),
];

/// The variable that t5-lora's tests read for their backend (tests/common/mod.rs).
const TEST_DEVICE_VARIABLE: &str = "T5_LORA_TEST_DEVICE";

/// Builds the test suite with wgpu (as `cargo xtask test --features wgpu` does) and returns
/// t5-lora's integration-test binary.
fn test_binary() -> anyhow::Result<PathBuf> {
    let features = cargo_features(&[GpuFeature::Wgpu]);
    test_executable(
        &["--features", &features],
        &TestTarget {
            package: "t5-lora",
            kind: "test",
            target: TEST_BINARY,
        },
    )
}

/// The wgpu adapter `qa-eval devices` reports, if any (software ones included).
fn wgpu_adapter(qa_eval: &Path) -> anyhow::Result<Option<String>> {
    let output = Command::new(qa_eval)
        .arg("devices")
        .output()
        .with_context(|| format!("starting {}", qa_eval.display()))?;
    let listing = String::from_utf8_lossy(&output.stdout);
    print!("{listing}");
    if !output.status.success() {
        bail!("qa-eval devices failed ({})", output.status);
    }
    Ok(listing
        .lines()
        .find(|line| line.starts_with("wgpu:"))
        .map(str::to_string))
}

/// Runs the `gpu` group on wgpu: the t5-lora tests above, then the smoke experiment with model
/// C trained and answering on the GPU, as the CPU answers with the same adapter. With no wgpu
/// adapter it says so and stops; `require` makes that an error (CI, which installs lavapipe,
/// must run the group).
pub fn gpu_tests(require: bool) -> anyhow::Result<()> {
    let binary = test_binary()?;
    let target = crate::target_dir().join("debug");
    let Some(adapter) = wgpu_adapter(&target.join("qa-eval"))? else {
        let message = "gpu group: no wgpu adapter on this machine (none listed by `qa-eval \
                       devices`); the group did not run. Mesa's lavapipe (Debian: \
                       mesa-vulkan-drivers) gives one in software";
        if require {
            bail!("{message}");
        }
        println!("{message}");
        return Ok(());
    };
    println!("gpu group: on {adapter}");
    // Two processes side by side: the training test (eight steps on the device and their
    // backward kernels, about four minutes on lavapipe), and every other test in one process,
    // where the kernels one test compiles for the device (a minute or more per process) serve
    // the others. In one process the training test, last in name order, ran alone at the end.
    let (training, others): (Vec<String>, Vec<String>) = group_tests(&binary)?
        .into_iter()
        .partition(|test| test.starts_with("train::"));
    println!(
        "gpu group: t5-lora's {} tests of {} on wgpu, and beside them {}",
        others.len(),
        GPU_GROUP.map(|(module, _)| module).join(", "),
        training.join(", ")
    );
    let mut training_run = group_command(&binary, &training)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let status = group_command(&binary, &others)
        .status()
        .with_context(|| format!("starting {}", binary.display()));
    let training_status = training_run
        .wait()
        .context("waiting for the training test")?;
    if !status?.success() || !training_status.success() {
        bail!("the gpu group's t5-lora tests failed (their output is above)");
    }
    smoke_on_wgpu(&target, &adapter)
}

/// `binary` running exactly `tests` on wgpu, from the repository root.
fn group_command(binary: &Path, tests: &[String]) -> Command {
    let mut command = Command::new(binary);
    command
        .env(TEST_DEVICE_VARIABLE, "wgpu")
        .args(tests)
        .arg("--exact")
        .current_dir(project_root());
    command
}

/// The full names of the group's tests in `binary` (from its `--list`): every test of a module
/// listed without names, and the named ones of the others. A name the binary lacks is an error,
/// so that a renamed test cannot drop out of the group unseen.
fn group_tests(binary: &Path) -> anyhow::Result<Vec<String>> {
    let output = Command::new(binary)
        .args(["--list", "--format", "terse"])
        .output()
        .with_context(|| format!("listing the tests of {}", binary.display()))?;
    if !output.status.success() {
        bail!("{} --list failed ({})", binary.display(), output.status);
    }
    let listed: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_string)
        .collect();
    select_group(&listed)
}

/// [`GPU_GROUP`]'s tests among the `listed` ones.
fn select_group(listed: &[String]) -> anyhow::Result<Vec<String>> {
    let mut tests = Vec::new();
    for (module, named) in GPU_GROUP {
        let prefix = format!("{module}::");
        if named.is_empty() {
            let all: Vec<String> = listed
                .iter()
                .filter(|test| test.starts_with(&prefix))
                .cloned()
                .collect();
            if all.is_empty() {
                bail!("the test binary has no tests in {module}");
            }
            tests.extend(all);
        }
        for test in named.iter() {
            let full = format!("{prefix}{test}");
            if !listed.contains(&full) {
                bail!("the test binary has no test {full}");
            }
            tests.push(full);
        }
    }
    Ok(tests)
}

/// Runs `command`, printing its output as it comes, and returns its status with the output
/// (stdout, then stderr, each in order).
fn run_teed(mut command: Command) -> anyhow::Result<(std::process::ExitStatus, String)> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", command.get_program().to_string_lossy()))?;
    let stderr = child.stderr.take().context("the child's stderr")?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut log = String::new();
    let stdout = child.stdout.take().context("the child's stdout")?;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().context("waiting for the child")?;
    log.push_str(&errors.join().unwrap_or_default());
    Ok((status, log))
}

/// The run directory of the group's smoke experiment.
const SMOKE_RUN_DIR: &str = "runs/smoke-wgpu";

/// The smoke profile as the group runs it, on the CPU and on wgpu alike. Prompts are cut to 64
/// tokens for training, so that every batch is `[8, 64]`: at the profile's 512 tokens each batch
/// is padded to its own length, and on lavapipe each new length compiles and autotunes its
/// kernels first (472 s for the first step), where at one shape the first step takes about two
/// minutes and each later one a second. One epoch with four validation answers: generation is
/// the slow part of what is left, and the t5-lora tests above prove it against Hugging Face.
/// Prediction's prompts are cut to 64 tokens too ([`PREDICT_PROMPTS`]), for the same reason.
const SMOKE_SETTINGS: [(&str, &str); 5] = [
    ("QA_EXPERIMENT__RUN_DIR", SMOKE_RUN_DIR),
    ("QA_TRAIN__MAX_SOURCE_LEN", "64"),
    ("QA_TRAIN__EPOCHS", "1"),
    ("QA_TRAIN__VALIDATION__GENERATE_EXAMPLES", "4"),
    PREDICT_PROMPTS,
];

/// Prediction's prompts at 64 tokens, in the group's runs and in the CPU's answers they are
/// compared with: every SQuAD prompt is longer, so every batch has one shape, where at 512
/// tokens each padded length tuned its kernels anew on lavapipe (two to three minutes).
const PREDICT_PROMPTS: (&str, &str) = ("QA_PREDICT__MAX_SOURCE_LEN", "64");

/// The second run's change: an answer-length filter threshold, which the synthetic data alone
/// reads, so that synthesis, model C's training and prediction, and what reads them run again
/// (on wgpu), and models A and B stay up to date.
const SMOKE_CHANGE: (&str, &str) = ("QA_FILTERS__ANSWER_LENGTH__MAX_TOKENS", "3");

/// Runs the smoke experiment with the group's settings, training and predicting on `device`.
fn smoke(target: &Path, device: &str, extra: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut experiment = Command::new(target.join("qa-experiment"));
    experiment
        .args(["--config", "configs/smoke.yaml"])
        .envs(SMOKE_SETTINGS)
        .envs([("QA_TRAIN__DEVICE", device), ("QA_PREDICT__DEVICE", device)])
        .envs(extra.iter().copied())
        .current_dir(project_root());
    let (status, log) = run_teed(experiment)?;
    if !status.success() {
        bail!("the smoke experiment on {device} failed ({status})");
    }
    Ok(log)
}

/// The smoke experiment, in its own run directory: first on the CPU, then again with a filter
/// threshold changed and training and prediction on wgpu, so that model C is trained and
/// answers on the GPU (one stage each: on lavapipe a stage's process compiles its kernels
/// first, a minute or two, and three of each did not fit CI's budget). Its answers must equal
/// those of the same adapter on the CPU, byte for byte, and the report must name the device.
fn smoke_on_wgpu(target: &Path, adapter: &str) -> anyhow::Result<()> {
    let root = project_root();
    let _ = std::fs::remove_dir_all(root.join(SMOKE_RUN_DIR));
    println!("gpu group: the smoke experiment on the CPU, then model C's stages on wgpu");
    smoke(target, "cpu", &[])?;
    let log = smoke(target, "wgpu", &[SMOKE_CHANGE])?;
    // Each stage that ran said where.
    let on_wgpu = |what: &str| {
        log.lines()
            .filter(|line| line.contains(what) && line.contains("device=wgpu"))
            .count()
    };
    let (trained, predicted) = (on_wgpu("training"), on_wgpu("loading"));
    println!("gpu group: {trained} training run and {predicted} prediction run on {adapter}");
    if trained != 1 || predicted != 1 {
        bail!(
            "expected model C's training and prediction on wgpu, and nothing else: saw \
             {trained} training and {predicted} prediction runs"
        );
    }
    // The report's training-cost table names the device.
    let dir = root.join(SMOKE_RUN_DIR);
    let report_path = dir.join("results/report.md");
    let report = std::fs::read_to_string(&report_path)
        .with_context(|| format!("{}", report_path.display()))?;
    let costs = report
        .split("\n## ")
        .find(|section| section.starts_with("Training cost"))
        .with_context(|| format!("{} has no training-cost table", report_path.display()))?;
    if !costs
        .lines()
        .any(|line| line.starts_with("| C |") && line.contains("wgpu:"))
    {
        bail!(
            "{}: the training-cost row of model C does not name the wgpu device",
            report_path.display()
        );
    }
    // Model C's answers again on the CPU: the same bytes.
    let model_dir = dir.join("runs/model_c_synthetic");
    let on_cpu = dir.join("model_c_on_cpu.jsonl");
    let status = Command::new(target.join("qa-eval"))
        .args([
            "predict",
            "--config",
            "configs/smoke.yaml",
            "--device",
            "cpu",
        ])
        .arg("--input")
        .arg(dir.join("data/processed/human_test.jsonl"))
        .arg("--adapter")
        .arg(model_dir.join("adapter"))
        .arg("--out")
        .arg(&on_cpu)
        .env(PREDICT_PROMPTS.0, PREDICT_PROMPTS.1)
        .current_dir(&root)
        .status()
        .context("starting qa-eval")?;
    if !status.success() {
        bail!("qa-eval predict on the CPU failed ({status})");
    }
    let on_wgpu = model_dir.join("predictions.jsonl");
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("{}", path.display()));
    if read(&on_cpu)? != read(&on_wgpu)? {
        bail!(
            "qa-eval predict on wgpu ({}) differs from the CPU ({})",
            on_wgpu.display(),
            on_cpu.display()
        );
    }
    println!(
        "gpu group: model C, trained on wgpu, answers there as on the CPU ({} bytes); passed",
        read(&on_cpu)?.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn the_group_takes_whole_modules_and_named_tests_and_refuses_missing_ones() {
        let listed = args(&[
            "parity::a",
            "parity::b",
            "generation::flan_t5_generates_what_hugging_face_generates",
            "generation::sampling_is_reproducible_and_independent_of_batching",
            "lora::c",
            "train::training_on_the_test_device_follows_the_same_run_on_the_cpu",
            "train::a_tiny_model_learns_sixteen_pairs_by_heart",
        ]);
        // The real listing has every named test; this one lacks four of generation's.
        let error = select_group(&listed).expect_err("names missing from the listing");
        assert!(
            error.to_string().contains("generation::t5_v1_0_generates"),
            "{error}"
        );
        let mut full = listed.clone();
        for (module, named) in GPU_GROUP {
            full.extend(named.iter().map(|test| format!("{module}::{test}")));
        }
        let tests = select_group(&full).expect("every name is listed");
        assert!(tests.starts_with(&args(&["parity::a", "parity::b"])));
        assert!(tests.contains(&"lora::c".to_string()));
        assert!(
            !tests
                .iter()
                .any(|test| test.contains("sampling") || test.contains("sixteen"))
        );
    }

    #[test]
    fn features_land_on_every_stage_package_that_has_them() {
        assert_eq!(cargo_features(&[]), "");
        assert_eq!(
            cargo_features(&[GpuFeature::Wgpu, GpuFeature::Cuda]),
            "qa-synth-cli/wgpu,qa-train/wgpu,qa-eval/wgpu,qa-synth-cli/cuda,qa-train/cuda,qa-eval/cuda"
        );
        for package in GPU_PACKAGES {
            assert!(STAGE_PACKAGES.contains(&package), "{package}");
        }
    }

    #[test]
    fn backend_flags_are_taken_out_of_the_forwarded_arguments() {
        let mut forwarded = args(&["--config", "a.yaml", "--features", "wgpu,cuda", "--dry-run"]);
        let features = take_features(&mut forwarded).expect("parses");
        assert_eq!(features, [GpuFeature::Wgpu, GpuFeature::Cuda]);
        assert_eq!(forwarded, args(&["--config", "a.yaml", "--dry-run"]));

        let mut forwarded = args(&["--cpu-only", "--only", "train"]);
        assert_eq!(take_features(&mut forwarded).expect("parses"), []);
        assert_eq!(forwarded, args(&["--only", "train"]));

        for wrong in [
            &["--features", "metal"][..],
            &["--features"],
            &["--features", "wgpu", "--cpu-only"],
        ] {
            assert!(take_features(&mut args(wrong)).is_err(), "{wrong:?}");
        }
    }
}
