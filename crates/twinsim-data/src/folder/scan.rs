//! Listing a folder's splits, classes and files, with names and `stat` only,
//! so that a load answered by the cache never opens an image.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, DirEntry};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;

use super::{SkipReason, Skipped};
use crate::error::{DataError, Result};

/// Sub-folders that turn a folder into a split one, in the order reported.
const SPLIT_NAMES: [&str; 2] = ["train", "test"];

/// How the user's folder is divided: which split lives in which folder.
pub(super) struct Layout {
    root: PathBuf,
    splits: Vec<(String, PathBuf)>,
}

impl Layout {
    /// Finds the splits of `root`; a folder with neither `train` nor `test`
    /// is flat and serves as the train split.
    pub(super) fn of(root: &Path) -> Result<Layout> {
        check_root(root)?;
        let mut splits: Vec<(String, PathBuf)> = SPLIT_NAMES
            .iter()
            .map(|s| (s.to_string(), root.join(s)))
            .filter(|(_, dir)| dir.is_dir())
            .collect();
        if splits.is_empty() {
            splits.push(("train".into(), root.to_path_buf()));
        }
        Ok(Layout {
            root: root.to_path_buf(),
            splits,
        })
    }

    /// The folder as the user named it.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// The splits present, train first.
    pub(super) fn names(&self) -> Vec<String> {
        self.splits.iter().map(|(s, _)| s.clone()).collect()
    }

    /// The folder holding `split`'s class folders.
    pub(super) fn dir(&self, split: &str) -> Result<PathBuf> {
        match self.splits.iter().find(|(s, _)| s == split) {
            Some((_, dir)) => Ok(dir.clone()),
            None => Err(DataError::invalid(
                format!("image folder {} has no '{split}' split", self.root.display()),
                format!(
                    "its splits are: {}; a folder has a test split only when it holds \
                     train/<class>/<image> and test/<class>/<image>, otherwise the whole folder \
                     is the train split",
                    self.names().join(", ")
                ),
            )),
        }
    }

    /// Sorted names of the class folders holding a file in at least one
    /// split, so that a label means the same class in every split. Only names
    /// are listed here: the other splits' files are not stat'ed.
    pub(super) fn classes(&self) -> Result<Vec<String>> {
        let mut names = BTreeSet::new();
        for (_, dir) in &self.splits {
            let folders = class_dirs(dir)?;
            names.extend(
                folders
                    .found
                    .into_iter()
                    .filter(|(_, path)| names_class(path))
                    .map(|(name, _)| name),
            );
        }
        Ok(names.into_iter().collect())
    }
}

/// Fails with a message naming `root` when it is not a folder we can list.
fn check_root(root: &Path) -> Result<()> {
    let hint = "pass the folder that holds one sub-folder per class (or train/ and test/ folders of them)";
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(DataError::invalid(
            format!("image folder {} is not a folder", root.display()),
            hint,
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(DataError::invalid(
            format!("image folder {} does not exist", root.display()),
            hint,
        )),
        Err(e) => Err(DataError::io(root, e)),
    }
}

/// One split's class folders and their files, in sorted order.
pub(super) struct SplitTree {
    pub dir: PathBuf,
    pub classes: Vec<ClassDir>,
    /// Entries refused while listing, before any decoding.
    pub rejected: Vec<Skipped>,
}

/// A class folder and the files directly inside it.
pub(super) struct ClassDir {
    pub name: String,
    pub files: Vec<FileEntry>,
    /// Whether this folder alone would make its name a class.
    pub holds_files: bool,
}

/// A file that may be an image, with what the cache key needs of it.
pub(super) struct FileEntry {
    pub path: PathBuf,
    pub len: u64,
    pub modified: Option<SystemTime>,
}

impl SplitTree {
    /// Every file of a class folder named in `classes` (sorted) with its
    /// label, in load order: class by class, files by name.
    pub(super) fn labelled<'a>(&'a self, classes: &[String]) -> Vec<(&'a FileEntry, u32)> {
        self.classes
            .iter()
            .filter_map(|c| Some((c, classes.binary_search(&c.name).ok()?)))
            .flat_map(|(c, label)| c.files.iter().map(move |f| (f, label as u32)))
            .collect()
    }

    /// Class folders of this split that hold no file.
    pub(super) fn empty_classes(&self) -> Vec<String> {
        self.classes
            .iter()
            .filter(|c| !c.holds_files)
            .map(|c| c.name.clone())
            .collect()
    }
}

/// Lists the class folders of `dir` and stats their files, one class folder
/// per thread since a cached load spends most of its time here.
pub(super) fn scan(dir: &Path) -> Result<SplitTree> {
    let mut folders = class_dirs(dir)?;
    let scanned: Vec<(ClassDir, Vec<Skipped>)> = folders
        .found
        .into_par_iter()
        .map(|(name, path)| scan_class(name, &path))
        .collect();
    let mut tree = SplitTree {
        dir: dir.to_path_buf(),
        classes: Vec::with_capacity(scanned.len()),
        rejected: Vec::new(),
    };
    for (class, class_rejected) in scanned {
        tree.classes.push(class);
        tree.rejected.extend(class_rejected);
    }
    tree.rejected.append(&mut folders.rejected);
    Ok(tree)
}

