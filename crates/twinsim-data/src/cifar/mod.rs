//! CIFAR-10 and CIFAR-100 in both official download formats.
//!
//! Either download may be given as its tarball, as the folder it extracts to
//! (`cifar-10-batches-bin`, `cifar-10-batches-py`, `cifar-100-binary`,
//! `cifar-100-python`), or as a folder holding that folder. Records already
//! hold each image as R, G, B planes, so pixels are copied into the (N, 3, 32,
//! 32) buffer without rearranging.

mod binary;
mod python;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use md5::{Digest, Md5};

use crate::archive::{self, Limits};
use crate::dataset::{CoarseLabels, Dataset, ImageShape, Images, Origin};
use crate::error::{DataError, Result};
use crate::read;

/// One image: 3 planes of 32x32.
const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Which official split to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarSplit {
    /// The 50,000 training images (`data_batch_1..5`, `train`).
    Train,
    /// The 10,000 test images (`test_batch`, `test`).
    Test,
}

impl CifarSplit {
    /// The split's name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CifarSplit::Train => "train",
            CifarSplit::Test => "test",
        }
    }
}

/// Loads `split` of CIFAR-10 (`fine_classes` 10) or CIFAR-100 (100) from
/// `path`, naming the dataset `name`. CIFAR-100 fills [`Dataset::coarse`].
///
/// Files are decoded on a second thread as they are read, so decoding
/// overlaps decompression.
///
/// `expected_md5` is the published MD5 of the tarball (ignored for folders).
/// It is computed on a parallel thread while the tarball is parsed, so it
/// costs little wall time. A mismatch is only a warning (naming the file and
/// both MD5s), not an error: every file is checked structurally anyway
/// (record sizes, array shapes, label ranges, a pickle reader that executes
/// nothing), and copies rebuilt from other sources, such as the CIFAR-10 in
/// the shared test data (rebuilt from a JPEG re-encoding), can never match.
pub fn load(
    name: &str,
    fine_classes: usize,
    path: &Path,
    split: CifarSplit,
    expected_md5: Option<&str>,
) -> Result<Dataset> {
    let candidates = layouts(fine_classes)?;
    let (decoded, origin) = if path.is_dir() {
        let (layout, dir) = find_folder(path, candidates)?;
        (load_folder(&dir, layout, split)?, dir)
    } else {
        (
            load_tarball(path, candidates, split, expected_md5)?,
            path.to_path_buf(),
        )
    };
    decoded.into_dataset(name, split, origin)
}

/// The two official formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Binary,
    Python,
}

/// Where one official download keeps each split and its class names.
struct Layout {
    folder: &'static str,
    format: Format,
    train: &'static [&'static str],
    test: &'static [&'static str],
    /// Class-name files: fine names first (then coarse, for CIFAR-100 binary).
    meta: &'static [&'static str],
    /// Number of (fine) classes.
    classes: usize,
    /// CIFAR-100: records and batches carry coarse labels too.
    coarse: bool,
}

static LAYOUTS: [Layout; 4] = [
    Layout {
        folder: "cifar-10-batches-bin",
        format: Format::Binary,
        train: &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ],
        test: &["test_batch.bin"],
        meta: &["batches.meta.txt"],
        classes: 10,
        coarse: false,
    },
    Layout {
        folder: "cifar-10-batches-py",
        format: Format::Python,
        train: &[
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
        ],
        test: &["test_batch"],
        meta: &["batches.meta"],
        classes: 10,
        coarse: false,
    },
    Layout {
        folder: "cifar-100-binary",
        format: Format::Binary,
        train: &["train.bin"],
        test: &["test.bin"],
        meta: &["fine_label_names.txt", "coarse_label_names.txt"],
        classes: 100,
        coarse: true,
    },
    Layout {
        folder: "cifar-100-python",
        format: Format::Python,
        train: &["train"],
        test: &["test"],
        meta: &["meta"],
        classes: 100,
        coarse: true,
    },
];

