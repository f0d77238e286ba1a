//! Arbitrary bytes, and valid files with bytes changed or cut off, into
//! every decoder and parser the crate exposes (issue 18): IDX, CIFAR
//! binary batches, the restricted pickle reader (through CIFAR's python
//! batches), `.npy`, `.npz`, torch checkpoints, tar archives and images.
//! Each must return `Ok` or `Err`: never panic, and never allocate more
//! than its documented bound. A counting allocator measures what each call
//! allocates; one that asks for more than [`HARD_CAP`] in all gets a null
//! pointer, which aborts the test binary with Rust's "memory allocation
//! failed" rather than taking the machine's memory.
//!
//! Its own test binary, not a module of `tests/it`: the allocator is the
//! whole binary's, so any other test running beside these would be counted
//! in their peaks (CI failed once on exactly that, 16 MB against 4 MB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;
use twinsim_data::archive::{self, Limits};
use twinsim_data::cifar::{self, CifarSplit};
use twinsim_data::folder::{self, FolderOptions};
use twinsim_data::{idx, npy, npz, read, torch_file};

/// Bytes live on the heap, and the most seen since the last reset.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// What the whole test binary may hold at once: far above any bound
/// below, far below the machine's memory.
const HARD_CAP: usize = 3 << 30;

/// The system allocator, counting.
struct Counting;

impl Counting {
    /// Counts `size` more bytes, or refuses them past [`HARD_CAP`].
    fn grow(size: usize) -> bool {
        let live = LIVE.fetch_add(size, Ordering::SeqCst) + size;
        if live > HARD_CAP {
            LIVE.fetch_sub(size, Ordering::SeqCst);
            return false;
        }
        PEAK.fetch_max(live, Ordering::SeqCst);
        true
    }
}

// SAFETY: every call forwards to `System` with the caller's layout; the
// counters only decide whether to forward at all.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Counting::grow(layout.size()) {
            true => System.alloc(layout),
            false => std::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match Counting::grow(layout.size()) {
            true => System.alloc_zeroed(layout),
            false => std::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !Counting::grow(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        let new = System.realloc(ptr, layout, new_size);
        if new.is_null() && new_size > layout.size() {
            LIVE.fetch_sub(new_size - layout.size(), Ordering::SeqCst);
        } else if !new.is_null() && new_size < layout.size() {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Held for the whole body of each test: the counters are global, and a
/// test allocating beside a measured call would be counted in its peak.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` and fails when it allocated more than `bound` bytes above what
/// was live before it; returns what `f` returned. Callers hold [`serial`].
fn within<T>(what: &str, bound: usize, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    let used = PEAK.load(Ordering::SeqCst).saturating_sub(base);
    prop_assert!(
        used <= bound,
        "{what} allocated {used} bytes, over its bound of {bound}"
    );
    Ok(out)
}

/// The bound of a parser that keeps a few copies of its input (bytes
/// widened to f64, say) and some fixed state.
fn linear(input: usize) -> usize {
    16 * input + (4 << 20)
}

/// A few cases per property, so the suite stays fast, from a fixed seed,
/// so a run fails or passes for the code alone (`PROPTEST_RNG_SEED` and
/// `PROPTEST_CASES` explore further). No regression files are written
/// into the source tree.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let rng_seed = match std::env::var_os("PROPTEST_RNG_SEED") {
        Some(_) => default.rng_seed,
        None => RngSeed::Fixed(18),
    };
    ProptestConfig {
        cases: 96,
        failure_persistence: None,
        rng_seed,
        ..default
    }
}

/// Bytes of any value, of any length up to `max`.
fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// A change to a valid file: a few bytes set, and maybe a cut.
#[derive(Clone, Debug)]
struct Mutation {
    sets: Vec<(Index, u8)>,
    cut: Option<Index>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        proptest::collection::vec((any::<Index>(), any::<u8>()), 1..6),
        proptest::option::of(any::<Index>()),
    )
        .prop_map(|(sets, cut)| Mutation { sets, cut })
}

impl Mutation {
    fn apply(&self, valid: &[u8]) -> Vec<u8> {
        let mut b = valid.to_vec();
        for (at, v) in &self.sets {
            let i = at.index(b.len());
            b[i] = *v;
        }
        if let Some(cut) = &self.cut {
            b.truncate(cut.index(b.len() + 1));
        }
        b
    }
}

