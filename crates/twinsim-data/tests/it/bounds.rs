//! What the data crate refuses before it reads or allocates: paths that are
//! not regular files, images whose sides are beyond the limit, and the
//! temporary files a killed write leaves behind.

use std::io::Cursor;
use std::path::Path;

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use twinsim_data::folder::{self, FolderOptions, SkipReason};
use twinsim_data::{atomic, read, DataError};

fn png(img: &GrayImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(img.clone())
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn grey(height: usize, width: usize) -> FolderOptions {
    FolderOptions {
        height,
        width,
        channels: 1,
        cache_dir: None,
        ..FolderOptions::default()
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn special_files_are_refused_before_a_byte_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.png");
    mkfifo(&fifo);
    // Each would block forever (the FIFO) or read without end (/dev/zero)
    // if it were opened as a file; the test finishing is part of the check.
    for (path, kind) in [
        (fifo.as_path(), "a FIFO"),
        (Path::new("/dev/zero"), "a device"),
        (dir.path(), "a folder"),
    ] {
        match read::read_file(path, 1 << 20) {
            Err(DataError::NotAFile { kind: k, .. }) => assert!(k.starts_with(kind), "{path:?}: {k}"),
            other => panic!("{path:?}: expected NotAFile, got {other:?}"),
        }
        let reason = folder::decode_file(path, &grey(28, 28)).unwrap_err();
        assert!(
            matches!(&reason, SkipReason::Unreadable(why) if why.contains("not a regular file")),
            "{path:?}: {reason:?}"
        );
    }
}

#[test]
fn a_file_over_the_cap_is_refused_as_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![7u8; 1001]).unwrap();
    assert_eq!(read::read_file(&path, 1001).unwrap().len(), 1001);
    assert!(matches!(
        read::read_file(&path, 1000),
        Err(DataError::Refused { .. })
    ));
}

#[test]
fn a_side_over_the_limit_is_refused_from_the_header() {
    // 39,000,000 x 1 grey pixels compress to 38 KB; the resize used to
    // allocate 17 GB for it.
    let wide = png(&GrayImage::from_pixel(folder::MAX_SIDE + 1, 1, Luma([128])));
    let reason = folder::decode_bytes(&wide, &grey(32, 32)).unwrap_err();
    assert!(
        matches!(&reason, SkipReason::TooLarge(why) if why.contains("side")),
        "{reason:?}"
    );
    let at_limit = png(&GrayImage::from_pixel(folder::MAX_SIDE, 1, Luma([128])));
    assert_eq!(
        folder::decode_bytes(&at_limit, &grey(32, 32)).unwrap(),
        vec![128; 32 * 32]
    );
}

#[test]
fn a_wide_image_is_resized_rows_first_to_the_same_pixels() {
    // A horizontal ramp 4000 wide and 3 high: resizing its columns first
    // (imageops' order) would hold a 4000 x 32 intermediate; twinsim
    // resizes the rows first (3 x 32). Both orders compute one separable
    // filter, so the pixels agree up to rounding, and a transposition done
    // the wrong way round would mirror the ramp.
    let ramp = GrayImage::from_fn(4000, 3, |x, _| Luma([(x * 255 / 3999) as u8]));
    let ours = folder::decode_bytes(&png(&ramp), &grey(32, 32)).unwrap();
    let reference = imageops::resize(&ramp, 32, 32, FilterType::Triangle).into_raw();
    let worst = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 1, "largest difference {worst}");
    assert!(
        ours[0] < 10 && ours[31] > 245,
        "the ramp must still rise left to right"
    );
}

#[test]
fn a_killed_writes_temporary_file_is_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("index.bin");
    // PIDs above the kernel's maximum (4,194,304) are never running.
    let stale = dir.path().join(".index.bin.tmp-999999999");
    // SAFETY: getppid has no preconditions.
    let live = dir
        .path()
        .join(format!(".index.bin.tmp-{}", unsafe { libc::getppid() }));
    let other = dir.path().join(".other.bin.tmp-999999999");
    for p in [&stale, &live, &other] {
        std::fs::write(p, b"half").unwrap();
    }
    atomic::write_bytes(&target, b"whole").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"whole");
    assert!(!stale.exists(), "the dead writer's file is removed");
    assert!(live.exists(), "a running process may be writing it");
    assert!(
        other.exists(),
        "another file's temporary is not this write's to remove"
    );
}

#[test]
fn only_a_published_dataset_file_is_said_to_be_downloadable_again() {
    let hint = |path: &str| DataError::corrupt(path, "bad").hint().unwrap();
    assert!(hint("/data/mnist/train-images-idx3-ubyte.gz").contains("download"));
    assert!(hint("/data/cifar-10-batches-bin/data_batch_1.bin").contains("download"));
    assert!(!hint("/home/me/stats.npz").contains("download"));
}

#[test]
fn a_named_data_folder_never_falls_back_to_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |data_dir: &Path| twinsim_data::LoadOptions {
        locator: twinsim_data::locate::Locator {
            data_dir: Some(data_dir.to_path_buf()),
            download: false,
            ..Default::default()
        },
        ..twinsim_data::LoadOptions::from_env(None)
    };
    let mnist: twinsim_data::DatasetSpec = "mnist:test".parse().unwrap();
    // Nothing there: the error lists what was searched, no sample instead.
    let err = twinsim_data::load(&mnist, &opts(dir.path())).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err}");
    // A FIFO where a file belongs is named, not searched past.
    std::fs::create_dir(dir.path().join("mnist")).unwrap();
    let fifo = dir.path().join("mnist").join("t10k-labels-idx1-ubyte.gz");
    mkfifo(&fifo);
    let err = twinsim_data::load(&mnist, &opts(dir.path())).unwrap_err();
    assert!(
        matches!(&err, DataError::NotAFile { path, .. } if *path == fifo),
        "{err}"
    );
}
