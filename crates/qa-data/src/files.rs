//! Files: streaming JSON Lines and whole-JSON reading that report file, line and field on bad
//! input, atomic whole-file writes, an appending writer for resumable stages, and checksums.
//!
//! Reading is a loop over [`BufRead::read_until`] rather than `serde_jsonlines`' reader because
//! errors must name the line and the field (through `serde_path_to_error`), which that reader
//! does not track. Writing goes through `serde_jsonlines`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_jsonlines::JsonLinesWriter;

use crate::error::{Error, Result};

/// Streams the records of a JSONL file one line at a time (never the whole file in memory).
///
/// Yields `(line_number, record)` with 1-based line numbers. Blank lines are skipped. After the
/// first error the iterator ends.
pub struct JsonlReader<T> {
    path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    line: usize,
    offset: u64,
    failed: bool,
    record: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JsonlReader<T> {
    /// Opens `path` for reading.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        Ok(JsonlReader {
            path,
            reader: BufReader::with_capacity(1 << 16, file),
            buf: Vec::new(),
            line: 0,
            offset: 0,
            failed: false,
            record: PhantomData,
        })
    }

    fn read_next(&mut self) -> Result<Option<(usize, T)>> {
        loop {
            self.buf.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| Error::io(&self.path, e))?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            let line_start = self.offset;
            self.offset += read as u64;
            let text = std::str::from_utf8(&self.buf).map_err(|e| Error::NotUtf8 {
                path: self.path.clone(),
                line: self.line,
                offset: line_start + e.valid_up_to() as u64,
            })?;
            let text = without_line_end(text);
            if text.trim().is_empty() {
                continue;
            }
            let mut de = serde_json::Deserializer::from_str(text);
            let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let field = field_name(e.path(), "<record>");
                line_error(&self.path, self.line, field, e.inner())
            })?;
            // A line must hold exactly one value: `{…} {…}` is two records glued together.
            de.end()
                .map_err(|e| line_error(&self.path, self.line, "<record>".into(), &e))?;
            return Ok(Some((self.line, value)));
        }
    }
}

impl<T: DeserializeOwned> Iterator for JsonlReader<T> {
    type Item = Result<(usize, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.read_next() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// A JSONL line without its `\n` or `\r\n`: with it, a line cut short inside a string would
/// parse as a string holding a control character on the next line.
fn without_line_end(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// The error of `err`, met parsing line `line` of the JSONL file `path` alone. The line is the
/// reader's count, not the parser's: an error a type's own check raises after parsing (a
/// `try_from`) carries no position (line 0 to the parser).
fn line_error(path: &Path, line: usize, field: String, err: &serde_json::Error) -> Error {
    let column = if err.line() == 1 { err.column() } else { 0 };
    Error::from_json(path, line, column, field, err)
}

/// Names a field for an error message: its JSON path, or `root` for the value as a whole.
fn field_name(path: &serde_path_to_error::Path, root: &str) -> String {
    let text = path.to_string();
    if text == "." { root.to_string() } else { text }
}

/// `path`, when it is a file; otherwise a not-found error naming it and saying why it was
/// expected there.
pub fn existing_file(path: PathBuf, expected_because: &str) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path);
    }
    let missing = io::Error::new(io::ErrorKind::NotFound, expected_because.to_string());
    Err(Error::io(path, missing))
}

/// Reads a whole JSON file (a SQuAD file, a manifest, a metrics file) into `T`.
///
/// Errors name the file, the line and column, and the JSON path of a bad field.
pub fn read_json<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let offset = e.valid_up_to();
        Error::NotUtf8 {
            path: path.to_path_buf(),
            line: 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count(),
            offset: offset as u64,
        }
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let (field, e) = (field_name(e.path(), "<top level>"), e.inner());
        Error::from_json(path, e.line(), e.column(), field, e)
    })?;
    de.end()
        .map_err(|e| Error::from_json(path, e.line(), e.column(), "<top level>".into(), &e))?;
    Ok(value)
}

/// Reads every record of a JSONL file; an empty file (no records) is an error.
pub fn read_jsonl<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Vec<T>> {
    let path = path.as_ref();
    non_empty(path, read_records(path)?)
}

/// `records`, read from `path`, unless there are none: an empty file is an error.
fn non_empty<T>(path: &Path, records: Vec<T>) -> Result<Vec<T>> {
    match records.is_empty() {
        true => Err(Error::Empty {
            path: path.to_path_buf(),
        }),
        false => Ok(records),
    }
}

/// A record whose id keys results wherever it goes (a question: its answers, predictions and
/// scores are found by it).
pub trait Keyed {
    /// The id.
    fn id(&self) -> &str;
}

