//! The dry run's estimates: each stage that would run is asked, in order, for its plan
//! (`--plan DIR`, see [`qa_stage::plan`]), with what the stages before it would write recorded
//! in DIR for it to plan from. The driver learns no stage's settings: each binary reads its
//! own config and measures its own model on its own device.

use std::path::Path;
use std::process::{Command, Stdio};

use qa_data::files::write_json_atomic;
use qa_stage::layout::RunLayout;
use qa_stage::plan::{ESTIMATES_FILE, PLAN_FLAG, Planning, StagePlan, format_duration};

use crate::error::{Error, Result};
use crate::graph::Stage;

/// Where the lines under a stage's name start.
const INDENT: &str = "                         ";
/// A day, in seconds: a run on the CPU longer than this gets a plain warning.
const DAY: f64 = 86_400.0;

/// The estimates of one dry run so far.
pub(crate) struct Estimates {
    planning: Planning,
    /// Seconds of the stages that will run.
    total: f64,
    /// Seconds of the stages that run only if an earlier stage changes its output.
    conditional: f64,
    /// Seconds of model work on the CPU.
    on_cpu: f64,
    /// Stages without a time.
    unestimated: Vec<String>,
    /// Each stage's name and plan, in order.
    plans: Vec<(String, StagePlan)>,
}

impl Estimates {
    /// Starts the estimates of a dry run of `run_dir`, with its planning directory there.
    pub fn open(run_dir: &Path) -> Result<Self> {
        Ok(Estimates {
            planning: Planning::start(&RunLayout::new(run_dir).plan())?,
            total: 0.0,
            conditional: 0.0,
            on_cpu: 0.0,
            unestimated: Vec::new(),
            plans: Vec::new(),
        })
    }

    /// Asks `stage`'s binary in `bin_dir` for its plan, prints it under the stage's line, and
    /// records the files it would write (at the paths the driver publishes them to) for the
    /// stages after it. A stage that cannot plan is reported and counted as unestimated.
    pub fn ask(&mut self, stage: &Stage, bin_dir: &Path, conditional: bool) -> Result<()> {
        let program = bin_dir.join(stage.program);
        let output = Command::new(&program)
            .args(&stage.args)
            .arg(format!("--{PLAN_FLAG}"))
            .arg(self.planning.dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|reason| Error::Start {
                program: program.clone(),
                reason,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let answer = stdout
            .lines()
            .last()
            .and_then(|line| serde_json::from_str::<StagePlan>(line).ok());
        let plan = match (output.status.success(), answer) {
            (true, Some(plan)) => plan,
            (success, _) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let why = match success {
                    true => "its binary printed no plan".to_string(),
                    false => stderr.lines().last().unwrap_or("it failed").to_string(),
                };
                println!("{INDENT}no estimate: {why}");
                self.unestimated.push(stage.name.clone());
                return Ok(());
            }
        };
        print_plan(&plan);
        match plan.seconds {
            Some(seconds) if conditional => self.conditional += seconds,
            Some(seconds) => {
                self.total += seconds;
                if plan.on_cpu {
                    self.on_cpu += seconds;
                }
            }
            None => self.unestimated.push(stage.name.clone()),
        }
        for (path, file) in &plan.outputs {
            let published = stage
                .publish
                .iter()
                .find(|(from, _)| from == path)
                .map_or(path, |(_, to)| to);
            self.planning.record(published.clone(), file.clone())?;
        }
        self.plans.push((stage.name.clone(), plan));
        Ok(())
    }

    /// Prints the total, says so plainly when the model work on the CPU would take days, and
    /// writes every stage's plan into the planning directory.
    pub fn finish(&self) -> Result<()> {
        write_json_atomic(self.planning.dir().join(ESTIMATES_FILE), &self.plans)?;
        let mut line = format!("{:<24} ≈ {}", "total", format_duration(self.total));
        if self.conditional > 0.0 {
            line.push_str(&format!(
                ", and up to {} more if the stages that wait on others run",
                format_duration(self.conditional)
            ));
        }
        if !self.unestimated.is_empty() {
            line.push_str(&format!(" ({} not estimated)", self.unestimated.join(", ")));
        }
        println!("{line}");
        if self.on_cpu >= DAY {
            println!(
                "{INDENT}On the CPU this run would take {}: run it where a GPU is \
                 (docs/scaling.md, \"On a GPU\"), or let an endpoint do the contamination.",
                format_duration(self.on_cpu)
            );
        }
        Ok(())
    }
}

/// A stage's plan, under its line: the work and its time, then the notes.
fn print_plan(plan: &StagePlan) {
    let place = plan
        .device
        .as_deref()
        .map(|device| format!(" on {device}"))
        .unwrap_or_default();
    match plan.seconds {
        Some(seconds) => println!(
            "{INDENT}{}  ≈ {}{place}",
            plan.work,
            format_duration(seconds)
        ),
        None => println!("{INDENT}{}{place}", plan.work),
    }
    for note in &plan.notes {
        println!("{INDENT}  ({note})");
    }
}
