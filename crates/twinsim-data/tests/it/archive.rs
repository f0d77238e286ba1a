//! Safe tar reading and extraction: good archives round-trip, hostile members
//! are refused, and nothing is ever written outside the destination.

use std::io::Write;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};
use twinsim_data::archive::{self, Limits};
use twinsim_data::DataError;

/// A GNU header for `name`, written raw so that names the `tar` crate's own
/// setters refuse (`..`, absolute) can be built.
fn header(name: &str, kind: EntryType, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    h
}

fn link(name: &str, kind: EntryType, target: &str) -> Header {
    let mut h = header(name, kind, 0);
    h.set_link_name_literal(target).unwrap();
    h.set_cksum();
    h
}

/// A plain tar of `members` (header, data), with end-of-archive blocks.
fn tar_of(members: &[(Header, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (h, data) in members {
        b.append(h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A scratch folder holding `archive.tar.gz` with `bytes`, and an empty `dest`
/// beside anything an escape would create.
struct Scratch {
    root: tempfile::TempDir,
    archive: PathBuf,
    dest: PathBuf,
}

impl Scratch {
    fn new(bytes: &[u8]) -> Scratch {
        let root = tempfile::tempdir().unwrap();
        let archive = root.path().join("archive.tar.gz");
        std::fs::write(&archive, bytes).unwrap();
        let dest = root.path().join("dest");
        Scratch { root, archive, dest }
    }

    /// Everything in the scratch root apart from the archive and `dest`.
    fn outside(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "archive.tar.gz" && n != "dest")
            .collect();
        names.sort();
        names
    }

    fn read_all(&self) -> Result<Vec<(String, Vec<u8>)>, DataError> {
        archive::read_members(&self.archive, &Limits::default(), |_| true)
    }

    fn extract(&self) -> Result<Vec<PathBuf>, DataError> {
        archive::extract(&self.archive, &self.dest, &Limits::default())
    }
}

/// Asserts `err` is a refusal naming the archive and containing `needle`.
fn assert_refused(err: DataError, archive: &Path, needle: &str) {
    match err {
        DataError::Refused { path, reason } => {
            assert_eq!(path, archive);
            assert!(reason.contains(needle), "'{reason}' should mention '{needle}'");
        }
        other => panic!("expected a refusal mentioning '{needle}', got {other:?}"),
    }
}

fn assert_corrupt(err: DataError, archive: &Path, needle: &str) {
    match err {
        DataError::Corrupt { path, reason } => {
            assert_eq!(path, archive);
            assert!(reason.contains(needle), "'{reason}' should mention '{needle}'");
        }
        other => panic!("expected Corrupt mentioning '{needle}', got {other:?}"),
    }
}

fn good_archive() -> Vec<u8> {
    tar_of(&[
        (header("d/", EntryType::Directory, 0), b""),
        (header("d/a.txt", EntryType::Regular, 5), b"hello"),
        (header("./d/sub/b.bin", EntryType::Regular, 3), &[1, 2, 3]),
        (header("other", EntryType::Regular, 1), b"x"),
    ])
}

#[test]
fn read_members_returns_wanted_files_with_normalised_names() {
    for bytes in [gzip(&good_archive()), good_archive()] {
        let s = Scratch::new(&bytes);
        let got = archive::read_members(&s.archive, &Limits::default(), |n| n.starts_with("d/")).unwrap();
        assert_eq!(
            got,
            vec![
                ("d/a.txt".to_string(), b"hello".to_vec()),
                ("d/sub/b.bin".to_string(), vec![1, 2, 3])
            ]
        );
    }
}

#[test]
fn for_each_member_reuses_spare_buffers_without_leaking_their_content() {
    let s = Scratch::new(&gzip(&good_archive()));
    let mut delivered = Vec::new();
    archive::for_each_member(
        &s.archive,
        &Limits::default(),
        |n| n != "d/a.txt",
        |name, data| {
            delivered.push((name, data));
            // A spare holding stale bytes: the next member must not show them.
            Ok(vec![0xAA; 64])
        },
    )
    .unwrap();
    assert_eq!(
        delivered,
        vec![
            ("d/sub/b.bin".to_string(), vec![1, 2, 3]),
            ("other".to_string(), b"x".to_vec())
        ]
    );
}

#[test]
fn extract_writes_files_and_folders_under_dest_only() {
    let s = Scratch::new(&gzip(&good_archive()));
    let written = s.extract().unwrap();
    assert_eq!(
        written,
        vec![
            s.dest.join("d/a.txt"),
            s.dest.join("d/sub/b.bin"),
            s.dest.join("other")
        ]
    );
    assert_eq!(std::fs::read(s.dest.join("d/a.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(s.dest.join("d/sub/b.bin")).unwrap(), [1, 2, 3]);
    let leftovers: Vec<_> = walk(&s.dest)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("twinsim-part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(s.outside().is_empty());
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn long_names_are_read_through_the_tar_crate() {
    let long = format!("{}/file.txt", "x".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"ok"[..]).unwrap();
    let s = Scratch::new(&gzip(&b.into_inner().unwrap()));
    assert_eq!(s.read_all().unwrap(), vec![(long.clone(), b"ok".to_vec())]);
    assert_eq!(s.extract().unwrap(), vec![s.dest.join(&long)]);
}

/// Builds an archive of a harmless file followed by `bad`, and checks that
/// both APIs refuse it naming the member and that nothing escapes `dest`.
fn assert_member_refused(bad: Header, data: &[u8], member: &str, needle: &str) {
    let bytes = gzip(&tar_of(&[
        (header("fine.txt", EntryType::Regular, 2), b"ok"),
        (bad, data),
    ]));
    let s = Scratch::new(&bytes);
    let err = s.read_all().unwrap_err();
    assert_refused(err, &s.archive, needle);
    let err = s.extract().unwrap_err();
    let DataError::Refused { reason, .. } = &err else {
        panic!("expected a refusal, got {err:?}")
    };
    assert!(reason.contains(member), "'{reason}' should name '{member}'");
    assert!(s.outside().is_empty(), "escaped: {:?}", s.outside());
    for path in walk(&s.dest) {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(
            meta.is_file() || meta.is_dir(),
            "{} is neither file nor folder",
            path.display()
        );
    }
}

#[test]
fn parent_dir_member_is_refused() {
    assert_member_refused(
        header("../evil", EntryType::Regular, 4),
        b"evil",
        "../evil",
        "'..'",
    );
    assert_member_refused(
        header("d/../../evil", EntryType::Regular, 4),
        b"evil",
        "d/../../evil",
        "'..'",
    );
}

#[test]
fn absolute_member_is_refused() {
    let target = std::env::temp_dir().join(format!("twinsim-archive-test-{}", std::process::id()));
    let name = target.to_string_lossy().into_owned();
    assert_member_refused(header(&name, EntryType::Regular, 4), b"evil", &name, "absolute");
    assert!(!target.exists());
}

#[test]
fn symlink_member_is_refused() {
    assert_member_refused(
        link("evil", EntryType::Symlink, "../../outside"),
        b"",
        "evil",
        "symbolic link",
    );
    assert_member_refused(
        link("passwd", EntryType::Symlink, "/etc/passwd"),
        b"",
        "passwd",
        "symbolic link",
    );
}

#[test]
fn hard_link_member_is_refused() {
    assert_member_refused(
        link("evil", EntryType::Link, "../outside"),
        b"",
        "evil",
        "hard link",
    );
    assert_member_refused(
        link("shadow", EntryType::Link, "/etc/shadow"),
        b"",
        "shadow",
        "hard link",
    );
}

#[test]
fn device_and_fifo_members_are_refused() {
    for kind in [EntryType::Char, EntryType::Block, EntryType::Fifo] {
        assert_member_refused(header("dev", kind, 0), b"", "dev", "device or fifo");
    }
}

#[test]
fn totals_over_the_limits_are_refused_before_reading() {
    // The header claims a terabyte that is not there: refused on the
    // declared size, not reported as a truncated read after the fact.
    let mut bytes = tar_of(&[(header("small", EntryType::Regular, 3), b"abc")]);
    let mut huge = header("huge", EntryType::Regular, 0);
    huge.set_size(1 << 40);
    huge.set_cksum();
    bytes.splice(1024..1024, huge.as_bytes().iter().copied());
    let s = Scratch::new(&gzip(&bytes));
    assert_refused(s.read_all().unwrap_err(), &s.archive, "huge");
    assert_refused(s.extract().unwrap_err(), &s.archive, "limit");
    assert!(!s.dest.join("huge").exists());

    let tight = Limits {
        max_total_bytes: 5,
        max_members: 10,
    };
    let s = Scratch::new(&gzip(&good_archive()));
    let err = archive::read_members(&s.archive, &tight, |_| true).unwrap_err();
    assert_refused(err, &s.archive, "d/sub/b.bin");
    let few = Limits {
        max_total_bytes: 1 << 20,
        max_members: 2,
    };
    let err = archive::extract(&s.archive, &s.dest, &few).unwrap_err();
    assert_refused(err, &s.archive, "2 members");
}

#[test]
fn oversized_long_name_header_is_refused() {
    // A GNU long-name member the tar crate would buffer whole: 1 MiB of name.
    let name = vec![b'a'; 1 << 20];
    let bytes = tar_of(&[
        (
            header("././@LongLink", EntryType::GNULongName, name.len() as u64),
            &name,
        ),
        (header("short", EntryType::Regular, 1), b"x"),
    ]);
    let s = Scratch::new(&gzip(&bytes));
    assert_refused(
        s.read_all().unwrap_err(),
        &s.archive,
        "more data than its headers declare",
    );
}

#[test]
fn truncated_tar_gz_is_corrupt() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let whole = gzip(&tar_of(&[(
        header("big.bin", EntryType::Regular, data.len() as u64),
        &data,
    )]));
    let s = Scratch::new(&whole[..whole.len() / 2]);
    assert_corrupt(s.read_all().unwrap_err(), &s.archive, "truncated");
    assert_corrupt(s.extract().unwrap_err(), &s.archive, "truncated");
    // No half file under the member's name, nor a temporary one left behind.
    assert!(walk(&s.dest).is_empty(), "{:?}", walk(&s.dest));
}

#[test]
fn truncated_plain_tar_is_corrupt() {
    let whole = tar_of(&[
        (header("a", EntryType::Regular, 600), &[1; 600]),
        (header("b", EntryType::Regular, 1), b"x"),
    ]);
    // Cut inside the first member's data, and cut cleanly after a member
    // (the end-of-archive blocks are missing).
    for cut in [1000, 1536] {
        let s = Scratch::new(&whole[..cut]);
        assert_corrupt(s.read_all().unwrap_err(), &s.archive, "truncated");
    }
    let s = Scratch::new(&[]);
    assert_corrupt(s.read_all().unwrap_err(), &s.archive, "truncated");
}

#[test]
fn damaged_gzip_checksum_is_corrupt() {
    let mut bytes = gzip(&good_archive());
    let crc = bytes.len() - 8;
    bytes[crc] ^= 0xff;
    let s = Scratch::new(&bytes);
    assert_corrupt(s.read_all().unwrap_err(), &s.archive, "damaged");
}

#[cfg(unix)]
#[test]
fn existing_symlink_in_dest_is_not_followed() {
    let s = Scratch::new(&gzip(&tar_of(&[(
        header("sub/file", EntryType::Regular, 4),
        b"evil",
    )])));
    let elsewhere = s.root.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&s.dest).unwrap();
    std::os::unix::fs::symlink(&elsewhere, s.dest.join("sub")).unwrap();
    assert_refused(s.extract().unwrap_err(), &s.archive, "not a folder");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
}