/// A scratch file holding `bytes` (for the readers that take a path).
fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

// ---- valid seeds ----

/// An IDX header: magic (type u8, `sizes.len()` dimensions) and sizes.
fn idx_header(sizes: &[u32]) -> Vec<u8> {
    let mut h = vec![0, 0, 8, sizes.len() as u8];
    for s in sizes {
        h.extend(s.to_be_bytes());
    }
    h
}

fn idx_images() -> Vec<u8> {
    [idx_header(&[2, 28, 28]), vec![7; 2 * 784]].concat()
}

fn idx_labels() -> Vec<u8> {
    [idx_header(&[2]), vec![3, 4]].concat()
}

/// CIFAR-10 binary records.
fn cifar_records(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| std::iter::once((i % 10) as u8).chain(std::iter::repeat_n(i as u8, 3072)))
        .collect()
}

const CLASSES: &str = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";

/// A protocol-2 pickle of `{"label_names": [10 names], "num_vis": 3072}`,
/// CIFAR-10's `batches.meta`.
fn meta_pickle() -> Vec<u8> {
    let short = |p: &mut Vec<u8>, s: &str| {
        p.push(b'U');
        p.push(s.len() as u8);
        p.extend(s.as_bytes());
    };
    let mut p = b"\x80\x02}(".to_vec();
    short(&mut p, "label_names");
    p.extend(b"](");
    for c in CLASSES.lines() {
        short(&mut p, c);
    }
    p.push(b'e');
    short(&mut p, "num_vis");
    p.push(b'J');
    p.extend(3072i32.to_le_bytes());
    p.extend(b"u.");
    p
}

/// A valid `.npz` of statistics.
fn npz_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.npz");
    npz::write(
        &path,
        &[("mu", &[3], &[0.0, 1.0, 2.0]), ("sigma", &[3, 3], &[1.0; 9])],
    )
    .unwrap();
    std::fs::read(path).unwrap()
}

