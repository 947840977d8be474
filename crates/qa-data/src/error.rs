//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing QA data.
///
/// Every variant names the file it concerns and, where it makes sense, the line (or JSON path)
/// and the field, so that a user can go straight to the bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused a read or write.
    // The reason is in the message and not also a `source()`: an error chain printed whole
    // (`{:#}`) would say it twice.
    #[error("{path}: {reason}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        reason: std::io::Error,
    },
    /// The file contains no records at all.
    #[error("{path}: the file is empty")]
    Empty {
        /// The empty file.
        path: PathBuf,
    },
    /// The file contains bytes that are not UTF-8.
    #[error("{path}: line {line}: not valid UTF-8 (byte offset {offset} in the file)")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line holding the first invalid byte.
        line: usize,
        /// Byte offset of the first invalid byte from the start of the file.
        offset: u64,
    },
    /// The JSON ends before it is complete: the file was cut short.
    #[error("{path}: line {line}, column {column}: truncated JSON (the input ends mid-value)")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// 1-based line where the input ended.
        line: usize,
        /// 1-based column where the input ended.
        column: usize,
    },
    /// The text is not JSON.
    #[error("{path}: line {line}, column {column}: not JSON: {message}")]
    NotJson {
        /// The file.
        path: PathBuf,
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// The JSON is well formed but a field is missing or has the wrong type.
    #[error("{path}: line {line}: field `{field}`: {message}")]
    InvalidField {
        /// The file.
        path: PathBuf,
        /// 1-based line of the record (for a JSONL file) or of the value (for a JSON file).
        line: usize,
        /// Path of the offending field inside the record, e.g. `data[3].paragraphs[0].context`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Two records share an id, so the data set is ambiguous.
    #[error("{path}: duplicate id `{id}` at {second} (first seen at {first})")]
    DuplicateId {
        /// The file holding the second occurrence.
        path: PathBuf,
        /// The repeated id.
        id: String,
        /// Where the id first occurred (file and record).
        first: String,
        /// Where it occurred again.
        second: String,
    },
    /// The file's name does not say which of the supported formats it is in.
    #[error("{path}: unknown file format: expected {expected}")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The formats that are understood.
        expected: &'static str,
    },
    /// A prompt template is malformed.
    #[error("prompt template {0}")]
    Template(String),
    /// A value could not be serialised for writing.
    #[error("{path}: cannot serialise record: {reason}")]
    Serialize {
        /// The file being written.
        path: PathBuf,
        /// The serialiser's error.
        reason: serde_json::Error,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, reason: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            reason,
        }
    }

    /// Classifies a `serde_json` error met while parsing `path` at `line` and `column` of the
    /// file (the caller knows them: a JSONL line is parsed alone): cut-off input, bad syntax or
    /// a bad field.
    pub(crate) fn from_json(
        path: &std::path::Path,
        line: usize,
        column: usize,
        field: String,
        err: &serde_json::Error,
    ) -> Self {
        let path = path.to_path_buf();
        match err.classify() {
            serde_json::error::Category::Eof => Error::Truncated { path, line, column },
            serde_json::error::Category::Syntax => Error::NotJson {
                path,
                line,
                column,
                message: strip_position(err),
            },
            serde_json::error::Category::Data | serde_json::error::Category::Io => {
                Error::InvalidField {
                    path,
                    line,
                    field,
                    message: strip_position(err),
                }
            }
        }
    }
}

/// `serde_json` appends " at line L column C" to its messages; we report the position ourselves.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary prints an error with its chain (`{:#}`): the operating system's reason must
    /// appear once, so it is in the message and not also the source.
    #[test]
    fn an_io_error_says_its_reason_once() {
        let reason = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = Error::io("data/test.jsonl", reason);
        assert_eq!(error.to_string(), "data/test.jsonl: no such file");
        assert!(std::error::Error::source(&error).is_none());
    }
}
