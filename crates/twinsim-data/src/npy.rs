//! NumPy's `.npy` format (version 1.0), for arrays other tools open with
//! `numpy.load`: little-endian `float32`, `float64` and `int64`, C order.
//!
//! The header is a Python dict literal; it is written from a template and
//! read by matching that template's three keys, never evaluated, and object
//! arrays (which would need pickle) are refused.

use std::path::Path;

use crate::atomic;
use crate::error::{DataError, Result};

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8] = b"\x93NUMPY";
/// Headers are padded so the data starts on a multiple of this, as NumPy does.
const ALIGN: usize = 64;
/// The longest header accepted when reading (NumPy's own limit is 10,000).
const MAX_HEADER: usize = 10_000;

/// An element type this module reads and writes.
pub trait Element: Copy {
    /// NumPy's dtype string (`<f4`, `<f8`, `<i8`).
    const DESCR: &'static str;
    /// Bytes per element.
    const SIZE: usize;
    /// Appends the element's little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
    /// The element from exactly [`Element::SIZE`] little-endian bytes.
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! element {
    ($t:ty, $descr:literal) => {
        impl Element for $t {
            const DESCR: &'static str = $descr;
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("caller passes SIZE bytes"))
            }
        }
    };
}
element!(f32, "<f4");
element!(f64, "<f8");
element!(i64, "<i8");

/// An array read from a `.npy` file: its shape and its values in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct Array<T> {
    pub shape: Vec<usize>,
    pub values: Vec<T>,
}

/// The `.npy` bytes of an array of `shape` holding `values` in C order.
/// Panics if the shape does not match the number of values (a caller bug).
pub fn to_bytes<T: Element>(shape: &[usize], values: &[T]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        values.len(),
        "shape does not match values"
    );
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        T::DESCR
    );
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(ALIGN) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(unpadded + ALIGN + values.len() * T::SIZE);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in values {
        v.put(&mut out);
    }
    out
}

/// Writes an array to `path` atomically (temporary file, sync, rename).
pub fn write<T: Element>(path: &Path, shape: &[usize], values: &[T]) -> Result<()> {
    atomic::write_bytes(path, &to_bytes(shape, values))
}

/// Reads a `.npy` file of element type `T`; refuses another dtype, Fortran
/// order, a malformed header, and a payload whose size disagrees with the
/// shape.
pub fn read<T: Element>(path: &Path) -> Result<Array<T>> {
    let bytes = crate::read::read_file(path, crate::read::MAX_FILE_BYTES)?;
    from_bytes(&bytes).map_err(|reason| DataError::corrupt(path, reason))
}

/// Parses `.npy` bytes; the error says what is wrong.
pub fn from_bytes<T: Element>(bytes: &[u8]) -> std::result::Result<Array<T>, String> {
    if !bytes.starts_with(MAGIC) || bytes.len() < MAGIC.len() + 4 {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (major, at) = (bytes[MAGIC.len()], MAGIC.len() + 2);
    let (len, at) = match major {
        1 => (
            usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]])),
            at + 2,
        ),
        2 | 3 => {
            let b = bytes.get(at..at + 4).ok_or("header length cut off")?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, at + 4)
        }
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    if len > MAX_HEADER {
        return Err(format!(
            "header of {len} bytes is over the {MAX_HEADER}-byte limit"
        ));
    }
    let header = bytes.get(at..at + len).ok_or("header cut off")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let shape = parse_header(header, T::DESCR)?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("shape overflows")?;
    let data = &bytes[at + len..];
    if Some(data.len()) != count.checked_mul(T::SIZE) {
        return Err(format!(
            "shape {shape:?} needs {count} values of {} bytes but the file holds {} bytes of data",
            T::SIZE,
            data.len()
        ));
    }
    let values = data.chunks_exact(T::SIZE).map(T::get).collect();
    Ok(Array { shape, values })
}

/// The shape in a header dict, after checking its dtype and order.
fn parse_header(header: &str, descr: &str) -> std::result::Result<Vec<usize>, String> {
    let value = |key: &str| -> std::result::Result<&str, String> {
        let start = header
            .find(&format!("'{key}':"))
            .ok_or_else(|| format!("header has no '{key}'"))?
            + key.len()
            + 3;
        Ok(header[start..].trim_start())
    };
    let dtype = value("descr")?;
    if !dtype.starts_with(&format!("'{descr}'")) {
        let found = dtype.split('\'').nth(1).unwrap_or("?");
        return Err(format!("dtype {found} where {descr} was expected"));
    }
    if !value("fortran_order")?.starts_with("False") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape = value("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("shape is not a tuple")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("shape has a non-integer '{s}'")))
        .collect()
}
