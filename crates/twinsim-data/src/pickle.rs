//! A restricted unpickler, for CIFAR's python download and for PyTorch
//! checkpoints.
//!
//! Python's own unpickler runs whatever callable a file names, so a pickle
//! from the network is a program. This reader is a small stack machine of its
//! own that knows only the opcodes those files use and only the callables
//! that rebuild their data: numpy's array reconstruction (uint8 only) and
//! `_codecs.encode` (how Python 3 writes bytes in protocol 2) for CIFAR;
//! `collections.OrderedDict`, torch's tensor rebuilder and storage types for
//! checkpoints. One allow-list serves both, as every entry only builds plain
//! values. A file naming any other global is refused when the name is read,
//! before anything is built, and nothing is ever executed: the "calls" are
//! interpreted here as constructors of plain values.
//!
//! Values borrow strings and byte strings from the input, so a 30 MB array
//! written by Python 2 (`BINSTRING`) is never copied until the caller copies
//! it into the dataset buffer. A checkpoint's tensor data lies outside its
//! pickle: tensors here only describe where it is ([`TensorRef`]), checked
//! to stay inside the storage they name, and [`crate::torch_file`] reads it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{DataError, Result};

/// Most values the stack may hold at once (a list is appended 1,000 items at
/// a time, so CIFAR needs a few thousand).
const MAX_STACK: usize = 1 << 20;

/// Most values a pickle may create in all: CIFAR-100's training file, the
/// largest, creates about 300,000, a checkpoint about 20 per tensor; this
/// bounds memory to a few hundred MB whatever the file says.
const MAX_VALUES: usize = 1 << 22;

/// Most memo entries (CIFAR-100's training file, the largest, stores about
/// 50,000: one per file name; a checkpoint stores about 10 per tensor).
const MAX_MEMO: usize = 1 << 20;

/// Deepest nesting of tuples, lists and dicts (CIFAR's files and
/// checkpoints reach 3); also keeps the recursive drop of a value well
/// within a thread's stack.
const MAX_DEPTH: u8 = 32;

/// Highest pickle protocol whose framing this reader understands.
const MAX_PROTOCOL: u8 = 5;

/// Opcodes, with the names Python's `pickletools` gives them.
mod op {
    pub const PROTO: u8 = 0x80;
    pub const FRAME: u8 = 0x95;
    pub const STOP: u8 = b'.';
    pub const MARK: u8 = b'(';
    pub const EMPTY_DICT: u8 = b'}';
    pub const EMPTY_LIST: u8 = b']';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const NONE: u8 = b'N';
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const LONG1: u8 = 0x8a;
    pub const BINFLOAT: u8 = b'G';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const BINUNICODE: u8 = b'X';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const MEMOIZE: u8 = 0x94;
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const GLOBAL: u8 = b'c';
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const REDUCE: u8 = b'R';
    pub const BUILD: u8 = b'b';
    pub const BINPERSID: u8 = b'Q';
}

/// The only globals a pickle may name, and what they stand for here.
const ALLOWED_GLOBALS: [(&str, &str, Global); 13] = [
    ("numpy.core.multiarray", "_reconstruct", Global::Reconstruct),
    ("numpy._core.multiarray", "_reconstruct", Global::Reconstruct),
    ("numpy", "ndarray", Global::Ndarray),
    ("numpy", "dtype", Global::Dtype),
    ("_codecs", "encode", Global::Encode),
    ("collections", "OrderedDict", Global::OrderedDict),
    ("torch._utils", "_rebuild_tensor_v2", Global::RebuildTensor),
    ("torch", "FloatStorage", Global::Storage(Element::F32)),
    ("torch", "DoubleStorage", Global::Storage(Element::F64)),
    ("torch", "HalfStorage", Global::Storage(Element::F16)),
    ("torch", "BFloat16Storage", Global::Storage(Element::BF16)),
    ("torch", "LongStorage", Global::Storage(Element::I64)),
    ("torch", "IntStorage", Global::Storage(Element::I32)),
];

/// An allow-listed global.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Global {
    /// `numpy.core.multiarray._reconstruct(ndarray, shape, typecode)`: an
    /// empty array that a BUILD then fills.
    Reconstruct,
    /// The class `numpy.ndarray`, only ever an argument of `_reconstruct`.
    Ndarray,
    /// `numpy.dtype(spec, align, copy)`.
    Dtype,
    /// `_codecs.encode(text, 'latin1')`: bytes, in Python 3's protocol 2.
    Encode,
    /// `collections.OrderedDict()`: an empty dict (a state dict's type).
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.
    RebuildTensor,
    /// A storage class such as `torch.FloatStorage`, only ever the type in a
    /// storage's persistent id.
    Storage(Element),
}

