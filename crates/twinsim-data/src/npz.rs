//! NumPy's `.npz` archives (`np.savez`, `np.savez_compressed`): a zip file
//! holding one `.npy` file per named array, which [`crate::npy`] parses.
//! Members are read by name only, their declared size checked against a
//! limit before any is read, so a hostile archive cannot make us allocate
//! more than [`MAX_MEMBER`] bytes per array.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::atomic;
use crate::error::{DataError, Result};
use crate::npy::{self, Array};

/// The largest array read from an archive: 1 GiB (a 16,384² float32 matrix).
pub const MAX_MEMBER: u64 = 1 << 30;

/// Writes the named float64 arrays `(name, shape, values)` to `path` as an
/// uncompressed `.npz` (what `np.savez` writes), atomically.
pub fn write(path: &Path, arrays: &[(&str, &[usize], &[f64])]) -> Result<()> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (name, shape, values) in arrays {
        let io = |e: std::io::Error| DataError::io(path, e);
        zip.start_file(format!("{name}.npy"), options)
            .map_err(|e| DataError::corrupt(path, e.to_string()))?;
        zip.write_all(&npy::to_bytes(shape, values)).map_err(io)?;
    }
    let bytes = zip
        .finish()
        .map_err(|e| DataError::corrupt(path, e.to_string()))?
        .into_inner();
    atomic::write_bytes(path, &bytes)
}

/// The array `name` of the archive at `path`, as float64: stored as
/// float64, or float32 widened.
pub fn read_f64(path: &Path, name: &str) -> Result<Array<f64>> {
    let bytes = member(path, name)?;
    npy::from_bytes::<f64>(&bytes)
        .or_else(|first| {
            npy::from_bytes::<f32>(&bytes)
                .map(|a| Array {
                    shape: a.shape,
                    values: a.values.into_iter().map(f64::from).collect(),
                })
                .map_err(|_| first)
        })
        .map_err(|reason| DataError::corrupt(path, format!("{name}: {reason}")))
}

/// The bytes of member `name.npy`.
fn member(path: &Path, name: &str) -> Result<Vec<u8>> {
    let file = crate::read::open_file(path)?;
    let mut zip = ZipArchive::new(file)
        .map_err(|e| DataError::corrupt(path, format!("not a .npz (zip) archive: {e}")))?;
    let mut entry = zip.by_name(&format!("{name}.npy")).map_err(|_| {
        DataError::invalid(
            format!("{} has no array `{name}`", path.display()),
            format!("save the array under that name: np.savez(FILE, {name}=...)"),
        )
    })?;
    if entry.size() > MAX_MEMBER {
        return Err(DataError::corrupt(
            path,
            format!(
                "{name} declares {} bytes, over the {MAX_MEMBER}-byte limit",
                entry.size()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    (&mut entry)
        .take(MAX_MEMBER)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::corrupt(path, format!("{name}: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_survive_the_round_trip_and_missing_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.npz");
        write(
            &path,
            &[
                ("mu", &[2], &[1.0, 2.0]),
                ("sigma", &[2, 2], &[1.0, 0.5, 0.5, 2.0]),
            ],
        )
        .unwrap();
        let sigma = read_f64(&path, "sigma").unwrap();
        assert_eq!(
            (sigma.shape, sigma.values),
            (vec![2, 2], vec![1.0, 0.5, 0.5, 2.0])
        );
        assert!(read_f64(&path, "nu")
            .unwrap_err()
            .to_string()
            .contains("no array `nu`"));
        std::fs::write(&path, b"PK\x03\x04 not really").unwrap();
        assert!(read_f64(&path, "mu").is_err());
    }
}
