//! Deterministic train / validation / test splits, sampled by article.
//!
//! Sampling whole articles (not single questions) keeps every context in one split only: SQuAD
//! asks several questions about each paragraph, and a paragraph seen in training would make its
//! test questions easy. Articles are shuffled with a seeded ChaCha8 generator and taken in turn;
//! when a split is nearly full, only the questions it still needs are taken from the current
//! article (in document order) and the rest of that article is left unused, so that it cannot
//! reach the next split.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::squad::SquadFile;
use qa_data::QaRecord;

/// How many examples each split gets, and the seed that picks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Training examples, from the SQuAD train file.
    pub train: usize,
    /// Validation examples, from the SQuAD train file (articles disjoint from training).
    pub val: usize,
    /// Test examples, from the SQuAD dev file, with all their gold answers.
    pub test: usize,
    /// Seed of the article shuffles.
    pub seed: u64,
}

/// The three splits, each in sampling order.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// Training records.
    pub train: Vec<QaRecord>,
    /// Validation records.
    pub val: Vec<QaRecord>,
    /// Test records.
    pub test: Vec<QaRecord>,
}

/// Random streams of the seeded generator: one per source file, so that changing the test
/// size never changes which training examples are drawn.
const TRAIN_FILE_STREAM: u64 = 0;
const TEST_FILE_STREAM: u64 = 1;

/// Samples the splits: train and validation from `train_file`, test from `test_file`.
///
/// Fails with [`Error::NotEnough`] when a file cannot supply what is asked, and checks that no
/// id and no context ends up in two splits.
pub fn split(train_file: &SquadFile, test_file: &SquadFile, sizes: &SplitSizes) -> Result<Splits> {
    let mut from_train = sample_by_article(
        train_file,
        &[("training", sizes.train), ("validation", sizes.val)],
        sizes.seed,
        TRAIN_FILE_STREAM,
    )?;
    let mut from_test = sample_by_article(
        test_file,
        &[("test", sizes.test)],
        sizes.seed,
        TEST_FILE_STREAM,
    )?;
    let splits = Splits {
        test: from_test.remove(0),
        val: from_train.remove(1),
        train: from_train.remove(0),
    };
    check_disjoint(&splits)?;
    Ok(splits)
}

