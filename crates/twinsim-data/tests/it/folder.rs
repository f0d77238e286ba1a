//! The image-folder reader: real CIFAR-10 JPEGs, every colour model and
//! format the decoder meets in the wild, damaged and hostile files, and the
//! decoded-split cache.

use crate::common;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use flate2::read::GzDecoder;
use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, Luma, LumaA, Rgb, RgbImage, Rgba};
use tempfile::TempDir;
use twinsim_data::folder::{self, FolderLoad, FolderOptions, SkipReason};
use twinsim_data::DataError;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Options without a cache, so that tests never touch the user's cache folder.
fn opts(height: usize, width: usize, channels: usize) -> FolderOptions {
    FolderOptions {
        height,
        width,
        channels,
        cache_dir: None,
        ..FolderOptions::default()
    }
}

/// Runs `f` while recording the warnings emitted on this thread.
fn warnings<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = tracing::subscriber::with_default(WarnCapture(seen.clone()), f);
    let seen = seen.lock().unwrap().clone();
    (out, seen)
}

/// A subscriber keeping the message of every WARN event.
struct WarnCapture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for WarnCapture {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() == tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push(message.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Loads `split` of `root`, returning the report and the warnings it emitted.
fn load_warned(root: &Path, split: &str, o: &FolderOptions) -> (FolderLoad, Vec<String>) {
    let (loaded, warned) = warnings(|| folder::load_report(root, split, o));
    (loaded.unwrap(), warned)
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// `img` encoded as `format`, written to `path` whatever its extension says.
fn save(path: &Path, img: &DynamicImage, format: ImageFormat) {
    let mut bytes = io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).unwrap();
    write(path, bytes.get_ref());
}

/// A w×h RGB image whose pixel (x, y) is `f(x, y)`.
fn rgb(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| Rgb(f(x, y))))
}

/// A small colourful image that differs with `seed`.
fn pattern(seed: u8) -> DynamicImage {
    rgb(8, 8, move |x, y| {
        [seed.wrapping_mul(31), (x * 30) as u8, (y * 30) as u8]
    })
}

fn save_png(path: &Path, img: &DynamicImage) {
    save(path, img, ImageFormat::Png);
}

/// (C, H, W) of an RGB image, as the loader returns it.
fn planar(img: &RgbImage) -> Vec<u8> {
    (0..3).flat_map(|c| img.pixels().map(move |p| p.0[c])).collect()
}

/// A PNG file written chunk by chunk, for what the encoder will not produce
/// (palettes, lying headers). `rows` are raw scanlines without filter bytes.
fn raw_png(
    width: u32,
    height: u32,
    depth: u8,
    colour: u8,
    extra: &[(&[u8; 4], Vec<u8>)],
    rows: &[u8],
) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, colour, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    for (kind, data) in extra {
        chunk(&mut out, kind, data);
    }
    let stride = rows.len() / height.max(1) as usize;
    let mut filtered = Vec::new();
    for row in rows.chunks(stride.max(1)) {
        filtered.push(0);
        filtered.extend_from_slice(row);
    }
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&filtered).unwrap();
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

fn skipped_reason(loaded: &FolderLoad, name: &str) -> SkipReason {
    loaded
        .skipped
        .iter()
        .find(|s| s.path.file_name().unwrap() == name)
        .unwrap_or_else(|| panic!("{name} not skipped: {:?}", loaded.skipped))
        .reason
        .clone()
}

/// Copies the first `per_class` images of every class of both splits of the
/// shared CIFAR-10 JPEG folder into `dest`, returning their relative paths.
fn extract_cifar(dest: &Path, per_class: usize) -> Vec<PathBuf> {
    let tarball = common::shared_data().join("cifar10/cifar10-jpeg.tar.gz");
    let mut archive = tar::Archive::new(GzDecoder::new(File::open(&tarball).unwrap()));
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    let mut copied = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let rel = entry.path().unwrap().into_owned();
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        if !entry.header().entry_type().is_file() || parts.len() != 3 {
            continue;
        }
        let count = counts.entry((parts[0].clone(), parts[1].clone())).or_default();
        if *count < per_class {
            *count += 1;
            let path = dest.join(&rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            io::copy(&mut entry, &mut File::create(&path).unwrap()).unwrap();
            copied.push(rel);
        }
    }
    copied.sort();
    copied
}

/// The image files of `split` under `root`, in class then name order.
fn files_of(copied: &[PathBuf], split: &str) -> Vec<PathBuf> {
    copied.iter().filter(|p| p.starts_with(split)).cloned().collect()
}

