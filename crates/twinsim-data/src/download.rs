//! Fetching one published file so that its final path only ever holds a
//! complete, verified copy.
//!
//! The body is streamed to a temporary file beside the destination, checked
//! against the catalog's checksum, synced, and only then renamed into place:
//! an interrupted run, a truncated transfer or a wrong mirror leaves nothing
//! behind that a later run could mistake for the dataset.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};

use crate::atomic;
use crate::catalog::Checksum;
use crate::error::{DataError, Result};
use crate::read::{hex, read_maybe_gz, sha256_hex, MAX_FILE_BYTES};

/// Long enough for a slow link, short enough that a dead mirror gives way to
/// the next one instead of hanging the command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A server that sends nothing for this long is treated as gone; measured per
/// read, so a large file on a slow but steady link still completes.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Downloads `dest` from the first of `urls` that delivers a copy matching
/// `checksum`, trying them in order.
///
/// On failure the error holds one [`DataError`] per URL tried, in order, so the
/// caller can tell the user what each mirror did wrong. `dest` is never left
/// holding a partial or unverified file, and no temporary file survives.
pub fn fetch(
    urls: &[String],
    dest: &Path,
    checksum: &Checksum,
    progress: bool,
) -> Result<(), Vec<DataError>> {
    if urls.is_empty() {
        return Err(vec![DataError::invalid(
            format!("no mirror is known for {}", dest.display()),
            "set TWINSIM_MIRRORS, or put the file there by hand",
        )]);
    }
    let agent = agent();
    let tmp = temp_path(dest);
    let mut errors = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        match fetch_one(&agent, url, &tmp, dest, checksum, progress) {
            Ok(()) => return Ok(()),
            Err(e) => {
                if i + 1 < urls.len() {
                    tracing::warn!("{e}; trying the next mirror");
                }
                errors.push(e);
            }
        }
    }
    Err(errors)
}

/// One agent for all mirrors, with timeouts so that no mirror can stall us.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_resolve(Some(CONNECT_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .user_agent(concat!("twinsim/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// `<dest>.part-<pid>`: in dest's folder so the final rename stays on one
/// filesystem (and is atomic), and per process so two runs do not collide.
fn temp_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!(".part-{}", std::process::id()));
    PathBuf::from(name)
}

/// Downloads, verifies and installs from one URL; removes the temporary file
/// whatever went wrong.
fn fetch_one(
    agent: &ureq::Agent,
    url: &str,
    tmp: &Path,
    dest: &Path,
    checksum: &Checksum,
    progress: bool,
) -> Result<()> {
    tracing::info!("downloading {url}");
    let result = download_to(agent, url, tmp, progress)
        .and_then(|()| verify(url, tmp, checksum))
        .and_then(|()| atomic::commit(tmp, dest));
    if result.is_err() {
        // Nothing to report if it is already gone: the transfer may have failed before creating it.
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// Streams `url`'s body into `tmp`, refusing HTTP errors, bodies shorter than
/// their Content-Length, and bodies over [`MAX_FILE_BYTES`] (which would fill
/// the disk before any checksum could reject them).
fn download_to(agent: &ureq::Agent, url: &str, tmp: &Path, progress: bool) -> Result<()> {
    let failed = |reason: String| DataError::Download {
        url: url.to_owned(),
        reason,
    };
    // Created before the request so that an unwritable folder fails without network traffic.
    let mut file = File::create(tmp).map_err(|e| DataError::io(tmp, e))?;
    let mut response = agent.get(url).call().map_err(|e| failed(e.to_string()))?;
    let expected = response.body().content_length();
    if let Some(n) = expected.filter(|&n| n > MAX_FILE_BYTES) {
        return Err(failed(format!(
            "announces {n} bytes, over the {MAX_FILE_BYTES}-byte limit"
        )));
    }
    let bar = progress_bar(url, expected, progress);
    let body = response.body_mut().as_reader().take(MAX_FILE_BYTES + 1);
    let received = std::io::copy(&mut bar.wrap_read(body), &mut file).map_err(|e| failed(e.to_string()));
    bar.finish_and_clear();
    let received = received?;
    if received > MAX_FILE_BYTES {
        return Err(failed(format!("sent more than the {MAX_FILE_BYTES}-byte limit")));
    }
    match expected {
        Some(n) if n != received => Err(failed(format!(
            "truncated transfer: received {received} of {n} bytes"
        ))),
        _ => Ok(()),
    }
}

/// A bar on stderr when asked for; a hidden one otherwise, so the copy loop
/// need not care.
fn progress_bar(url: &str, len: Option<u64>, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{msg} {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_owned());
    bar
}

/// Checks what arrived in `tmp` against the catalog's checksum. Failures are
/// blamed on the URL: the temporary file they were found in is about to go.
fn verify(url: &str, tmp: &Path, checksum: &Checksum) -> Result<()> {
    let failed = |reason: String| DataError::Download {
        url: url.to_owned(),
        reason,
    };
    let (kind, expected, actual) = match *checksum {
        Checksum::ArchiveMd5(expected) => ("md5", expected, md5_file(tmp)),
        Checksum::DecompressedSha256(expected) => (
            "sha256 of the decompressed content",
            expected,
            read_maybe_gz(tmp, MAX_FILE_BYTES).map(|bytes| sha256_hex(&bytes)),
        ),
    };
    let actual = actual.map_err(|e| failed(format!("unusable content: {e}")))?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(failed(format!(
            "checksum mismatch: expected {kind} {expected}, got {actual}"
        )))
    }
}

/// MD5 of a file, streamed: CIFAR tarballs are too large to hash in memory twice.
fn md5_file(path: &Path) -> Result<String> {
    let mut hasher = Md5::new();
    let mut file = crate::read::open_file(path)?;
    std::io::copy(&mut file, &mut hasher).map_err(|e| DataError::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}