impl Layout {
    fn batches(&self, split: CifarSplit) -> &'static [&'static str] {
        match split {
            CifarSplit::Train => self.train,
            CifarSplit::Test => self.test,
        }
    }

    /// The file `split` needs that the tar member (or file) `name` is, when
    /// it is `<folder>/<file>` under any prefix.
    fn needed_file(&self, name: &str, split: CifarSplit) -> Option<&'static str> {
        let mut parts = name.rsplit('/');
        let (file, folder) = (parts.next()?, parts.next()?);
        if folder != self.folder {
            return None;
        }
        self.batches(split)
            .iter()
            .chain(self.meta)
            .copied()
            .find(|&f| f == file)
    }
}

/// The binary and python layouts of the CIFAR with `fine_classes` classes.
fn layouts(fine_classes: usize) -> Result<&'static [Layout]> {
    match fine_classes {
        10 => Ok(&LAYOUTS[..2]),
        100 => Ok(&LAYOUTS[2..]),
        n => Err(DataError::invalid(
            format!("CIFAR comes with 10 or 100 classes, not {n}"),
            "use the cifar10 or cifar100 dataset",
        )),
    }
}

/// A file's bytes and the path errors about it should name.
struct Named {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// Images and labels of a split, in batch order.
struct Labelled {
    pixels: Vec<u8>,
    fine: Vec<u32>,
    coarse: Option<Vec<u32>>,
}

/// Class names, as the files give them.
struct ClassNames {
    fine: Vec<String>,
    coarse: Option<Vec<String>>,
}

/// A split read and decoded.
struct Decoded {
    labelled: Labelled,
    names: ClassNames,
}

impl Decoded {
    fn into_dataset(self, name: &str, split: CifarSplit, origin: PathBuf) -> Result<Dataset> {
        let Decoded { labelled, names } = self;
        let coarse = match (labelled.coarse, names.coarse) {
            (Some(labels), Some(classes)) => Some(CoarseLabels { labels, classes }),
            _ => None,
        };
        let shape = ImageShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        Dataset {
            name: name.to_string(),
            split: split.as_str().to_string(),
            images: Images::new(labelled.pixels, shape)?,
            labels: labelled.fine,
            classes: names.fine,
            coarse,
            origin: Origin::Files(vec![origin]),
            parts: Vec::new(),
        }
        .validate()
    }
}

/// Decodes one split's files as they arrive, in any order: batches are
/// appended in the layout's order as soon as their turn comes, so with files
/// in the usual order each is decoded (and dropped) while the next is read.
struct Decoder {
    layout: &'static Layout,
    split: CifarSplit,
    /// How many of the split's batches have been appended.
    appended: usize,
    /// Batches that arrived before their turn, and the class-name files.
    waiting: HashMap<&'static str, Named>,
    out: Labelled,
    /// Returns appended batches' buffers to the reader for reuse.
    give_back: mpsc::SyncSender<Vec<u8>>,
}

impl Decoder {
    fn new(layout: &'static Layout, split: CifarSplit, give_back: mpsc::SyncSender<Vec<u8>>) -> Self {
        Decoder {
            layout,
            split,
            appended: 0,
            waiting: HashMap::new(),
            out: Labelled {
                pixels: Vec::new(),
                fine: Vec::new(),
                coarse: layout.coarse.then(Vec::new),
            },
            give_back,
        }
    }

    /// Takes the layout's file `file`, appending every batch whose turn has come.
    fn add(&mut self, file: &'static str, named: Named) -> Result<()> {
        self.waiting.insert(file, named);
        let batches = self.layout.batches(self.split);
        while let Some(batch) = batches.get(self.appended).and_then(|f| self.waiting.remove(f)) {
            let before = self.out.fine.len();
            match self.layout.format {
                Format::Binary => binary::append_batch(&mut self.out, &batch, self.layout.coarse)?,
                Format::Python => python::append_batch(&mut self.out, &batch, self.layout.coarse)?,
            }
            // Checked here, where the file is known, so the error names it.
            if let Some(l) = self.out.fine[before..]
                .iter()
                .find(|&&l| l as usize >= self.layout.classes)
            {
                return Err(DataError::corrupt(
                    &batch.path,
                    format!("label {l} out of range for {} classes", self.layout.classes),
                ));
            }
            self.appended += 1;
            // A full channel (or a reader that has finished) just drops it.
            let _ = self.give_back.try_send(batch.bytes);
        }
        Ok(())
    }

