//! A bit-exact Rust port of the JPEG decoder of jpeg-js 0.4.4 (`lib/decoder.js`, Apache-2.0,
//! Copyright 2011 notmasteryet), the decoder behind face-api's reference outputs.
//!
//! Why a second decoder: jpeg-js is not libjpeg. It replicates chroma samples instead of
//! interpolating them, uses poppler's integer IDCT, and truncates (does not round) its
//! YCbCr -> RGB conversion, so its pixels differ from the `image` crate's by a few grey levels,
//! which moves face-api's detections by up to a few pixels. Decoding with this port gives the
//! very pixels the reference tools saw, so a model port can be checked to float precision.
//!
//! The JS arithmetic is kept: `Int32Array` stores wrap to `i32`, `<<`/`>>` work on ToInt32
//! values, other JS numbers are `f64` (held as `i64` where they stay integers), `Uint8Array`
//! stores truncate. Bytes past the end read as JS's `undefined` (zero bits), so a cut-off scan
//! ends in jpeg-js's own "marker was not found". Options are jpeg-js's defaults
//! (`tolerantDecoding`, no `colorTransform` override, 100 MP and 512 MB limits) with RGB output
//! (`formatAsRGBA: false`); EXIF orientation is not applied, as jpeg-js does not apply it.
//! Where jpeg-js would throw a `TypeError` on corrupt input (a missing table, a scan before the
//! frame), this port returns an error too; it never panics.

use image::RgbImage;

use crate::{Error, Result};

/// Decodes JPEG bytes exactly as `jpeg.decode(bytes, {useTArray: true, formatAsRGBA: false})`
/// of jpeg-js 0.4.4 does (grey images replicated to RGB, CMYK/YCCK converted as jpeg-js does).
/// `name` is used in error messages; corrupt input is an error, cut-off input
/// [`Error::Truncated`].
pub fn decode_jpegjs(bytes: &[u8], name: &str) -> Result<RgbImage> {
    let mut past_end = false;
    let result = decode(bytes, &mut past_end);
    result.map_err(|message| {
        if past_end {
            Error::Truncated { name: name.to_string(), format: "JPEG", detail: format!("jpeg-js: {message}") }
        } else {
            Error::Decode { name: name.to_string(), message: format!("jpeg-js: {message}") }
        }
    })
}

type R<T> = std::result::Result<T, String>;

const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

const DCT_COS1: i64 = 4017;
const DCT_SIN1: i64 = 799;
const DCT_COS3: i64 = 3406;
const DCT_SIN3: i64 = 2276;
const DCT_COS6: i64 = 1567;
const DCT_SIN6: i64 = 3784;
const DCT_SQRT2: i64 = 5793;
const DCT_SQRT1D2: i64 = 2896;

const MAX_PIXELS: f64 = 100.0 * 1000.0 * 1000.0;
const MAX_MEMORY: u64 = 512 * 1024 * 1024;

/// JS `(x) >> n` on a JS number: ToInt32, then an arithmetic shift.
#[inline(always)]
fn sra(x: i64, n: u32) -> i64 {
    ((x as i32) >> n) as i64
}

/// jpeg-js's `requestMemoryAllocation`: a running total of what it would allocate, capped so
/// that a corrupt header cannot ask for gigabytes.
struct Memory(u64);

impl Memory {
    fn request(&mut self, bytes: u64) -> R<()> {
        let total = self.0.saturating_add(bytes);
        if total > MAX_MEMORY {
            let mb = ((total - MAX_MEMORY) as f64 / 1024.0 / 1024.0).ceil();
            return Err(format!("maxMemoryUsageInMB limit exceeded by at least {mb}MB"));
        }
        self.0 = total;
        Ok(())
    }
}

/// jpeg-js's Huffman tree (nested JS arrays) as an arena: a child is a leaf value (0..=255), a
/// node (`NODE + index`) or absent (`ABSENT`, JS `undefined`).
struct Huffman {
    nodes: Vec<[i32; 2]>,
}

const NODE: i32 = 0x100;
const ABSENT: i32 = -1;

/// `buildHuffmanTable`, step for step (its stack of `{children, index}` objects holds each
/// node once, so a stack of `(node, index)` pairs is the same state).
fn build_huffman(code_lengths: &[u8; 16], values: &[u8]) -> R<Huffman> {
    let mut nodes = vec![[ABSENT; 2]];
    let mut length = 16;
    while length > 0 && code_lengths[length - 1] == 0 {
        length -= 1;
    }
    let mut code: Vec<(usize, usize)> = vec![(0, 0)];
    let mut k = 0;
    let broken = || "Could not recreate Huffman Table".to_string();
    for (i, &count) in code_lengths.iter().enumerate().take(length) {
        for _ in 0..count {
            let (mut pn, mut pi) = code.pop().ok_or_else(broken)?;
            nodes[pn][pi] = values[k] as i32;
            while pi > 0 {
                (pn, pi) = code.pop().ok_or_else(broken)?;
            }
            pi += 1;
            code.push((pn, pi));
            while code.len() <= i {
                let q = nodes.len();
                nodes.push([ABSENT; 2]);
                nodes[pn][pi] = NODE + q as i32;
                code.push((q, 0));
                (pn, pi) = (q, 0);
            }
            k += 1;
        }
        if i + 1 < length {
            // p is the top of the stack here.
            let (pn, pi) = *code.last().ok_or_else(broken)?;
            let q = nodes.len();
            nodes.push([ABSENT; 2]);
            if pi > 1 {
                return Err(broken());
            }
            nodes[pn][pi] = NODE + q as i32;
            code.push((q, 0));
        }
    }
    // A child index of 2 cannot arise (see the JS), but never index out of bounds on it.
    Ok(Huffman { nodes })
}