/// A gzipped tar of two small files.
fn tar_gz_bytes() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in [("d/a.txt", &b"hello"[..]), ("d/b.bin", &[1u8; 700][..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Small images in every format the folders read.
fn image_seeds() -> Vec<Vec<u8>> {
    let img = image::RgbImage::from_fn(12, 9, |x, y| image::Rgb([x as u8 * 20, y as u8 * 25, 128]));
    let formats = [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Gif,
        image::ImageFormat::Bmp,
        image::ImageFormat::WebP,
        image::ImageFormat::Tiff,
    ];
    formats
        .iter()
        .map(|&f| {
            let mut out = std::io::Cursor::new(Vec::new());
            image::DynamicImage::ImageRgb8(img.clone())
                .write_to(&mut out, f)
                .unwrap();
            out.into_inner()
        })
        .collect()
}

/// What the folders convert images to in these tests: small, with a pixel
/// limit low enough that the bound below is tight.
fn image_options() -> FolderOptions {
    FolderOptions {
        height: 32,
        width: 32,
        channels: 3,
        cache_dir: None,
        max_pixels: 1 << 20,
        ..FolderOptions::default()
    }
}

/// What decoding an image of `pixels` pixels may cost: the decoded image
/// at 16 bytes a pixel (the widest colour type), one converted copy of it,
/// and a few buffers of the output's size. A resize whose intermediate
/// grows with one side times the output's other side (issue 18's 17 GB)
/// goes past it for thin images.
fn image_bound(pixels: u64) -> usize {
    32 * pixels as usize + (16 << 20)
}

/// A CIFAR-10 folder of `format` ("bin" or "py") whose test batch holds
/// `batch` and whose class names file holds `meta`; loads its test split.
fn load_cifar(format: &str, batch: &[u8], meta: &[u8]) -> twinsim_data::Result<twinsim_data::Dataset> {
    let root = tempfile::tempdir().unwrap();
    let (folder, test, names) = match format {
        "bin" => ("cifar-10-batches-bin", "test_batch.bin", "batches.meta.txt"),
        _ => ("cifar-10-batches-py", "test_batch", "batches.meta"),
    };
    let dir = root.path().join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(test), batch).unwrap();
    std::fs::write(dir.join(names), meta).unwrap();
    cifar::load("cifar10", 10, &dir, CifarSplit::Test, None)
}

/// Archive limits small enough for a tight bound.
const TAR_LIMITS: Limits = Limits {
    max_total_bytes: 8 << 20,
    max_members: 1000,
};

/// Reads and extracts the archive `bytes`; nothing may land outside the
/// extraction folder.
fn check_archive(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (dir, path) = file("a.tar.gz", bytes);
    within(
        "archive::read_members",
        2 * TAR_LIMITS.max_total_bytes as usize + linear(bytes.len()),
        || {
            let _ = archive::read_members(&path, &TAR_LIMITS, |_| true);
        },
    )?;
    let dest = dir.path().join("out");
    std::fs::create_dir(&dest).unwrap();
    within(
        "archive::extract",
        2 * TAR_LIMITS.max_total_bytes as usize + linear(bytes.len()),
        || {
            let _ = archive::extract(&path, &dest, &TAR_LIMITS);
        },
    )?;
    let mut outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    outside.sort();
    prop_assert_eq!(outside, vec![std::ffi::OsString::from("a.tar.gz"), "out".into()]);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn idx_parsers_survive_any_bytes(bytes in any_bytes(4096)) {
        let _serial = serial();
        let p = Path::new("x-idx3-ubyte");
        within("idx::parse_images", linear(bytes.len()), || { let _ = idx::parse_images(p, &bytes); })?;
        within("idx::parse_labels", linear(bytes.len()), || { let _ = idx::parse_labels(p, &bytes); })?;
    }

    #[test]
    fn idx_parsers_survive_damaged_files(m in mutation()) {
        let _serial = serial();
        let p = Path::new("x-idx3-ubyte");
        let (images, labels) = (m.apply(&idx_images()), m.apply(&idx_labels()));
        within("idx::parse_images", linear(images.len()), || { let _ = idx::parse_images(p, &images); })?;
        within("idx::parse_labels", linear(labels.len()), || { let _ = idx::parse_labels(p, &labels); })?;
    }

    #[test]
    fn cifar_binary_batches_survive_damage(m in mutation(), noise in any_bytes(8000)) {
        let _serial = serial();
        for batch in [m.apply(&cifar_records(2)), noise.clone()] {
            within("cifar binary", linear(batch.len()), || { let _ = load_cifar("bin", &batch, CLASSES.as_bytes()); })?;
        }
        let meta = m.apply(CLASSES.as_bytes());
        within("cifar binary names", linear(meta.len() + 6146), || {
            let _ = load_cifar("bin", &cifar_records(2), &meta);
        })?;
    }

    #[test]
    fn pickle_reader_survives_damage(m in mutation(), noise in any_bytes(2048)) {
        let _serial = serial();
        // Through both files of a python batch folder: the batch and the
        // class names are read by the same restricted unpickler.
        let seed = meta_pickle();
        let tail: Vec<u8> = b"\x80\x02".iter().chain(&noise).copied().collect();
        for bytes in [m.apply(&seed), noise.clone(), tail] {
            within("pickle (batch)", linear(bytes.len()), || { let _ = load_cifar("py", &bytes, &seed); })?;
            within("pickle (names)", linear(bytes.len()), || { let _ = load_cifar("py", &seed, &bytes); })?;
        }
    }

    #[test]
    fn npy_parser_survives_damage(m in mutation(), noise in any_bytes(2048)) {
        let _serial = serial();
        let seed = npy::to_bytes(&[2, 3], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]);
        for bytes in [m.apply(&seed), noise.clone(), [&b"\x93NUMPY\x01\x00"[..], &noise].concat()] {
            within("npy f64", linear(bytes.len()), || { let _ = npy::from_bytes::<f64>(&bytes); })?;
            within("npy f32", linear(bytes.len()), || { let _ = npy::from_bytes::<f32>(&bytes); })?;
            within("npy i64", linear(bytes.len()), || { let _ = npy::from_bytes::<i64>(&bytes); })?;
        }
    }

    #[test]
    fn npz_reader_survives_damage(m in mutation(), noise in any_bytes(2048)) {
        let _serial = serial();
        for bytes in [m.apply(&npz_bytes()), noise.clone()] {
            let (_dir, path) = file("s.npz", &bytes);
            // A member may declare up to MAX_MEMBER bytes; none of these
            // files can hold that much, so their own size bounds them.
            within("npz::read_f64", linear(bytes.len()), || {
                let _ = npz::read_f64(&path, "mu");
                let _ = npz::read_f64(&path, "sigma");
            })?;
        }
    }

    #[test]
    fn torch_reader_survives_damage(m in mutation(), noise in any_bytes(2048), zip in any::<bool>()) {
        let _serial = serial();
        let seed: &[u8] = match zip {
            true => include_bytes!("data/state_dict_zip.pth"),
            false => include_bytes!("data/state_dict_legacy.pth"),
        };
        for bytes in [m.apply(seed), noise.clone()] {
            let (_dir, path) = file("w.pth", &bytes);
            // "No file can make this reader allocate more than a few times
            // its own size" (torch_file's documentation).
            within("torch_file::read_state_dict", linear(bytes.len()), || {
                let _ = torch_file::read_state_dict(&path);
            })?;
        }
    }

    #[test]
    fn gzip_reader_survives_damage(m in mutation(), noise in any_bytes(2048)) {
        let _serial = serial();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&idx_images()).unwrap();
        let seed = gz.finish().unwrap();
        for bytes in [m.apply(&seed), noise.clone()] {
            let (_dir, path) = file("x.gz", &bytes);
            within("read::read_maybe_gz", 2 * (1 << 20) + linear(bytes.len()), || {
                let _ = read::read_maybe_gz(&path, 1 << 20);
            })?;
        }
    }

    #[test]
    fn archives_survive_damage(m in mutation(), noise in any_bytes(4096)) {
        let _serial = serial();
        check_archive(&m.apply(&tar_gz_bytes()))?;
        check_archive(&noise)?;
    }

    #[test]
    fn image_decoder_survives_damage(m in mutation(), which in any::<Index>(), noise in any_bytes(4096)) {
        let _serial = serial();
        let seeds = image_seeds();
        let seed = &seeds[which.index(seeds.len())];
        let opts = image_options();
        for bytes in [m.apply(seed), noise.clone()] {
            within("folder::decode_bytes", image_bound(opts.max_pixels), || { let _ = folder::decode_bytes(&bytes, &opts); })?;
        }
    }
}

