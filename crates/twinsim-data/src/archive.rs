//! Safe reading and extraction of tar archives, gzipped or not (the CIFAR
//! downloads, image-folder archives).
//!
//! Archives come from the network or from users, so every member is checked
//! by one function before a byte of it is read, whether the caller wants
//! it or not: only regular files and folders with relative, `..`-free names
//! pass, and the declared sizes and member count must stay within [`Limits`].
//! The decompressed stream itself may not run past what the headers declared,
//! so a crafted long-name or pax header cannot make the `tar` crate buffer an
//! unbounded amount.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use flate2::bufread::MultiGzDecoder;
use tar::EntryType;

use crate::error::{DataError, Result};
use crate::read;

/// How much an archive may hold before it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sum of the declared sizes of all members.
    pub max_total_bytes: u64,
    /// Number of members, folders included.
    pub max_members: usize,
}

impl Default for Limits {
    /// Room for the largest dataset twinsim reads (CIFAR-100's ~180 MB) and
    /// for image folders of ordinary size, far below what would exhaust a
    /// workstation.
    fn default() -> Self {
        Limits {
            max_total_bytes: 2 << 30,
            max_members: 200_000,
        }
    }
}

/// The contents of the regular files of the archive at `path` whose names
/// (relative, `/`-separated, without `./`) satisfy `wanted`, in archive order.
/// Every member is validated, wanted or not.
pub fn read_members(
    path: &Path,
    limits: &Limits,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut members = Vec::new();
    for_each_member(path, limits, wanted, |name, bytes| {
        members.push((name, bytes));
        Ok(Vec::new())
    })?;
    Ok(members)
}

/// Like [`read_members`], but hands each wanted file to `deliver` as soon as
/// it has been read, so that a caller can decode one member while the next
/// is decompressed. `deliver` returns a spare buffer (a consumed member's,
/// or `Vec::new()`) whose memory is reused for the next member, sparing the
/// page faults of a fresh allocation. An error from `deliver` stops the
/// reading.
pub fn for_each_member(
    path: &Path,
    limits: &Limits,
    wanted: impl Fn(&str) -> bool,
    mut deliver: impl FnMut(String, Vec<u8>) -> Result<Vec<u8>>,
) -> Result<()> {
    let mut spare = Vec::new();
    walk(path, limits, |member, data| {
        if member.kind != Kind::File || !wanted(&member.name) {
            return Ok(());
        }
        // Capacity comes from a spare buffer, never from the declared size:
        // the header is not trusted until the bytes have actually arrived.
        let mut bytes = std::mem::take(&mut spare);
        bytes.clear();
        data.read_to_end(&mut bytes).map_err(|e| stream_error(path, e))?;
        check_complete(path, &member, bytes.len() as u64)?;
        spare = deliver(member.name, bytes)?;
        Ok(())
    })
}

/// Extracts the regular files and folders of the archive at `path` under
/// `dest` (created if needed) and returns the files written. Each file is
/// written under a temporary name and renamed when complete, so an
/// interrupted extraction never leaves a partial file under a member's name.
pub fn extract(path: &Path, dest: &Path, limits: &Limits) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e))?;
    let mut dirs = SafeDirs::new(path, dest);
    let mut written = Vec::new();
    walk(path, limits, |member, data| match member.kind {
        Kind::Folder => dirs.ensure(&member.rel).map(drop),
        Kind::File => {
            let parent = member.rel.parent().unwrap_or(Path::new(""));
            let dir = dirs.ensure(parent)?;
            let target = dir.join(member.rel.file_name().unwrap_or_default());
            write_atomically(path, &member, data, &target)?;
            written.push(target);
            Ok(())
        }
    })?;
    Ok(written)
}

/// What a member is, once [`check_member`] has accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Folder,
}

/// A validated member.
struct Member {
    /// Normalised name: `/`-separated, no `.` components.
    name: String,
    /// The same as a relative path made only of normal components.
    rel: PathBuf,
    kind: Kind,
    size: u64,
}

/// Running totals an archive is checked against.
#[derive(Default)]
struct Tally {
    members: usize,
    bytes: u64,
}