/// The ids met so far in one file, each with the line it was on: a repeat is refused.
#[derive(Debug, Default)]
pub struct UniqueIds {
    lines: HashMap<String, usize>,
}

impl UniqueIds {
    /// Notes that `id` is on line `line` of `path`; an error naming the file, both lines and
    /// the id when an earlier line had it.
    pub fn insert(&mut self, path: &Path, id: &str, line: usize) -> Result<()> {
        match self.lines.get(id) {
            Some(&first) => Err(Error::DuplicateId {
                path: path.to_path_buf(),
                id: id.to_string(),
                first: format!("line {first}"),
                second: format!("line {line}"),
            }),
            None => {
                self.lines.insert(id.to_string(), line);
                Ok(())
            }
        }
    }
}

/// Reads every record of a JSONL file whose ids key results (gold questions, training records,
/// seeds, a filter's input), as [`read_jsonl`] does; an id on two lines is an error naming the
/// file, both lines and the id, since one of the two would count twice or be lost.
pub fn read_keyed_jsonl<T: DeserializeOwned + Keyed>(path: impl AsRef<Path>) -> Result<Vec<T>> {
    let path = path.as_ref();
    let mut ids = UniqueIds::default();
    let mut records = Vec::new();
    for item in JsonlReader::<T>::open(path)? {
        let (line, record) = item?;
        ids.insert(path, record.id(), line)?;
        records.push(record);
    }
    non_empty(path, records)
}

/// The records already in the file a resumable stage appends to (see [`JsonlAppender`]):
/// none when the file is missing or empty, which is how a fresh run finds it.
pub fn read_appended<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Vec<T>> {
    let path = path.as_ref();
    if !path.exists() {
        return Ok(Vec::new());
    }
    read_records(path)
}

fn read_records<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    JsonlReader::open(path)?
        .map(|item| item.map(|(_, record)| record))
        .collect()
}

/// Writes a file atomically: `write` fills a temporary file in the same directory, which is
/// flushed, synced and renamed over `path` only if `write` succeeds. If `write` fails or panics,
/// or the process dies, the previous content of `path` is left untouched and the temporary
/// file is removed (or, after a kill, left as an ignored `.tmp*` file).
pub fn write_atomic<F>(path: impl AsRef<Path>, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
{
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    // Temporary files are private (0600) by default; the result is an ordinary output file,
    // so ask for the usual 0666 and let the umask decide, as a plain `File::create` would.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut temp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    {
        let mut writer = BufWriter::with_capacity(1 << 16, temp.as_file_mut());
        write(&mut writer)?;
        writer.flush().map_err(|e| Error::io(path, e))?;
    }
    temp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    temp.persist(path).map_err(|e| Error::io(path, e.error))?;
    // Make the rename itself durable. Some file systems refuse to sync a directory; the data
    // is already safe then, so that refusal is not an error.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to `path`, atomically (see [`write_atomic`]).
pub fn write_bytes_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    write_atomic(path, |out| {
        out.write_all(bytes).map_err(|e| Error::io(path, e))
    })
}

/// Writes `records` as JSONL, atomically (see [`write_atomic`]). Returns the number written.
pub fn write_jsonl_atomic<T, I>(path: impl AsRef<Path>, records: I) -> Result<usize>
where
    T: Serialize,
    I: IntoIterator<Item = T>,
{
    let path = path.as_ref();
    let mut count = 0;
    write_atomic(path, |out| {
        let mut writer = JsonLinesWriter::new(out);
        for record in records {
            writer.write(&record).map_err(|e| write_error(path, e))?;
            count += 1;
        }
        writer.flush().map_err(|e| Error::io(path, e))
    })?;
    Ok(count)
}

/// Writes one value as pretty-printed JSON with a final newline, atomically.
pub fn write_json_atomic<T: Serialize>(path: impl AsRef<Path>, value: &T) -> Result<()> {
    let path = path.as_ref();
    write_atomic(path, |out| {
        serde_json::to_writer_pretty(&mut *out, value).map_err(|e| Error::Serialize {
            path: path.to_path_buf(),
            reason: e,
        })?;
        out.write_all(b"\n").map_err(|e| Error::io(path, e))
    })
}

/// `serde_jsonlines` reports serialisation failures as `io::Error`s wrapping the JSON error.
fn write_error(path: &Path, err: io::Error) -> Error {
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<serde_json::Error>())
    {
        let reason = err
            .into_inner()
            .and_then(|inner| inner.downcast::<serde_json::Error>().ok())
            .map(|boxed| *boxed);
        if let Some(reason) = reason {
            return Error::Serialize {
                path: path.to_path_buf(),
                reason,
            };
        }
        return Error::io(path, io::Error::other("serialisation failed"));
    }
    Error::io(path, err)
}

