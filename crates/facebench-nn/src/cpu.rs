//! The switch between the CPU kernels and the plain-candle path, and the helpers every CPU
//! kernel shares (storage access, parallel chunks, unzeroed outputs).

use std::cell::Cell;
use std::mem::MaybeUninit;

use candle_core::{CpuStorage, Layout, Tensor};
use rayon::prelude::*;

thread_local! {
    static CANDLE_ONLY: Cell<bool> = const { Cell::new(false) };
    static SEQUENTIAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every layer called on this thread using candle's own ops, as on CUDA, even on
/// CPU: to check that path (tests) and to measure what the CPU kernels gain (benchmarks).
pub fn with_candle_ops<R>(f: impl FnOnce() -> R) -> R {
    with_candle_ops_if(true, f)
}

/// [`with_candle_ops`] when `on`, else `f` on the kernels: for work handed to other threads,
/// with `on` = the caller's [`candle_ops_forced`].
pub fn with_candle_ops_if<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let before = CANDLE_ONLY.with(|c| c.replace(on));
    let r = f();
    CANDLE_ONLY.with(|c| c.set(before));
    r
}

/// Whether this thread runs inside [`with_candle_ops`].
pub fn candle_ops_forced() -> bool {
    CANDLE_ONLY.with(|c| c.get())
}

/// Whether the CPU kernels run for `x`: a CPU tensor, outside [`with_candle_ops`].
pub fn use_kernels(x: &Tensor) -> bool {
    x.device().is_cpu() && !candle_ops_forced()
}

/// Runs `f` with the CPU kernels called on this thread working single-threaded: for callers
/// that already run one sub-batch per thread, where nested splitting only adds stealing and
/// cache thrash.
pub fn sequential<R>(f: impl FnOnce() -> R) -> R {
    let before = SEQUENTIAL.with(|c| c.replace(true));
    let r = f();
    SEQUENTIAL.with(|c| c.set(before));
    r
}

/// Threads a kernel may split its work over: 1 inside [`sequential`].
pub(crate) fn threads() -> usize {
    if SEQUENTIAL.with(|c| c.get()) {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// `f(i, chunk)` over `size`-element chunks of `out`, in parallel unless in [`sequential`].
pub(crate) fn for_each_chunk<T: Send, F>(out: &mut [T], size: usize, f: F)
where
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    if SEQUENTIAL.with(|c| c.get()) {
        out.chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
    } else {
        out.par_chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// [`for_each_chunk`] over an unzeroed output whose every element `f` writes before reading.
pub(crate) fn for_each_chunk_uninit<F>(out: &mut [MaybeUninit<f32>], size: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    for_each_chunk(out, size, |i, c| {
        // SAFETY: same layout; `f` writes every element before reading it (caller's contract).
        f(i, unsafe { std::slice::from_raw_parts_mut(c.as_mut_ptr() as *mut f32, c.len()) })
    })
}

pub(crate) fn cpu_f32<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(d) => d,
        _ => candle_core::bail!("{op}: expected an f32 tensor"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: expected a contiguous tensor"),
    }
}

/// An output buffer every element of which the caller writes before reading: no zeroing pass
/// (measured ~5% of detection time when outputs were zero-filled first).
pub(crate) fn uninit(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: MaybeUninit needs no initialisation.
    unsafe { v.set_len(len) };
    v
}

/// # Safety
/// Every element of `v` has been written.
pub(crate) unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: same allocation, layout and length; all elements initialised (caller).
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut f32, v.len(), v.capacity()) }
}

pub(crate) fn nhwc_to_nchw(x: &Tensor) -> candle_core::Result<Tensor> {
    x.permute((0, 3, 1, 2))
}

pub(crate) fn nchw_to_nhwc(x: &Tensor) -> candle_core::Result<Tensor> {
    x.permute((0, 2, 3, 1))?.contiguous()
}