struct Component {
    id: u32,
    h: usize,
    v: usize,
    quant_idx: u32,
    blocks_per_line: usize,
    blocks_per_column: usize,
    /// Blocks of the MCU-padded grid, row-major, `block_cols` per row.
    blocks: Vec<[i32; 64]>,
    block_cols: usize,
    block_rows: usize,
    pred: i64,
    dc: Option<usize>,
    ac: Option<usize>,
}

struct Frame {
    progressive: bool,
    scan_lines: usize,
    samples_per_line: usize,
    /// Unique by id (a repeated id replaces the component, as a JS object key does).
    components: Vec<Component>,
    /// Component ids in SOF order (repeats kept, as `componentsOrder` keeps them).
    order: Vec<u32>,
    max_h: usize,
    max_v: usize,
    mcus_per_line: usize,
    mcus_per_column: usize,
}

impl Frame {
    fn index_of(&self, id: u32) -> Option<usize> {
        self.components.iter().position(|c| c.id == id)
    }
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

/// `prepareComponents`.
fn prepare_components(frame: &mut Frame, mem: &mut Memory) -> R<()> {
    let max_h = frame.components.iter().map(|c| c.h).fold(1, usize::max);
    let max_v = frame.components.iter().map(|c| c.v).fold(1, usize::max);
    // ceil(W / 8 / maxH) etc.: the quotients are never within rounding of an integer, so the
    // integer forms are exact.
    let mcus_per_line = ceil_div(frame.samples_per_line, 8 * max_h);
    let mcus_per_column = ceil_div(frame.scan_lines, 8 * max_v);
    let mut ids: Vec<usize> = (0..frame.components.len()).collect();
    // JS iterates integer object keys in ascending order (only the order of the memory checks).
    ids.sort_by_key(|&i| frame.components[i].id);
    for i in ids {
        let c = &mut frame.components[i];
        c.blocks_per_line = ceil_div(ceil_div(frame.samples_per_line, 8) * c.h, max_h);
        c.blocks_per_column = ceil_div(ceil_div(frame.scan_lines, 8) * c.v, max_v);
        c.block_cols = mcus_per_line * c.h;
        c.block_rows = mcus_per_column * c.v;
        let n = c.block_cols * c.block_rows;
        mem.request(n as u64 * 256)?;
        c.blocks = vec![[0i32; 64]; n];
    }
    frame.max_h = max_h;
    frame.max_v = max_v;
    frame.mcus_per_line = mcus_per_line;
    frame.mcus_per_column = mcus_per_column;
    Ok(())
}

/// The state of `decodeScan`'s closures.
struct Scan<'a> {
    data: &'a [u8],
    offset: usize,
    bits_data: u32,
    bits_count: u32,
    past_end: &'a mut bool,
    spectral_start: usize,
    spectral_end: usize,
    successive: u32,
    eobrun: i64,
    successive_ac_state: u8,
    successive_ac_next_value: i64,
}

#[derive(Clone, Copy)]
enum Mode {
    Baseline,
    DcFirst,
    DcSuccessive,
    AcFirst,
    AcSuccessive,
}