/// The one place that decides whether a member may be read: refuses links,
/// devices, absolute or `..` names and totals over `limits` (counted from the
/// declared size, before reading); `None` for members that carry no file
/// (pax global headers).
fn check_member(
    archive: &Path,
    raw_name: &Path,
    kind: EntryType,
    size: u64,
    limits: &Limits,
    tally: &mut Tally,
) -> Result<Option<Member>> {
    let shown = raw_name.display();
    let refuse = |why: &str| Err(DataError::refused(archive, format!("member '{shown}' {why}")));
    tally.members += 1;
    if tally.members > limits.max_members {
        return refuse(&format!("exceeds the limit of {} members", limits.max_members));
    }
    tally.bytes = tally.bytes.saturating_add(size);
    if tally.bytes > limits.max_total_bytes {
        return refuse(&format!(
            "brings the archive over its limit of {} bytes",
            limits.max_total_bytes
        ));
    }
    let kind = match kind {
        EntryType::Regular | EntryType::Continuous => Kind::File,
        EntryType::Directory => Kind::Folder,
        EntryType::XGlobalHeader => return Ok(None),
        EntryType::Symlink => return refuse("is a symbolic link"),
        EntryType::Link => return refuse("is a hard link"),
        EntryType::Char | EntryType::Block | EntryType::Fifo => return refuse("is a device or fifo"),
        other => return refuse(&format!("has unsupported type {:?}", other.as_byte() as char)),
    };
    let mut parts = Vec::new();
    for component in raw_name.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => return refuse("has a '..' component"),
            Component::RootDir | Component::Prefix(_) => return refuse("has an absolute path"),
        }
    }
    if parts.is_empty() && kind == Kind::File {
        return refuse("has an empty name");
    }
    let name = parts
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let rel = parts.iter().collect();
    Ok(Some(Member {
        name,
        rel,
        kind,
        size,
    }))
}

/// Runs `visit` on every member of the tar (or tar.gz) file `archive`, after
/// [`check_member`] accepted it. Fails on truncation, including a stream that
/// ends without the end-of-archive blocks, and on a damaged gzip checksum.
fn walk(
    archive: &Path,
    limits: &Limits,
    mut visit: impl FnMut(Member, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let file = read::open_file(archive)?;
    let mut source = BufReader::with_capacity(1 << 20, file);
    let gzipped = read::is_gzip(source.fill_buf().map_err(|e| DataError::io(archive, e))?);
    let budget = Rc::new(Budget::new());
    let stream: Box<dyn Read> = if gzipped {
        Box::new(Budgeted::new(MultiGzDecoder::new(source), &budget))
    } else {
        Box::new(Budgeted::new(source, &budget))
    };
    let mut tar = tar::Archive::new(stream);
    let mut tally = Tally::default();
    for entry in tar.entries().map_err(|e| stream_error(archive, e))? {
        let mut entry = entry.map_err(|e| stream_error(archive, e))?;
        let raw_name = entry.path().map_err(|e| stream_error(archive, e))?.into_owned();
        let size = entry.size();
        let checked = check_member(
            archive,
            &raw_name,
            entry.header().entry_type(),
            size,
            limits,
            &mut tally,
        )?;
        budget.allow_member(size);
        if let Some(member) = checked {
            visit(member, &mut entry)?;
        }
    }
    let mut stream = tar.into_inner();
    if budget.hit_end.get() {
        return Err(DataError::corrupt(
            archive,
            "archive is truncated: it ends without the end-of-archive marker",
        ));
    }
    budget.allow_trailer();
    io::copy(&mut stream, &mut io::sink()).map_err(|e| stream_error(archive, e))?;
    Ok(())
}

/// Bytes a member's headers (its own, a GNU long name, a pax header) may take
/// beyond its declared size and padding.
const HEADER_ALLOWANCE: u64 = 64 << 10;

/// Bytes allowed after the end-of-archive blocks (record padding of large
/// blocking factors), read only to reach and verify the gzip trailer.
const TRAILER_ALLOWANCE: u64 = 16 << 20;

/// How far into the decompressed stream reading may go, moved forward as
/// each member is accepted.
struct Budget {
    pos: Cell<u64>,
    limit: Cell<u64>,
    hit_end: Cell<bool>,
}

impl Budget {
    /// Room for the first member's headers.
    fn new() -> Self {
        Budget {
            pos: Cell::new(0),
            limit: Cell::new(HEADER_ALLOWANCE),
            hit_end: Cell::new(false),
        }
    }

    /// Lets the stream run to the end of a just-accepted member's padded data
    /// plus the next member's headers. The tar crate has read exactly up to
    /// the member's data when it hands the member out, so `pos` is its start.
    fn allow_member(&self, size: u64) {
        let padded = size.div_ceil(512).saturating_mul(512);
        self.limit.set(
            self.pos
                .get()
                .saturating_add(padded)
                .saturating_add(HEADER_ALLOWANCE),
        );
    }

    /// Lets the stream run through the archive's padding after the last member.
    fn allow_trailer(&self) {
        self.limit.set(self.pos.get().saturating_add(TRAILER_ALLOWANCE));
    }
}

/// A reader that fails once it passes its [`Budget`] and notes reaching its end.
struct Budgeted<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R> Budgeted<R> {
    fn new(inner: R, budget: &Rc<Budget>) -> Self {
        Budgeted {
            inner,
            budget: Rc::clone(budget),
        }
    }
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.limit.get().saturating_sub(self.budget.pos.get());
        if left == 0 && !buf.is_empty() {
            return Err(io::Error::other(OverBudget));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            self.budget.hit_end.set(true);
        }
        self.budget.pos.set(self.budget.pos.get() + n as u64);
        Ok(n)
    }
}