fn class_of(rel: &Path) -> String {
    rel.iter().nth(1).unwrap().to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------
// Real data
// ---------------------------------------------------------------------------

#[test]
fn cifar_jpegs_load_as_decoded_by_the_image_crate() {
    let tmp = TempDir::new().unwrap();
    let copied = extract_cifar(tmp.path(), 50);
    assert_eq!(folder::splits(tmp.path()).unwrap(), ["train", "test"]);
    let expected_classes = common::CIFAR10_CLASSES;
    for split in ["train", "test"] {
        let data = folder::load(tmp.path(), split, &opts(32, 32, 3)).unwrap();
        let files = files_of(&copied, split);
        assert_eq!(data.len(), 500);
        assert_eq!(files.len(), 500);
        assert_eq!(data.name, "folder");
        assert_eq!(data.split, split);
        assert_eq!(data.classes, expected_classes);
        assert_eq!(data.images.shape().to_string(), "3x32x32");
        assert_eq!(data.class_counts(), vec![50; 10]);
        assert_eq!(
            data.origin,
            twinsim_data::Origin::Files(vec![tmp.path().join(split)])
        );
        for (i, rel) in files.iter().enumerate() {
            assert_eq!(
                data.classes[data.labels[i] as usize],
                class_of(rel),
                "{}",
                rel.display()
            );
            let direct = image::open(tmp.path().join(rel)).unwrap().to_rgb8();
            assert_eq!(data.images.image(i), planar(&direct), "{}", rel.display());
        }
    }
}

#[test]
fn cifar_jpegs_at_28x28_grey_are_resized_luma() {
    let tmp = TempDir::new().unwrap();
    let copied = extract_cifar(tmp.path(), 20);
    let grey = folder::load(tmp.path(), "test", &opts(28, 28, 1)).unwrap();
    assert_eq!(grey.images.shape().to_string(), "1x28x28");
    assert_eq!(grey.len(), 200);
    for (i, rel) in files_of(&copied, "test").iter().enumerate() {
        let decoded = image::open(tmp.path().join(rel)).unwrap();
        let luma = image::imageops::resize(&decoded.to_luma8(), 28, 28, FilterType::Triangle);
        assert_eq!(
            grey.images.image(i),
            luma.as_raw().as_slice(),
            "{}",
            rel.display()
        );
        // Independently of the crate's helpers: luma is Rec. 709 of the RGB.
        let small = image::imageops::resize(&decoded.to_rgb8(), 28, 28, FilterType::Triangle);
        let mean_709 = small
            .pixels()
            .map(|p| 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64)
            .sum::<f64>()
            / 784.0;
        let mean = grey.images.image(i).iter().map(|&v| v as f64).sum::<f64>() / 784.0;
        assert!(
            (mean - mean_709).abs() < 1.5,
            "{}: mean {mean} vs {mean_709}",
            rel.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Cache
// ---------------------------------------------------------------------------

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

#[test]
fn second_load_comes_from_the_cache_until_a_file_changes() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("images");
    extract_cifar(&root, 10);
    let cache = tmp.path().join("cache");
    let o = FolderOptions {
        cache_dir: Some(cache.clone()),
        ..opts(32, 32, 3)
    };
    let first = folder::load_report(&root, "train", &o).unwrap();
    assert!(!first.from_cache);
    assert_eq!(cache_files(&cache).len(), 1, "one file per split and options");
    let second = folder::load_report(&root, "train", &o).unwrap();
    assert!(second.from_cache);
    assert_eq!(second.dataset, first.dataset);
    assert_eq!(
        first.dataset,
        folder::load(&root, "train", &opts(32, 32, 3)).unwrap()
    );

    // Other options or another split are other cache entries.
    assert!(
        !folder::load_report(
            &root,
            "train",
            &FolderOptions {
                channels: 1,
                ..o.clone()
            }
        )
        .unwrap()
        .from_cache
    );
    assert!(!folder::load_report(&root, "test", &o).unwrap().from_cache);
    assert_eq!(cache_files(&cache).len(), 3);

    // An added image.
    save_png(&root.join("train/cat/zzz-new.png"), &pattern(1));
    let added = folder::load_report(&root, "train", &o).unwrap();
    assert!(!added.from_cache);
    assert_eq!(added.dataset.len(), first.dataset.len() + 1);
    assert!(folder::load_report(&root, "train", &o).unwrap().from_cache);
    assert_eq!(
        cache_files(&cache).len(),
        3,
        "the changed split replaced its old entry"
    );

    // A rewritten image.
    save_png(&root.join("train/cat/zzz-new.png"), &pattern(2));
    let rewritten = folder::load_report(&root, "train", &o).unwrap();
    assert!(!rewritten.from_cache);
    assert_ne!(rewritten.dataset.images, added.dataset.images);

    // A removed image.
    fs::remove_file(root.join("train/airplane/0000.jpg")).unwrap();
    let removed = folder::load_report(&root, "train", &o).unwrap();
    assert!(!removed.from_cache);
    assert_eq!(removed.dataset.len(), added.dataset.len() - 1);
}

#[test]
fn cached_load_reports_the_same_skipped_files() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("images");
    save_png(&root.join("a/1.png"), &pattern(1));
    write(&root.join("a/notes.txt"), b"not an image");
    let o = FolderOptions {
        cache_dir: Some(tmp.path().join("cache")),
        ..opts(8, 8, 3)
    };
    let (first, first_warned) = load_warned(&root, "train", &o);
    let (second, second_warned) = load_warned(&root, "train", &o);
    assert!(second.from_cache);
    assert_eq!(second.skipped, first.skipped);
    assert_eq!(second.skipped.len(), 1);
    assert_eq!(second_warned, first_warned);
}

/// Rewrites the cache file's JSON header with `edit`.
fn edit_header(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let bytes = fs::read(path).unwrap();
    let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[16..16 + len]).unwrap();
    edit(&mut header);
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[16 + len..]);
    fs::write(path, out).unwrap();
}