/// What [`JsonlAppender::open`] found in an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Complete lines (records) already in the file.
    pub complete_lines: usize,
    /// Bytes of a torn last line (a write cut off by a crash) that were removed.
    pub dropped_bytes: u64,
}

/// Appends records to a JSONL file one at a time, flushing each, so that a long stage killed at
/// any moment loses at most the record it was writing.
///
/// Opening an existing file checks its tail: a last line without its newline is the trace of a
/// write cut off by a crash, and is truncated away (reported in [`Recovery`]).
pub struct JsonlAppender {
    path: PathBuf,
    writer: JsonLinesWriter<BufWriter<File>>,
    written: usize,
}

impl JsonlAppender {
    /// Opens `path` for appending (creating it and its directory if needed), after recovering
    /// from a torn last line. The last complete line must still be valid JSON: anything else is
    /// damage that truncation cannot explain, and is an error rather than silently dropped.
    pub fn open(path: impl AsRef<Path>) -> Result<(Self, Recovery)> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let recovery = recover_tail(&path, &mut file)?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| Error::io(&path, e))?;
        Ok((
            JsonlAppender {
                path,
                writer: JsonLinesWriter::new(BufWriter::new(file)),
                written: 0,
            },
            recovery,
        ))
    }

    /// Appends one record and flushes it to the operating system.
    pub fn append<T: Serialize>(&mut self, record: &T) -> Result<()> {
        self.writer
            .write(record)
            .map_err(|e| write_error(&self.path, e))?;
        self.writer.flush().map_err(|e| Error::io(&self.path, e))?;
        self.written += 1;
        Ok(())
    }

    /// Forces what was appended so far onto the disk (fsync); call it at checkpoints.
    pub fn sync(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| Error::io(&self.path, e))?;
        self.writer
            .get_ref()
            .get_ref()
            .sync_data()
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Records appended through this writer (not counting those recovered from the file).
    pub fn written(&self) -> usize {
        self.written
    }
}

/// Counts the complete lines of `file` and truncates a torn last line.
fn recover_tail(path: &Path, file: &mut File) -> Result<Recovery> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 16, &mut *file);
    let mut complete_lines = 0;
    let mut end_of_last_line = 0u64;
    let mut position = 0u64;
    let mut last_line = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        if read == 0 {
            break;
        }
        position += read as u64;
        if line.ends_with(b"\n") {
            complete_lines += 1;
            end_of_last_line = position;
            std::mem::swap(&mut last_line, &mut line);
        }
    }
    drop(reader);
    if !last_line.iter().all(u8::is_ascii_whitespace) {
        let text = last_line.strip_suffix(b"\n").unwrap_or(&last_line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let mut de = serde_json::Deserializer::from_slice(text);
        <serde::de::IgnoredAny as serde::Deserialize>::deserialize(&mut de)
            .and_then(|_| de.end())
            .map_err(|e| line_error(path, complete_lines, "<record>".into(), &e))?;
    }
    let dropped_bytes = len - end_of_last_line;
    if dropped_bytes > 0 {
        tracing::warn!(
            path = %path.display(),
            dropped_bytes,
            "removing a torn last line left by an interrupted write"
        );
        file.set_len(end_of_last_line)
            .map_err(|e| Error::io(path, e))?;
        file.sync_data().map_err(|e| Error::io(path, e))?;
    }
    Ok(Recovery {
        complete_lines,
        dropped_bytes,
    })
}

/// Streams a file through SHA-256 and returns the lowercase hex digest.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String> {
    use sha2::{Digest, Sha256};
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
    }
    Ok(lowercase_hex(&hasher.finalize()))
}

/// The SHA-256 of `bytes`, as lowercase hex (as [`sha256_file`] gives it).
pub fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    lowercase_hex(&Sha256::digest(bytes))
}