/// The element type of a torch storage, as its storage class names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Element {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
}

impl Element {
    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            Element::F16 | Element::BF16 => 2,
            Element::F32 | Element::I32 => 4,
            Element::F64 | Element::I64 => 8,
        }
    }

    /// torch's name for the type, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Element::F32 => "float32",
            Element::F64 => "float64",
            Element::F16 => "float16",
            Element::BF16 => "bfloat16",
            Element::I64 => "int64",
            Element::I32 => "int32",
        }
    }
}

/// A torch storage named by a persistent id: its data is kept outside the
/// pickle under `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StorageRef<'a> {
    pub(crate) element: Element,
    pub(crate) key: &'a str,
    /// Elements in the storage; `numel * element.size()` does not overflow.
    pub(crate) numel: usize,
}

/// A tensor `_rebuild_tensor_v2` describes: a strided view of a storage,
/// checked to stay inside it.
#[derive(Clone, Debug)]
pub(crate) struct TensorRef<'a> {
    pub(crate) storage: StorageRef<'a>,
    /// Index (in elements) of the first element in the storage.
    pub(crate) offset: usize,
    pub(crate) shape: Vec<usize>,
    /// Elements between neighbours along each dimension.
    pub(crate) strides: Vec<usize>,
    /// Elements in the tensor (the product of `shape`).
    pub(crate) numel: usize,
}

/// Bytes, borrowed from the input or made by `_codecs.encode`.
#[derive(Clone, Debug)]
pub(crate) enum Blob<'a> {
    Borrowed(&'a [u8]),
    Owned(Arc<Vec<u8>>),
}

impl Blob<'_> {
    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Blob::Borrowed(b) => b,
            Blob::Owned(v) => v,
        }
    }

    /// The bytes as a vector, moved rather than copied when nothing else
    /// shares them.
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            Blob::Borrowed(b) => b.to_vec(),
            Blob::Owned(v) => Arc::try_unwrap(v).unwrap_or_else(|v| v.as_ref().clone()),
        }
    }
}

/// A uint8 ndarray rebuilt from a pickle.
#[derive(Clone, Debug)]
pub(crate) struct Array<'a> {
    shape: Vec<usize>,
    data: Blob<'a>,
}

