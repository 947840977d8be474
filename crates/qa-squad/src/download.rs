//! Source files fetched on first use (the `download` feature): a SQuAD file that is not on disk
//! is downloaded from its official location into the place the config names, checked as SQuAD
//! before it is moved there, and never half-written. Offline, the error says which file is
//! missing, where it is looked for and where it comes from.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::squad::read_squad;
use qa_data::files::{existing_file, write_atomic};

/// What [`fetch_squad`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The file was already there; nothing was downloaded.
    Present,
    /// The file was downloaded and checked: this many bytes.
    Downloaded(u64),
}

/// Makes sure the SQuAD file `path` exists: when it does not, downloads it from `url` (a
/// missing `url` is an error saying where to put the file), reports progress as
/// `(bytes so far, total if known)`, checks that it reads as SQuAD, and only then moves it to
/// `path`. `setting` names the config key of the URL, for the error messages.
pub fn fetch_squad(
    path: &Path,
    url: Option<&str>,
    setting: &str,
    on_progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Fetched> {
    if path.is_file() {
        return Ok(Fetched::Present);
    }
    let failed = |url: &str, message: String| Error::Download {
        path: path.to_path_buf(),
        url: url.to_string(),
        message,
    };
    let Some(url) = url else {
        let why = format!("put the SQuAD file there, or set {setting} to download it");
        return Ok(existing_file(path.to_path_buf(), &why).map(|_| Fetched::Present)?);
    };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .build();
    let response = agent
        .get(url)
        .call()
        .map_err(|e| failed(url, e.to_string()))?;
    let total = response
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok());
    let mut reader = response.into_reader();
    // Beside the target, so that the final rename stays on one file system.
    let partial = partial_path(path);
    let mut done = 0u64;
    write_atomic(&partial, |out| {
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = reader
                .read(&mut buffer)
                .map_err(|e| qa_data::Error::io(&partial, e))?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&buffer[..n])
                .map_err(|e| qa_data::Error::io(&partial, e))?;
            done += n as u64;
            on_progress(done, total);
        }
    })
    .map_err(|e| failed(url, e.to_string()))?;
    if let Some(total) = total.filter(|&t| t != done) {
        let _ = std::fs::remove_file(&partial);
        return Err(failed(
            url,
            format!("the server announced {total} bytes but sent {done}"),
        ));
    }
    if let Err(e) = read_squad(&partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(failed(url, format!("what came back is not SQuAD: {e}")));
    }
    std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))?;
    Ok(Fetched::Downloaded(done))
}

/// `<dir>/.<name>.download`.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "squad".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.download"))
}