impl Scan<'_> {
    fn byte(&mut self, i: usize) -> Option<u8> {
        let b = self.data.get(i).copied();
        if b.is_none() {
            *self.past_end = true;
        }
        b
    }

    #[inline]
    fn read_bit(&mut self) -> R<u32> {
        if self.bits_count > 0 {
            self.bits_count -= 1;
            return Ok((self.bits_data >> self.bits_count) & 1);
        }
        let b = self.byte(self.offset);
        self.offset += 1;
        // Past the end, `bitsData` is `undefined`: every shift of it gives 0.
        self.bits_data = b.unwrap_or(0) as u32;
        if b == Some(0xFF) {
            let next = self.byte(self.offset);
            self.offset += 1;
            if let Some(n) = next.filter(|&n| n != 0) {
                return Err(format!("unexpected marker: ff{n:02x}"));
            }
            // unstuff 0
        }
        self.bits_count = 7;
        Ok(self.bits_data >> 7)
    }

    #[inline]
    fn decode_huffman(&mut self, tree: &Huffman) -> R<i32> {
        let mut node = 0usize;
        loop {
            let bit = self.read_bit()?;
            let child = tree.nodes[node][bit as usize];
            if child >= NODE {
                node = (child - NODE) as usize;
            } else if child >= 0 {
                return Ok(child);
            } else {
                return Err("invalid huffman sequence".to_string());
            }
        }
    }

    fn receive(&mut self, mut length: i32) -> R<i32> {
        let mut n: i32 = 0;
        while length > 0 {
            let bit = self.read_bit()?;
            n = n.wrapping_shl(1) | bit as i32;
            length -= 1;
        }
        Ok(n)
    }

    fn receive_and_extend(&mut self, length: i32) -> R<i64> {
        let n = self.receive(length)?;
        if n >= 1i32.wrapping_shl((length - 1) as u32) {
            return Ok(n as i64);
        }
        Ok(n as i64 + (-1i32).wrapping_shl(length as u32) as i64 + 1)
    }

    fn decode_block(&mut self, mode: Mode, c: &mut Component, block: usize, tables: &[Huffman]) -> R<()> {
        let dc = |c: &Component| {
            c.dc.map(|t| &tables[t]).ok_or_else(|| "scan uses an undefined DC Huffman table".to_string())
        };
        let ac = |c: &Component| {
            c.ac.map(|t| &tables[t]).ok_or_else(|| "scan uses an undefined AC Huffman table".to_string())
        };
        match mode {
            Mode::Baseline => {
                let t = self.decode_huffman(dc(c)?)?;
                let diff = if t == 0 { 0 } else { self.receive_and_extend(t)? };
                c.pred += diff;
                let zz = &mut c.blocks[block];
                zz[0] = c.pred as i32;
                let table = ac(c)?;
                let mut k = 1usize;
                while k < 64 {
                    let rs = self.decode_huffman(table)?;
                    let (s, r) = (rs & 15, (rs >> 4) as usize);
                    if s == 0 {
                        if r < 15 {
                            break;
                        }
                        k += 16;
                        continue;
                    }
                    k += r;
                    let value = self.receive_and_extend(s)?;
                    if k < 64 {
                        c.blocks[block][ZIGZAG[k]] = value as i32;
                    }
                    k += 1;
                }
            }
            Mode::DcFirst => {
                let t = self.decode_huffman(dc(c)?)?;
                let diff =
                    if t == 0 { 0 } else { (self.receive_and_extend(t)? as i32).wrapping_shl(self.successive) as i64 };
                c.pred += diff;
                c.blocks[block][0] = c.pred as i32;
            }
            Mode::DcSuccessive => {
                let bit = self.read_bit()?;
                c.blocks[block][0] |= (bit as i32).wrapping_shl(self.successive);
            }
            Mode::AcFirst => {
                if self.eobrun > 0 {
                    self.eobrun -= 1;
                    return Ok(());
                }
                let table = ac(c)?;
                let (mut k, e) = (self.spectral_start, self.spectral_end);
                while k <= e {
                    let rs = self.decode_huffman(table)?;
                    let (s, r) = (rs & 15, rs >> 4);
                    if s == 0 {
                        if r < 15 {
                            self.eobrun = self.receive(r)? as i64 + (1i64 << r) - 1;
                            break;
                        }
                        k += 16;
                        continue;
                    }
                    k += r as usize;
                    let value = self.receive_and_extend(s)? * (1i32.wrapping_shl(self.successive)) as i64;
                    if k < 64 {
                        c.blocks[block][ZIGZAG[k]] = value as i32;
                    }
                    k += 1;
                }
            }
            Mode::AcSuccessive => {
                let (mut k, e) = (self.spectral_start, self.spectral_end);
                let mut r: i64 = 0;
                let successive = self.successive;
                while k <= e {
                    // Out of range (k > 63) the JS reads `undefined`: falsy, not negative, and
                    // writes to it are lost.
                    let z = ZIGZAG.get(k).copied();
                    let cur = z.map_or(0, |z| c.blocks[block][z]);
                    let direction: i32 = if cur < 0 { -1 } else { 1 };
                    match self.successive_ac_state {
                        0 => {
                            let rs = self.decode_huffman(ac(c)?)?;
                            let s = rs & 15;
                            r = (rs >> 4) as i64;
                            if s == 0 {
                                if r < 15 {
                                    self.eobrun = self.receive(r as i32)? as i64 + (1i64 << r);
                                    self.successive_ac_state = 4;
                                } else {
                                    r = 16;
                                    self.successive_ac_state = 1;
                                }
                            } else {
                                if s != 1 {
                                    return Err("invalid ACn encoding".to_string());
                                }
                                self.successive_ac_next_value = self.receive_and_extend(s)?;
                                self.successive_ac_state = if r != 0 { 2 } else { 3 };
                            }
                            continue;
                        }
                        1 | 2 => {
                            if cur != 0 {
                                let add = (self.read_bit()? as i32).wrapping_shl(successive).wrapping_mul(direction);
                                c.blocks[block][z.unwrap()] = cur.wrapping_add(add);
                            } else {
                                r -= 1;
                                if r == 0 {
                                    self.successive_ac_state = if self.successive_ac_state == 2 { 3 } else { 0 };
                                }
                            }
                        }
                        3 => {
                            if cur != 0 {
                                let add = (self.read_bit()? as i32).wrapping_shl(successive).wrapping_mul(direction);
                                c.blocks[block][z.unwrap()] = cur.wrapping_add(add);
                            } else {
                                if let Some(z) = z {
                                    c.blocks[block][z] =
                                        (self.successive_ac_next_value as i32).wrapping_shl(successive);
                                }
                                self.successive_ac_state = 0;
                            }
                        }
                        _ => {
                            // 4: end of band
                            if cur != 0 {
                                let add = (self.read_bit()? as i32).wrapping_shl(successive).wrapping_mul(direction);
                                c.blocks[block][z.unwrap()] = cur.wrapping_add(add);
                            }
                        }
                    }
                    k += 1;
                }
                if self.successive_ac_state == 4 {
                    self.eobrun -= 1;
                    if self.eobrun == 0 {
                        self.successive_ac_state = 0;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `decodeScan`: decodes one scan starting at `offset`, returns the bytes it used.
#[allow(clippy::too_many_arguments)]
fn decode_scan(
    data: &[u8],
    offset: usize,
    frame: &mut Frame,
    scan_components: &[usize],
    reset_interval: usize,
    spectral: (usize, usize),
    successive_prev: u32,
    successive: u32,
    tables: &[Huffman],
    past_end: &mut bool,
) -> R<usize> {
    let mode = if frame.progressive {
        match (spectral.0 == 0, successive_prev == 0) {
            (true, true) => Mode::DcFirst,
            (true, false) => Mode::DcSuccessive,
            (false, true) => Mode::AcFirst,
            (false, false) => Mode::AcSuccessive,
        }
    } else {
        Mode::Baseline
    };
    let mut s = Scan {
        data,
        offset,
        bits_data: 0,
        bits_count: 0,
        past_end,
        spectral_start: spectral.0,
        spectral_end: spectral.1,
        successive,
        eobrun: 0,
        successive_ac_state: 0,
        successive_ac_next_value: 0,
    };
    let start = offset;
    let single = scan_components.len() == 1;
    let mcu_expected = if single {
        let c = &frame.components[scan_components[0]];
        c.blocks_per_line * c.blocks_per_column
    } else {
        frame.mcus_per_line * frame.mcus_per_column
    };
    let reset_interval = if reset_interval == 0 { mcu_expected } else { reset_interval };
    let mut mcu = 0usize;
    while mcu < mcu_expected {
        for &ci in scan_components {
            frame.components[ci].pred = 0;
        }
        s.eobrun = 0;
        if single {
            let c = &mut frame.components[scan_components[0]];
            for _ in 0..reset_interval {
                // decodeBlock (past the last block row, tolerant decoding skips the block)
                let (row, col) = (mcu / c.blocks_per_line, mcu % c.blocks_per_line);
                if row < c.block_rows {
                    let b = row * c.block_cols + col;
                    s.decode_block(mode, c, b, tables)?;
                }
                mcu += 1;
            }
        } else {
            for _ in 0..reset_interval {
                let (mcu_row, mcu_col) = (mcu / frame.mcus_per_line, mcu % frame.mcus_per_line);
                for &ci in scan_components {
                    let c = &mut frame.components[ci];
                    for j in 0..c.v {
                        for k in 0..c.h {
                            // decodeMcu
                            let (row, col) = (mcu_row * c.v + j, mcu_col * c.h + k);
                            if row >= c.block_rows {
                                continue;
                            }
                            if col >= c.block_cols {
                                return Err("MCU outside the component's blocks".to_string());
                            }
                            let b = row * c.block_cols + col;
                            s.decode_block(mode, c, b, tables)?;
                        }
                    }
                }
                mcu += 1;
                if mcu == mcu_expected {
                    break;
                }
            }
        }
        if mcu == mcu_expected {
            // Skip trailing bytes at the end of the scan, up to the next marker.
            loop {
                if data.get(s.offset) == Some(&0xFF) && data.get(s.offset + 1) != Some(&0x00) {
                    break;
                }
                s.offset += 1;
                if (s.offset as i64) >= data.len() as i64 - 2 {
                    break;
                }
            }
        }
        s.bits_count = 0;
        let hi = s.byte(s.offset).unwrap_or(0) as u32;
        let lo = s.byte(s.offset + 1).unwrap_or(0) as u32;
        let marker = (hi << 8) | lo;
        if marker < 0xFF00 {
            return Err("marker was not found".to_string());
        }
        if (0xFFD0..=0xFFD7).contains(&marker) {
            s.offset += 2;
        } else {
            break;
        }
    }
    Ok(s.offset - start)
}

/// One component's decoded samples (`buildComponentData`): `lines` rows of `width` bytes.
struct Plane {
    samples: Vec<u8>,
    width: usize,
    lines: usize,
    scale_x: f64,
    scale_y: f64,
}

/// `quantizeAndInverse`: dequantise and run poppler's integer IDCT on one block.
fn quantize_and_inverse(zz: &[i32; 64], qt: &[i32; 64], out: &mut [u8; 64]) {
    let mut p = [0i32; 64];
    for i in 0..64 {
        p[i] = zz[i].wrapping_mul(qt[i]);
    }
    let g = |p: &[i32; 64], i: usize| p[i] as i64;
    for i in 0..8 {
        let row = 8 * i;
        if p[1 + row] == 0
            && p[2 + row] == 0
            && p[3 + row] == 0
            && p[4 + row] == 0
            && p[5 + row] == 0
            && p[6 + row] == 0
            && p[7 + row] == 0
        {
            let t = sra(DCT_SQRT2 * g(&p, row) + 512, 10) as i32;
            p[row..row + 8].fill(t);
            continue;
        }
        // stage 4; stages 3 to 1 in idct_tail
        let v0 = sra(DCT_SQRT2 * g(&p, row) + 128, 8);
        let v1 = sra(DCT_SQRT2 * g(&p, 4 + row) + 128, 8);
        let v2 = g(&p, 2 + row);
        let v3 = g(&p, 6 + row);
        let v4 = sra(DCT_SQRT1D2 * (g(&p, 1 + row) - g(&p, 7 + row)) + 128, 8);
        let v7 = sra(DCT_SQRT1D2 * (g(&p, 1 + row) + g(&p, 7 + row)) + 128, 8);
        let v5 = p[3 + row].wrapping_shl(4) as i64;
        let v6 = p[5 + row].wrapping_shl(4) as i64;
        let o = idct_tail([v0, v1, v2, v3, v4, v5, v6, v7], (128, 8));
        for (k, v) in o.into_iter().enumerate() {
            p[row + k] = v as i32;
        }
    }
    for col in 0..8 {
        if p[8 + col] == 0
            && p[16 + col] == 0
            && p[24 + col] == 0
            && p[32 + col] == 0
            && p[40 + col] == 0
            && p[48 + col] == 0
            && p[56 + col] == 0
        {
            let t = sra(DCT_SQRT2 * g(&p, col) + 8192, 14) as i32;
            for r in 0..8 {
                p[r * 8 + col] = t;
            }
            continue;
        }
        // stage 4; stages 3 to 1 in idct_tail
        let v0 = sra(DCT_SQRT2 * g(&p, col) + 2048, 12);
        let v1 = sra(DCT_SQRT2 * g(&p, 32 + col) + 2048, 12);
        let v2 = g(&p, 16 + col);
        let v3 = g(&p, 48 + col);
        let v4 = sra(DCT_SQRT1D2 * (g(&p, 8 + col) - g(&p, 56 + col)) + 2048, 12);
        let v7 = sra(DCT_SQRT1D2 * (g(&p, 8 + col) + g(&p, 56 + col)) + 2048, 12);
        let v5 = g(&p, 24 + col);
        let v6 = g(&p, 40 + col);
        let o = idct_tail([v0, v1, v2, v3, v4, v5, v6, v7], (2048, 12));
        for (k, v) in o.into_iter().enumerate() {
            p[8 * k + col] = v as i32;
        }
    }
    for i in 0..64 {
        let sample = 128 + sra(p[i] as i64 + 8, 4);
        out[i] = sample.clamp(0, 255) as u8;
    }
}

/// Stages 3 to 1 of the 1-D IDCT, the same in the row and the column pass (jpeg-js repeats
/// them inline) except for the rounding of stage 3's v2/v3 rotation, `even = (add, shift)`.
/// Returns the eight outputs in order.
fn idct_tail(v: [i64; 8], even: (i64, u32)) -> [i64; 8] {
    let [mut v0, mut v1, mut v2, mut v3, mut v4, mut v5, mut v6, mut v7] = v;
    // stage 3
    let mut t = sra(v0 - v1 + 1, 1);
    v0 = sra(v0 + v1 + 1, 1);
    v1 = t;
    t = sra(v2 * DCT_SIN6 + v3 * DCT_COS6 + even.0, even.1);
    v2 = sra(v2 * DCT_COS6 - v3 * DCT_SIN6 + even.0, even.1);
    v3 = t;
    t = sra(v4 - v6 + 1, 1);
    v4 = sra(v4 + v6 + 1, 1);
    v6 = t;
    t = sra(v7 + v5 + 1, 1);
    v5 = sra(v7 - v5 + 1, 1);
    v7 = t;
    // stage 2
    t = sra(v0 - v3 + 1, 1);
    v0 = sra(v0 + v3 + 1, 1);
    v3 = t;
    t = sra(v1 - v2 + 1, 1);
    v1 = sra(v1 + v2 + 1, 1);
    v2 = t;
    t = sra(v4 * DCT_SIN3 + v7 * DCT_COS3 + 2048, 12);
    v4 = sra(v4 * DCT_COS3 - v7 * DCT_SIN3 + 2048, 12);
    v7 = t;
    t = sra(v5 * DCT_SIN1 + v6 * DCT_COS1 + 2048, 12);
    v5 = sra(v5 * DCT_COS1 - v6 * DCT_SIN1 + 2048, 12);
    v6 = t;
    // stage 1
    [v0 + v7, v1 + v6, v2 + v5, v3 + v4, v3 - v4, v2 - v5, v1 - v6, v0 - v7]
}

/// `buildComponentData`.
fn build_component_data(frame: &Frame, c: &Component, qt: Option<&[i32; 64]>, mem: &mut Memory) -> R<Plane> {
    let width = c.blocks_per_line << 3;
    let lines = c.blocks_per_column * 8;
    mem.request((width * lines) as u64)?;
    let mut samples = vec![0u8; width * lines];
    if c.blocks_per_line > 0 && c.blocks_per_column > 0 {
        let qt = qt.ok_or_else(|| format!("component {} uses an undefined quantization table", c.id))?;
        let mut r = [0u8; 64];
        for block_row in 0..c.blocks_per_column {
            for block_col in 0..c.blocks_per_line {
                quantize_and_inverse(&c.blocks[block_row * c.block_cols + block_col], qt, &mut r);
                for j in 0..8 {
                    let at = (block_row * 8 + j) * width + block_col * 8;
                    samples[at..at + 8].copy_from_slice(&r[j * 8..j * 8 + 8]);
                }
            }
        }
    }
    Ok(Plane {
        samples,
        width,
        lines,
        scale_x: c.h as f64 / frame.max_h as f64,
        scale_y: c.v as f64 / frame.max_v as f64,
    })
}

/// `clampTo8bit` (same result for every input, NaN and -0 included).
fn clamp_to_8bit(a: f64) -> f64 {
    a.clamp(0.0, 255.0)
}

/// The parsed image: `parse`'s result.
struct Parsed {
    width: usize,
    height: usize,
    adobe_transform: Option<u8>,
    planes: Vec<Plane>,
}

/// Reads header bytes; past the end they are JS `undefined`, which the header arithmetic
/// (`<<`, `|`, `>>`, `&`, `Uint8Array` stores) turns into 0.
struct Cursor<'a> {
    data: &'a [u8],
    offset: usize,
    past_end: bool,
}

impl Cursor<'_> {
    fn at(&mut self, i: usize) -> u32 {
        match self.data.get(i) {
            Some(&b) => b as u32,
            None => {
                self.past_end = true;
                0
            }
        }
    }
    fn next(&mut self) -> u32 {
        let b = self.at(self.offset);
        self.offset += 1;
        b
    }
    fn u16(&mut self) -> u32 {
        let v = (self.at(self.offset) << 8) | self.at(self.offset + 1);
        self.offset += 2;
        v
    }
    /// `readDataBlock`: the segment after its length field, clipped to the data.
    fn block(&mut self) -> &[u8] {
        let length = self.u16() as usize;
        let start = self.offset.min(self.data.len());
        let end = (self.offset + length).saturating_sub(2).clamp(start, self.data.len());
        if self.offset + length.saturating_sub(2) > self.data.len() {
            self.past_end = true;
        }
        self.offset += end - start;
        &self.data[start..end]
    }
}

/// `parse`.
fn parse(data: &[u8], past_end: &mut bool, mem: &mut Memory) -> R<Parsed> {
    let mut cur = Cursor { data, offset: 0, past_end: false };
    let result = parse_inner(&mut cur, past_end, mem);
    *past_end |= cur.past_end;
    result
}

fn parse_inner(cur: &mut Cursor, past_end: &mut bool, mem: &mut Memory) -> R<Parsed> {
    let data = cur.data;
    let mut adobe_transform: Option<u8> = None;
    let mut frame: Option<Frame> = None;
    let mut reset_interval = 0usize;
    let mut quantization_tables: [Option<[i32; 64]>; 16] = [None; 16];
    let mut tables: Vec<Huffman> = Vec::new();
    let (mut tables_dc, mut tables_ac) = ([None::<usize>; 16], [None::<usize>; 16]);
    let mut malformed_data_offset: Option<usize> = None;

    if cur.u16() != 0xFFD8 {
        return Err("SOI not found".to_string());
    }
    let mut file_marker = cur.u16();
    while file_marker != 0xFFD9 {
        match file_marker {
            0xFF00 => {}
            0xFFE0..=0xFFEF | 0xFFFE => {
                let app = cur.block();
                if file_marker == 0xFFEE && app.len() >= 6 && &app[..6] == b"Adobe\0" {
                    // transformCode = appData[11] (undefined, i.e. falsy, when short)
                    adobe_transform = Some(app.get(11).copied().unwrap_or(0));
                }
            }
            0xFFDB => {
                let length = cur.u16() as i64;
                let end = length + cur.offset as i64 - 2;
                while (cur.offset as i64) < end {
                    let spec = cur.next();
                    mem.request(64 * 4)?;
                    let mut table = [0i32; 64];
                    match spec >> 4 {
                        0 => {
                            for &z in &ZIGZAG {
                                table[z] = cur.next() as i32;
                            }
                        }
                        1 => {
                            for &z in &ZIGZAG {
                                table[z] = cur.u16() as i32;
                            }
                        }
                        _ => return Err("DQT: invalid table spec".to_string()),
                    }
                    quantization_tables[(spec & 15) as usize] = Some(table);
                }
            }
            0xFFC0..=0xFFC2 => {
                if frame.is_some() {
                    return Err("only single frame JPEGs supported".to_string());
                }
                cur.u16(); // skip data length
                let _precision = cur.next();
                let scan_lines = cur.u16() as usize;
                let samples_per_line = cur.u16() as usize;
                let pixels = (scan_lines * samples_per_line) as f64;
                if pixels > MAX_PIXELS {
                    let mp = ((pixels - MAX_PIXELS) / 1e6).ceil();
                    return Err(format!("maxResolutionInMP limit exceeded by {mp}MP"));
                }
                let count = cur.next();
                let mut f = Frame {
                    progressive: file_marker == 0xFFC2,
                    scan_lines,
                    samples_per_line,
                    components: Vec::new(),
                    order: Vec::new(),
                    max_h: 1,
                    max_v: 1,
                    mcus_per_line: 0,
                    mcus_per_column: 0,
                };
                for _ in 0..count {
                    let id = cur.at(cur.offset);
                    let hv = cur.at(cur.offset + 1);
                    let (h, v) = ((hv >> 4) as usize, (hv & 15) as usize);
                    let quant_idx = cur.at(cur.offset + 2);
                    if h == 0 || v == 0 {
                        return Err("Invalid sampling factor, expected values above 0".to_string());
                    }
                    f.order.push(id);
                    let c = Component {
                        id,
                        h,
                        v,
                        quant_idx,
                        blocks_per_line: 0,
                        blocks_per_column: 0,
                        blocks: Vec::new(),
                        block_cols: 0,
                        block_rows: 0,
                        pred: 0,
                        dc: None,
                        ac: None,
                    };
                    match f.index_of(id) {
                        Some(i) => f.components[i] = c,
                        None => f.components.push(c),
                    }
                    cur.offset += 3;
                }
                prepare_components(&mut f, mem)?;
                frame = Some(f);
            }
            0xFFC4 => {
                let length = cur.u16();
                let mut i = 2;
                while i < length {
                    let spec = cur.next();
                    let mut code_lengths = [0u8; 16];
                    for l in code_lengths.iter_mut() {
                        *l = cur.next() as u8;
                    }
                    let sum: usize = code_lengths.iter().map(|&l| l as usize).sum();
                    mem.request(16 + sum as u64)?;
                    let values: Vec<u8> = (0..sum).map(|_| cur.next() as u8).collect();
                    i += 17 + sum as u32;
                    let table = build_huffman(&code_lengths, &values)?;
                    tables.push(table);
                    let slot = if spec >> 4 == 0 { &mut tables_dc } else { &mut tables_ac };
                    slot[(spec & 15) as usize] = Some(tables.len() - 1);
                }
            }
            0xFFDD => {
                cur.u16(); // skip data length
                reset_interval = cur.u16() as usize;
            }
            0xFFDC => {
                cur.u16(); // skip data length
                cur.u16(); // the image height, ignored
            }
            0xFFDA => {
                cur.u16(); // scan length
                let f = frame.as_mut().ok_or_else(|| "start of scan before the start of frame".to_string())?;
                let count = cur.next();
                let mut scan_components = Vec::new();
                for _ in 0..count {
                    let id = cur.next();
                    let ci =
                        f.index_of(id).ok_or_else(|| format!("scan names component {id}, which the frame lacks"))?;
                    let spec = cur.next() as usize;
                    f.components[ci].dc = tables_dc[spec >> 4];
                    f.components[ci].ac = tables_ac[spec & 15];
                    scan_components.push(ci);
                }
                let spectral_start = cur.next() as usize;
                let spectral_end = cur.next() as usize;
                let approximation = cur.next();
                let processed = decode_scan(
                    data,
                    cur.offset,
                    f,
                    &scan_components,
                    reset_interval,
                    (spectral_start, spectral_end),
                    approximation >> 4,
                    approximation & 15,
                    &tables,
                    past_end,
                )?;
                cur.offset += processed;
            }
            0xFFFF => {
                // Fill bytes: avoid skipping a valid marker.
                if data.get(cur.offset) != Some(&0xFF) {
                    cur.offset -= 1;
                }
            }
            _ => {
                let before = |k: usize| cur.offset.checked_sub(k).and_then(|i| data.get(i).copied());
                if before(3) == Some(0xFF) && matches!(before(2), Some(0xC0..=0xFE)) {
                    // The encoder ate the last 0xFF byte of the previous block.
                    cur.offset -= 3;
                } else {
                    let mut recovered = false;
                    if file_marker == 0xE0 || file_marker == 0xE1 {
                        // A malformed APP1 marker of some phone models (jpeg-js issue #82).
                        if let Some(first) = malformed_data_offset {
                            return Err(format!(
                                "first unknown JPEG marker at offset {first:x}, second unknown JPEG marker {file_marker:x} at offset {:x}",
                                cur.offset - 1
                            ));
                        }
                        malformed_data_offset = Some(cur.offset - 1);
                        let next_offset = cur.u16() as usize;
                        let target = (cur.offset + next_offset).checked_sub(2);
                        if target.and_then(|t| data.get(t)) == Some(&0xFF) {
                            cur.offset = target.unwrap_or(cur.offset);
                            recovered = true;
                        }
                    }
                    if !recovered {
                        return Err(format!("unknown JPEG marker {file_marker:x}"));
                    }
                }
            }
        }
        file_marker = cur.u16();
    }
    let frame = frame.ok_or_else(|| "only single frame JPEGs supported".to_string())?;
    let mut planes = Vec::with_capacity(frame.order.len());
    for &id in &frame.order {
        let c = &frame.components[frame.index_of(id).expect("order lists frame components")];
        let qt = quantization_tables.get(c.quant_idx as usize).and_then(|t| t.as_ref());
        planes.push(build_component_data(&frame, c, qt, mem)?);
    }
    Ok(Parsed { width: frame.samples_per_line, height: frame.scan_lines, adobe_transform, planes })
}

/// `getData(width, height)` at the image's own size followed by `copyToImageData` into RGB.
fn to_rgb(p: &Parsed, mem: &mut Memory) -> R<Vec<u8>> {
    let (width, height) = (p.width, p.height);
    let n = p.planes.len();
    mem.request((width * height * 3) as u64)?; // decode(): the output buffer
    if n == 0 || n > 4 {
        return Err("Unsupported color mode".to_string());
    }
    if n == 4 && p.adobe_transform.is_none() {
        return Err("Unsupported color mode (4 components)".to_string());
    }
    mem.request((width * height * n) as u64)?; // getData's buffer
                                               // Sample positions: `0 | (x * component.scaleX * scaleX)` with scaleX = 1.
    let xs: Vec<Vec<usize>> =
        p.planes.iter().map(|c| (0..width).map(|x| (x as f64 * c.scale_x * 1.0) as usize).collect()).collect();
    let ys: Vec<Vec<usize>> =
        p.planes.iter().map(|c| (0..height).map(|y| (y as f64 * c.scale_y * 1.0) as usize).collect()).collect();
    for (c, (xs, ys)) in p.planes.iter().zip(xs.iter().zip(&ys)) {
        if xs.last().is_some_and(|&x| x >= c.width) || ys.last().is_some_and(|&y| y >= c.lines) {
            return Err("component samples do not cover the image".to_string());
        }
    }
    // Row `y` of plane `c`, and the plane's sample for each output column.
    let row = |c: usize, y: usize| {
        let plane = &p.planes[c];
        &plane.samples[ys[c][y] * plane.width..(ys[c][y] + 1) * plane.width]
    };
    let mut out = vec![0u8; width * height * 3];
    let rows = out.chunks_exact_mut(width * 3);
    match n {
        1 => {
            for (y, out) in rows.enumerate() {
                let l = row(0, y);
                for (o, &x) in out.chunks_exact_mut(3).zip(&xs[0]) {
                    o.fill(l[x]);
                }
            }
        }
        2 => return Err("Unsupported color mode".to_string()),
        3 => {
            // Three components are always YCbCr to jpeg-js (with its default options).
            let (l0, l1, l2) = (&xs[0], &xs[1], &xs[2]);
            for (y, out) in rows.enumerate() {
                let (r0, r1, r2) = (row(0, y), row(1, y), row(2, y));
                for (x, o) in out.chunks_exact_mut(3).enumerate() {
                    let yy = r0[l0[x]] as f64;
                    let cb = r1[l1[x]] as f64;
                    let cr = r2[l2[x]] as f64;
                    o[0] = clamp_to_8bit(yy + 1.402 * (cr - 128.0)) as u8;
                    o[1] = clamp_to_8bit(yy - 0.3441363 * (cb - 128.0) - 0.71413636 * (cr - 128.0)) as u8;
                    o[2] = clamp_to_8bit(yy + 1.772 * (cb - 128.0)) as u8;
                }
            }
        }
        _ => {
            let transform = p.adobe_transform.is_some_and(|t| t != 0);
            for (y, out) in rows.enumerate() {
                let r: [&[u8]; 4] = [row(0, y), row(1, y), row(2, y), row(3, y)];
                for (x, o) in out.chunks_exact_mut(3).enumerate() {
                    let v = |c: usize| r[c][xs[c][x]] as f64;
                    let k = v(3);
                    let (c, m, ye) = if transform {
                        let (yy, cb, cr) = (v(0), v(1), v(2));
                        (
                            255.0 - clamp_to_8bit(yy + 1.402 * (cr - 128.0)),
                            255.0 - clamp_to_8bit(yy - 0.3441363 * (cb - 128.0) - 0.71413636 * (cr - 128.0)),
                            255.0 - clamp_to_8bit(yy + 1.772 * (cb - 128.0)),
                        )
                    } else {
                        (v(0), v(1), v(2))
                    };
                    // getData stores 255 - value in a Uint8Array ...
                    let [c, m, ye, k] = [255.0 - c, 255.0 - m, 255.0 - ye, 255.0 - k].map(|v| v as u8 as f64);
                    // ... and copyToImageData mixes in K.
                    let mix = |v: f64| (255.0 - clamp_to_8bit(v * (1.0 - k / 255.0) + k)) as u8;
                    o[0] = mix(c);
                    o[1] = mix(m);
                    o[2] = mix(ye);
                }
            }
        }
    }
    Ok(out)
}

fn decode(data: &[u8], past_end: &mut bool) -> R<RgbImage> {
    let mut mem = Memory(0);
    let parsed = parse(data, past_end, &mut mem)?;
    if parsed.width == 0 || parsed.height == 0 {
        return Err(format!("empty image ({}x{})", parsed.width, parsed.height));
    }
    let rgb = to_rgb(&parsed, &mut mem)?;
    RgbImage::from_raw(parsed.width as u32, parsed.height as u32, rgb).ok_or_else(|| "pixel buffer size".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard luminance DC table of JPEG Annex K builds the canonical code.
    #[test]
    fn huffman_tree_is_the_canonical_code() {
        let lengths = [0u8, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        let values: Vec<u8> = (0..12).collect();
        let t = build_huffman(&lengths, &values).unwrap();
        let decode = |bits: &str| {
            let mut n = 0usize;
            for b in bits.bytes() {
                let c = t.nodes[n][(b - b'0') as usize];
                if c >= NODE {
                    n = (c - NODE) as usize;
                } else {
                    return Some(c);
                }
            }
            None
        };
        // Annex K.3: 00 -> 0, 010 -> 1, 011 -> 2, 100 -> 3, 101 -> 4, 110 -> 5, 1110 -> 6, ...
        assert_eq!(decode("00"), Some(0));
        assert_eq!(decode("010"), Some(1));
        assert_eq!(decode("110"), Some(5));
        assert_eq!(decode("1110"), Some(6));
        assert_eq!(decode("111111110"), Some(11));
        assert_eq!(decode("111111111"), Some(ABSENT));
        // Over-full code lengths are jpeg-js's error, not a panic.
        assert!(build_huffman(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[1, 2, 3]).is_err());
    }

    /// A DC-only block is flat: the IDCT shortcut paths give (DC * q) / 8 + 128, as jpeg-js.
    #[test]
    fn flat_block_idct() {
        let mut zz = [0i32; 64];
        zz[0] = 10;
        let qt = [8i32; 64];
        let mut out = [0u8; 64];
        quantize_and_inverse(&zz, &qt, &mut out);
        // rows: (5793*80+512)>>10 = 453; cols: (5793*453+8192)>>14 = 160; 128 + (160+8)>>4 = 138
        assert!(out.iter().all(|&v| v == 138), "{out:?}");
    }
}
