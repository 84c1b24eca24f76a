//! facebench-nn: the NHWC layers every candle port here is built from, on f32 tensors in TF's
//! own layout (filters are used as stored).
//!
//! Every layer has two paths computing the same function:
//! * on CPU, direct kernels (`CustomOp`s): convolution is im2col + `gemm` over chunks of output
//!   pixels taken across the whole batch (NHWC makes a chunk one contiguous block of rows, so
//!   small late layers still feed the gemm full tiles), depthwise is a stencil blocked in
//!   registers over channels, and each layer's epilogue (bias, affine, residual, activation)
//!   runs while its chunk is in cache. Candle's grouped convolution runs one convolution per
//!   channel and its element-wise ops serialise concurrent callers on one spinning pool; both
//!   are far slower here. Hand-written kernels are compiled once per [`Simd`] level and picked
//!   by one run-time check (`simd.rs`);
//! * elsewhere (CUDA), plain candle ops on NCHW views: [`pad2d`], `conv2d` (grouped for
//!   depthwise), broadcast arithmetic. [`with_candle_ops`] runs that path on CPU too, so tests
//!   check one against the other.
//!
//! [`fused`] holds the detector's extensions built on the same pieces: the depthwise-separable
//! pair as one kernel and the row-streaming stem.

mod conv;
mod cpu;
mod depthwise;
mod elementwise;
mod epilogue;
pub mod fused;
mod pad;
mod pool;
mod simd;

pub use conv::Conv2d;
pub use cpu::{candle_ops_forced, sequential, use_kernels, with_candle_ops, with_candle_ops_if};
pub use depthwise::DepthwiseConv2d;
pub use elementwise::{add, ChannelOp};
pub use epilogue::Activation;
pub use pad::{pad2d, Padding, Pads};
pub use pool::Pool;

/// A layer that does not fit its input, or a failure inside candle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong rank, size or channel count, or parameters that do not fit the layer.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests;