/// A value on the unpickler's stack: plain data only.
#[derive(Clone, Debug)]
pub(crate) enum Value<'a> {
    None,
    Bool(bool),
    /// Up to 128 bits: the legacy checkpoint format's magic number needs 80.
    Int(i128),
    /// A float (a checkpoint's learning rate, accuracy...), whose value
    /// nothing reads.
    Float,
    /// A `str`, as its UTF-8 bytes: validating 45 MB of array data as text
    /// and then decoding it would read it twice, so text is checked where it
    /// is decoded ([`latin1`]) and compared as bytes elsewhere.
    Text(&'a [u8]),
    Bytes(Blob<'a>),
    /// Containers carry their nesting depth, checked as they grow.
    Tuple(Arc<[Value<'a>]>, u8),
    List(Vec<Value<'a>>, u8),
    Dict(Vec<(Value<'a>, Value<'a>)>, u8),
    Callable(Global),
    /// The uint8 dtype (the only one accepted).
    Dtype,
    /// An array `_reconstruct` made, waiting for BUILD to give it content.
    EmptyArray,
    Array(Arc<Array<'a>>),
    Storage(StorageRef<'a>),
    Tensor(Arc<TensorRef<'a>>),
    /// What the memo holds for a mutable object (list, dict, array being
    /// built): Python would share the object, a copy here would silently
    /// differ, so fetching it back is refused. CIFAR's files and
    /// checkpoints never do.
    Unshared(&'static str),
}

impl Value<'_> {
    /// Python's name for the value's type, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float => "float",
            Value::Text(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(..) => "tuple",
            Value::List(..) => "list",
            Value::Dict(..) => "dict",
            Value::Callable(_) => "callable",
            Value::Dtype => "dtype",
            Value::EmptyArray | Value::Array(_) => "ndarray",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Unshared(_) => "shared object",
        }
    }

    /// What the memo keeps of this value.
    fn memo_copy(&self) -> Self {
        match self {
            Value::List(..) => Value::Unshared("a list"),
            Value::Dict(..) => Value::Unshared("a dict"),
            Value::EmptyArray => Value::Unshared("an array under construction"),
            other => other.clone(),
        }
    }

    /// How many containers deep the value is (0 for a scalar).
    fn depth(&self) -> u8 {
        match self {
            Value::Tuple(_, d) | Value::List(_, d) | Value::Dict(_, d) => *d,
            _ => 0,
        }
    }

    /// The string content of a `str` or `bytes` value.
    pub(crate) fn as_name(&self) -> Option<&[u8]> {
        match self {
            Value::Text(t) => Some(t),
            Value::Bytes(b) => Some(b.as_slice()),
            _ => None,
        }
    }
}

/// A pickled dict, the top-level object of every CIFAR file.
pub(crate) struct Dict<'p, 'a> {
    path: &'p Path,
    entries: Vec<(Value<'a>, Value<'a>)>,
}

/// A 2-D uint8 array: `rows` rows of a known width.
pub(crate) struct Rows<'a> {
    pub(crate) rows: usize,
    pub(crate) data: Blob<'a>,
}

impl<'p, 'a> Dict<'p, 'a> {
    /// The value of the last entry whose key (str or bytes) is `key`, as
    /// Python keeps the last of duplicate keys.
    fn get(&self, key: &str) -> Result<&Value<'a>> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    fn position(&self, key: &str) -> Result<usize> {
        self.entries
            .iter()
            .rposition(|(k, _)| k.as_name() == Some(key.as_bytes()))
            .ok_or_else(|| DataError::corrupt(self.path, format!("pickle has no '{key}' entry")))
    }

    /// `key`'s list of non-negative ints.
    pub(crate) fn labels(&self, key: &str) -> Result<Vec<u32>> {
        let Value::List(items, _) = self.get(key)? else {
            return Err(self.wrong_type(key, "a list of ints"));
        };
        items
            .iter()
            .map(|item| match item {
                Value::Int(i) => u32::try_from(*i).ok(),
                _ => None,
            })
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| self.wrong_type(key, "a list of ints from 0 to 2^32-1"))
    }

    /// `key`'s list of names (str, or bytes holding UTF-8).
    pub(crate) fn names(&self, key: &str) -> Result<Vec<String>> {
        let Value::List(items, _) = self.get(key)? else {
            return Err(self.wrong_type(key, "a list of names"));
        };
        items
            .iter()
            .map(|item| item.as_name().map(|n| String::from_utf8_lossy(n).into_owned()))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| self.wrong_type(key, "a list of names"))
    }

    /// Removes `key`'s uint8 array, which must be 2-D with rows of `width`.
    pub(crate) fn take_rows(&mut self, key: &str, width: usize) -> Result<Rows<'a>> {
        let index = self.position(key)?;
        let Value::Array(array) = std::mem::replace(&mut self.entries[index].1, Value::None) else {
            return Err(self.wrong_type(key, "a numpy array"));
        };
        // Unshared (the usual case), the pixels move out without a copy.
        let array = Arc::try_unwrap(array).unwrap_or_else(|shared| (*shared).clone());
        match array.shape[..] {
            [rows, w] if w == width => Ok(Rows {
                rows,
                data: array.data,
            }),
            _ => Err(DataError::corrupt(
                self.path,
                format!("'{key}' has shape {:?}, not (N, {width})", array.shape),
            )),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str) -> DataError {
        DataError::corrupt(self.path, format!("'{key}' is not {expected}"))
    }
}

/// Unpickles `bytes` (read from `path`), whose top-level object must be a dict.
pub(crate) fn parse_dict<'p, 'a>(path: &'p Path, bytes: &'a [u8]) -> Result<Dict<'p, 'a>> {
    match unpickle(path, bytes, 0)?.value {
        Value::Dict(entries, _) => Ok(Dict { path, entries }),
        other => Err(DataError::corrupt(
            path,
            format!("pickle holds a {}, not a dict", other.kind()),
        )),
    }
}

/// One pickle read from a larger input.
pub(crate) struct Unpickled<'a> {
    /// The object the pickle names.
    pub(crate) value: Value<'a>,
    /// Offset of the byte after its STOP opcode, where a next pickle starts.
    pub(crate) end: usize,
    /// Every storage its persistent ids named, in order, including those of
    /// values later dropped: a legacy checkpoint lists the data of them all.
    pub(crate) storages: Vec<StorageRef<'a>>,
}

/// Unpickles the pickle that starts at offset `start` of `bytes` (read from
/// `path`); errors give offsets in `bytes`.
pub(crate) fn unpickle<'a>(path: &Path, bytes: &'a [u8], start: usize) -> Result<Unpickled<'a>> {
    let mut machine = Machine::new(path, bytes);
    machine.pos = start;
    machine.run()
}

