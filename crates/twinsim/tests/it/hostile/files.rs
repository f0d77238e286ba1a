//! Writers of hostile files, byte by byte where the usual encoders refuse
//! to produce them: PNGs of any shape and depth, stored zips, safetensors,
//! tar members with unsafe names, FIFOs and links.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::{Compression, Crc};
use serde_json::{json, Map, Value};

/// Writes `bytes` to `path`, creating its folder.
pub fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("a file in a folder")).unwrap();
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// Makes a FIFO at `path`: opening it for reading blocks until a writer
/// comes, and none ever does.
pub fn fifo(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
    path.to_path_buf()
}

/// Makes a symbolic link at `path` pointing at `target` (which need not exist).
pub fn symlink(target: &Path, path: &Path) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
    path.to_path_buf()
}

/// Makes a folder at `path`, where a file is expected.
pub fn dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    path.to_path_buf()
}

/// `n` bytes that look random, the same on every run.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The first `len` bytes of `bytes`.
pub fn truncated(bytes: &[u8], len: usize) -> Vec<u8> {
    bytes[..len.min(bytes.len())].to_vec()
}

/// PNG colour types.
pub const GREY: u8 = 0;
pub const PALETTE: u8 = 3;
pub const GREY_ALPHA: u8 = 4;
pub const RGBA: u8 = 6;

/// One PNG chunk: length, type, data, CRC of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    out.extend(kind);
    out.extend(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend(crc.sum().to_be_bytes());
}