/// The error [`Budgeted`] raises, told apart from damage by its type.
#[derive(Debug)]
struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("archive holds more data than its headers declare")
    }
}

impl std::error::Error for OverBudget {}

/// Classifies an error met while reading the archive stream: exceeding the
/// budget is refused, anything the decoders report is damage.
fn stream_error(archive: &Path, e: io::Error) -> DataError {
    if e.get_ref().is_some_and(|inner| inner.is::<OverBudget>()) {
        DataError::refused(archive, e.to_string())
    } else if is_damage(&e) {
        DataError::corrupt(archive, format!("damaged or truncated archive: {e}"))
    } else {
        DataError::io(archive, e)
    }
}

/// True for the kinds of error the gzip and tar decoders (and [`Budgeted`])
/// raise, as opposed to the operating system's.
fn is_damage(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::Other
    )
}

/// Fails when fewer bytes than declared arrived: the archive was cut short.
fn check_complete(archive: &Path, member: &Member, got: u64) -> Result<()> {
    if got == member.size {
        return Ok(());
    }
    Err(DataError::corrupt(
        archive,
        format!(
            "archive is truncated: member '{}' has {got} of its {} bytes",
            member.name, member.size
        ),
    ))
}

/// Copies `data` to `target` through a temporary file in the same folder.
fn write_atomically(archive: &Path, member: &Member, data: &mut dyn Read, target: &Path) -> Result<()> {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let temp = target.with_file_name(format!(".{name}.twinsim-part"));
    let result = write_new(archive, member, data, &temp)
        .and_then(|()| fs::rename(&temp, target).map_err(|e| DataError::io(target, e)));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Writes `data` to a file created at `temp`, never through an existing
/// file or link there (a leftover from an interrupted run is replaced).
fn write_new(archive: &Path, member: &Member, data: &mut dyn Read, temp: &Path) -> Result<()> {
    let create = || OpenOptions::new().write(true).create_new(true).open(temp);
    let file = match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(temp).map_err(|e| DataError::io(temp, e))?;
            create()
        }
        other => other,
    }
    .map_err(|e| DataError::io(temp, e))?;
    let mut out = io::BufWriter::with_capacity(1 << 20, file);
    let copied = io::copy(data, &mut out).map_err(|e| {
        if is_damage(&e) {
            stream_error(archive, e)
        } else {
            DataError::io(temp, e)
        }
    })?;
    check_complete(archive, member, copied)?;
    out.flush().map_err(|e| DataError::io(temp, e))
}

/// Folders under the extraction root that are known to be real folders, not
/// links placed there beforehand that would lead writes elsewhere.
struct SafeDirs<'a> {
    archive: &'a Path,
    root: &'a Path,
    known: HashSet<PathBuf>,
}

impl<'a> SafeDirs<'a> {
    fn new(archive: &'a Path, root: &'a Path) -> Self {
        SafeDirs {
            archive,
            root,
            known: HashSet::new(),
        }
    }

    /// Creates `rel` under the root, refusing to pass through a symbolic
    /// link or a file, and returns its full path.
    fn ensure(&mut self, rel: &Path) -> Result<PathBuf> {
        let mut dir = self.root.to_path_buf();
        for part in rel.components() {
            dir.push(part);
            if self.known.contains(&dir) {
                continue;
            }
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(DataError::refused(
                        self.archive,
                        format!("{} already exists and is not a folder", dir.display()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&dir).map_err(|e| DataError::io(&dir, e))?
                }
                Err(e) => return Err(DataError::io(&dir, e)),
            }
            self.known.insert(dir.clone());
        }
        Ok(dir)
    }
}
