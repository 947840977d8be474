//! Records that a stage refused, kept with the reason so that nothing is dropped silently.

use serde::{Deserialize, Serialize};

/// One refused record, as written to a stage's `rejected.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// The record's id, when it has one.
    pub id: Option<String>,
    /// The file the record came from.
    pub file: String,
    /// Where in that file: a JSON path such as `data[3].paragraphs[0].qas[2]`, or `line 17`.
    pub location: String,
    /// The field that failed the check.
    pub field: String,
    /// The reader or filter that refused the record (e.g. `squad-reader`).
    pub rejected_by: String,
    /// Why, in words.
    pub reason: String,
    /// The refused record itself, as it was read.
    pub record: serde_json::Value,
}