/// The sub-folders of a split folder.
struct ClassFolders {
    /// Name and path, sorted by name.
    found: Vec<(String, PathBuf)>,
    /// Folders whose name cannot be a class name.
    rejected: Vec<Skipped>,
}

/// The class folders of `dir`. Files beside them belong to no class and
/// hidden folders (`.git`, `.thumbnails`) are no classes: both are ignored.
fn class_dirs(dir: &Path) -> Result<ClassFolders> {
    let mut found = Vec::new();
    let mut rejected = Vec::new();
    for entry in sorted_entries(dir).map_err(|e| DataError::io(dir, e))? {
        if is_hidden(&entry.file_name()) || !is_dir(&entry) {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) => found.push((name, entry.path())),
            Err(_) => rejected.push(Skipped {
                path: entry.path(),
                reason: SkipReason::Misplaced("class folder name is not valid UTF-8".into()),
            }),
        }
    }
    Ok(ClassFolders { found, rejected })
}

/// Whether the folder `dir` names a class; see [`is_candidate`].
fn names_class(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| is_candidate(&e))))
}

/// Whether `entry` makes its folder a class: hidden files alone
/// (`.DS_Store`) do not, or a stray folder would shift every later label.
fn is_candidate(entry: &DirEntry) -> bool {
    !is_hidden(&entry.file_name()) && !is_dir(entry)
}

/// Lists and stats the files of one class folder, and the entries that
/// cannot be image files.
fn scan_class(name: String, dir: &Path) -> (ClassDir, Vec<Skipped>) {
    let mut class = ClassDir {
        name,
        files: Vec::new(),
        holds_files: false,
    };
    let entries = match sorted_entries(dir) {
        Ok(entries) => entries,
        Err(e) => return (class, vec![unreadable(dir.to_path_buf(), &e)]),
    };
    class.holds_files = entries.iter().any(is_candidate);
    let mut rejected = Vec::new();
    for entry in entries {
        match file_entry(&entry) {
            Ok(file) => class.files.push(file),
            Err(skip) => rejected.push(skip),
        }
    }
    (class, rejected)
}

/// Stats `entry`, following symbolic links; only regular files qualify, as
/// opening a FIFO or a device would block or read forever.
fn file_entry(entry: &DirEntry) -> Result<FileEntry, Skipped> {
    let path = entry.path();
    // The entry's own stat is relative to its folder, cheaper than one
    // resolving the whole path; links need the path to be followed.
    let meta = match entry.file_type() {
        Ok(t) if !t.is_symlink() => entry.metadata(),
        _ => fs::metadata(&path),
    };
    let meta = match meta {
        Ok(meta) => meta,
        Err(e) => return Err(unreadable(path, &e)),
    };
    let misplaced = |why: &str| SkipReason::Misplaced(why.into());
    let reason = if meta.is_dir() {
        misplaced("a folder: images must sit directly in their class folder")
    } else if !meta.is_file() {
        misplaced("not a regular file")
    } else {
        return Ok(FileEntry {
            path,
            len: meta.len(),
            modified: meta.modified().ok(),
        });
    };
    Err(Skipped { path, reason })
}

/// Every regular file under `root`, at any depth, in sorted path order;
/// hidden files and folders are skipped, and links to folders are not
/// followed (a link loop would never end).
pub fn walk(root: &Path) -> Result<Vec<PathBuf>> {
    check_root(root)?;
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let mut here = Vec::new();
        for entry in sorted_entries(&dir).map_err(|e| DataError::io(&dir, e))? {
            if is_hidden(&entry.file_name()) {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => here.push(entry.path()),
                Ok(_) if entry.path().is_file() => files.push(entry.path()),
                _ => {}
            }
        }
        pending.extend(here.into_iter().rev());
    }
    files.sort();
    Ok(files)
}

/// Whether `entry` is a folder, or a link to one, without a stat unless it
/// is a link.
fn is_dir(entry: &DirEntry) -> bool {
    match entry.file_type() {
        Ok(t) if t.is_symlink() => entry.path().is_dir(),
        Ok(t) => t.is_dir(),
        Err(_) => false,
    }
}

/// The entries of `dir`, sorted by name so that loads are deterministic.
fn sorted_entries(dir: &Path) -> io::Result<Vec<DirEntry>> {
    let mut entries = fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// True for dot-files, which desktop tools and version control leave behind.
fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".")
}

/// `path` refused by the operating system.
fn unreadable(path: PathBuf, e: &io::Error) -> Skipped {
    Skipped {
        path,
        reason: SkipReason::Unreadable(e.to_string()),
    }
}
