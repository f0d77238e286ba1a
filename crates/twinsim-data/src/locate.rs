//! Finding a named dataset's files on disk, and downloading them when they are
//! nowhere to be found.
//!
//! Several places are searched, in a fixed order, so that a copy the user
//! points at always beats one in a shared cache, and a system-wide copy (Debian's
//! `/usr/share/datasets`) saves a download without ever being written to.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::catalog::{DatasetInfo, Layout, RemoteFile};
use crate::download;
use crate::error::{DataError, Result};

/// Where to look for datasets, and whether and from where to download them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locator {
    /// `--data-dir`: searched first, and downloaded into when given.
    pub data_dir: Option<PathBuf>,
    /// `$TWINSIM_DATA`.
    pub env_dir: Option<PathBuf>,
    /// The per-user cache (`$XDG_CACHE_HOME/twinsim` or `~/.cache/twinsim`).
    pub cache_dir: Option<PathBuf>,
    /// Debian's `/usr/share/datasets`; only read, never written.
    pub system_dir: Option<PathBuf>,
    /// False when offline (`TWINSIM_OFFLINE=1`): missing files are an error.
    pub download: bool,
    /// Mirror base URLs replacing the catalog's (`$TWINSIM_MIRRORS`,
    /// comma-separated); a file's URL is base + file name.
    pub mirrors: Option<Vec<String>>,
    /// Show a progress bar on stderr while downloading.
    pub progress: bool,
}

/// A dataset's files as found (or downloaded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// IDX: the four files in catalog order; CIFAR: the one tarball or
    /// extracted folder found.
    pub paths: Vec<PathBuf>,
    /// True when some of them were fetched by this call.
    pub downloaded: bool,
}

/// Whether a candidate path must be a file or a folder to count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

impl Kind {
    fn matches(self, path: &Path) -> bool {
        match self {
            Kind::File => path.is_file(),
            Kind::Dir => path.is_dir(),
        }
    }
}

impl Locator {
    /// The locator the command line describes: `data_dir` from `--data-dir`,
    /// the rest from the environment. The progress bar is shown only when
    /// stderr is a terminal, so logs and pipes stay clean.
    pub fn from_env(data_dir: Option<PathBuf>) -> Locator {
        Locator {
            data_dir,
            env_dir: non_empty_var("TWINSIM_DATA").map(PathBuf::from),
            cache_dir: dirs::cache_dir().map(|d| d.join("twinsim")),
            system_dir: cfg!(unix).then(|| PathBuf::from("/usr/share/datasets")),
            download: non_empty_var("TWINSIM_OFFLINE").is_none_or(|v| v == "0"),
            mirrors: non_empty_var("TWINSIM_MIRRORS").and_then(|v| parse_mirrors(&v.to_string_lossy())),
            progress: std::io::stderr().is_terminal(),
        }
    }