fn lowercase_hex(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::QaRecord;
    fn record_line(id: &str) -> String {
        format!(
            r#"{{"id":"{id}","question":"Who ran?","context":"Ann ran.","answers":["Ann"],"source":"human"}}"#
        )
    }

    #[test]
    fn reader_names_line_and_field_of_a_bad_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("records.jsonl");
        let bad = r#"{"id":"q2","question":7,"context":"c","answers":["a"],"source":"human"}"#;
        fs::write(&path, format!("{}\n\n{bad}\n", record_line("q1"))).expect("write");
        let items: Vec<_> = JsonlReader::<QaRecord>::open(&path)
            .expect("open")
            .collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().expect("first is fine").0, 1);
        match &items[1] {
            Err(Error::InvalidField { line, field, .. }) => {
                assert_eq!(*line, 3);
                assert_eq!(field, "question");
            }
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    #[test]
    fn reader_reports_truncation_non_json_non_utf8_and_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cases: [(&str, Vec<u8>); 4] = [
            (
                "truncated",
                format!("{}\n{{\"id\":\"q2\",\"quest", record_line("q1")).into_bytes(),
            ),
            (
                "not json",
                format!("{}\nhello world\n", record_line("q1")).into_bytes(),
            ),
            (
                "non utf8",
                [record_line("q1").as_bytes(), b"\n{\"id\":\"\xff\"}\n"].concat(),
            ),
            ("empty", Vec::new()),
        ];
        for (name, bytes) in cases {
            let path = dir.path().join(format!("{name}.jsonl"));
            fs::write(&path, bytes).expect("write");
            let err = read_jsonl::<QaRecord>(&path).expect_err(name);
            match (name, &err) {
                ("truncated", Error::Truncated { line: 2, .. })
                | ("not json", Error::NotJson { line: 2, .. })
                | ("non utf8", Error::NotUtf8 { line: 2, .. })
                | ("empty", Error::Empty { .. }) => {}
                _ => panic!("{name}: unexpected error {err:?}"),
            }
            assert!(err.to_string().contains(&format!("{name}.jsonl")), "{err}");
        }
    }

    /// Five lines, the fifth `fifth`, with `end` after each and a blank third line.
    fn five_lines(fifth: &str, end: &str) -> String {
        let lines = [
            record_line("q1"),
            record_line("q2"),
            String::new(),
            record_line("q4"),
        ];
        lines
            .iter()
            .map(|line| format!("{line}{end}"))
            .collect::<String>()
            + fifth
            + end
    }

    #[test]
    fn errors_name_the_line_they_are_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cut_short = &record_line("q5")[..30];
        let no_answers =
            r#"{"id":"q5","question":"Who?","context":"Ann ran.","answers":[],"source":"human"}"#;
        let bad_field =
            r#"{"id":"q5","question":7,"context":"c","answers":["a"],"source":"human"}"#;
        let huge = format!(
            r#"{{"id":"q0","question":"Who?","context":"{}","answers":["a"],"source":"human"}}"#,
            "x".repeat(32 << 20)
        );
        // (file, text, what the error must be): each written out by hand.
        type Expected = fn(&Error) -> bool;
        let cases: Vec<(&str, String, Expected)> = vec![
            ("cut_line5", five_lines(cut_short, "\n"), |e| {
                matches!(
                    e,
                    Error::Truncated {
                        line: 5,
                        column: 30,
                        ..
                    }
                )
            }),
            ("cut_line5_crlf", five_lines(cut_short, "\r\n"), |e| {
                matches!(e, Error::Truncated { line: 5, .. })
            }),
            ("no_answers_line5", five_lines(no_answers, "\n"), |e| {
                matches!(e, Error::InvalidField { line: 5, .. })
            }),
            (
                "bad_field_line5",
                five_lines(bad_field, "\n"),
                |e| matches!(e, Error::InvalidField { line: 5, field, .. } if field == "question"),
            ),
            ("bad_field_line5_crlf", five_lines(bad_field, "\r\n"), |e| {
                matches!(e, Error::InvalidField { line: 5, .. })
            }),
            (
                "after_a_32_mib_line",
                format!("{huge}\n{bad_field}\n"),
                |e| matches!(e, Error::InvalidField { line: 2, .. }),
            ),
        ];
        for (name, text, expected) in cases {
            let path = dir.path().join(format!("{name}.jsonl"));
            fs::write(&path, text).expect("write");
            let err = read_jsonl::<QaRecord>(&path).expect_err(name);
            assert!(expected(&err), "{name}: {err:?}");
        }
        // CRLF endings read as LF ones do, and a 32 MiB line is read whole.
        let path = dir.path().join("crlf.jsonl");
        fs::write(&path, five_lines(&record_line("q5"), "\r\n")).expect("write");
        let lines: Vec<usize> = JsonlReader::<QaRecord>::open(&path)
            .expect("open")
            .map(|item| item.expect("a record").0)
            .collect();
        assert_eq!(lines, [1, 2, 4, 5]);
        let path = dir.path().join("huge.jsonl");
        fs::write(&path, format!("{huge}\n")).expect("write");
        let records = read_jsonl::<QaRecord>(&path).expect("a 32 MiB record");
        assert_eq!(records[0].context.len(), 32 << 20);
    }

    #[test]
    fn a_repeated_id_names_both_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("repeats.jsonl");
        let text = [
            record_line("q1"),
            record_line("q2"),
            String::new(),
            record_line("q1"),
        ]
        .join("\n");
        fs::write(&path, text + "\n").expect("write");
        let err = read_keyed_jsonl::<QaRecord>(&path).expect_err("q1 twice");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: duplicate id `q1` at line 4 (first seen at line 1)",
                path.display()
            )
        );
        // Read as plain records, the file is fine: the check is the keyed reader's.
        assert_eq!(read_jsonl::<QaRecord>(&path).expect("records").len(), 3);
    }

    #[test]
    fn two_values_on_one_line_are_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("glued.jsonl");
        fs::write(
            &path,
            format!("{} {}\n", record_line("a"), record_line("b")),
        )
        .expect("write");
        let err = read_jsonl::<QaRecord>(&path).expect_err("glued records");
        assert!(matches!(err, Error::NotJson { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn failed_atomic_write_leaves_previous_file_intact() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.jsonl");
        write_jsonl_atomic(&path, [1, 2, 3]).expect("first write");
        let before = fs::read(&path).expect("read");

        // A write that fails half-way through.
        let result = write_atomic(&path, |out| {
            out.write_all(b"partial\n").map_err(|e| Error::io("x", e))?;
            Err(Error::io("x", io::Error::other("interrupted on purpose")))
        });
        assert!(result.is_err());
        assert_eq!(fs::read(&path).expect("read"), before);

        // A write that panics half-way through (as a bug in a serialiser would).
        let panicked = std::panic::catch_unwind(|| {
            let _ = write_atomic(&path, |out| {
                out.write_all(&[b'x'; 200_000])
                    .map_err(|e| Error::io("x", e))?;
                panic!("serialiser bug");
            });
        });
        assert!(panicked.is_err());
        assert_eq!(fs::read(&path).expect("read"), before);

        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("out.jsonl")]);
    }

    #[test]
    fn appender_recovers_from_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("partial.jsonl");
        let torn = &record_line("q3")[..25];
        fs::write(
            &path,
            format!("{}\n{}\n{torn}", record_line("q1"), record_line("q2")),
        )
        .expect("write");

        let (mut appender, recovery) = JsonlAppender::open(&path).expect("open");
        assert_eq!(
            recovery,
            Recovery {
                complete_lines: 2,
                dropped_bytes: torn.len() as u64
            }
        );
        let record: QaRecord = serde_json::from_str(&record_line("q3")).expect("record");
        appender.append(&record).expect("append");
        appender.sync().expect("sync");
        drop(appender);

        let ids: Vec<String> = read_jsonl::<QaRecord>(&path)
            .expect("read back")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["q1", "q2", "q3"]);

        // Reopening a clean file changes nothing.
        let (_, recovery) = JsonlAppender::open(&path).expect("reopen");
        assert_eq!(
            recovery,
            Recovery {
                complete_lines: 3,
                dropped_bytes: 0
            }
        );
    }

    #[test]
    fn appender_names_the_line_of_a_damaged_last_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("damaged.jsonl");
        let cut = &record_line("q2")[..25];
        fs::write(&path, format!("{}\n{cut}\n", record_line("q1"))).expect("write");
        let err = JsonlAppender::open(&path)
            .map(|_| ())
            .expect_err("a damaged line");
        assert!(
            matches!(
                err,
                Error::Truncated {
                    line: 2,
                    column: 25,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn appender_refuses_a_corrupt_complete_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("corrupt.jsonl");
        fs::write(&path, format!("{}\n{{\"id\": garbage\n", record_line("q1"))).expect("write");
        let err = JsonlAppender::open(&path)
            .err()
            .expect("corrupt line is refused");
        assert!(matches!(err, Error::NotJson { line: 2, .. }), "{err:?}");
        // Nothing was removed.
        assert!(fs::read_to_string(&path).expect("read").contains("garbage"));
    }

    #[test]
    fn reads_the_python_experiments_legacy_files() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/legacy/python_seed.jsonl");
        let records = read_jsonl::<QaRecord>(&path).expect("legacy file reads");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].answers, ["Denver Broncos"]);
        assert_eq!(records[1].source, crate::Source::AiContaminated);
        assert_eq!(
            records[1].answer(),
            "The Denver Broncos represented the AFC."
        );
    }

    #[test]
    fn sha256_matches_known_digest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("abc");
        fs::write(&path, b"abc").expect("write");
        assert_eq!(
            sha256_file(&path).expect("hash"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
