//! Splitting a stage's input records into parts that separate machines process: a Slurm array
//! task or a Kubernetes Indexed Job pod each runs one [`Shard`].
//!
//! A record belongs to part `h(id) mod n`, with `h(id)` the first eight bytes of the SHA-256 of
//! its id read as a big-endian integer. A record's part therefore depends only on its id and
//! the number of parts: not on its position in the file, on the other records, or on the
//! thread count. Within a part, records are processed in input order.

use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Part `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// This part (0-based).
    pub index: usize,
    /// Parts in all.
    pub count: usize,
}

/// The part of `count` that the record with id `id` belongs to.
///
/// ```
/// use qa_stage::shard::part_of;
/// assert_eq!(part_of("any id", 1), 0);
/// assert!(part_of("56be4db0acb8001400a502ec", 7) < 7);
/// ```
pub fn part_of(id: &str, count: usize) -> usize {
    let digest = Sha256::digest(id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % count.max(1) as u64) as usize
}

impl Shard {
    /// The whole input as one part.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// A part, checked: `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= index < count"));
        }
        Ok(Shard { index, count })
    }

    /// Whether the record with id `id` belongs to this part.
    pub fn owns(&self, id: &str) -> bool {
        part_of(id, self.count) == self.index
    }

    /// This process's part as the cluster engine running it says: a Slurm array task
    /// (`SLURM_ARRAY_TASK_ID`), or a Kubernetes Indexed Job pod (`JOB_COMPLETION_INDEX`); `var`
    /// looks up an environment variable.
    ///
    /// The index is the task's own, so a resubmitted task (`sbatch --array=3`) does the same
    /// part as before. The count is `count` (the `--shard-count` flag); without it, a Slurm
    /// array must be exactly `0-(n-1)` and gives `n` (`SLURM_ARRAY_TASK_COUNT`), and a
    /// Kubernetes pod cannot know it (Kubernetes does not tell a pod its completions count).
    pub fn from_engine(
        var: impl Fn(&str) -> Option<String>,
        count: Option<usize>,
    ) -> Result<Shard, String> {
        let number = |name: &str| -> Result<Option<usize>, String> {
            var(name)
                .map(|value| {
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|e| format!("{name}={value:?} is not a number: {e}"))
                })
                .transpose()
        };
        if let Some(task) = number("SLURM_ARRAY_TASK_ID")? {
            let count = match count {
                Some(count) => count,
                None => {
                    let tasks = number("SLURM_ARRAY_TASK_COUNT")?.unwrap_or(0);
                    let first = number("SLURM_ARRAY_TASK_MIN")?;
                    let last = number("SLURM_ARRAY_TASK_MAX")?;
                    if tasks == 0 || first != Some(0) || last != Some(tasks - 1) {
                        return Err(format!(
                            "Slurm array task {task}: without --shard-count the array must be \
                             0-(n-1), every shard one task (a resubmitted single task, e.g. \
                             --array={task}, needs --shard-count)"
                        ));
                    }
                    tasks
                }
            };
            return Shard::new(task, count)
                .map_err(|e| format!("{e}: Slurm array task {task} (arrays count shards from 0)"));
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = count.ok_or(
                "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but the number of \
                 shards is not: pass it as the job's completions count (--shard-count)",
            )?;
            return Shard::new(index, count);
        }
        Err(
            "--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm array job) nor \
             JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; run under one of them or \
             give --shard i/n"
                .to_string(),
        )
    }
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `i/n`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?}: a shard is written i/n, e.g. 0/3"))?;
        let parse = |part: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|e| format!("{text:?}: {e}"))
        };
        Shard::new(parse(index)?, parse(count)?).map_err(|e| format!("{text:?}: {e}"))
    }
}

/// A `--shard` argument: a fixed part, or `auto` (the cluster engine's, see
/// [`Shard::from_engine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// `i/n`.
    Fixed(Shard),
    /// `auto`.
    Auto,
}

impl ShardSpec {
    /// The part this process does for the flags `--shard` (`spec`) and `--shard-count`
    /// (`count`): the whole input without `--shard`, the fixed part, or the engine's from the
    /// environment.
    pub fn resolve(spec: Option<ShardSpec>, count: Option<usize>) -> Result<Shard, String> {
        match spec {
            None => Ok(Shard::WHOLE),
            Some(ShardSpec::Fixed(shard)) => Ok(shard),
            Some(ShardSpec::Auto) => Shard::from_engine(|name| std::env::var(name).ok(), count),
        }
    }
}