/// The unpickler's state.
struct Machine<'p, 'a> {
    path: &'p Path,
    input: &'a [u8],
    pos: usize,
    stack: Vec<Value<'a>>,
    /// Stack lengths at each MARK; nothing below the last may be popped
    /// until it is closed, as in Python's unpickler.
    marks: Vec<usize>,
    memo: HashMap<u32, Value<'a>>,
    created: usize,
    storages: Vec<StorageRef<'a>>,
}

impl<'p, 'a> Machine<'p, 'a> {
    fn new(path: &'p Path, input: &'a [u8]) -> Self {
        Machine {
            path,
            input,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            created: 0,
            storages: Vec::new(),
        }
    }

    /// Executes opcodes until STOP and returns the object it names.
    fn run(mut self) -> Result<Unpickled<'a>> {
        loop {
            let at = self.pos;
            let code = self.byte()?;
            if code == op::STOP {
                return Ok(Unpickled {
                    value: self.pop()?,
                    end: self.pos,
                    storages: self.storages,
                });
            }
            self.step(code, at)?;
        }
    }

    /// Executes one opcode (other than STOP) found at offset `at`.
    fn step(&mut self, code: u8, at: usize) -> Result<()> {
        match code {
            op::PROTO => self.protocol(),
            op::FRAME => self.take(8).map(drop),
            op::MARK => self.mark(),
            op::EMPTY_DICT => self.push(Value::Dict(Vec::new(), 1)),
            op::EMPTY_LIST => self.push(Value::List(Vec::new(), 1)),
            op::EMPTY_TUPLE => self.push(Value::Tuple(Arc::from([]), 1)),
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.tuple(items)
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => self.tuple_of(usize::from(code - op::TUPLE1 + 1)),
            op::SETITEM => {
                let pair = self.pop_n(2)?;
                self.set_items(pair)
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                self.set_items(items)
            }
            op::APPEND => {
                let item = self.pop_n(1)?;
                self.append(item)
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                self.append(items)
            }
            op::NONE => self.push(Value::None),
            op::NEWTRUE => self.push(Value::Bool(true)),
            op::NEWFALSE => self.push(Value::Bool(false)),
            op::BININT => {
                let v = i32::from_le_bytes(self.array()?);
                self.push(Value::Int(v.into()))
            }
            op::BININT1 => {
                let v = self.byte()?;
                self.push(Value::Int(v.into()))
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.array()?);
                self.push(Value::Int(v.into()))
            }
            op::LONG1 => self.long1(),
            op::BINFLOAT => {
                self.take(8)?;
                self.push(Value::Float)
            }
            op::BINSTRING => {
                let len = i32::from_le_bytes(self.array()?);
                let len = usize::try_from(len).map_err(|_| self.corrupt(at, "negative string length"))?;
                self.bytes(len)
            }
            op::SHORT_BINSTRING | op::SHORT_BINBYTES => {
                let len = self.byte()?;
                self.bytes(len.into())
            }
            op::BINBYTES => {
                let len = self.u32_len()?;
                self.bytes(len)
            }
            op::BINUNICODE => {
                let len = self.u32_len()?;
                self.text(len)
            }
            op::SHORT_BINUNICODE => {
                let len = self.byte()?;
                self.text(len.into())
            }
            op::BINPUT => {
                let index = self.byte()?;
                self.memo_put(index.into())
            }
            op::LONG_BINPUT => {
                let index = u32::from_le_bytes(self.array()?);
                self.memo_put(index)
            }
            op::MEMOIZE => self.memo_put(self.memo.len() as u32),
            op::BINGET => {
                let index = self.byte()?;
                self.memo_get(index.into(), at)
            }
            op::LONG_BINGET => {
                let index = u32::from_le_bytes(self.array()?);
                self.memo_get(index, at)
            }
            op::GLOBAL => {
                let module = self.line(at)?;
                let name = self.line(at)?;
                self.global(module, name)
            }
            op::STACK_GLOBAL => self.stack_global(at),
            op::REDUCE => self.reduce(at),
            op::BUILD => self.build(at),
            op::BINPERSID => self.persistent_load(at),
            other => Err(DataError::refused(
                self.path,
                format!("pickle opcode 0x{other:02x} at offset {at} is not one twinsim reads"),
            )),
        }
    }

    fn corrupt(&self, at: usize, reason: &str) -> DataError {
        DataError::corrupt(self.path, format!("pickle offset {at}: {reason}"))
    }

    fn refused(&self, at: usize, reason: &str) -> DataError {
        DataError::refused(self.path, format!("pickle offset {at}: {reason}"))
    }

    // ---- reading the input ----

    /// The next `n` bytes of input.
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.input.len());
        let Some(end) = end else {
            return Err(self.corrupt(self.pos, "pickle ends in the middle of an opcode (truncated?)"));
        };
        let slice = &self.input[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    fn u32_len(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    /// A newline-terminated ASCII argument (GLOBAL's module and name).
    fn line(&mut self, at: usize) -> Result<&'a str> {
        let rest = &self.input[self.pos..];
        let Some(len) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.corrupt(at, "unterminated GLOBAL argument"));
        };
        let line =
            std::str::from_utf8(&rest[..len]).map_err(|_| self.corrupt(at, "GLOBAL argument is not text"))?;
        self.pos += len + 1;
        Ok(line)
    }

    // ---- the stack, marks and memo ----

    fn push(&mut self, value: Value<'a>) -> Result<()> {
        self.created += 1;
        if self.stack.len() >= MAX_STACK || self.created > MAX_VALUES {
            return Err(self.refused(
                self.pos,
                "pickle builds more values than any file twinsim reads holds",
            ));
        }
        self.stack.push(value);
        Ok(())
    }

    /// The stack length below which the current MARK forbids popping.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value<'a>> {
        Ok(self.pop_n(1)?.remove(0))
    }

    /// The top `n` values, in stack order.
    fn pop_n(&mut self, n: usize) -> Result<Vec<Value<'a>>> {
        if self.stack.len() < self.floor() + n {
            return Err(self.corrupt(self.pos, "stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn top(&mut self) -> Result<&mut Value<'a>> {
        if self.stack.len() <= self.floor() {
            return Err(self.corrupt(self.pos, "stack underflow"));
        }
        Ok(self.stack.last_mut().expect("stack is above the floor"))
    }

    fn mark(&mut self) -> Result<()> {
        if self.marks.len() >= MAX_STACK {
            return Err(self.refused(self.pos, "too many nested MARKs"));
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    /// The values pushed since the last MARK, which is closed.
    fn pop_mark(&mut self) -> Result<Vec<Value<'a>>> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.corrupt(self.pos, "no MARK to close"));
        };
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, index: u32) -> Result<()> {
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(self.refused(self.pos, "pickle memo too large"));
        }
        let value = self.top()?.memo_copy();
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u32, at: usize) -> Result<()> {
        match self.memo.get(&index) {
            None => Err(self.corrupt(at, &format!("memo entry {index} was never stored"))),
            Some(Value::Unshared(what)) => Err(self.refused(
                at,
                &format!("the pickle refers back to {what}; shared mutable objects are not supported"),
            )),
            Some(value) => {
                let value = value.clone();
                self.push(value)
            }
        }
    }

    // ---- building values ----

    fn protocol(&mut self) -> Result<()> {
        let at = self.pos;
        let version = self.byte()?;
        if version > MAX_PROTOCOL {
            return Err(self.refused(
                at,
                &format!("pickle protocol {version} is newer than {MAX_PROTOCOL}"),
            ));
        }
        Ok(())
    }

    fn tuple_of(&mut self, n: usize) -> Result<()> {
        let items = self.pop_n(n)?;
        self.tuple(items)
    }

    fn tuple(&mut self, items: Vec<Value<'a>>) -> Result<()> {
        let depth = self.depth_holding(&items)?;
        self.push(Value::Tuple(items.into(), depth))
    }

    /// The depth of a container holding `items`, refused past [`MAX_DEPTH`].
    fn depth_holding(&self, items: &[Value]) -> Result<u8> {
        let depth = items.iter().map(Value::depth).max().unwrap_or(0) + 1;
        if depth > MAX_DEPTH {
            return Err(self.refused(self.pos, &format!("containers nested more than {MAX_DEPTH} deep")));
        }
        Ok(depth)
    }

    /// Python's little-endian two's-complement long, limited to 128 bits.
    fn long1(&mut self) -> Result<()> {
        let at = self.pos;
        let len = usize::from(self.byte()?);
        let digits = self.take(len)?;
        if len > 16 {
            return Err(self.refused(at, "integer wider than 128 bits"));
        }
        let fill = if digits.last().is_some_and(|&b| b & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut le = [fill; 16];
        le[..len].copy_from_slice(digits);
        self.push(Value::Int(i128::from_le_bytes(le)))
    }

    fn bytes(&mut self, len: usize) -> Result<()> {
        let data = self.take(len)?;
        self.push(Value::Bytes(Blob::Borrowed(data)))
    }

    fn text(&mut self, len: usize) -> Result<()> {
        let data = self.take(len)?;
        self.push(Value::Text(data))
    }

    fn set_items(&mut self, items: Vec<Value<'a>>) -> Result<()> {
        if items.len() % 2 != 0 {
            return Err(self.corrupt(self.pos, "SETITEMS with an odd number of values"));
        }
        let at = self.pos;
        let depth = self.depth_holding(&items)?;
        let Value::Dict(entries, dict_depth) = self.top()? else {
            return Err(self.corrupt(at, "SETITEM(S) on something that is not a dict"));
        };
        *dict_depth = (*dict_depth).max(depth);
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            entries.push((key, value));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value<'a>>) -> Result<()> {
        let at = self.pos;
        let depth = self.depth_holding(&items)?;
        let Value::List(list, list_depth) = self.top()? else {
            return Err(self.corrupt(at, "APPEND(S) on something that is not a list"));
        };
        *list_depth = (*list_depth).max(depth);
        list.extend(items);
        Ok(())
    }

    /// Refuses any global outside [`ALLOWED_GLOBALS`] as soon as it is named.
    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        let allowed = ALLOWED_GLOBALS
            .iter()
            .find(|(m, n, _)| *m == module && *n == name)
            .map(|&(_, _, g)| g);
        match allowed {
            Some(global) => self.push(Value::Callable(global)),
            None => Err(DataError::refused(
                self.path,
                format!("pickle names the global {module}.{name}, which twinsim does not allow"),
            )),
        }
    }

    fn stack_global(&mut self, at: usize) -> Result<()> {
        let pair = self.pop_n(2)?;
        let text = |v: &Value<'a>| match v {
            Value::Text(t) => std::str::from_utf8(t).ok(),
            _ => None,
        };
        match (text(&pair[0]), text(&pair[1])) {
            (Some(module), Some(name)) => self.global(module, name),
            _ => Err(self.corrupt(at, "STACK_GLOBAL without a module and a name")),
        }
    }

    /// Applies an allow-listed callable to its arguments, building the plain
    /// value it would return.
    fn reduce(&mut self, at: usize) -> Result<()> {
        let pair = self.pop_n(2)?;
        let (Value::Callable(global), Value::Tuple(args, _)) = (&pair[0], &pair[1]) else {
            return Err(self.corrupt(at, "REDUCE without a callable and an argument tuple"));
        };
        let value = match global {
            Global::Reconstruct => reconstruct(args).map_err(|why| self.refused(at, &why))?,
            Global::Dtype => dtype(args).map_err(|why| self.refused(at, &why))?,
            Global::Encode => encode(args).map_err(|why| self.refused(at, &why))?,
            Global::OrderedDict => ordered_dict(args).map_err(|why| self.refused(at, &why))?,
            Global::RebuildTensor => Value::Tensor(Arc::new(self.rebuild_tensor(args, at)?)),
            Global::Ndarray => {
                return Err(self.refused(at, "numpy.ndarray may only be given to _reconstruct"))
            }
            Global::Storage(_) => {
                return Err(self.refused(at, "a torch storage class may only be a storage's type"))
            }
        };
        self.push(value)
    }

    /// `persistent_load(pid)` as torch defines it: `('storage', storage class,
    /// key, location, numel[, view])` names a storage whose data lies outside
    /// the pickle. The location ('cpu', 'cuda:0') does not matter, as data
    /// is read to the CPU; views of a storage (the sixth field, which only
    /// torch before 0.4 filled in) are refused.
    fn persistent_load(&mut self, at: usize) -> Result<()> {
        let pid = self.pop()?;
        let Value::Tuple(fields, _) = &pid else {
            return Err(self.refused(at, "persistent id is not a tuple"));
        };
        let [Value::Text(b"storage"), Value::Callable(Global::Storage(element)), Value::Text(key), Value::Text(_), Value::Int(numel), view @ ..] =
            &fields[..]
        else {
            return Err(self.refused(
                at,
                "persistent id other than a torch storage ('storage', type, key, location, size)",
            ));
        };
        if !matches!(view, [] | [Value::None]) {
            return Err(self.refused(
                at,
                "storage views (written by torch before 0.4) are not supported",
            ));
        }
        let key = std::str::from_utf8(key).map_err(|_| self.corrupt(at, "storage key is not UTF-8"))?;
        let numel = usize::try_from(*numel)
            .ok()
            .filter(|n| n.checked_mul(element.size()).is_some())
            .ok_or_else(|| self.corrupt(at, &format!("storage '{key}' of {numel} elements")))?;
        let storage = StorageRef {
            element: *element,
            key,
            numel,
        };
        self.storages.push(storage);
        self.push(Value::Storage(storage))
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`, checked to stay inside its storage.
    fn rebuild_tensor(&self, args: &[Value<'a>], at: usize) -> Result<TensorRef<'a>> {
        let [Value::Storage(storage), Value::Int(offset), Value::Tuple(size, _), Value::Tuple(stride, _), Value::Bool(_), Value::Dict(..), metadata @ ..] =
            args
        else {
            return Err(self.refused(
                at,
                "_rebuild_tensor_v2 without (storage, offset, size, stride, requires_grad, hooks)",
            ));
        };
        if !plain_metadata(metadata) {
            return Err(self.refused(at, "tensor with its conjugate or negative bit set"));
        }
        let (Some(shape), Some(strides), Ok(offset)) = (sizes(size), sizes(stride), usize::try_from(*offset))
        else {
            return Err(self.corrupt(at, "tensor size, stride or offset is negative or not an int"));
        };
        if shape.len() != strides.len() {
            let counts = format!("tensor with {} sizes but {} strides", shape.len(), strides.len());
            return Err(self.corrupt(at, &counts));
        }
        let Some(numel) = numel_inside(&shape, &strides, offset, storage.numel) else {
            let why = format!(
                "tensor of shape {shape:?}, strides {strides:?} and offset {offset} does not fit in \
                 storage '{}' of {} elements",
                storage.key, storage.numel
            );
            return Err(self.corrupt(at, &why));
        };
        Ok(TensorRef {
            storage: *storage,
            offset,
            shape,
            strides,
            numel,
        })
    }

    /// Gives the object below the state its content (`__setstate__`).
    fn build(&mut self, at: usize) -> Result<()> {
        let state = self.pop()?;
        let built = match self.top()? {
            Value::Dtype => dtype_state(&state).map(|()| Value::Dtype),
            Value::EmptyArray => array_state(&state).map(|array| Value::Array(Arc::new(array))),
            // torch attaches a state dict's `_metadata` (module versions)
            // this way; nothing here needs it.
            Value::Dict(..) => return Ok(()),
            other => Err(format!("BUILD on a {}", other.kind())),
        };
        let built = built.map_err(|why| self.refused(at, &why))?;
        *self.top()? = built;
        Ok(())
    }
}

/// `collections.OrderedDict()`: torch pickles a state dict as an empty one
/// that SETITEMS then fills.
fn ordered_dict(args: &[Value]) -> Result<Value<'static>, String> {
    if args.is_empty() {
        Ok(Value::Dict(Vec::new(), 1))
    } else {
        Err("OrderedDict called with arguments".into())
    }
}

/// A tuple of sizes (or strides), or `None` if one is not a non-negative int.
fn sizes(items: &[Value]) -> Option<Vec<usize>> {
    items
        .iter()
        .map(|v| match v {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        })
        .collect()
}

/// The number of elements of a tensor of `shape` and `strides` starting at
/// `offset`, or `None` when it overflows or reaches past the end of a
/// storage of `storage_numel` elements.
fn numel_inside(shape: &[usize], strides: &[usize], offset: usize, storage_numel: usize) -> Option<usize> {
    let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    let inside = if numel == 0 {
        offset <= storage_numel
    } else {
        // The last element (every index at its maximum) must be in it.
        shape
            .iter()
            .zip(strides)
            .try_fold(offset, |last, (&d, &s)| last.checked_add((d - 1).checked_mul(s)?))
            .is_some_and(|last| last < storage_numel)
    };
    inside.then_some(numel)
}

/// Whether a tensor's optional metadata leaves its values as stored: torch
/// only writes it to record the conjugate and negative bits, as a dict
/// holding the ones that are set.
fn plain_metadata(metadata: &[Value]) -> bool {
    match metadata {
        [] | [Value::None] => true,
        [Value::Dict(entries, _)] => entries.iter().all(|(_, v)| matches!(v, Value::Bool(false))),
        _ => false,
    }
}

/// `_reconstruct(numpy.ndarray, shape, typecode)`: an array BUILD will fill.
fn reconstruct(args: &[Value]) -> Result<Value<'static>, String> {
    match args {
        [Value::Callable(Global::Ndarray), _, _] => Ok(Value::EmptyArray),
        _ => Err("_reconstruct of something other than numpy.ndarray".into()),
    }
}

/// `numpy.dtype(spec, ...)`, accepted for unsigned bytes only.
fn dtype(args: &[Value]) -> Result<Value<'static>, String> {
    match args.first().and_then(Value::as_name) {
        Some(b"u1" | b"|u1") => Ok(Value::Dtype),
        Some(spec) => Err(format!("dtype '{}' is not uint8", String::from_utf8_lossy(spec))),
        None => Err("dtype without a type string".into()),
    }
}

/// Checks a dtype's `__setstate__` tuple describes a plain (not structured
/// or sub-array) type.
fn dtype_state(state: &Value) -> Result<(), String> {
    match state {
        Value::Tuple(items, _)
            if items.len() >= 5 && items[2..5].iter().all(|v| matches!(v, Value::None)) =>
        {
            Ok(())
        }
        _ => Err("dtype state describes a structured or sub-array type".into()),
    }
}

/// An ndarray's `__setstate__` tuple: `([version,] shape, dtype, fortran, raw)`.
fn array_state<'a>(state: &Value<'a>) -> Result<Array<'a>, String> {
    let Value::Tuple(items, _) = state else {
        return Err("ndarray state is not a tuple".into());
    };
    let fields = match &items[..] {
        [Value::Int(1), rest @ ..] if rest.len() == 4 => rest,
        all if all.len() == 4 => all,
        _ => return Err("ndarray state of unknown version".into()),
    };
    let [Value::Tuple(shape, _), dtype, fortran, raw] = fields else {
        return Err("ndarray state without a shape".into());
    };
    if !matches!(dtype, Value::Dtype) {
        return Err("ndarray of a dtype other than uint8".into());
    }
    let shape = sizes(shape).ok_or("ndarray shape is not a tuple of sizes")?;
    if shape.len() > 1 && matches!(fortran, Value::Bool(true) | Value::Int(1)) {
        return Err("Fortran-ordered ndarray".into());
    }
    let Value::Bytes(data) = raw else {
        return Err("ndarray data is not a byte string".into());
    };
    let len = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if len != Some(data.as_slice().len()) {
        return Err(format!(
            "ndarray of shape {shape:?} with {} bytes of data",
            data.as_slice().len()
        ));
    }
    Ok(Array {
        shape,
        data: data.clone(),
    })
}

/// `_codecs.encode(text, 'latin1')`: each character becomes one byte.
fn encode(args: &[Value]) -> Result<Value<'static>, String> {
    let [Value::Text(text), Value::Text(encoding)] = args else {
        return Err("_codecs.encode without a text and an encoding".into());
    };
    if !matches!(*encoding, b"latin1" | b"latin-1") {
        return Err(format!(
            "_codecs.encode to '{}' (only latin1 is accepted)",
            String::from_utf8_lossy(encoding)
        ));
    }
    latin1(text)
        .map(|bytes| Value::Bytes(Blob::Owned(Arc::new(bytes))))
        .ok_or_else(|| "_codecs.encode of text that is not UTF-8 below U+0100".into())
}

/// The bytes whose latin1 decoding is the UTF-8 text `utf8`, or `None` when
/// it is not valid UTF-8 or holds a character beyond U+00FF. Such characters
/// take one byte, or two starting 0xC2/0xC3, so this is the whole decoder.
fn latin1(utf8: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(utf8.len());
    let mut bytes = utf8.iter();
    while let Some(&b) = bytes.next() {
        if b < 0x80 {
            out.push(b);
        } else {
            let next = *bytes.next()?;
            if b & 0xFE != 0xC2 || next & 0xC0 != 0x80 {
                return None;
            }
            // 0xC2 gives 0x80 and 0xC3 gives 0xC0 for the top two bits.
            out.push((b << 6) | (next & 0x3F));
        }
    }
    // Capacity was sized for the (longer) UTF-8; give back the difference.
    out.shrink_to_fit();
    Some(out)
}