/// A way to damage a cache file in place.
type Damage = Box<dyn Fn(&Path)>;

#[test]
fn damaged_cache_files_are_rebuilt_not_trusted() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("images");
    for (i, class) in ["a", "b"].iter().enumerate() {
        for j in 0..3 {
            save_png(
                &root.join(format!("{class}/{j}.png")),
                &pattern((i * 3 + j) as u8),
            );
        }
    }
    let cache = tmp.path().join("cache");
    let o = FolderOptions {
        cache_dir: Some(cache.clone()),
        ..opts(8, 8, 3)
    };
    let good = folder::load(&root, "train", &o).unwrap();
    let file = cache_files(&cache).pop().unwrap();
    let pristine = fs::read(&file).unwrap();
    let damages: Vec<(&str, Damage)> = vec![
        (
            "truncated",
            Box::new(|p| fs::write(p, &fs::read(p).unwrap()[..100]).unwrap()),
        ),
        ("empty", Box::new(|p| fs::write(p, b"").unwrap())),
        (
            "bad magic",
            Box::new(|p| {
                let mut b = fs::read(p).unwrap();
                b[0] ^= 0xff;
                fs::write(p, b).unwrap();
            }),
        ),
        (
            "huge header length",
            Box::new(|p| {
                let mut b = fs::read(p).unwrap();
                b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
                fs::write(p, b).unwrap();
            }),
        ),
        (
            "garbage header",
            Box::new(|p| {
                let mut b = fs::read(p).unwrap();
                b[16..24].copy_from_slice(b"\0\0\0\0\0\0\0\0");
                fs::write(p, b).unwrap();
            }),
        ),
        (
            "huge image count",
            Box::new(|p| edit_header(p, |h| h["n"] = serde_json::json!(1u64 << 60))),
        ),
        (
            "other digest",
            Box::new(|p| edit_header(p, |h| h["digest"] = serde_json::json!("00"))),
        ),
        (
            "label out of range",
            Box::new(|p| {
                let mut b = fs::read(p).unwrap();
                let len = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
                b[16 + len..20 + len].copy_from_slice(&7u32.to_le_bytes());
                fs::write(p, b).unwrap();
            }),
        ),
        (
            "extra bytes",
            Box::new(|p| {
                let mut b = fs::read(p).unwrap();
                b.push(0);
                fs::write(p, b).unwrap();
            }),
        ),
    ];
    for (what, damage) in damages {
        fs::write(&file, &pristine).unwrap();
        damage(&file);
        let reloaded = folder::load_report(&root, "train", &o).unwrap();
        assert!(!reloaded.from_cache, "{what}: damaged cache used");
        assert_eq!(reloaded.dataset, good, "{what}");
        assert_eq!(fs::read(&file).unwrap(), pristine, "{what}: cache not rebuilt");
    }
}

#[test]
fn unwritable_cache_folder_only_warns() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("images");
    save_png(&root.join("a/1.png"), &pattern(1));
    let blocker = tmp.path().join("not-a-folder");
    write(&blocker, b"a file where the cache folder should be");
    let o = FolderOptions {
        cache_dir: Some(blocker.join("cache")),
        ..opts(8, 8, 3)
    };
    let (loaded, warned) = load_warned(&root, "train", &o);
    assert_eq!(loaded.dataset.len(), 1);
    assert!(warned.iter().any(|w| w.contains("cache")), "{warned:?}");
}

// ---------------------------------------------------------------------------
// Layout, classes, order
// ---------------------------------------------------------------------------

#[test]
fn splits_of_flat_and_divided_folders() {
    let tmp = TempDir::new().unwrap();
    save_png(&tmp.path().join("flat/cat/1.png"), &pattern(1));
    assert_eq!(folder::splits(&tmp.path().join("flat")).unwrap(), ["train"]);
    save_png(&tmp.path().join("both/train/cat/1.png"), &pattern(1));
    save_png(&tmp.path().join("both/test/cat/1.png"), &pattern(1));
    assert_eq!(
        folder::splits(&tmp.path().join("both")).unwrap(),
        ["train", "test"]
    );
    save_png(&tmp.path().join("test-only/test/cat/1.png"), &pattern(1));
    assert_eq!(folder::splits(&tmp.path().join("test-only")).unwrap(), ["test"]);
}

#[test]
fn class_list_is_the_union_of_all_splits() {
    let tmp = TempDir::new().unwrap();
    for rel in [
        "train/ant/1.png",
        "train/bee/1.png",
        "test/bee/1.png",
        "test/cow/1.png",
        "test/cow/2.png",
    ] {
        save_png(&tmp.path().join(rel), &pattern(rel.len() as u8));
    }
    let train = folder::load(tmp.path(), "train", &opts(8, 8, 3)).unwrap();
    let test = folder::load(tmp.path(), "test", &opts(8, 8, 3)).unwrap();
    assert_eq!(train.classes, ["ant", "bee", "cow"]);
    assert_eq!(test.classes, train.classes);
    assert_eq!(train.labels, [0, 1]);
    assert_eq!(test.labels, [1, 2, 2]);
}

