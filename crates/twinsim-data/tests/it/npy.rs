//! `.npy` files: what we write NumPy reads back identically, what NumPy
//! writes we read, and malformed files are refused with a reason.

use crate::common;

use std::process::Command;

use twinsim_data::npy;

/// What `code` prints, run by the test Python (which has numpy).
fn python(code: &str) -> String {
    let out = Command::new(common::python())
        .args(["-c", code])
        .output()
        .expect("python starts");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn numpy_reads_what_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("e.npy");
    let l = dir.path().join("l.npy");
    npy::write(&f, &[2, 3], &[1.5f32, -2.0, 0.0, 3.25, 0.125, 7.0]).unwrap();
    npy::write(&l, &[3], &[0i64, -5, 1 << 40]).unwrap();
    let out = python(&format!(
        "import numpy as np; e=np.load('{}'); l=np.load('{}'); print(e.dtype, e.shape, e.tolist()); print(l.dtype, l.shape, l.tolist())",
        f.display(),
        l.display()
    ));
    assert_eq!(
        out,
        "float32 (2, 3) [[1.5, -2.0, 0.0], [3.25, 0.125, 7.0]]\nint64 (3,) [0, -5, 1099511627776]\n"
    );
}

#[test]
fn we_read_what_numpy_writes() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("n.npy");
    python(&format!(
        "import numpy as np; np.save('{}', np.arange(12, dtype=np.float64).reshape(3, 4) / 4)",
        f.display()
    ));
    let a = npy::read::<f64>(&f).unwrap();
    assert_eq!(a.shape, vec![3, 4]);
    assert_eq!(a.values, (0..12).map(|i| f64::from(i) / 4.0).collect::<Vec<_>>());
}

#[test]
fn round_trip_and_alignment() {
    let bytes = npy::to_bytes(&[2, 2], &[1i64, 2, 3, 4]);
    assert_eq!((bytes.len() - 32) % 64, 0, "data starts on a 64-byte boundary");
    let a = npy::from_bytes::<i64>(&bytes).unwrap();
    assert_eq!(a.shape, vec![2, 2]);
    assert_eq!(a.values, vec![1, 2, 3, 4]);
}

/// `bytes` with the first `from` replaced by `to` (the header is text, the
/// rest is not).
fn edit(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("text present");
    [&bytes[..at], to.as_bytes(), &bytes[at + from.len()..]].concat()
}

#[test]
fn malformed_files_are_refused_with_a_reason() {
    let good = npy::to_bytes(&[4], &[1.0f32, 2.0, 3.0, 4.0]);
    let err = |b: &[u8]| npy::from_bytes::<f32>(b).unwrap_err();
    assert!(err(b"PK\x03\x04").contains("not a .npy"));
    assert!(err(&good[..good.len() - 1]).contains("holds 15 bytes"));
    assert!(npy::from_bytes::<i64>(&good)
        .unwrap_err()
        .contains("dtype <f4 where <i8"));
    assert!(err(&edit(&good, "'fortran_order': False", "'fortran_order': True ")).contains("Fortran"));
    assert!(err(&edit(&good, "'<f4'", "'|O' ")).contains("dtype |O"));
    assert!(err(&edit(&good, "(4,)", "(9999999999999999999999,)")).contains("shape"));
}
