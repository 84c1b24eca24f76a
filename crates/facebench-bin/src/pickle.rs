//! A small pickle reader that builds data and never runs anything.
//!
//! It understands the opcodes that verification packs use, at every protocol Python 2 and 3
//! write (0 to 5): containers (lists, tuples), byte strings (`str` of Python 2, `bytes` of
//! Python 3, `bytearray`), text, bools, ints, `None`, the memo, frames, and the
//! `GLOBAL`/`REDUCE`/`BUILD` triple as *data*: a global is only a (module, name) pair and a
//! reduce only records its callable and arguments. Exactly one call is evaluated, because it
//! is pure and is how Python 3 writes `bytes` at protocols 0-2: `_codecs.encode(text,
//! 'latin1')`. Anything else (dicts, sets, `INST`/`OBJ`/`NEWOBJ`, extension codes, persistent
//! ids, out-of-band buffers) is an error naming the opcode and its byte offset.
//!
//! Objects live in an arena and the stack and memo hold indices, so `BINGET` shares an
//! object as Python does (a memoized list that is appended to later is the same list) and
//! never copies image bytes. Every length is checked against the bytes left before anything
//! is allocated.

use std::collections::HashMap;

/// Where and why parsing failed; `offset` is the byte offset of the opcode (or of the
/// truncated read) in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    pub offset: usize,
    pub msg: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.msg)
    }
}

impl std::error::Error for PickleError {}

type Result<T> = std::result::Result<T, PickleError>;

/// Index of an object in [`Pickle::objects`].
pub type Handle = usize;

/// One unpickled object.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// Python 2 `str`, Python 3 `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// Python 2 `unicode`, Python 3 `str`.
    Str(String),
    List(Vec<Handle>),
    Tuple(Vec<Handle>),
    /// `GLOBAL module name` / `STACK_GLOBAL`: a name, nothing is imported.
    Global {
        module: String,
        name: String,
    },
    /// `REDUCE`: `callable(*args)` recorded, not called; `state` is what a later `BUILD`
    /// would pass to `__setstate__`.
    Reduce {
        callable: Handle,
        args: Handle,
        state: Option<Handle>,
    },
}

impl Obj {
    /// The Python type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::Int(_) => "int",
            Obj::Bytes(_) => "bytes",
            Obj::Str(_) => "str (text)",
            Obj::List(_) => "list",
            Obj::Tuple(_) => "tuple",
            Obj::Global { .. } => "global",
            Obj::Reduce { .. } => "reduced object",
        }
    }
}

/// The result of unpickling: every object made, the byte offset of the opcode that made it,
/// the root object and the highest protocol announced.
#[derive(Debug)]
pub struct Pickle {
    pub objects: Vec<Obj>,
    pub offsets: Vec<usize>,
    pub root: Handle,
    /// The `PROTO` argument, or 0 or 1 for files without one (the two cannot be told apart,
    /// 0 is reported).
    pub protocol: u8,
}

impl Pickle {
    pub fn get(&self, h: Handle) -> &Obj {
        &self.objects[h]
    }
    /// Offset of the opcode that made `h`.
    pub fn offset(&self, h: Handle) -> usize {
        self.offsets[h]
    }
}

/// The opcode's name as `pickletools` prints it, for error messages.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "not a pickle opcode",
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    objects: Vec<Obj>,
    offsets: Vec<usize>,
    stack: Vec<Handle>,
    /// Stack lengths at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, Handle>,
    /// Offset of the opcode being executed.
    op_at: usize,
    op: u8,
}

impl<'a> Reader<'a> {
    fn err(&self, msg: impl Into<String>) -> PickleError {
        PickleError { offset: self.op_at, msg: format!("{} (0x{:02x}): {}", opcode_name(self.op), self.op, msg.into()) }
    }