#[test]
fn order_is_sorted_whatever_the_creation_order() {
    let tmp = TempDir::new().unwrap();
    for (name, seed) in [
        ("c/z.png", 5),
        ("c/a.png", 4),
        ("b/m.png", 3),
        ("a/2.png", 2),
        ("a/10.png", 1),
    ] {
        save_png(&tmp.path().join(name), &pattern(seed));
    }
    let data = folder::load(tmp.path(), "train", &opts(8, 8, 3)).unwrap();
    assert_eq!(data.labels, [0, 0, 1, 2, 2]);
    let seeds: Vec<u8> = (0..5).map(|i| data.images.image(i)[0]).collect();
    let expected: Vec<u8> = [1u8, 2, 3, 4, 5].iter().map(|s| s.wrapping_mul(31)).collect();
    assert_eq!(seeds, expected, "byte order of names: 10.png before 2.png");
}

#[test]
fn empty_class_folders_are_warned_about_and_left_out() {
    let tmp = TempDir::new().unwrap();
    save_png(&tmp.path().join("ant/1.png"), &pattern(1));
    save_png(&tmp.path().join("cow/1.png"), &pattern(2));
    fs::create_dir_all(tmp.path().join("bee")).unwrap();
    write(&tmp.path().join("dog/.DS_Store"), b"\0\0\0\x01Bud1");
    let (loaded, warned) = load_warned(tmp.path(), "train", &opts(8, 8, 3));
    assert_eq!(loaded.dataset.classes, ["ant", "cow"]);
    assert_eq!(loaded.dataset.labels, [0, 1]);
    assert_eq!(loaded.empty_classes, ["bee", "dog"]);
    let warning = warned.iter().find(|w| w.contains("empty")).expect("a warning");
    assert!(warning.contains("bee") && warning.contains("dog"), "{warning}");
}

#[test]
fn hidden_folders_and_loose_files_are_not_classes() {
    let tmp = TempDir::new().unwrap();
    save_png(&tmp.path().join("ant/1.png"), &pattern(1));
    save_png(&tmp.path().join(".thumbnails/1.png"), &pattern(2));
    save_png(&tmp.path().join("loose.png"), &pattern(3));
    let (loaded, warned) = load_warned(tmp.path(), "train", &opts(8, 8, 3));
    assert_eq!(loaded.dataset.classes, ["ant"]);
    assert_eq!(loaded.dataset.len(), 1);
    assert!(warned.is_empty(), "{warned:?}");
}

