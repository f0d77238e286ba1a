//! Images, for every command that reads image files or folders (`compare`,
//! `compare --pairs`, `search`, `identify`, `embed`, `dedup`, `datasets DIR`,
//! `index build --folder`): extreme sizes and aspect ratios, bit depths,
//! palettes, animation, truncation, and special files in place of images.

use std::path::{Path, PathBuf};

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, Frame, RgbaImage};

use super::files::{self, GREY, GREY_ALPHA, PALETTE, RGBA};
use super::fixture::{grey_png, Fixture};
use super::harness::{Case, Outcome};

/// What an image must get from a command that reads it alone.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    /// Decodes to the digit `a` itself: compared with `a`, "same".
    Same,
    /// Decodes: a valid similarity.
    Decodes,
    /// Within no documented limit yet: an answer or a clear refusal, never
    /// an abort (the 17 GB resize of issue 18).
    Either,
    /// Refused, naming the file.
    Refused,
}

/// One image of the corpus.
struct Image {
    path: PathBuf,
    want: Want,
    /// Needs the short timeout: opening it may block.
    blocking: bool,
}

impl Image {
    /// What a case error must mention: the file's name.
    fn needle(&self) -> String {
        match self.path.starts_with("/dev") {
            true => self.path.display().to_string(),
            false => self.path.file_name().unwrap().to_string_lossy().into_owned(),
        }
    }
}

/// The digit `a` (28x28 grey) re-encoded as `(file name, bytes, want)`,
/// in every depth and container a user may have it in.
fn encodings(pixels: &[u8]) -> Vec<(&'static str, Vec<u8>, Want)> {
    let rows = |y: u32| &pixels[y as usize * 28..(y as usize + 1) * 28];
    let palette: Vec<u8> = (0..=255u8).flat_map(|i| [i, i, i]).collect();
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode(pixels, 28, 28, ExtendedColorType::L8)
        .unwrap();
    let rgba = |p: &[u8]| {
        RgbaImage::from_fn(28, 28, |x, y| {
            let v = p[(y * 28 + x) as usize];
            image::Rgba([v, v, v, 255])
        })
    };
    let mut gif = Vec::new();
    GifEncoder::new(&mut gif)
        .encode_frames([Frame::new(rgba(pixels)), Frame::new(rgba(&[255; 784]))])
        .unwrap();
    let png8 = grey_png(pixels);
    vec![
        // The format comes from the content, not the name.
        ("png-named.jpg", png8.clone(), Want::Same),
        (
            "grey-16bit.png",
            files::png(28, 28, GREY, 16, None, |y, r| {
                r.extend(rows(y).iter().flat_map(|&p| [p, p]))
            }),
            Want::Same,
        ),
        (
            "grey-1bit.png",
            files::png(28, 28, GREY, 1, None, |y, r| {
                r.extend(rows(y).chunks(8).map(|c| {
                    c.iter()
                        .enumerate()
                        .fold(0u8, |acc, (i, &p)| acc | (u8::from(p >= 128) << (7 - i)))
                }))
            }),
            Want::Decodes,
        ),
        (
            "palette.png",
            files::png(28, 28, PALETTE, 8, Some(&palette), |y, r| r.extend(rows(y))),
            Want::Same,
        ),
        (
            "grey-alpha.png",
            files::png(28, 28, GREY_ALPHA, 8, None, |y, r| {
                r.extend(rows(y).iter().flat_map(|&p| [p, 255]))
            }),
            Want::Same,
        ),
        (
            "rgba-16bit.png",
            files::png(28, 28, RGBA, 16, None, |y, r| {
                r.extend(rows(y).iter().flat_map(|&p| [p, p, p, p, p, p, 255, 255]))
            }),
            Want::Same,
        ),
        ("digit.jpg", jpeg.clone(), Want::Decodes),
        ("animated.gif", gif, Want::Decodes),
        // 64 megapixels, the documented limit: must decode.
        ("square-64mpx.png", files::blank_png(8000, 8000), Want::Decodes),
        (
            "declares-400mpx.png",
            files::lying_png(20_000, 20_000),
            Want::Refused,
        ),
        (
            "declares-2g-wide.png",
            files::lying_png(0x7fff_ffff, 1),
            Want::Refused,
        ),
        ("declares-zero-wide.png", files::lying_png(0, 28), Want::Refused),
        (
            "truncated.png",
            files::truncated(&png8, png8.len() / 2),
            Want::Refused,
        ),
        (
            "truncated.jpg",
            files::truncated(&jpeg, jpeg.len() / 2),
            Want::Refused,
        ),
        ("empty.png", Vec::new(), Want::Refused),
        ("random.png", files::noise(4096, 1), Want::Refused),
        ("signature-only.png", png8[..8].to_vec(), Want::Refused),
    ]
}