/// A PNG of `width` x `height`, colour type `colour`, `depth` bits, whose
/// row `y` (without its filter byte) `row` appends; `plte` for palettes.
/// Rows are streamed into the compressor, so a 39,000,000-row image needs
/// no buffer of its size; best compression makes a blank one tiny.
pub fn png(
    width: u32,
    height: u32,
    colour: u8,
    depth: u8,
    plte: Option<&[u8]>,
    mut row: impl FnMut(u32, &mut Vec<u8>),
) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([depth, colour, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    if let Some(p) = plte {
        chunk(&mut out, b"PLTE", p);
    }
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    let mut buf = Vec::new();
    for y in 0..height {
        buf.push(0);
        row(y, &mut buf);
        if buf.len() > 1 << 20 {
            z.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    z.write_all(&buf).unwrap();
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A blank 8-bit grey PNG of `width` x `height` (rows of zeros).
pub fn blank_png(width: u32, height: u32) -> Vec<u8> {
    png(width, height, GREY, 8, None, |_, row| {
        row.resize(row.len() + width as usize, 0)
    })
}

/// A PNG whose header declares `width` x `height` but whose data is one
/// empty row: a decompression bomb refused from its header, or a
/// truncated image when decoded.
pub fn lying_png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(1, 1, GREY, 8, None, |_, row| row.push(0));
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = Crc::new();
    crc.update(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    bytes
}

/// A zip archive of `members` stored uncompressed (the layout of
/// `np.savez`), written by hand so that members may hold any bytes.
pub fn zip_stored(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let mut crc = Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend(20u16.to_le_bytes()); // version needed
            v.extend(0u16.to_le_bytes()); // flags
            v.extend(0u16.to_le_bytes()); // stored
            v.extend(0u32.to_le_bytes()); // time, date
            v.extend(crc.sum().to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((name.len() as u16).to_le_bytes());
            v.extend(0u16.to_le_bytes()); // extra
        };
        out.extend(0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend(name.as_bytes());
        out.extend(*data);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend([0u8; 8]); // comment, disk, internal and
        central.extend(0u32.to_le_bytes()); // external attributes
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let (at, size) = (out.len() as u32, central.len() as u32);
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((members.len() as u16).to_le_bytes());
    out.extend(size.to_le_bytes());
    out.extend(at.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// `.npy` bytes with the header dictionary `header` (e.g. a shape no
/// payload could fill) and `payload` after it.
pub fn npy_raw(header: &str, payload: &[u8]) -> Vec<u8> {
    let mut text = header.to_string();
    let unpadded = 6 + 2 + 2 + text.len() + 1;
    text.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    text.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((text.len() as u16).to_le_bytes());
    out.extend(text.as_bytes());
    out.extend(payload);
    out
}

/// One tensor of a safetensors file.
#[derive(Clone)]
pub struct Stored {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Stored {
    /// The elements as f32 (for F32 tensors).
    pub fn floats(&self) -> Vec<f32> {
        self.data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// Replaces the elements (of an F32 tensor).
    pub fn set_floats(&mut self, values: &[f32]) {
        self.data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    }
}

/// A safetensors file's tensors, in file order, and its metadata.
pub struct SafeTensors {
    pub tensors: Vec<Stored>,
    pub metadata: Option<Value>,
}

/// Parses a safetensors file written by twinsim (trusted: the fixture's own).
pub fn read_safetensors(bytes: &[u8]) -> SafeTensors {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut metadata = None;
    let mut tensors = Vec::new();
    for (name, v) in header {
        if name == "__metadata__" {
            metadata = Some(v);
            continue;
        }
        let [a, b] = [0, 1].map(|i| v["data_offsets"][i].as_u64().unwrap() as usize);
        tensors.push(Stored {
            name,
            dtype: v["dtype"].as_str().unwrap().to_string(),
            shape: v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
            data: data[a..b].to_vec(),
        });
    }
    tensors.sort_by_key(|t| t.name.clone());
    SafeTensors { tensors, metadata }
}

/// Serialises `st`, with each tensor's declared shape as given (which may
/// disagree with its data: that is the point of some cases).
pub fn write_safetensors(st: &SafeTensors) -> Vec<u8> {
    let mut header = Map::new();
    if let Some(m) = &st.metadata {
        header.insert("__metadata__".into(), m.clone());
    }
    let mut offset = 0;
    for t in &st.tensors {
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.data.len()]}),
        );
        offset += t.data.len();
    }
    let mut text = serde_json::to_vec(&Value::Object(header)).unwrap();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    for t in &st.tensors {
        out.extend(&t.data);
    }
    out
}

/// Rewrites the safetensors file at `path` through `edit`.
pub fn edit_safetensors(path: &Path, edit: impl FnOnce(&mut SafeTensors)) {
    let mut st = read_safetensors(&std::fs::read(path).unwrap());
    edit(&mut st);
    std::fs::write(path, write_safetensors(&st)).unwrap();
}

/// Rewrites the JSON file at `path` through `edit`.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// A tar member as the archive stores it: a header whose name field is
/// set byte by byte (the `tar` crate refuses `..`), then the data padded
/// to 512 bytes. `kind` is the header's type flag (b'0' file, b'2' link).
pub fn tar_member(name: &str, kind: u8, link: &str, declared: u64, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    header.set_size(declared);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::new(kind));
    let old = header.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

/// A regular tar member.
pub fn tar_file(name: &str, data: &[u8]) -> Vec<u8> {
    tar_member(name, b'0', "", data.len() as u64, data)
}

/// `members` (from [`tar_member`]) as a gzipped tar with its end marker.
pub fn tar_gz(members: &[Vec<u8>]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    for m in members {
        gz.write_all(m).unwrap();
    }
    gz.write_all(&[0; 1024]).unwrap();
    gz.finish().unwrap()
}

/// Gzip of `n` zero bytes, streamed: a bomb of ratio about 1000.
pub fn gzip_zeros(prefix: &[u8], n: usize) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(prefix).unwrap();
    let block = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        gz.write_all(&block[..k]).unwrap();
        left -= k;
    }
    gz.finish().unwrap()
}

/// A protocol-2 pickle that, if anything ever executed it, would call
/// `module.name(argument)`: GLOBAL, the argument, TUPLE1, REDUCE, STOP.
pub fn evil_pickle(module: &str, name: &str, argument: &str) -> Vec<u8> {
    let mut p = b"\x80\x02c".to_vec();
    p.extend(format!("{module}\n{name}\n").as_bytes());
    p.push(b'X');
    p.extend((argument.len() as u32).to_le_bytes());
    p.extend(argument.as_bytes());
    p.extend(b"\x85R.");
    p
}

/// The same call spelled with protocol 4's STACK_GLOBAL, which takes the
/// module and name from the stack (SHORT_BINUNICODE each).
pub fn evil_pickle_v4(module: &str, name: &str, argument: &str) -> Vec<u8> {
    let mut p = b"\x80\x04".to_vec();
    for s in [module, name] {
        p.push(0x8c);
        p.push(s.len() as u8);
        p.extend(s.as_bytes());
    }
    p.push(0x93); // STACK_GLOBAL
    p.push(b'X');
    p.extend((argument.len() as u32).to_le_bytes());
    p.extend(argument.as_bytes());
    p.extend(b"\x85R.");
    p
}
