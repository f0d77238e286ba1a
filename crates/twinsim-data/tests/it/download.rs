//! Finding datasets on disk and downloading them, against a local HTTP server
//! that serves the real MNIST files (and misbehaves on request).

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use twinsim_data::catalog::{self, Checksum, DatasetInfo};
use twinsim_data::download::fetch;
use twinsim_data::locate::Locator;
use twinsim_data::read::{read_maybe_gz, sha256_hex, MAX_FILE_BYTES};
use twinsim_data::DataError;

/// What the test server answers for one path; paths it does not know get 404.
#[derive(Clone)]
enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// Announces `claimed` bytes, sends `body` (shorter), then closes.
    Truncated { body: Vec<u8>, claimed: usize },
}

/// A minimal HTTP/1.1 server on 127.0.0.1, one connection at a time, that
/// records the paths it was asked for.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &routes, &log);
            }
        });
        Server { addr, requests }
    }

    /// Base URL of the folder `dir` on this server.
    fn base(&self, dir: &str) -> String {
        format!("http://{}/{dir}/", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Answers one request, logging its path first: logged after the reply, a
/// client could finish (and a test count requests) before the log held it,
/// which failed `a_failed_download_is_tried_once_per_process_for_the_same_target`
/// once in CI with no request counted.
fn serve(mut stream: TcpStream, routes: &HashMap<String, Reply>, log: &Mutex<Vec<String>>) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let mut header = String::new();
    while reader.read_line(&mut header).ok()? > 2 {
        header.clear();
    }
    let (status, body, length) = match routes.get(&path) {
        Some(Reply::Body(body)) => ("200 OK", body.as_slice(), body.len()),
        Some(Reply::Truncated { body, claimed }) => ("200 OK", body.as_slice(), *claimed),
        None => ("404 Not Found", &b"not found"[..], 9),
    };
    log.lock().unwrap().push(path);
    let head = format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    Some(())
}

/// A URL on a port nothing listens on (bound, then released).
fn dead_url(file: &str) -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/{file}")
}

fn mnist() -> &'static DatasetInfo {
    catalog::find("mnist").unwrap()
}

fn shared_file(dataset: &str, file: &str) -> Vec<u8> {
    let path = common::shared_data().join(dataset).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Names of everything in `dir`: proves no partial or temporary file was left.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const LABELS: &str = "t10k-labels-idx1-ubyte.gz";

fn labels_checksum() -> Checksum {
    mnist().files.iter().find(|f| f.name == LABELS).unwrap().checksum
}

fn expected_sha(checksum: Checksum) -> &'static str {
    match checksum {
        Checksum::DecompressedSha256(sha) => sha,
        Checksum::ArchiveMd5(_) => unreachable!("MNIST files carry SHA-256"),
    }
}