#[test]
fn folders_inside_class_folders_are_reported() {
    let tmp = TempDir::new().unwrap();
    save_png(&tmp.path().join("ant/1.png"), &pattern(1));
    save_png(&tmp.path().join("ant/more/2.png"), &pattern(2));
    let (loaded, warned) = load_warned(tmp.path(), "train", &opts(8, 8, 3));
    assert_eq!(loaded.dataset.len(), 1);
    assert!(matches!(
        skipped_reason(&loaded, "more"),
        SkipReason::Misplaced(_)
    ));
    assert_eq!(warned.len(), 1);
    assert!(warned[0].contains("more"), "{warned:?}");
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn missing_root_is_an_error_naming_it() {
    let tmp = TempDir::new().unwrap();
    let missing = tmp.path().join("no-such-folder");
    for err in [
        folder::load(&missing, "train", &opts(8, 8, 3)).unwrap_err(),
        folder::splits(&missing).unwrap_err(),
    ] {
        assert!(matches!(err, DataError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-folder"), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}

#[test]
fn root_that_is_a_file_is_an_error_naming_it() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("photo.png");
    save_png(&file, &pattern(1));
    let err = folder::load(&file, "train", &opts(8, 8, 3)).unwrap_err();
    assert!(
        err.to_string().contains("photo.png") && err.to_string().contains("not a folder"),
        "{err}"
    );
}

#[test]
fn test_split_of_a_flat_folder_is_refused_with_a_hint() {
    let tmp = TempDir::new().unwrap();
    save_png(&tmp.path().join("cat/1.png"), &pattern(1));
    let err = folder::load(tmp.path(), "test", &opts(8, 8, 3)).unwrap_err();
    assert!(matches!(err, DataError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("no 'test' split"), "{err}");
    let hint = err.hint().unwrap();
    assert!(hint.contains("splits are: train"), "{hint}");
    assert!(hint.contains("test/<class>"), "{hint}");
}

#[test]
fn folder_without_images_is_an_error() {
    let tmp = TempDir::new().unwrap();
    let err = folder::load(tmp.path(), "train", &opts(8, 8, 3)).unwrap_err();
    assert!(err.to_string().contains("no usable image"), "{err}");
    assert!(err.hint().unwrap().contains("<class>/<image>"));

    write(&tmp.path().join("cat/notes.txt"), b"hello");
    let (result, warned) = warnings(|| folder::load(tmp.path(), "train", &opts(8, 8, 3)));
    let err = result.unwrap_err();
    assert!(err.to_string().contains("all 1 files were skipped"), "{err}");
    assert!(warned.iter().any(|w| w.contains("notes.txt")), "{warned:?}");
}

#[test]
fn impossible_options_are_refused() {
    let tmp = TempDir::new().unwrap();
    save_png(&tmp.path().join("cat/1.png"), &pattern(1));
    for bad in [
        opts(8, 8, 2),
        opts(0, 8, 3),
        opts(8, 70_000, 1),
        FolderOptions {
            max_pixels: 0,
            ..opts(8, 8, 3)
        },
    ] {
        let err = folder::load(tmp.path(), "train", &bad).unwrap_err();
        assert!(matches!(err, DataError::Invalid { .. }), "{bad:?}: {err:?}");
    }
}

// ---------------------------------------------------------------------------
// Bad and unusual files
// ---------------------------------------------------------------------------

#[test]
fn non_image_files_are_skipped_and_named_in_one_warning() {
    let tmp = TempDir::new().unwrap();
    save_png(&tmp.path().join("cat/1.png"), &pattern(1));
    write(&tmp.path().join("cat/notes.txt"), b"these are my cats");
    write(&tmp.path().join("cat/.DS_Store"), b"\0\0\0\x01Bud1\0\0\x10\0");
    write(&tmp.path().join("cat/fake.jpg"), b"<html>not a jpeg</html>");
    let (loaded, warned) = load_warned(tmp.path(), "train", &opts(8, 8, 3));
    assert_eq!(loaded.dataset.len(), 1);
    for name in ["notes.txt", ".DS_Store", "fake.jpg"] {
        assert_eq!(skipped_reason(&loaded, name), SkipReason::NotAnImage);
    }
    assert_eq!(warned.len(), 1, "{warned:?}");
    for name in ["notes.txt", ".DS_Store", "fake.jpg", "skipped 3 of 4"] {
        assert!(warned[0].contains(name), "{name} missing from {}", warned[0]);
    }
}

#[test]
fn a_warning_names_ten_files_and_counts_the_rest() {
    let tmp = TempDir::new().unwrap();
    save_png(&tmp.path().join("cat/1.png"), &pattern(1));
    for i in 0..25 {
        write(&tmp.path().join(format!("cat/note{i:02}.txt")), b"text");
    }
    let (loaded, warned) = load_warned(tmp.path(), "train", &opts(8, 8, 3));
    assert_eq!(loaded.skipped.len(), 25);
    assert_eq!(warned.len(), 1);
    assert!(
        warned[0].contains("note09.txt") && !warned[0].contains("note10.txt"),
        "{}",
        warned[0]
    );
    assert!(warned[0].contains("and 15 more"), "{}", warned[0]);
}

/// A 48×40 noisy JPEG, so that its entropy-coded data is long enough to cut.
fn noisy_jpeg() -> Vec<u8> {
    let img = rgb(48, 40, |x, y| {
        [(x * 7 + y * 13) as u8, (x * y) as u8, (x ^ y) as u8 * 5]
    });
    let mut bytes = io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Jpeg).unwrap();
    bytes.into_inner()
}

#[test]
fn zero_byte_and_truncated_jpegs_are_skipped() {
    let tmp = TempDir::new().unwrap();
    let jpeg = noisy_jpeg();
    write(&tmp.path().join("cat/good.jpg"), &jpeg);
    write(&tmp.path().join("cat/empty.jpg"), b"");
    write(&tmp.path().join("cat/header-only.jpg"), &jpeg[..20]);
    write(&tmp.path().join("cat/half.jpg"), &jpeg[..jpeg.len() / 2]);
    let (loaded, warned) = load_warned(tmp.path(), "train", &opts(40, 48, 3));
    assert_eq!(loaded.dataset.len(), 1, "{:?}", loaded.skipped);
    assert_eq!(skipped_reason(&loaded, "empty.jpg"), SkipReason::Empty);
    for name in ["header-only.jpg", "half.jpg"] {
        assert!(
            matches!(skipped_reason(&loaded, name), SkipReason::Damaged(_)),
            "{name}"
        );
        assert!(warned[0].contains(name));
    }
}

/// A 16×16 progressive JPEG (10 scans) with a restart marker after every
/// block, written by Pillow 13 (`save(f, "JPEG", quality=50, progressive=True,
/// restart_marker_blocks=1)`) from the gradient (16x, 16y, 128); PIL decodes
/// its corners as (7, 1, 111) and (235, 239, 145).
const PROGRESSIVE_JPEG: [&str; 14] = [
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a1816",
    "16183123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c6567",
    "63ffdb0043011112121815182f1a1a2f63423842636363636363636363636363636363636363636363636363",
    "6363636363636363636363636363636363636363636363636363ffc200110800100010030122000211010311",
    "01ffc4001500010100000000000000000000000000000405ffc4001501010100000000000000000000000000",
    "000001ffdd00040001ffda000c030100021003100000019e9526bfffc4001510010100000000000000000000",
    "000000000200ffda000801010001050222ffd022ffd122ffd222ffc400161100030000000000000000000000",
    "000000000304ffda0008010301013f019de7ffc400161100030000000000000000000000000000000203ffda",
    "0008010201013f016a9fffc40014100100000000000000000000000000000000ffda0008010100063f027fff",
    "d07fffd17fffd27fffc40014100100000000000000000000000000000000ffda0008010100013f213fffd03f",
    "ffd13fffd23fffda000c0301000200030000001053ffc4001611000300000000000000000000000000000021",
    "31ffda0008010301013f10833fffc40014110100000000000000000000000000000000ffda0008010201013f",
    "107fffc400161000030000000000000000000000000000002131ffda0008010100013f10823fffd0823fffd1",
    "823fffd2823fffd9",
];

#[test]
fn progressive_jpegs_with_restart_markers_and_trailers_load() {
    let tmp = TempDir::new().unwrap();
    let jpeg = unhex(&PROGRESSIVE_JPEG);
    write(&tmp.path().join("a/plain.jpg"), &jpeg);
    // Camera trailers and motion-photo videos follow the end-of-image marker.
    write(
        &tmp.path().join("a/trailer.jpg"),
        &[&jpeg[..], b"\x00\x00\x00\x18ftypmp42 trailing video"].concat(),
    );
    write(&tmp.path().join("b/no-eoi.jpg"), &jpeg[..jpeg.len() - 2]);
    write(&tmp.path().join("b/last-scan-cut.jpg"), &jpeg[..jpeg.len() - 12]);
    write(&tmp.path().join("b/two-scans.jpg"), &jpeg[..300]);
    let (loaded, _) = load_warned(tmp.path(), "train", &opts(16, 16, 3));
    assert_eq!(loaded.dataset.len(), 2, "{:?}", loaded.skipped);
    for name in ["no-eoi.jpg", "last-scan-cut.jpg", "two-scans.jpg"] {
        assert!(
            matches!(skipped_reason(&loaded, name), SkipReason::Damaged(_)),
            "{name}"
        );
    }
    let img = loaded.dataset.images.image(0);
    assert_eq!(loaded.dataset.images.image(1), img);
    let corner = |i: usize| [img[i], img[256 + i], img[512 + i]];
    for (got, pil) in [(corner(0), [7u8, 1, 111]), (corner(255), [235, 239, 145])] {
        assert!(
            got.iter().zip(pil).all(|(g, p)| g.abs_diff(p) <= 8),
            "{got:?} vs PIL's {pil:?}"
        );
    }
}

#[test]
fn truncated_files_of_every_format_are_skipped() {
    let tmp = TempDir::new().unwrap();
    let img = rgb(40, 40, |x, y| {
        [(x * 6) as u8, (y * 6) as u8, ((x * y) % 251) as u8]
    });
    let formats = [
        ImageFormat::Png,
        ImageFormat::Bmp,
        ImageFormat::WebP,
        ImageFormat::Gif,
        ImageFormat::Tiff,
    ];
    for format in formats {
        let mut bytes = io::Cursor::new(Vec::new());
        let img = if format == ImageFormat::Gif {
            DynamicImage::ImageRgba8(img.to_rgba8())
        } else {
            img.clone()
        };
        img.write_to(&mut bytes, format).unwrap();
        let bytes = bytes.into_inner();
        let name = format!("{format:?}").to_lowercase();
        write(&tmp.path().join(format!("whole/{name}")), &bytes);
        write(
            &tmp.path().join(format!("cut/{name}")),
            &bytes[..bytes.len() * 2 / 3],
        );
    }
    let (loaded, warned) = load_warned(tmp.path(), "train", &opts(40, 40, 3));
    assert_eq!(loaded.dataset.classes, ["cut", "whole"]);
    assert_eq!(loaded.dataset.labels, [1; 5], "{:?}", loaded.skipped);
    assert_eq!(loaded.skipped.len(), 5);
    assert!(
        loaded
            .skipped
            .iter()
            .all(|s| matches!(s.reason, SkipReason::Damaged(_))),
        "{:?}",
        loaded.skipped
    );
    assert_eq!(warned.len(), 1);
}

/// An 8×8 CMYK JPEG of (C, M, Y, K) = (200, 30, 60, 40), written by Pillow 13
/// (`Image.new("CMYK", (8, 8), (200, 30, 60, 40)).save(f, "JPEG", quality=95)`,
/// Adobe-inverted as Photoshop writes them); PIL's `convert("RGB")` of it
/// gives (46, 190, 164).
const CMYK_JPEG: [&str; 9] = [
    "ffd8ffee000e41646f626500640000000000ffdb004300020101010101020101010202020202040302020202",
    "0504040304060506060605060606070908060709070606080b08090a0a0a0a0a06080b0c0b0a0c090a0a0aff",
    "c000140800080008044311004d11005911004b1100ffc4001f00000105010101010101000000000000000001",
    "02030405060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613",
    "516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a",
    "434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495",
    "969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3",
    "e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda000e0443004d0059004b00003f00fcdbafd84afd0cafd5caff",
    "d9",
];

fn unhex(parts: &[&str]) -> Vec<u8> {
    let hex = parts.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn cmyk_jpeg_is_converted_to_rgb_like_pil() {
    let tmp = TempDir::new().unwrap();
    write(&tmp.path().join("cat/cmyk.jpg"), &unhex(&CMYK_JPEG));
    let (loaded, _) = load_warned(tmp.path(), "train", &opts(8, 8, 3));
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    let img = loaded.dataset.images.image(0);
    for (c, pil) in [46u8, 190, 164].into_iter().enumerate() {
        for &v in &img[c * 64..(c + 1) * 64] {
            assert!(v.abs_diff(pil) <= 3, "channel {c}: {v} vs PIL's {pil}");
        }
    }
}

#[test]
fn sixteen_bit_pngs_are_scaled_to_8_bits() {
    let tmp = TempDir::new().unwrap();
    let rgb16 = image::ImageBuffer::from_pixel(4, 4, Rgb([0xABCDu16, 200 * 257, 0xFFFF]));
    save_png(&tmp.path().join("a/rgb16.png"), &DynamicImage::ImageRgb16(rgb16));
    let grey16 = image::ImageBuffer::from_pixel(4, 4, Luma([77u16 * 257]));
    save_png(
        &tmp.path().join("b/grey16.png"),
        &DynamicImage::ImageLuma16(grey16),
    );
    let colour = folder::load(tmp.path(), "train", &opts(4, 4, 3)).unwrap();
    assert_eq!(
        colour.images.image(0),
        [[171u8; 16], [200; 16], [255; 16]].concat()
    );
    assert_eq!(colour.images.image(1), [77u8; 48]);
    let grey = folder::load(tmp.path(), "train", &opts(4, 4, 1)).unwrap();
    assert_eq!(grey.images.image(1), [77u8; 16]);
}

#[test]
fn palette_pngs_are_expanded() {
    let tmp = TempDir::new().unwrap();
    let palette = vec![10, 20, 30, 200, 100, 50];
    let transparency = vec![255, 0];
    let png = raw_png(
        2,
        2,
        8,
        3,
        &[(b"PLTE", palette), (b"tRNS", transparency)],
        &[0, 1, 1, 0],
    );
    write(&tmp.path().join("a/palette.png"), &png);
    let (loaded, _) = load_warned(tmp.path(), "train", &opts(2, 2, 3));
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    let expected: Vec<u8> = [[10u8, 200, 200, 10], [20, 100, 100, 20], [30, 50, 50, 30]].concat();
    assert_eq!(loaded.dataset.images.image(0), expected);
}

#[test]
fn alpha_is_dropped_not_composited_and_grey_is_replicated() {
    let tmp = TempDir::new().unwrap();
    let rgba = image::ImageBuffer::from_pixel(2, 2, Rgba([200u8, 100, 50, 0]));
    save_png(&tmp.path().join("a/rgba.png"), &DynamicImage::ImageRgba8(rgba));
    let grey_alpha = image::ImageBuffer::from_pixel(2, 2, LumaA([90u8, 10]));
    save_png(
        &tmp.path().join("b/grey-alpha.png"),
        &DynamicImage::ImageLumaA8(grey_alpha),
    );
    let data = folder::load(tmp.path(), "train", &opts(2, 2, 3)).unwrap();
    assert_eq!(data.images.image(0), [[200u8; 4], [100; 4], [50; 4]].concat());
    assert_eq!(data.images.image(1), [90u8; 12]);
}

#[test]
fn every_format_is_recognised_by_content_not_extension() {
    let tmp = TempDir::new().unwrap();
    let img = rgb(8, 8, |x, y| {
        if (x + y) % 2 == 0 {
            [255, 0, 0]
        } else {
            [0, 0, 255]
        }
    });
    let formats = [
        ("png.jpg", ImageFormat::Png),
        ("bmp.png", ImageFormat::Bmp),
        ("webp", ImageFormat::WebP),
        ("gif.txt", ImageFormat::Gif),
        ("tiff.bmp", ImageFormat::Tiff),
    ];
    for (name, format) in formats {
        let img = if format == ImageFormat::Gif {
            DynamicImage::ImageRgba8(img.to_rgba8())
        } else {
            img.clone()
        };
        save(&tmp.path().join("all").join(name), &img, format);
    }
    let (loaded, _) = load_warned(tmp.path(), "train", &opts(8, 8, 3));
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    assert_eq!(loaded.dataset.len(), formats.len());
    for i in 0..formats.len() {
        assert_eq!(
            loaded.dataset.images.image(i),
            planar(&img.to_rgb8()),
            "image {i}"
        );
    }
}

#[test]
fn images_are_stretched_with_antialiasing() {
    let tmp = TempDir::new().unwrap();
    let halves = rgb(64, 16, |x, _| if x < 32 { [255, 0, 0] } else { [0, 0, 255] });
    save_png(&tmp.path().join("a/halves.png"), &halves);
    let checker = rgb(64, 64, |x, y| if (x + y) % 2 == 0 { [0; 3] } else { [255; 3] });
    save_png(&tmp.path().join("b/checker.png"), &checker);
    let data = folder::load(tmp.path(), "train", &opts(8, 8, 3)).unwrap();
    let halves = data.images.image(0);
    // Red plane: the left column red, the right column not; stretched, not cropped.
    assert_eq!((halves[0], halves[7], halves[56], halves[63]), (255, 0, 255, 0));
    assert_eq!((halves[128], halves[135]), (0, 255), "blue plane");
    // A pixel-sized checkerboard averages to grey when antialiased; a
    // point-sampling resize would keep pure black or white.
    for &v in data.images.image(1) {
        assert!((120..=135).contains(&v), "checkerboard gave {v}");
    }
}

#[test]
fn decompression_bomb_is_refused_from_its_header() {
    let tmp = TempDir::new().unwrap();
    // 100,000 × 100,000 RGB declared (30 GB of pixels) in 100-odd bytes.
    let bomb = raw_png(100_000, 100_000, 8, 2, &[], &[0; 30]);
    assert!(bomb.len() < 200);
    write(&tmp.path().join("cat/bomb.png"), &bomb);
    save_png(&tmp.path().join("cat/fine.png"), &pattern(1));
    let started = Instant::now();
    let (loaded, warned) = load_warned(tmp.path(), "train", &opts(8, 8, 3));
    assert!(started.elapsed().as_secs_f64() < 5.0);
    assert_eq!(loaded.dataset.len(), 1);
    match skipped_reason(&loaded, "bomb.png") {
        SkipReason::TooLarge(why) => assert!(why.contains("100000x100000"), "{why}"),
        other => panic!("bomb skipped as {other:?}"),
    }
    assert!(warned[0].contains("bomb.png"));
}

#[test]
fn images_over_max_pixels_are_refused() {
    let tmp = TempDir::new().unwrap();
    save_png(&tmp.path().join("cat/big.png"), &rgb(64, 64, |_, _| [1, 2, 3]));
    save_png(&tmp.path().join("cat/small.png"), &rgb(16, 16, |_, _| [1, 2, 3]));
    let strict = FolderOptions {
        max_pixels: 1000,
        ..opts(8, 8, 3)
    };
    let (loaded, _) = load_warned(tmp.path(), "train", &strict);
    assert_eq!(loaded.dataset.len(), 1);
    assert!(matches!(
        skipped_reason(&loaded, "big.png"),
        SkipReason::TooLarge(_)
    ));
    let lenient = FolderOptions {
        max_pixels: 64 * 64,
        ..strict
    };
    assert_eq!(folder::load(tmp.path(), "train", &lenient).unwrap().len(), 2);
}

// ---------------------------------------------------------------------------
// Timing, run by hand:
//   cargo test -p twinsim-data --release --test it folder:: -- --ignored --nocapture
// ---------------------------------------------------------------------------

/// MNIST's 60,000 training images as `label/NNNNN.png` under `root`.
fn write_mnist_pngs(root: &Path) -> (Vec<u8>, Vec<u8>) {
    use rayon::prelude::*;
    let read = |name: &str| {
        let mut bytes = Vec::new();
        io::Read::read_to_end(
            &mut GzDecoder::new(File::open(common::shared_data().join("mnist").join(name)).unwrap()),
            &mut bytes,
        )
        .unwrap();
        bytes
    };
    let pixels = read("train-images-idx3-ubyte.gz")[16..].to_vec();
    let labels = read("train-labels-idx1-ubyte.gz")[8..].to_vec();
    for digit in 0..10 {
        fs::create_dir_all(root.join(digit.to_string())).unwrap();
    }
    labels.par_iter().enumerate().for_each(|(i, label)| {
        let img = image::GrayImage::from_raw(28, 28, pixels[i * 784..(i + 1) * 784].to_vec()).unwrap();
        img.save(root.join(format!("{label}/{i:05}.png"))).unwrap();
    });
    (pixels, labels)
}

#[test]
#[ignore = "writes 60,000 PNGs; run by hand to measure"]
fn cached_load_of_60000_images_is_fast() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("mnist");
    let started = Instant::now();
    let (pixels, labels) = write_mnist_pngs(&root);
    println!("wrote 60,000 PNGs in {:.2} s", started.elapsed().as_secs_f64());
    let o = FolderOptions {
        cache_dir: Some(tmp.path().join("cache")),
        ..opts(28, 28, 1)
    };
    let started = Instant::now();
    let first = folder::load_report(&root, "train", &o).unwrap();
    println!(
        "first load (decode, write cache): {:.3} s",
        started.elapsed().as_secs_f64()
    );
    for _ in 0..3 {
        let started = Instant::now();
        let cached = folder::load_report(&root, "train", &o).unwrap();
        println!("cached load: {:.3} s", started.elapsed().as_secs_f64());
        assert!(cached.from_cache);
        assert_eq!(cached.dataset, first.dataset);
    }
    // Grouped by class, then by index within it: the same images as the IDX file.
    let mut order: Vec<usize> = (0..60_000).collect();
    order.sort_by_key(|&i| (labels[i], i));
    assert_eq!(first.dataset.len(), 60_000);
    for (k, &i) in order.iter().enumerate() {
        assert_eq!(first.dataset.labels[k], u32::from(labels[i]));
        assert_eq!(first.dataset.images.image(k), &pixels[i * 784..(i + 1) * 784]);
    }
}

#[test]
#[ignore = "extracts all 60,000 CIFAR-10 JPEGs; run by hand to measure"]
fn whole_cifar10_jpeg_folder_loads_without_skipping() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("cifar10");
    extract_cifar(&root, usize::MAX);
    let o = FolderOptions {
        cache_dir: Some(tmp.path().join("cache")),
        ..opts(32, 32, 3)
    };
    for (split, n) in [("train", 50_000), ("test", 10_000)] {
        let started = Instant::now();
        let first = folder::load_report(&root, split, &o).unwrap();
        println!("{split}: first load {:.3} s", started.elapsed().as_secs_f64());
        let started = Instant::now();
        let cached = folder::load_report(&root, split, &o).unwrap();
        println!("{split}: cached load {:.3} s", started.elapsed().as_secs_f64());
        assert!(cached.from_cache);
        assert!(
            first.skipped.is_empty(),
            "{:?}",
            &first.skipped[..first.skipped.len().min(5)]
        );
        assert_eq!(first.dataset.len(), n);
        assert_eq!(first.dataset.class_counts(), vec![n / 10; 10]);
    }
}
