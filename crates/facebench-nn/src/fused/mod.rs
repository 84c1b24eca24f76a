//! The detector's fused CPU kernels, built on the shared layers, epilogue and dispatch: the
//! depthwise-separable pair as one kernel, the direct convolution of thin (RGB) inputs and the
//! row-streaming stem. Each computes exactly what its layers compute one by one (same
//! operations, same order); off the CPU kernels they run the layers one by one.

mod direct;
mod stem;

pub(crate) use direct::DirectConv;
pub use stem::stem;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use crate::conv::Rows;
use crate::cpu::{cpu_f32, use_kernels};
use crate::{Conv2d, DepthwiseConv2d, Error, Result};

/// `pw(dw(x))` for a 1x1 stride-1 `pw`: a depthwise-separable layer. On the CPU both run as one
/// kernel: each chunk of output pixels gets its depthwise values (and their epilogue) in a
/// cache-resident buffer that feeds the GEMM directly.
pub fn separable(dw: &DepthwiseConv2d, pw: &Conv2d, x: &Tensor) -> Result<Tensor> {
    check_pointwise(dw, pw)?;
    dw.window(x)?;
    if use_kernels(x) {
        return Ok(x.contiguous()?.apply_op1_no_bwd(&Separable { dw, pw })?);
    }
    pw.forward(&dw.forward(x)?)
}

fn check_pointwise(dw: &DepthwiseConv2d, pw: &Conv2d) -> Result<()> {
    if pw.k != 1 || pw.stride != 1 || pw.c_in != dw.c || pw.padding.of(1, 1, 1, 1) != crate::Pads::NONE {
        return Err(Error::Input(format!(
            "{} after {}: not a 1x1 stride-1 pointwise of its channels",
            pw.name, dw.name
        )));
    }
    Ok(())
}

struct Separable<'a> {
    dw: &'a DepthwiseConv2d,
    pw: &'a Conv2d,
}

impl CustomOp1 for Separable<'_> {
    fn name(&self) -> &'static str {
        "facebench-separable"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let win = crate::pad::Window::new(l.shape().dims4()?, self.dw.k, self.dw.stride, self.dw.padding)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(self.pw.run(cpu_f32("separable", s, l)?, Rows::Depthwise(win, self.dw), None))
    }
}