    /// The next `n` bytes; a length beyond the end of the data is an error, never an allocation.
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(PickleError {
                offset: self.pos,
                msg: format!(
                    "truncated: {} (opcode at byte {}) needs {n} byte(s), {left} left in the file",
                    opcode_name(self.op),
                    self.op_at
                ),
            });
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn le_u64(&mut self, n: usize) -> Result<u64> {
        let b = self.take(n as u64)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }
    /// A protocol-0 argument: the bytes up to the next newline (excluded).
    fn line(&mut self) -> Result<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| PickleError {
            offset: self.pos,
            msg: format!(
                "truncated: {} (opcode at byte {}) has no terminating newline",
                opcode_name(self.op),
                self.op_at
            ),
        })?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }
    fn line_str(&mut self) -> Result<&'a str> {
        let l = self.line()?;
        std::str::from_utf8(l).map_err(|_| self.err("argument is not ASCII text"))
    }

    fn new_obj(&mut self, o: Obj) -> Handle {
        self.objects.push(o);
        self.offsets.push(self.op_at);
        self.objects.len() - 1
    }
    fn push(&mut self, o: Obj) {
        let h = self.new_obj(o);
        self.stack.push(h);
    }
    fn pop(&mut self) -> Result<Handle> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack is empty (or only a MARK is left)"));
        }
        Ok(self.stack.pop().expect("checked"))
    }
    fn top(&self) -> Result<Handle> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack is empty (or only a MARK is left)"));
        }
        Ok(*self.stack.last().expect("checked"))
    }
    /// Everything above the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Handle>> {
        let m = self.marks.pop().ok_or_else(|| self.err("no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }
    fn memo_put(&mut self, key: u64) -> Result<()> {
        let h = self.top()?;
        self.memo.insert(key, h);
        Ok(())
    }
    fn memo_get(&mut self, key: u64) -> Result<()> {
        let h = *self.memo.get(&key).ok_or_else(|| self.err(format!("memo key {key} was never stored")))?;
        self.stack.push(h);
        Ok(())
    }
    fn append_to_list(&mut self, list: Handle, items: Vec<Handle>) -> Result<()> {
        match &mut self.objects[list] {
            Obj::List(v) => {
                v.extend(items);
                Ok(())
            }
            other => {
                let t = other.type_name();
                Err(self.err(format!("appending to a {t}, not a list")))
            }
        }
    }
    fn bytes(&mut self, n: u64) -> Result<()> {
        let b = self.take(n)?.to_vec();
        self.push(Obj::Bytes(b));
        Ok(())
    }
    fn text(&mut self, n: u64) -> Result<()> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|e| self.err(format!("text is not UTF-8: {e}")))?.to_string();
        self.push(Obj::Str(s));
        Ok(())
    }
    fn int_from_decimal(&self, s: &str) -> Result<i64> {
        s.trim()
            .trim_end_matches('L')
            .parse::<i64>()
            .map_err(|_| self.err(format!("{s:?} is not an integer that fits 64 bits")))
    }

    /// `REDUCE`: recorded, except `_codecs.encode(text, 'latin1')` (Python 3's way of writing
    /// `bytes` at protocols 0-2), which becomes the bytes.
    fn reduce(&mut self, callable: Handle, args: Handle) -> Result<Obj> {
        if let Obj::Global { module, name } = &self.objects[callable] {
            if module == "_codecs" && name == "encode" {
                let Obj::Tuple(a) = &self.objects[args] else {
                    return Err(self.err("_codecs.encode with arguments that are not a tuple"));
                };
                return match a.as_slice() {
                    [t, enc] => match (&self.objects[*t], &self.objects[*enc]) {
                        (Obj::Str(t), Obj::Str(enc))
                            if ["latin1", "latin-1", "iso-8859-1", "iso8859-1"]
                                .contains(&enc.to_ascii_lowercase().as_str()) =>
                        {
                            let mut b = Vec::with_capacity(t.len());
                            for c in t.chars() {
                                let v = u32::from(c);
                                if v > 0xff {
                                    return Err(self.err(format!("_codecs.encode: U+{v:04X} is not latin-1")));
                                }
                                b.push(v as u8);
                            }
                            Ok(Obj::Bytes(b))
                        }
                        (Obj::Str(_), Obj::Str(enc)) => {
                            Err(self.err(format!("_codecs.encode with encoding {enc:?}: only latin-1 is read")))
                        }
                        _ => Err(self.err("_codecs.encode(text, encoding) expected")),
                    },
                    [t] => match &self.objects[*t] {
                        // `_codecs.encode(text)` is UTF-8; Python writes b'' this way.
                        Obj::Str(t) => Ok(Obj::Bytes(t.as_bytes().to_vec())),
                        _ => Err(self.err("_codecs.encode(text) expected")),
                    },
                    _ => Err(self.err(format!("_codecs.encode with {} arguments", a.len()))),
                };
            }
        }
        Ok(Obj::Reduce { callable, args, state: None })
    }

    fn run(mut self) -> Result<Pickle> {
        let mut protocol = 0u8;
        loop {
            self.op_at = self.pos;
            if self.pos >= self.data.len() {
                return Err(PickleError {
                    offset: self.pos,
                    msg: "truncated: end of data before the STOP opcode".into(),
                });
            }
            self.op = self.data[self.pos];
            self.pos += 1;
            match self.op {
                0x80 => {
                    protocol = self.u8()?;
                    if protocol > 5 {
                        return Err(self.err(format!("protocol {protocol} is newer than 5")));
                    }
                }
                0x95 => {
                    // FRAME: a length hint for buffered readers; the opcodes follow inline.
                    let n = self.le_u64(8)?;
                    if n > (self.data.len() - self.pos) as u64 {
                        return Err(PickleError {
                            offset: self.op_at,
                            msg: format!("FRAME of {n} bytes runs past the end of the file ({} left)", self.data.len() - self.pos),
                        });
                    }
                }
                b'.' => {
                    let root = self.pop()?;
                    if !self.marks.is_empty() {
                        return Err(self.err("a MARK is still open"));
                    }
                    return Ok(Pickle { objects: self.objects, offsets: self.offsets, root, protocol });
                }
                b'(' => self.marks.push(self.stack.len()),
                b']' => self.push(Obj::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items));
                }
                b'a' => {
                    let item = self.pop()?;
                    let list = self.top()?;
                    self.append_to_list(list, vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.append_to_list(list, items)?;
                }
                b')' => self.push(Obj::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(self.op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Obj::Tuple(items));
                }
                b'N' => self.push(Obj::None),
                0x88 => self.push(Obj::Bool(true)),
                0x89 => self.push(Obj::Bool(false)),
                b'J' => {
                    let v = self.le_u64(4)? as u32 as i32;
                    self.push(Obj::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Obj::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.le_u64(2)?;
                    self.push(Obj::Int(v as i64));
                }
                0x8a => {
                    // LONG1: n-byte little-endian two's complement.
                    let n = self.u8()?;
                    if n > 8 {
                        return Err(self.err(format!("a {n}-byte integer does not fit 64 bits")));
                    }
                    let b = self.take(u64::from(n))?;
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= i64::from(x) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n as usize - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Obj::Int(v));
                }
                b'I' => {
                    // Protocols 0-1 write bools as `I01` / `I00`.
                    let s = self.line_str()?;
                    let o = match s {
                        "01" => Obj::Bool(true),
                        "00" => Obj::Bool(false),
                        s => Obj::Int(self.int_from_decimal(s)?),
                    };
                    self.push(o);
                }
                b'L' => {
                    let s = self.line_str()?;
                    let v = self.int_from_decimal(s)?;
                    self.push(Obj::Int(v));
                }
                b'U' | b'C' => {
                    let n = self.u8()?;
                    self.bytes(u64::from(n))?;
                }
                b'T' | b'B' => {
                    let n = self.le_u64(4)?;
                    if self.op == b'T' && n > i32::MAX as u64 {
                        return Err(self.err(format!("negative length {}", n as u32 as i32)));
                    }
                    self.bytes(n)?;
                }
                0x8e | 0x96 => {
                    let n = self.le_u64(8)?;
                    self.bytes(n)?;
                }
                b'S' => {
                    let l = self.line()?;
                    let b = unquote_py_string(l).map_err(|m| self.err(m))?;
                    self.push(Obj::Bytes(b));
                }
                b'X' => {
                    let n = self.le_u64(4)?;
                    self.text(n)?;
                }
                0x8c => {
                    let n = self.u8()?;
                    self.text(u64::from(n))?;
                }
                0x8d => {
                    let n = self.le_u64(8)?;
                    self.text(n)?;
                }
                b'V' => {
                    let l = self.line()?;
                    let s = raw_unicode_escape(l).map_err(|m| self.err(m))?;
                    self.push(Obj::Str(s));
                }
                b'c' => {
                    let module = self.line_str()?.to_string();
                    let name = self.line_str()?.to_string();
                    self.push(Obj::Global { module, name });
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.objects[module], &self.objects[name]) {
                        (Obj::Str(m), Obj::Str(n)) => {
                            let g = Obj::Global { module: m.clone(), name: n.clone() };
                            self.push(g);
                        }
                        _ => return Err(self.err("module and name must be text")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    if !matches!(self.objects[callable], Obj::Global { .. }) {
                        let t = self.objects[callable].type_name();
                        return Err(self.err(format!("callable is a {t}, not a global")));
                    }
                    let o = self.reduce(callable, args)?;
                    self.push(o);
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    match &mut self.objects[obj] {
                        Obj::Reduce { state: s @ None, .. } => *s = Some(state),
                        Obj::Reduce { .. } => return Err(self.err("object already has a state")),
                        other => {
                            let t = other.type_name();
                            return Err(self.err(format!("BUILD on a {t}")));
                        }
                    }
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(u64::from(k))?;
                }
                b'r' => {
                    let k = self.le_u64(4)?;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let s = self.line_str()?;
                    let k = s.trim().parse::<u64>().map_err(|_| self.err(format!("memo key {s:?} is not a number")))?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(u64::from(k))?;
                }
                b'j' => {
                    let k = self.le_u64(4)?;
                    self.memo_get(k)?;
                }
                b'g' => {
                    let s = self.line_str()?;
                    let k = s.trim().parse::<u64>().map_err(|_| self.err(format!("memo key {s:?} is not a number")))?;
                    self.memo_get(k)?;
                }
                op => {
                    return Err(PickleError {
                        offset: self.op_at,
                        msg: format!(
                            "opcode {} (0x{op:02x}) is not supported: a verification pack holds only lists, tuples, bytes and bools",
                            opcode_name(op)
                        ),
                    })
                }
            }
        }
    }
}