    /// The folders searched, in order: data_dir, env_dir, cache_dir, system_dir.
    pub fn roots(&self) -> Vec<PathBuf> {
        [&self.data_dir, &self.env_dir, &self.cache_dir, &self.system_dir]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Every path at which `file` of `info` is looked for, in search order.
    pub fn candidates(&self, info: &DatasetInfo, file: &RemoteFile) -> Vec<PathBuf> {
        self.roots()
            .iter()
            .flat_map(|root| candidates_in(root, info, file))
            .map(|(path, _)| path)
            .collect()
    }

    /// The dataset's files if they are already on disk; never touches the
    /// network. Contents are not checked here: the readers do that.
    pub fn find(&self, info: &DatasetInfo) -> Option<Found> {
        let paths = match info.layout {
            Layout::Idx => info
                .files
                .iter()
                .map(|file| self.find_file(info, file))
                .collect::<Option<Vec<_>>>()?,
            Layout::Cifar { .. } => vec![self.find_any(info)?],
            Layout::Folder => return None,
        };
        Some(Found {
            paths,
            downloaded: false,
        })
    }

    /// The dataset's files, found on disk or else downloaded (when allowed)
    /// into `<download root>/<dataset>/`.
    pub fn locate(&self, info: &DatasetInfo) -> Result<Found> {
        if info.layout == Layout::Folder {
            return Err(DataError::invalid(
                format!("dataset '{}' has no files to locate", info.name),
                "pass the image folder itself with --data-dir",
            ));
        }
        self.check_named_roots(info)?;
        if let Some(found) = self.find(info) {
            return Ok(found);
        }
        if !self.download {
            return Err(self.not_found(info, Vec::new()));
        }
        // One try per process for the same download: a command loads
        // several splits (train, test, the report's), each of which would
        // otherwise try, and warn, again. Keyed by where and from where, so
        // another target or mirror is still tried.
        static FAILED: Mutex<Vec<(String, Vec<String>)>> = Mutex::new(Vec::new());
        let key = format!("{}\n{:?}\n{:?}", info.name, self.download_root(), self.mirrors);
        let known = FAILED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, errors)| errors.clone());
        if let Some(errors) = known {
            return Err(self.not_found(info, errors));
        }
        self.download_missing(info).map_err(|errors| {
            let mut failed = FAILED.lock().unwrap_or_else(PoisonError::into_inner);
            failed.push((key, errors.clone()));
            self.not_found(info, errors)
        })
    }

    /// True when the user named a folder to search (`--data-dir` or
    /// `TWINSIM_DATA`): a dataset missing or broken there is an error, never
    /// a reason to fall back on the embedded sample.
    pub fn has_named_root(&self) -> bool {
        self.data_dir.is_some() || self.env_dir.is_some()
    }

    /// Refuses a dataset file in a folder the user named that is there but
    /// cannot be it (a folder, a FIFO or a device where a file belongs), so
    /// the search does not quietly go on past it.
    fn check_named_roots(&self, info: &DatasetInfo) -> Result<()> {
        let named = [&self.data_dir, &self.env_dir].into_iter().flatten();
        for root in named {
            for file in info.files {
                let wrong = candidates_in(root, info, file)
                    .into_iter()
                    .find(|(path, kind)| path.exists() && !kind.matches(path));
                if let Some((path, Kind::File)) = wrong {
                    // Opening it says what it is instead (a folder, a FIFO...).
                    crate::read::open_file(&path)?;
                }
            }
        }
        Ok(())
    }

    /// Every URL `file` may be downloaded from: the overriding mirrors if any,
    /// else the catalog's.
    pub fn urls(&self, info: &DatasetInfo, file: &RemoteFile) -> Vec<String> {
        match &self.mirrors {
            Some(mirrors) => mirrors.iter().map(|m| format!("{m}{}", file.name)).collect(),
            None => info.urls(file),
        }
    }

    /// The folder downloads go to: the first one the user named, else the
    /// cache; never the system folder, which users cannot write.
    pub fn download_root(&self) -> Option<&Path> {
        [&self.data_dir, &self.env_dir, &self.cache_dir]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .next()
    }

    /// The first existing candidate of one file.
    fn find_file(&self, info: &DatasetInfo, file: &RemoteFile) -> Option<PathBuf> {
        self.roots()
            .iter()
            .find_map(|root| existing(candidates_in(root, info, file)))
    }

    /// The first existing candidate of any of the files, roots first: a copy
    /// the user pointed at beats a preferred format elsewhere.
    fn find_any(&self, info: &DatasetInfo) -> Option<PathBuf> {
        self.roots().iter().find_map(|root| {
            info.files
                .iter()
                .find_map(|file| existing(candidates_in(root, info, file)))
        })
    }

    /// The files [`Locator::find`] lacks (for CIFAR, the first alternative):
    /// what a download has to fetch.
    fn missing<'a>(&self, info: &'a DatasetInfo) -> Vec<&'a RemoteFile> {
        match info.layout {
            Layout::Idx => info
                .files
                .iter()
                .filter(|file| self.find_file(info, file).is_none())
                .collect(),
            Layout::Cifar { .. } | Layout::Folder => info.files.iter().take(1).collect(),
        }
    }

    /// Downloads every missing file into `<download root>/<dataset>/`; on
    /// failure, one line per failed attempt.
    fn download_missing(&self, info: &DatasetInfo) -> Result<Found, Vec<String>> {
        let root = self.download_root().ok_or_else(|| {
            vec!["no folder to download into: pass --data-dir or set TWINSIM_DATA".to_owned()]
        })?;
        let dir = root.join(info.name);
        std::fs::create_dir_all(&dir).map_err(|e| vec![DataError::io(&dir, e).to_string()])?;
        for file in self.missing(info) {
            download::fetch(
                &self.urls(info, file),
                &dir.join(file.name),
                &file.checksum,
                self.progress,
            )
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        }
        let found = self.find(info).ok_or_else(|| {
            vec![format!(
                "downloaded into {}, yet the files are not found there",
                dir.display()
            )]
        })?;
        Ok(Found {
            downloaded: true,
            ..found
        })
    }

    /// The error listing everything that was tried for the missing files.
    fn not_found(&self, info: &DatasetInfo, download_errors: Vec<String>) -> DataError {
        let missing = self.missing(info);
        let files = match info.layout {
            Layout::Cifar { .. } => info.files.iter().collect(),
            Layout::Idx | Layout::Folder => missing,
        };
        DataError::NotFound {
            dataset: info.name.to_owned(),
            searched: files.iter().flat_map(|f| self.candidates(info, f)).collect(),
            files: files.iter().map(|f| f.name.to_owned()).collect(),
            urls: files.iter().flat_map(|f| self.urls(info, f)).collect(),
            download_errors,
        }
    }
}

/// The paths `file` may have under one root, with what each must be: the
/// published name, then the decompressed name (IDX) or the folder the archive
/// unpacks to (CIFAR); each in `<root>/<dataset>/` before `<root>/`.
fn candidates_in(root: &Path, info: &DatasetInfo, file: &RemoteFile) -> Vec<(PathBuf, Kind)> {
    let mut names = vec![(file.name, Kind::File)];
    if info.layout == Layout::Idx {
        names.extend(file.name.strip_suffix(".gz").map(|n| (n, Kind::File)));
    }
    names.extend(file.extracted.map(|dir| (dir, Kind::Dir)));
    names
        .into_iter()
        .flat_map(|(name, kind)| [(root.join(info.name).join(name), kind), (root.join(name), kind)])
        .collect()
}

/// The first candidate that exists with the right kind.
fn existing(candidates: Vec<(PathBuf, Kind)>) -> Option<PathBuf> {
    candidates
        .into_iter()
        .find(|(path, kind)| kind.matches(path))
        .map(|(path, _)| path)
}

/// An environment variable, treating "set but empty" as unset.
fn non_empty_var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// `TWINSIM_MIRRORS`' comma-separated bases, each ending in `/` so that
/// base + file name is a URL; `None` when no base is given.
fn parse_mirrors(value: &str) -> Option<Vec<String>> {
    let mirrors: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            if m.ends_with('/') {
                m.to_owned()
            } else {
                format!("{m}/")
            }
        })
        .collect();
    (!mirrors.is_empty()).then_some(mirrors)
}