/// Fills each `(name, size)` split in turn from the shuffled articles of `file`.
fn sample_by_article(
    file: &SquadFile,
    wanted: &[(&str, usize)],
    seed: u64,
    stream: u64,
) -> Result<Vec<Vec<QaRecord>>> {
    let available = file.question_count();
    let requested: usize = wanted.iter().map(|(_, size)| size).sum();
    let names = wanted
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(" + ");
    if requested > available {
        return Err(Error::NotEnough {
            split: names,
            requested,
            available,
            path: file.path.clone(),
            hint: "; lower the split sizes in the config, or use a larger input file (the full \
                   SQuAD v1.1 train set, train-v1.1.json, has 87,599 questions)"
                .into(),
        });
    }

    let mut order: Vec<usize> = (0..file.articles.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    order.shuffle(&mut rng);

    let mut articles = order.into_iter().map(|i| &file.articles[i]);
    let mut splits = Vec::with_capacity(wanted.len());
    for &(_, size) in wanted {
        let mut records = Vec::with_capacity(size);
        while records.len() < size {
            let Some(article) = articles.next() else {
                return Err(Error::NotEnough {
                    split: names,
                    requested,
                    available,
                    path: file.path.clone(),
                    hint: "; sampling by article leaves the rest of a partly used article out of \
                           every split, so a little less than the total can be drawn: lower the \
                           split sizes"
                        .into(),
                });
            };
            let take = (size - records.len()).min(article.records.len());
            records.extend_from_slice(&article.records[..take]);
        }
        splits.push(records);
    }
    Ok(splits)
}

/// Checks that no id and no context appears in two splits.
fn check_disjoint(splits: &Splits) -> Result<()> {
    let named = [
        ("training", &splits.train),
        ("validation", &splits.val),
        ("test", &splits.test),
    ];
    let mut ids: HashMap<&str, &str> = HashMap::new();
    let mut contexts: HashMap<&str, &str> = HashMap::new();
    for (name, records) in named {
        for record in records {
            if let Some(first) = ids.insert(&record.id, name) {
                return Err(qa_data::Error::DuplicateId {
                    path: "splits".into(),
                    id: record.id.clone(),
                    first: format!("the {first} split"),
                    second: format!("the {name} split"),
                }
                .into());
            }
            if let Some(&first) = contexts.get(record.context.as_str())
                && first != name
            {
                return Err(Error::ContextLeak {
                    id: record.id.clone(),
                    first: first.to_string(),
                    second: name.to_string(),
                });
            }
            contexts.insert(&record.context, name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::squad::Article;
    use qa_data::Source;

    /// `articles` articles of `per_article` questions, two questions per paragraph.
    fn file(name: &str, articles: usize, per_article: usize) -> SquadFile {
        SquadFile {
            path: name.into(),
            version: None,
            articles: (0..articles)
                .map(|a| Article {
                    title: format!("{name}-{a}"),
                    records: (0..per_article)
                        .map(|q| QaRecord {
                            id: format!("{name}-{a}-{q}"),
                            question: format!("question {q}?"),
                            context: format!("{name} article {a} paragraph {}", q / 2),
                            answers: vec!["article".into()],
                            source: Source::Human,
                            provenance: None,
                        })
                        .collect(),
                })
                .collect(),
            skipped_unanswerable: 0,
            rejected: Vec::new(),
        }
    }

    fn sizes(train: usize, val: usize, test: usize, seed: u64) -> SplitSizes {
        SplitSizes {
            train,
            val,
            test,
            seed,
        }
    }

    #[test]
    fn exact_sizes_disjoint_and_deterministic() {
        let (train, dev) = (file("train", 30, 7), file("dev", 10, 9));
        let a = split(&train, &dev, &sizes(100, 20, 50, 7)).expect("split");
        assert_eq!((a.train.len(), a.val.len(), a.test.len()), (100, 20, 50));
        assert_eq!(
            a,
            split(&train, &dev, &sizes(100, 20, 50, 7)).expect("split")
        );
        assert_ne!(
            a.train,
            split(&train, &dev, &sizes(100, 20, 50, 8))
                .expect("split")
                .train
        );
    }

    #[test]
    fn test_size_does_not_change_training_draw() {
        let (train, dev) = (file("train", 30, 7), file("dev", 10, 9));
        let a = split(&train, &dev, &sizes(100, 20, 50, 3)).expect("split");
        let b = split(&train, &dev, &sizes(100, 20, 80, 3)).expect("split");
        assert_eq!(a.train, b.train);
        assert_eq!(a.val, b.val);
    }

    #[test]
    fn asking_for_too_much_is_a_clear_error() {
        let (train, dev) = (file("train", 3, 5), file("dev", 2, 5));
        let err = split(&train, &dev, &sizes(20, 1, 5, 0)).expect_err("too many");
        match &err {
            Error::NotEnough {
                requested,
                available,
                ..
            } => {
                assert_eq!((*requested, *available), (21, 15));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("train"), "{err}");
        // 15 in total, but a partly used article is lost to the next split.
        let err = split(&train, &dev, &sizes(12, 3, 5, 0)).expect_err("lost remainder");
        assert!(matches!(err, Error::NotEnough { .. }), "{err:?}");
    }

    #[test]
    fn a_context_in_two_splits_is_refused() {
        let train = file("train", 4, 4);
        let mut dev = file("dev", 1, 4);
        dev.articles[0].records[0].context = train.articles[2].records[0].context.clone();
        let err = split(&train, &dev, &sizes(16, 0, 4, 1)).expect_err("leak");
        assert!(matches!(err, Error::ContextLeak { .. }), "{err:?}");
    }
}