impl FromStr for ShardSpec {
    type Err = String;

    /// Parses `auto` or `i/n`.
    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim() == "auto" {
            return Ok(ShardSpec::Auto);
        }
        text.parse().map(ShardSpec::Fixed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn ids() -> Vec<String> {
        (0..500)
            .map(|i| format!("5733be284776f4190066{i:04x}"))
            .collect()
    }

    #[test]
    fn every_record_is_in_exactly_one_part() {
        for count in 1..=7 {
            let shards: Vec<Shard> = (0..count)
                .map(|i| Shard::new(i, count).expect("valid"))
                .collect();
            let mut sizes = vec![0usize; count];
            for id in ids() {
                let owners: Vec<usize> = shards
                    .iter()
                    .filter(|s| s.owns(&id))
                    .map(|s| s.index)
                    .collect();
                assert_eq!(owners.len(), 1, "{id} with {count} shards");
                sizes[owners[0]] += 1;
            }
            // A hash spreads ids evenly enough that no part is empty or double-sized.
            let even = 500 / count;
            assert!(
                sizes.iter().all(|&s| s > even / 2 && s < even * 2),
                "{count}: {sizes:?}"
            );
        }
    }

    #[test]
    fn the_rule_is_fixed() {
        // Values from Python's hashlib: the parts of one run may be processed by different
        // builds, so the rule must never change.
        let expected = [
            ("s0", 2, 0),
            ("s1", 0, 3),
            ("s2", 1, 2),
            ("56be4db0acb8001400a502ec", 2, 3),
            ("5733be284776f41900661182", 0, 3),
        ];
        for (id, of3, of7) in expected {
            assert_eq!((part_of(id, 3), part_of(id, 7)), (of3, of7), "{id}");
        }
    }

    #[test]
    fn specs_parse() {
        assert_eq!("auto".parse::<ShardSpec>(), Ok(ShardSpec::Auto));
        assert_eq!(
            "1/3".parse::<ShardSpec>(),
            Ok(ShardSpec::Fixed(Shard { index: 1, count: 3 }))
        );
        for bad in ["3/3", "1/0", "1", "a/b", "automatic"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn slurm_arrays_give_their_task() {
        let array = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(
            Shard::from_engine(&array, None),
            Ok(Shard { index: 2, count: 3 })
        );
        assert_eq!(
            Shard::from_engine(&array, Some(3)),
            Ok(Shard { index: 2, count: 3 })
        );
        assert!(
            Shard::from_engine(&array, Some(2)).is_err(),
            "task 2 of 2 shards"
        );
        // A resubmitted task (--array=1) is alone in its array: the count must be given.
        let again = env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ]);
        assert_eq!(
            Shard::from_engine(&again, Some(3)),
            Ok(Shard { index: 1, count: 3 })
        );
        let error = Shard::from_engine(&again, None).expect_err("count unknown");
        assert!(error.contains("--shard-count"), "{error}");
        // --array=0-10:5 (tasks 0, 5, 10): not every shard a task.
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        let error = Shard::from_engine(&stepped, None).expect_err("gap");
        assert!(error.contains("0-(n-1)"), "{error}");
    }

    #[test]
    fn kubernetes_indexed_jobs_give_their_index_with_a_count() {
        let pod = env(&[("JOB_COMPLETION_INDEX", "4")]);
        assert_eq!(
            Shard::from_engine(&pod, Some(5)),
            Ok(Shard { index: 4, count: 5 })
        );
        let error = Shard::from_engine(&pod, None).expect_err("no count");
        assert!(error.contains("--shard-count"), "{error}");
        assert!(Shard::from_engine(&pod, Some(4)).is_err());
    }

    #[test]
    fn without_an_engine_auto_says_what_is_missing() {
        let error = Shard::from_engine(env(&[]), Some(3)).expect_err("no engine");
        assert!(
            error.contains("SLURM_ARRAY_TASK_ID") && error.contains("JOB_COMPLETION_INDEX"),
            "{error}"
        );
        let error = Shard::from_engine(env(&[("SLURM_ARRAY_TASK_ID", "x")]), None)
            .expect_err("not a number");
        assert!(error.contains("not a number"), "{error}");
    }
}