/// The three shapes of issue 18: 38 KB and 2 KB files that a resize turned
/// into gigabytes.
fn giants() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("wide-39m.png", files::blank_png(39_000_000, 1)),
        ("tall-39m.png", files::blank_png(1, 39_000_000)),
        ("wide-2m.png", files::blank_png(2_000_000, 1)),
    ]
}

/// Special files where an image is expected, made in `dir`.
fn specials(dir: &Path) -> Vec<Image> {
    let refused = |path: PathBuf, blocking: bool| Image {
        path,
        want: Want::Refused,
        blocking,
    };
    vec![
        refused("/dev/zero".into(), false),
        refused("/dev/null".into(), false),
        refused(files::fifo(&dir.join("fifo.png")), true),
        refused(files::dir(&dir.join("dir.png")), false),
        refused(
            files::symlink(&dir.join("nowhere.png"), &dir.join("dangling.png")),
            false,
        ),
        refused(
            files::symlink(Path::new("/dev/zero"), &dir.join("devzero-link.png")),
            false,
        ),
    ]
}

/// Writes the corpus into `dir`: every encoding, the giants and the
/// special files.
fn corpus(fx: &Fixture, dir: &Path, giant_bytes: &[(&'static str, Vec<u8>)]) -> Vec<Image> {
    let mut all: Vec<Image> = encodings(&fx.a_pixels)
        .into_iter()
        .map(|(name, bytes, want)| Image {
            path: files::write(&dir.join(name), &bytes),
            want,
            blocking: false,
        })
        .collect();
    all.extend(giant_bytes.iter().map(|(name, bytes)| Image {
        path: files::write(&dir.join(name), bytes),
        want: Want::Either,
        blocking: false,
    }));
    all.extend(specials(dir));
    all
}

/// `compare --json` must give a similarity in [0, 1] (and `same` when
/// `same` is set).
fn similarity(same: bool) -> impl Fn(&Outcome) -> Result<(), String> + Send + Sync {
    move |o: &Outcome| {
        let v = o.json()?;
        let s = v["similarity"].as_f64().ok_or(format!("no similarity in {v}"))?;
        if !(0.0..=1.0).contains(&s) {
            return Err(format!("similarity {s} outside [0, 1]"));
        }
        if same && v["same"] != true {
            return Err(format!("the same digit judged different: {v}"));
        }
        Ok(())
    }
}

/// A case for `image` read by a command that reads it alone; `ok` checks
/// the answer of an image that decodes.
fn single(name: String, args: Vec<std::ffi::OsString>, image: &Image) -> Case {
    let case = Case::new(name, args);
    let case = match image.want {
        Want::Same | Want::Decodes => case,
        Want::Either => case.either(),
        Want::Refused => case.error(image.needle()),
    };
    if image.blocking {
        case.blocking()
    } else {
        case
    }
}

/// The image cases.
pub fn cases(fx: &Fixture) -> Vec<Case> {
    let dir = fx.ro.join("images");
    let giant_bytes = giants();
    let images = corpus(fx, &dir, &giant_bytes);
    let named = |n: &str| images.iter().find(|i| i.needle() == n).expect(n);
    let short = |i: &Image| i.needle().trim_start_matches('/').replace('/', "-");
    let mut cases = Vec::new();

    for image in &images {
        let case = single(
            format!("image/compare/{}", short(image)),
            args!["--json", "compare", fx.a, image.path, "--model", fx.run],
            image,
        );
        cases.push(match image.want {
            Want::Same => case.check(similarity(true)),
            _ => case.check(similarity(false)),
        });
    }
    let results = |k: usize| {
        move |o: &Outcome| {
            let v = o.json()?;
            match v["results"][0].as_array() {
                Some(r) if r.len() == k => Ok(()),
                _ => Err(format!("expected {k} neighbours: {v}")),
            }
        }
    };
    cases.push(
        Case::new(
            "image/search/a.png",
            args!["--json", "search", fx.gallery, fx.a, "-k", "3"],
        )
        .check(results(3)),
    );
    for n in [
        "wide-39m.png",
        "tall-39m.png",
        "fifo.png",
        "/dev/zero",
        "truncated.png",
    ] {
        let image = named(n);
        let args = args!["--json", "search", fx.gallery, image.path, "-k", "3"];
        cases.push(single(format!("image/search/{}", short(image)), args, image).check(results(3)));
    }
    cases.push(Case::new(
        "image/identify/a.png",
        args!["--json", "identify", fx.gallery, fx.a],
    ));
    for n in [
        "wide-2m.png",
        "fifo.png",
        "/dev/null",
        "dir.png",
        "devzero-link.png",
    ] {
        let image = named(n);
        let args = args!["--json", "identify", fx.gallery, image.path];
        cases.push(single(format!("image/identify/{}", short(image)), args, image));
    }
    for n in ["wide-39m.png", "tall-39m.png", "fifo.png", "devzero-link.png"] {
        let image = named(n);
        let out = fx.rw.join(format!("embed-{}", short(image)));
        let args = args!["embed", "--model", fx.run, image.path, "-o", out];
        cases.push(single(format!("image/embed/{}", short(image)), args, image));
    }
    cases.extend(pairs(fx, &images));
    cases.extend(folders(fx, &giant_bytes));
    cases
}

/// `compare --pairs`: hostile lines, and hostile pairs files.
fn pairs(fx: &Fixture, images: &[Image]) -> Vec<Case> {
    let dir = fx.ro.join("pairs");
    let csv = |name: &str, lines: &[(&Path, &Path)]| {
        let text: String = lines
            .iter()
            .map(|(a, b)| format!("{},{}\n", a.display(), b.display()))
            .collect();
        files::write(&dir.join(name), text.as_bytes())
    };
    let path = |n: &str| images.iter().find(|i| i.needle() == n).expect(n).path.clone();
    let refused: Vec<PathBuf> = images
        .iter()
        .filter(|i| i.want == Want::Refused && !i.blocking && !i.path.starts_with("/dev"))
        .map(|i| i.path.clone())
        .collect();
    let a = fx.a.as_path();
    let mut mixed = vec![(a, a)];
    mixed.extend(refused.iter().map(|r| (a, r.as_path())));
    let mixed_csv = csv("mixed.csv", &mixed);
    let compare = |file: &Path| args!["--json", "compare", "--pairs", file, "--model", fx.run];
    let counts = move |scored: usize, skipped: usize| {
        move |o: &Outcome| {
            let v = o.json()?;
            let (r, s) = (v["results"].as_array(), v["skipped"].as_array());
            match (r.map(Vec::len), s.map(Vec::len)) {
                (Some(r), Some(s)) if r == scored && s == skipped => Ok(()),
                _ => Err(format!(
                    "expected {scored} scored and {skipped} skipped lines: {v}"
                )),
            }
        }
    };
    let first_same = |o: &Outcome| {
        let v = o.json()?;
        match v["results"][0]["same"] == true {
            true => Ok(()),
            false => Err(format!("an image and itself judged different: {v}")),
        }
    };
    let mut long_line = vec![b'x'; 10 << 20];
    long_line.extend(b",y.png\n");
    vec![
        Case::new(
            "pairs/good",
            compare(&csv("good.csv", &[(a, a), (a, fx.b.as_path())])),
        )
        .check(counts(2, 0))
        .check(first_same),
        Case::new("pairs/every-refused-image-skipped", {
            let mut v = compare(&mixed_csv);
            v.push("--skip-missing".into());
            v
        })
        .check(counts(1, refused.len())),
        Case::new("pairs/refused-image-stops", compare(&mixed_csv)).error("truncated.png"),
        Case::new(
            "pairs/giant-line",
            compare(&csv("giant.csv", &[(a, path("wide-39m.png").as_path())])),
        )
        .either(),
        Case::new("pairs/fifo-line-skipped", {
            let mut v = compare(&csv("fifo-line.csv", &[(a, path("fifo.png").as_path()), (a, a)]));
            v.push("--skip-missing".into());
            v
        })
        .check(counts(1, 1))
        .blocking(),
        Case::new(
            "pairs/devzero-line",
            compare(&csv("devzero-line.csv", &[(a, Path::new("/dev/zero"))])),
        )
        .error("/dev/zero"),
        Case::new("pairs/file-is-devzero", compare(Path::new("/dev/zero"))).error("/dev/zero"),
        Case::new("pairs/file-is-fifo", compare(&files::fifo(&dir.join("fifo.csv"))))
            .error("fifo.csv")
            .blocking(),
        Case::new("pairs/file-is-dir", compare(&files::dir(&dir.join("dir.csv")))).error("dir.csv"),
        Case::new("pairs/file-missing", compare(&dir.join("missing.csv"))).error("missing.csv"),
        Case::new(
            "pairs/file-is-noise",
            compare(&files::write(&dir.join("noise.csv"), &files::noise(65536, 2))),
        )
        .error("noise.csv"),
        Case::new(
            "pairs/10mb-line",
            compare(&files::write(&dir.join("long-line.csv"), &long_line)),
        )
        .error("line"),
    ]
}

/// Folder readers: one folder with every small hostile file (and a link
/// loop) beside good digits, one per giant image; each must load, skipping
/// what it cannot use.
fn folders(fx: &Fixture, giant_bytes: &[(&'static str, Vec<u8>)]) -> Vec<Case> {
    let root = fx.ro.join("folders");
    let good = |dir: &Path| {
        std::fs::create_dir_all(dir.join("c0")).unwrap();
        std::fs::create_dir_all(dir.join("c1")).unwrap();
        for (src, dst) in [(&fx.a, "c0/a.png"), (&fx.a2, "c0/a2.png"), (&fx.b, "c1/b.png")] {
            std::fs::copy(src, dir.join(dst)).unwrap();
        }
        dir.to_path_buf()
    };
    let zoo = good(&root.join("zoo"));
    corpus(fx, &zoo.join("c0"), &[]);
    files::symlink(Path::new(".."), &zoo.join("c1").join("loop"));
    let mut dirs = vec![("zoo".to_string(), zoo)];
    for (name, bytes) in giant_bytes {
        let dir = good(&root.join(name.trim_end_matches(".png")));
        files::write(&dir.join("c0").join(name), bytes);
        dirs.push((name.trim_end_matches(".png").to_string(), dir));
    }
    // The README's own example, on a folder without train/ and test/.
    let mut cases = vec![Case::new(
        "folder/datasets-readme-example",
        args!["datasets", dirs[0].1, "--image-size", "64", "--channels", "3"],
    )];
    for (name, dir) in &dirs {
        // Each folder case has its own cache, so none reads another's decodes.
        let spec = format!("{}:train", dir.display());
        cases.push(Case::new(
            format!("folder/datasets/{name}"),
            args!["--json", "datasets", spec],
        ));
        cases.push(Case::new(
            format!("folder/dedup/{name}"),
            args!["--json", "dedup", dir, "--model", fx.run],
        ));
        let out = fx.rw.join(format!("folder-{name}.tsi"));
        cases.push(Case::new(
            format!("folder/index-build/{name}"),
            args!["index", "build", "--model", fx.run, "--folder", dir, "-o", out],
        ));
    }
    cases
}
