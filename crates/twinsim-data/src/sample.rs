//! The MNIST sample compiled into the binary (8,000 train + 2,000 test
//! images; `assets/mnist-sample/README.md` says where it comes from), so
//! that twinsim's first command works with no network and no data directory.

use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::catalog;
use crate::dataset::{Dataset, Origin};
use crate::error::{DataError, Result};
use crate::idx;
use crate::read::{read_capped, sha256_hex, MAX_FILE_BYTES};
use crate::split::SplitName;

/// One embedded IDX file: its name, gzip bytes and decompressed SHA-256.
struct Embedded {
    name: &'static str,
    gz: &'static [u8],
    sha256: &'static str,
}

macro_rules! embedded {
    ($name:literal, $sha:literal) => {
        Embedded {
            name: $name,
            gz: include_bytes!(concat!("../assets/mnist-sample/", $name)),
            sha256: $sha,
        }
    };
}

const TRAIN: [Embedded; 2] = [
    embedded!(
        "train-images-idx3-ubyte.gz",
        "18aec7bd98b9621e25de273e48b71dfbd4313e98b17b952a72f491584776aec4"
    ),
    embedded!(
        "train-labels-idx1-ubyte.gz",
        "76168f9cdeedf60a7a73de030b527d826cb3a26880fa1fa385aff620a4ccfd9e"
    ),
];

const TEST: [Embedded; 2] = [
    embedded!(
        "t10k-images-idx3-ubyte.gz",
        "3f6bd66dee48df299584c67669bceee490faa25f931496bd7473b42106d7daed"
    ),
    embedded!(
        "t10k-labels-idx1-ubyte.gz",
        "7b098e5f6a3065807cebeabf36fb1724a8aff19f2673ac08b4923e0e8c715bce"
    ),
];

fn unpack(file: &Embedded) -> Result<(std::path::PathBuf, Vec<u8>)> {
    let path = Path::new("<embedded mnist-sample>").join(file.name);
    let bytes = read_capped(&path, MultiGzDecoder::new(file.gz), MAX_FILE_BYTES)?;
    let actual = sha256_hex(&bytes);
    if actual != file.sha256 {
        return Err(DataError::Checksum {
            path,
            expected: file.sha256.into(),
            actual,
        });
    }
    Ok((path, bytes))
}

/// The embedded sample's official split `split` (`Train` or `Test`; carve
/// val/fit with [`crate::split::apply`]). The dataset is named `mnist`, with
/// [`Origin::EmbeddedSample`] saying which copy it is.
pub fn load(split: SplitName) -> Result<Dataset> {
    let [images, labels] = match split.base() {
        SplitName::Test => &TEST,
        _ => &TRAIN,
    };
    let (image_path, image_bytes) = unpack(images)?;
    let (label_path, label_bytes) = unpack(labels)?;
    let mnist = catalog::find("mnist").expect("mnist is in the catalog");
    Dataset {
        name: "mnist".into(),
        split: split.base().as_str().into(),
        images: idx::parse_images(&image_path, &image_bytes)?,
        labels: idx::parse_labels(&label_path, &label_bytes)?,
        classes: mnist.classes.iter().map(|c| c.to_string()).collect(),
        coarse: None,
        origin: Origin::EmbeddedSample,
        parts: Vec::new(),
    }
    .validate()
}