/// A PNG of `width` x `height` blank grey pixels: a few hundred bytes
/// that decode to `width * height` pixels (issue 18's 38 KB image was one).
fn blank_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::NoFilter,
    );
    image::ImageEncoder::write_image(
        encoder,
        &vec![0; (width * height) as usize],
        width,
        height,
        image::ExtendedColorType::L8,
    )
    .unwrap();
    out.into_inner()
}

/// The shapes within the pixel limit that a resize once turned into a
/// buffer of width x output height x 4 channels x f32: each must decode or
/// be refused within the bound of any other image.
#[test]
fn extreme_aspect_ratios_stay_within_the_image_bound() {
    let _serial = serial();
    let opts = image_options();
    let max = opts.max_pixels as u32;
    for (w, h) in [
        (max, 1),
        (1, max),
        (max / 2, 2),
        (65_535, 1),
        (1, 65_535),
        (65_535, 16),
        (16, 65_535),
    ] {
        let png = blank_png(w, h);
        let result = within(
            &format!("decode_bytes of {w}x{h}"),
            image_bound(u64::from(w * h)),
            || folder::decode_bytes(&png, &opts).map(|p| p.len()),
        );
        match result {
            Ok(Ok(len)) => assert_eq!(len, 3 * 32 * 32, "{w}x{h}"),
            Ok(Err(_refused)) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// The measurement itself: a call that allocates past its bound fails,
/// one that stays within passes (else every bound above would be void).
#[test]
fn the_counting_allocator_sees_what_a_call_allocates() {
    let _serial = serial();
    let big = within("a 64 MiB buffer", 32 << 20, || {
        std::hint::black_box(vec![1u8; 64 << 20]).len()
    });
    assert!(big.is_err(), "a 64 MiB allocation passed a 32 MiB bound");
    let small = within("a 1 MiB buffer", 32 << 20, || {
        std::hint::black_box(vec![1u8; 1 << 20]).len()
    });
    assert_eq!(small.unwrap(), 1 << 20);
}