/// Unpickles `data` into an object graph (nothing is imported or called).
pub fn parse(data: &[u8]) -> Result<Pickle> {
    Reader {
        data,
        pos: 0,
        objects: Vec::new(),
        offsets: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        op_at: 0,
        op: 0,
    }
    .run()
}

/// The body of a protocol-0 `STRING`: a Python 2 `repr` of a byte string, quoted with `'` or
/// `"`, with `\\`, `\'`, `\"`, `\n`, `\r`, `\t`, `\a`, `\b`, `\f`, `\v`, `\xHH` and octal escapes.
fn unquote_py_string(l: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let q = *l.first().ok_or("empty STRING argument")?;
    if l.len() < 2 || !(q == b'\'' || q == b'"') || *l.last().unwrap() != q {
        return Err("STRING argument is not a quoted string".into());
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i).ok_or("STRING ends with a lone backslash")?;
        i += 1;
        match e {
            b'\\' | b'\'' | b'"' => out.push(e),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\n' => {}
            b'x' => {
                let h = body.get(i..i + 2).ok_or("STRING: \\x needs two hex digits")?;
                let s = std::str::from_utf8(h).map_err(|_| "STRING: bad \\x escape")?;
                out.push(u8::from_str_radix(s, 16).map_err(|_| format!("STRING: bad \\x escape {s:?}"))?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            other => {
                // Python keeps unknown escapes as they are.
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// The body of a protocol-0 `UNICODE`: raw-unicode-escape (bytes are latin-1 code points;
/// `\uXXXX` and `\UXXXXXXXX` are escapes; pickle escapes every backslash and newline).
fn raw_unicode_escape(l: &[u8]) -> std::result::Result<String, String> {
    let mut s = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        let c = l[i];
        let digits = match (c, l.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => 0,
        };
        if digits == 0 {
            s.push(char::from(c));
            i += 1;
            continue;
        }
        let h = l.get(i + 2..i + 2 + digits).ok_or("UNICODE: truncated \\u escape")?;
        let h = std::str::from_utf8(h).map_err(|_| "UNICODE: bad \\u escape")?;
        let v = u32::from_str_radix(h, 16).map_err(|_| format!("UNICODE: bad escape {h:?}"))?;
        s.push(char::from_u32(v).ok_or(format!("UNICODE: U+{v:X} is not a character"))?);
        i += 2 + digits;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(p: &Pickle, h: Handle) -> &[u8] {
        match p.get(h) {
            Obj::Bytes(b) => b,
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn protocol_2_binstring_and_bools() {
        // ([b'ab', b'c'], [True, False]) as Python 2 writes it at protocol 2.
        let d = b"\x80\x02]q\x00(U\x02abq\x01U\x01cq\x02e]q\x03(\x88\x89e\x86q\x04.";
        let p = parse(d).unwrap();
        assert_eq!(p.protocol, 2);
        let Obj::Tuple(t) = p.get(p.root) else { panic!() };
        let Obj::List(imgs) = p.get(t[0]) else { panic!() };
        assert_eq!(bytes_of(&p, imgs[0]), b"ab");
        assert_eq!(bytes_of(&p, imgs[1]), b"c");
        let Obj::List(l) = p.get(t[1]) else { panic!() };
        assert_eq!(p.get(l[0]), &Obj::Bool(true));
        assert_eq!(p.get(l[1]), &Obj::Bool(false));
    }

    #[test]
    fn memo_shares_the_list_appended_after_memoizing() {
        // EMPTY_LIST BINPUT 0, SHORT_BINBYTES 'x' APPEND, BINGET 0, TUPLE2, STOP:
        // both tuple items are the same list, which holds b'x'.
        let d = b"\x80\x03]q\x00C\x01xah\x00\x86.";
        let p = parse(d).unwrap();
        let Obj::Tuple(t) = p.get(p.root) else { panic!() };
        assert_eq!(t[0], t[1]);
        let Obj::List(l) = p.get(t[1]) else { panic!() };
        assert_eq!(bytes_of(&p, l[0]), b"x");
    }

    #[test]
    fn binbytes8_long1_and_codecs_encode() {
        let mut d = b"\x80\x04\x8e".to_vec();
        d.extend_from_slice(&3u64.to_le_bytes());
        d.extend_from_slice(b"xyz");
        d.extend_from_slice(b"\x8a\x02\x00\xff"); // LONG1 -256
        d.extend_from_slice(b"c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbf\x8c\x06latin1\x86R"); // 'ÿ' -> b'\xff'
        d.extend_from_slice(b"\x87.");
        let p = parse(&d).unwrap();
        let Obj::Tuple(t) = p.get(p.root) else { panic!() };
        assert_eq!(bytes_of(&p, t[0]), b"xyz");
        assert_eq!(p.get(t[1]), &Obj::Int(-256));
        assert_eq!(bytes_of(&p, t[2]), b"\xff");
    }

    #[test]
    fn protocol_0_strings() {
        assert_eq!(unquote_py_string(br"'a\x00\\\'\n\101'").unwrap(), b"a\x00\\'\nA");
        assert_eq!(unquote_py_string(br#""it's""#).unwrap(), b"it's");
        assert_eq!(raw_unicode_escape(b"\\u005cx\xff\\u000a").unwrap(), "\\x\u{ff}\n");
        let p = parse(b"(lp0\nS'a\\x01'\np1\naI01\na.").unwrap();
        let Obj::List(l) = p.get(p.root) else { panic!() };
        assert_eq!(bytes_of(&p, l[0]), b"a\x01");
        assert_eq!(p.get(l[1]), &Obj::Bool(true));
    }

    #[test]
    fn errors_name_opcode_and_offset() {
        // Unknown / unsupported opcodes.
        let e = parse(b"\x80\x02}q\x00.").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.msg.contains("EMPTY_DICT"), "{e}");
        let e = parse(b"\x80\x02\xff.").unwrap_err();
        assert!(e.to_string().starts_with("byte 2:") && e.msg.contains("0xff"), "{e}");
        // A length far beyond the file: an error, never an allocation.
        let e = parse(b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f").unwrap_err();
        assert!(e.msg.contains("truncated") && e.msg.contains("BINBYTES8"), "{e}");
        assert_eq!(e.offset, 11);
        let e = parse(b"\x80\x02T\x10\x00\x00\x00abc").unwrap_err();
        assert!(e.msg.contains("needs 16 byte(s), 3 left"), "{e}");
        // Missing STOP, stack underflow, unknown memo key, unclosed mark.
        assert!(parse(b"\x80\x02]").unwrap_err().msg.contains("before the STOP"));
        assert!(parse(b"\x80\x02a.").unwrap_err().msg.contains("APPEND"));
        assert!(parse(b"\x80\x02h\x05.").unwrap_err().msg.contains("memo key 5"));
        assert!(parse(b"\x80\x02(].").unwrap_err().msg.contains("MARK is still open"));
        // A frame longer than the file.
        assert!(parse(b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00].").unwrap_err().msg.contains("FRAME"));
        // REDUCE on something that is not a global is refused; nothing is ever called.
        assert!(parse(b"\x80\x02]]R.").unwrap_err().msg.contains("not a global"));
    }
}