#[test]
fn falls_back_to_the_next_mirror() {
    let real = shared_file("mnist", LABELS);
    let server = Server::start(HashMap::from([(
        format!("/good/{LABELS}"),
        Reply::Body(real.clone()),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(LABELS);
    let urls = [
        dead_url(LABELS),
        server.base("missing") + LABELS,
        server.base("good") + LABELS,
    ];

    fetch(&urls, &dest, &labels_checksum(), false).unwrap();

    assert_eq!(std::fs::read(&dest).unwrap(), real);
    let sha = sha256_hex(&read_maybe_gz(&dest, MAX_FILE_BYTES).unwrap());
    assert_eq!(sha, expected_sha(labels_checksum()));
    assert_eq!(
        server.requests(),
        [format!("/missing/{LABELS}"), format!("/good/{LABELS}")]
    );
    assert_eq!(entries(dir.path()), [LABELS]);
}

#[test]
fn wrong_content_is_rejected_and_removed() {
    // A valid IDX file, but the wrong one; then a damaged gzip stream.
    let mut damaged = shared_file("mnist", LABELS);
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    let server = Server::start(HashMap::from([
        (
            format!("/wrong/{LABELS}"),
            Reply::Body(shared_file("fashion-mnist", LABELS)),
        ),
        (format!("/damaged/{LABELS}"), Reply::Body(damaged)),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(LABELS);
    let urls = [server.base("wrong") + LABELS, server.base("damaged") + LABELS];

    let errors = fetch(&urls, &dest, &labels_checksum(), false).unwrap_err();

    assert_eq!(errors.len(), 2, "{errors:?}");
    let first = errors[0].to_string();
    assert!(first.contains("checksum mismatch"), "{first}");
    assert!(first.contains(expected_sha(labels_checksum())), "{first}");
    assert!(
        matches!(&errors[1], DataError::Download { url, .. } if url == &urls[1]),
        "{:?}",
        errors[1]
    );
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn archive_md5_is_checked() {
    let server = Server::start(HashMap::from([
        ("/a/file.tar.gz".to_owned(), Reply::Body(b"hello".to_vec())),
        ("/b/file.tar.gz".to_owned(), Reply::Body(b"hellO".to_vec())),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.tar.gz");
    let md5_of_hello = Checksum::ArchiveMd5("5d41402abc4b2a76b9719d911017c592");

    let errors = fetch(&[server.base("b") + "file.tar.gz"], &dest, &md5_of_hello, false).unwrap_err();
    assert!(
        errors[0].to_string().contains("checksum mismatch: expected md5"),
        "{}",
        errors[0]
    );
    assert!(entries(dir.path()).is_empty());

    fetch(&[server.base("a") + "file.tar.gz"], &dest, &md5_of_hello, false).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
}

#[test]
fn truncated_transfer_is_rejected_and_removed() {
    let real = shared_file("mnist", LABELS);
    let reply = Reply::Truncated {
        body: real[..real.len() / 2].to_vec(),
        claimed: real.len(),
    };
    let server = Server::start(HashMap::from([(format!("/cut/{LABELS}"), reply)]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(LABELS);

    let errors = fetch(&[server.base("cut") + LABELS], &dest, &labels_checksum(), false).unwrap_err();

    assert_eq!(errors.len(), 1);
    assert!(matches!(errors[0], DataError::Download { .. }), "{:?}", errors[0]);
    // Caught as a short transfer, before the checksum is even computed.
    assert!(!errors[0].to_string().contains("checksum"), "{}", errors[0]);
    assert!(!dest.exists());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn no_mirror_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let errors = fetch(&[], &dir.path().join(LABELS), &labels_checksum(), false).unwrap_err();
    assert_eq!(errors.len(), 1);
}

/// A locator searching only `data_dir`, downloading from `mirrors`.
fn locator(data_dir: &Path, mirrors: Vec<String>, download: bool) -> Locator {
    Locator {
        data_dir: Some(data_dir.to_owned()),
        mirrors: Some(mirrors),
        download,
        progress: true,
        ..Locator::default()
    }
}

#[test]
fn locate_downloads_missing_files_then_finds_them() {
    let info = mnist();
    let routes = info
        .files
        .iter()
        .map(|f| {
            (
                format!("/mnist/{}", f.name),
                Reply::Body(shared_file("mnist", f.name)),
            )
        })
        .collect();
    let server = Server::start(routes);
    let data_dir = tempfile::tempdir().unwrap();
    let expected: Vec<PathBuf> = info
        .files
        .iter()
        .map(|f| data_dir.path().join("mnist").join(f.name))
        .collect();

    let found = locator(data_dir.path(), vec![server.base("mnist")], true)
        .locate(info)
        .unwrap();

    assert!(found.downloaded);
    assert_eq!(found.paths, expected);
    for (path, file) in found.paths.iter().zip(info.files) {
        assert_eq!(std::fs::read(path).unwrap(), shared_file("mnist", file.name));
    }
    assert_eq!(server.requests().len(), 4);

    let offline = locator(data_dir.path(), vec![dead_url("")], false);
    let again = offline.locate(info).unwrap();
    assert!(!again.downloaded);
    assert_eq!(again.paths, expected);
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn locate_downloads_only_what_is_missing() {
    let info = mnist();
    let [present, missing @ ..] = info.files else {
        unreachable!()
    };
    let routes = missing
        .iter()
        .map(|f| {
            (
                format!("/m/{}", f.name),
                Reply::Body(shared_file("mnist", f.name)),
            )
        })
        .collect();
    let server = Server::start(routes);
    let data_dir = tempfile::tempdir().unwrap();
    touch(&data_dir.path().join(present.name));

    let found = locator(data_dir.path(), vec![server.base("m")], true)
        .locate(info)
        .unwrap();

    assert!(found.downloaded);
    assert_eq!(found.paths[0], data_dir.path().join(present.name));
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn failed_downloads_are_reported_per_mirror() {
    let server = Server::start(HashMap::new());
    let data_dir = tempfile::tempdir().unwrap();
    let mirrors = vec![dead_url(""), server.base("nothing")];

    let err = locator(data_dir.path(), mirrors, true)
        .locate(mnist())
        .unwrap_err();

    let DataError::NotFound { download_errors, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(download_errors.len(), 2, "{download_errors:?}");
    assert!(download_errors[1].contains("404"), "{}", download_errors[1]);
    assert!(err.hint().unwrap().contains("download failed"));
    assert!(entries(&data_dir.path().join("mnist")).is_empty());
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"").unwrap();
}

#[test]
fn search_order_and_accepted_names() {
    let info = mnist();
    let [train_images, train_labels, test_images, test_labels] = info.files else {
        unreachable!()
    };
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (d, c) = (data.path(), cache.path());
    for file in info.files {
        touch(&c.join("mnist").join(file.name));
    }
    let locator = Locator {
        data_dir: Some(d.to_owned()),
        cache_dir: Some(c.to_owned()),
        ..Locator::default()
    };
    assert_eq!(locator.roots(), [d, c]);
    let unpacked = train_images.name.strip_suffix(".gz").unwrap();
    assert_eq!(
        locator.candidates(info, train_images),
        [
            d.join("mnist").join(train_images.name),
            d.join(train_images.name),
            d.join("mnist").join(unpacked),
            d.join(unpacked),
            c.join("mnist").join(train_images.name),
            c.join(train_images.name),
            c.join("mnist").join(unpacked),
            c.join(unpacked),
        ]
    );

    // Only the cache: found there.
    let found = locator.find(info).unwrap();
    assert_eq!(found.paths[0], c.join("mnist").join(train_images.name));

    // data_dir wins, under <root>/<name>/, directly under <root>, or decompressed;
    // a folder named like the file does not count.
    touch(&d.join(train_images.name));
    touch(&d.join("mnist").join(train_images.name));
    touch(&d.join(train_labels.name));
    touch(
        &d.join("mnist")
            .join(test_images.name.strip_suffix(".gz").unwrap()),
    );
    std::fs::create_dir_all(d.join("mnist").join(test_labels.name)).unwrap();
    let found = locator.find(info).unwrap();
    assert!(!found.downloaded);
    assert_eq!(
        found.paths,
        [
            d.join("mnist").join(train_images.name),
            d.join(train_labels.name),
            d.join("mnist").join("t10k-images-idx3-ubyte"),
            c.join("mnist").join(test_labels.name),
        ]
    );

    // All four are needed.
    std::fs::remove_file(c.join("mnist").join(test_labels.name)).unwrap();
    assert_eq!(locator.find(info), None);
}

#[test]
fn cifar_accepts_the_extracted_folder() {
    let info = catalog::find("cifar10").unwrap();
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let tarball = cache.path().join("cifar10").join("cifar-10-binary.tar.gz");
    touch(&tarball);
    let locator = Locator {
        data_dir: Some(data.path().to_owned()),
        cache_dir: Some(cache.path().to_owned()),
        ..Locator::default()
    };
    assert_eq!(locator.find(info).unwrap().paths, [tarball]);

    let extracted = data.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&extracted).unwrap();
    assert_eq!(locator.find(info).unwrap().paths, [extracted]);
    assert_eq!(locator.locate(info).unwrap().paths.len(), 1);
}

#[test]
fn offline_not_found_lists_everything_searched() {
    let info = mnist();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let locator = Locator {
        data_dir: Some(dirs[0].path().to_owned()),
        env_dir: Some(dirs[1].path().to_owned()),
        cache_dir: Some(dirs[2].path().to_owned()),
        system_dir: Some(dirs[3].path().to_owned()),
        download: false,
        ..Locator::default()
    };

    let err = locator.locate(info).unwrap_err();

    let DataError::NotFound {
        searched,
        download_errors,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(download_errors.is_empty());
    // 4 files x 4 roots x {<root>/mnist/, <root>/} x {published, decompressed}.
    assert_eq!(searched.len(), 64);
    let hint = err.hint().unwrap();
    let first = dirs[0].path().join("mnist").join("train-images-idx3-ubyte.gz");
    let decompressed = dirs[3].path().join("t10k-labels-idx1-ubyte");
    for path in [first, decompressed] {
        assert!(
            hint.contains(&path.display().to_string()),
            "{path:?} missing from\n{hint}"
        );
    }
    for file in info.files {
        for path in locator.candidates(info, file) {
            assert!(
                hint.contains(&path.display().to_string()),
                "{path:?} missing from\n{hint}"
            );
        }
        assert!(
            hint.contains(&format!("    {}\n", file.name)),
            "{} missing from\n{hint}",
            file.name
        );
        for url in info.urls(file) {
            assert!(hint.contains(&url), "{url} missing from\n{hint}");
        }
    }
    assert!(hint.contains("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"));
}

#[test]
fn folder_layout_is_not_located() {
    let locator = Locator::default();
    let err = locator.locate(catalog::find("folder").unwrap()).unwrap_err();
    assert!(matches!(err, DataError::Invalid { .. }), "{err:?}");
}

#[test]
fn a_failed_download_is_tried_once_per_process_for_the_same_target() {
    let info = mnist();
    let server = Server::start(HashMap::new());
    let data_dir = tempfile::tempdir().unwrap();
    let first = locator(data_dir.path(), vec![server.base("none")], true).locate(info);
    assert!(matches!(first, Err(DataError::NotFound { .. })));
    let tried = server.requests().len();
    assert!(tried > 0);
    // A new locator for the same folder and mirrors (another split of the
    // same command) reports the same failure without asking again.
    let again = locator(data_dir.path(), vec![server.base("none")], true).locate(info);
    match again {
        Err(DataError::NotFound { download_errors, .. }) => assert!(!download_errors.is_empty()),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(server.requests().len(), tried);
    // Another mirror is another download, and is tried.
    let other = locator(data_dir.path(), vec![server.base("elsewhere")], true).locate(info);
    assert!(other.is_err());
    assert!(server.requests().len() > tried);
}
