//! The datasets twinsim knows by name: their files, where they are
//! published, and the checksums that prove a copy is the published one.

/// How to recognise a good copy of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256 of the decompressed content (IDX files), so a copy that was
    /// recompressed by someone else (Debian's Fashion-MNIST) is still accepted.
    DecompressedSha256(&'static str),
    /// MD5 of the file as published (the CIFAR tarballs; their authors
    /// publish MD5 only).
    ArchiveMd5(&'static str),
}

/// One published file of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name as published (`train-images-idx3-ubyte.gz`).
    pub name: &'static str,
    pub checksum: Checksum,
    /// The folder the archive unpacks to (`cifar-10-batches-bin`), which is
    /// accepted in its place; `None` for plain files.
    pub extracted: Option<&'static str>,
}

/// How a dataset's files are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Four IDX files: train images, train labels, test images, test labels.
    Idx,
    /// A CIFAR download, in its binary or python format (either will do).
    Cifar { fine_classes: usize },
    /// A user's image folder `root/<class>/<image>`.
    Folder,
}

/// Everything twinsim knows about a named dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetInfo {
    /// Name as the CLI spells it.
    pub name: &'static str,
    /// One line for `twinsim datasets`.
    pub description: &'static str,
    pub layout: Layout,
    /// Files to look for, in order; for CIFAR, the alternatives (any one suffices).
    pub files: &'static [RemoteFile],
    /// Base URLs of the mirrors, tried in turn; a file's URL is base + name.
    pub mirrors: &'static [&'static str],
    /// Class names (empty where the files carry them: CIFAR, folders).
    pub classes: &'static [&'static str],
    /// Licence and citation, for the docs and `twinsim datasets`.
    pub licence: &'static str,
}

impl DatasetInfo {
    /// Every URL a file of this dataset may be downloaded from.
    pub fn urls(&self, file: &RemoteFile) -> Vec<String> {
        self.mirrors.iter().map(|m| format!("{m}{}", file.name)).collect()
    }
}

const MNIST_FILES: [RemoteFile; 4] = [
    idx(
        "train-images-idx3-ubyte.gz",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    idx(
        "train-labels-idx1-ubyte.gz",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    idx(
        "t10k-images-idx3-ubyte.gz",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    idx(
        "t10k-labels-idx1-ubyte.gz",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

const FASHION_FILES: [RemoteFile; 4] = [
    idx(
        "train-images-idx3-ubyte.gz",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    idx(
        "train-labels-idx1-ubyte.gz",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    idx(
        "t10k-images-idx3-ubyte.gz",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    idx(
        "t10k-labels-idx1-ubyte.gz",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

const fn idx(name: &'static str, sha256: &'static str) -> RemoteFile {
    RemoteFile {
        name,
        checksum: Checksum::DecompressedSha256(sha256),
        extracted: None,
    }
}

const fn tarball(name: &'static str, md5: &'static str, extracted: &'static str) -> RemoteFile {
    RemoteFile {
        name,
        checksum: Checksum::ArchiveMd5(md5),
        extracted: Some(extracted),
    }
}

const CIFAR_MIRRORS: [&str; 2] = [
    "https://www.cs.toronto.edu/~kriz/",
    "https://cave.cs.toronto.edu/kriz/",
];

/// Every named dataset.
pub const DATASETS: &[DatasetInfo] = &[
    DatasetInfo {
        name: "mnist",
        description: "MNIST handwritten digits, 60,000 train + 10,000 test, 28x28 grey",
        layout: Layout::Idx,
        files: &MNIST_FILES,
        mirrors: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ],
        classes: &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        licence: "Y. LeCun, C. Cortes, C. Burges; CC BY-SA 3.0",
    },
    DatasetInfo {
        name: "fashion-mnist",
        description: "Fashion-MNIST clothing, 60,000 train + 10,000 test, 28x28 grey",
        layout: Layout::Idx,
        files: &FASHION_FILES,
        mirrors: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        classes: &[
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
        licence: "Zalando Research; MIT",
    },
    DatasetInfo {
        name: "cifar10",
        description: "CIFAR-10, 50,000 train + 10,000 test, 32x32 colour, 10 classes",
        layout: Layout::Cifar { fine_classes: 10 },
        files: &[
            tarball(
                "cifar-10-binary.tar.gz",
                "c32a1d4ab5d03f1284b67883e8d87530",
                "cifar-10-batches-bin",
            ),
            tarball(
                "cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py",
            ),
        ],
        mirrors: &CIFAR_MIRRORS,
        classes: &[],
        licence: "A. Krizhevsky, V. Nair, G. Hinton; for research use",
    },
    DatasetInfo {
        name: "cifar100",
        description: "CIFAR-100, 50,000 train + 10,000 test, 32x32 colour, 100 classes in 20 superclasses",
        layout: Layout::Cifar { fine_classes: 100 },
        files: &[
            tarball(
                "cifar-100-binary.tar.gz",
                "03b5dce01913d631647c71ecec9e9cb8",
                "cifar-100-binary",
            ),
            tarball(
                "cifar-100-python.tar.gz",
                "eb9058c3a382ffc7106e4002c42a8d85",
                "cifar-100-python",
            ),
        ],
        mirrors: &CIFAR_MIRRORS,
        classes: &[],
        licence: "A. Krizhevsky, V. Nair, G. Hinton; for research use",
    },
    DatasetInfo {
        name: "folder",
        description: "your own images: DIR/<class>/<image>, optionally under DIR/train and DIR/test",
        layout: Layout::Folder,
        files: &[],
        mirrors: &[],
        classes: &[],
        licence: "yours",
    },
];

/// The dataset called `name`, if twinsim knows it.
pub fn find(name: &str) -> Option<&'static DatasetInfo> {
    DATASETS.iter().find(|d| d.name == name)
}

/// True when `path` is, or lies inside, a file that some named dataset is
/// published as (or the folder its archive unpacks to): one a fresh download
/// can replace.
pub fn is_published(path: &std::path::Path) -> bool {
    let published = |name: &str| {
        DATASETS
            .iter()
            .flat_map(|d| d.files)
            .any(|f| name == f.name || f.extracted == Some(name) || f.name.strip_suffix(".gz") == Some(name))
    };
    path.components()
        .any(|c| published(&c.as_os_str().to_string_lossy()))
}