    /// Reads the class names once every file has arrived; a missing file is
    /// reported as a corrupt `<folder>/<file>`.
    fn finish(mut self) -> Result<Decoded> {
        let layout = self.layout;
        let missing = |file: &str| DataError::corrupt(format!("{}/{file}", layout.folder), "is missing");
        if let Some(file) = layout.batches(self.split).get(self.appended) {
            return Err(missing(file));
        }
        let meta = layout
            .meta
            .iter()
            .map(|f| self.waiting.remove(f).ok_or_else(|| missing(f)))
            .collect::<Result<Vec<_>>>()?;
        let names = match layout.format {
            Format::Binary => binary::class_names(&meta)?,
            Format::Python => python::class_names(&meta, layout.coarse)?,
        };
        let meta = &meta[0].path;
        if names.fine.len() != layout.classes {
            return Err(DataError::corrupt(
                meta,
                format!("{} class names instead of {}", names.fine.len(), layout.classes),
            ));
        }
        if layout.coarse && names.coarse.as_ref().is_none_or(Vec::is_empty) {
            return Err(DataError::corrupt(meta, "no coarse class names"));
        }
        Ok(Decoded {
            labelled: self.out,
            names,
        })
    }
}

/// Hands over a file as `(name, file)`, where `name` is `<folder>/<file>` (a
/// tar member name or its equivalent), and returns a spare buffer, possibly
/// empty, to read the next file into.
type Deliver<'d> = dyn FnMut(String, Named) -> Result<Vec<u8>> + 'd;

/// Runs `produce` on this thread while a second thread decodes what it hands
/// over, in the first of `candidates` that a file belongs to; `Ok(None)`
/// when no file belonged to any.
fn decode_streamed(
    candidates: &'static [Layout],
    split: CifarSplit,
    produce: impl FnOnce(&mut Deliver) -> Result<()>,
) -> Result<Option<Decoded>> {
    let (send, receive) = mpsc::sync_channel::<(String, Named)>(1);
    let (give_back, take_back) = mpsc::sync_channel::<Vec<u8>>(2);
    std::thread::scope(|scope| {
        let decoder = scope.spawn(move || decode_received(candidates, split, receive, give_back));
        let mut decoder_stopped = false;
        let produced = produce(&mut |name, named| {
            send.send((name, named)).map_err(|_| {
                decoder_stopped = true;
                DataError::invalid("the CIFAR decoder stopped", "")
            })?;
            Ok(take_back.try_recv().unwrap_or_default())
        });
        drop(send);
        let decoded = decoder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match produced {
            // The decoder's own error explains why it stopped taking files.
            Err(_) if decoder_stopped => decoded.map(|_| None),
            Err(e) => Err(e),
            Ok(()) => decoded?.map(Decoder::finish).transpose(),
        }
    })
}

/// The decoding thread of [`decode_streamed`].
fn decode_received(
    candidates: &'static [Layout],
    split: CifarSplit,
    receive: mpsc::Receiver<(String, Named)>,
    give_back: mpsc::SyncSender<Vec<u8>>,
) -> Result<Option<Decoder>> {
    let mut decoder: Option<Decoder> = None;
    for (name, named) in receive {
        let chosen = match &decoder {
            Some(d) => std::slice::from_ref(d.layout),
            None => candidates,
        };
        let found = chosen
            .iter()
            .find_map(|l| Some((l, l.needed_file(&name, split)?)));
        if let Some((layout, file)) = found {
            decoder
                .get_or_insert_with(|| Decoder::new(layout, split, give_back.clone()))
                .add(file, named)?;
        }
    }
    Ok(decoder)
}

/// The layout and extracted folder `path` is, or holds; a folder named
/// otherwise that holds a layout's class-name file counts as that layout.
fn find_folder(path: &Path, candidates: &'static [Layout]) -> Result<(&'static Layout, PathBuf)> {
    let named = path.file_name().and_then(|n| n.to_str());
    for layout in candidates {
        if named == Some(layout.folder) || path.join(layout.meta[0]).is_file() {
            return Ok((layout, path.to_path_buf()));
        }
    }
    for layout in candidates {
        let inner = path.join(layout.folder);
        if inner.is_dir() {
            return Ok((layout, inner));
        }
    }
    Err(DataError::corrupt(
        path,
        format!(
            "the folder is neither {} nor {}, and holds neither",
            candidates[0].folder, candidates[1].folder
        ),
    ))
}

/// Reads a split from an extracted folder, file by file in the layout's order.
fn load_folder(dir: &Path, layout: &'static Layout, split: CifarSplit) -> Result<Decoded> {
    let produce = |deliver: &mut Deliver| {
        for &file in layout.batches(split).iter().chain(layout.meta) {
            let path = dir.join(file);
            let bytes = read::read_file(&path, read::MAX_FILE_BYTES)?;
            deliver(format!("{}/{file}", layout.folder), Named { path, bytes })?;
        }
        Ok(())
    };
    let decoded = decode_streamed(std::slice::from_ref(layout), split, produce)?;
    decoded.ok_or_else(|| DataError::corrupt(dir, "no CIFAR file found"))
}

/// Reads a split from a downloaded tarball, checking its MD5 alongside.
fn load_tarball(
    path: &Path,
    candidates: &'static [Layout],
    split: CifarSplit,
    expected_md5: Option<&str>,
) -> Result<Decoded> {
    let (actual_md5, decoded) = rayon::join(
        || expected_md5.map(|_| md5_of_file(path)).transpose(),
        || decode_tarball(path, candidates, split),
    );
    let decoded = decoded?;
    if let (Some(expected), Some(actual)) = (expected_md5, actual_md5?) {
        if !actual.eq_ignore_ascii_case(expected) {
            tracing::warn!(
                "{}: MD5 {actual} differs from the official download's {expected}, so this is not the \
                 official file; its contents were checked structurally and are used",
                path.display()
            );
        }
    }
    Ok(decoded)
}

/// Lower-case hex MD5 of the file at `path`, read in chunks rather than held
/// in memory.
fn md5_of_file(path: &Path) -> Result<String> {
    let mut file = read::open_file(path)?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            return Ok(read::hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Streams the tarball, decoding the members `split` needs while the rest is
/// decompressed. Errors about a member name the tarball.
fn decode_tarball(path: &Path, candidates: &'static [Layout], split: CifarSplit) -> Result<Decoded> {
    let wanted = |member: &str| candidates.iter().any(|l| l.needed_file(member, split).is_some());
    let produce = |deliver: &mut Deliver| {
        archive::for_each_member(path, &Limits::default(), wanted, |name, bytes| {
            let member = PathBuf::from(&name);
            deliver(name, Named { path: member, bytes })
        })
    };
    match decode_streamed(candidates, split, produce) {
        Ok(Some(decoded)) => Ok(decoded),
        Ok(None) => Err(DataError::corrupt(
            path,
            format!(
                "the archive holds neither {}/ nor {}/",
                candidates[0].folder, candidates[1].folder
            ),
        )),
        Err(e) => Err(blame_archive(path, e)),
    }
}

/// Rewrites an error about a tarball member (named by its member path) to
/// name the tarball, which is the file the user can act on.
fn blame_archive(archive: &Path, err: DataError) -> DataError {
    match err {
        DataError::Corrupt { path, reason } if path != archive => {
            DataError::corrupt(archive, format!("member {}: {reason}", path.display()))
        }
        DataError::Refused { path, reason } if path != archive => {
            DataError::refused(archive, format!("member {}: {reason}", path.display()))
        }
        other => other,
    }
}
