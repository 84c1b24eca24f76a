//! Zero padding and the window geometry of strided `k x k` stencils. TF `SAME` is asymmetric
//! for stride 2 on even sizes (0 before, 1 after), which candle's symmetric `padding` cannot
//! express, so padding is explicit everywhere.

use candle_core::Tensor;

use crate::{Error, Result};

/// Zero padding of the two spatial dimensions, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pads {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Pads {
    pub const NONE: Pads = Pads { top: 0, bottom: 0, left: 0, right: 0 };

    pub fn uniform(p: usize) -> Pads {
        Pads { top: p, bottom: p, left: p, right: p }
    }

    /// TF `SAME` padding of an `h x w` input for a `k x k` kernel with stride `s`.
    pub fn same(h: usize, w: usize, k: usize, s: usize) -> Pads {
        let (top, bottom) = same_padding(h, k, s);
        let (left, right) = same_padding(w, k, s);
        Pads { top, bottom, left, right }
    }
}

/// A layer's padding: fixed, or TF `SAME` of whatever input it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Explicit(Pads),
    Same,
}

impl Padding {
    pub(crate) fn of(self, h: usize, w: usize, k: usize, s: usize) -> Pads {
        match self {
            Padding::Explicit(p) => p,
            Padding::Same => Pads::same(h, w, k, s),
        }
    }
}

impl From<Pads> for Padding {
    fn from(p: Pads) -> Self {
        Padding::Explicit(p)
    }
}

/// TF `SAME` padding (before, after) of one dimension: `out = ceil(n/s)`,
/// `total = max((out-1)*s + k - n, 0)`, `before = total/2`, the odd pixel goes after.
pub(crate) fn same_padding(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out.saturating_sub(1)) * s + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// Zero-pads an NHWC tensor spatially.
pub fn pad2d(x: &Tensor, p: Pads) -> Result<Tensor> {
    let mut x = x.clone();
    if p.top + p.bottom > 0 {
        x = x.pad_with_zeros(1, p.top, p.bottom)?;
    }
    if p.left + p.right > 0 {
        x = x.pad_with_zeros(2, p.left, p.right)?;
    }
    Ok(x)
}

/// A window of `k x k` taps with stride `s` over an NHWC `[n, h, w, c]` input, `top`/`left`
/// zero pixels before it; `ho x wo` outputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub k: usize,
    pub s: usize,
    pub ho: usize,
    pub wo: usize,
    pub top: usize,
    pub left: usize,
}

impl Window {
    /// The window of a layer on an input of `dims`; an error when the padded input is smaller
    /// than the kernel.
    pub fn new(dims: (usize, usize, usize, usize), k: usize, s: usize, padding: Padding) -> Result<Self> {
        let (n, h, w, c) = dims;
        let p = padding.of(h, w, k, s);
        let (ph, pw) = (h + p.top + p.bottom, w + p.left + p.right);
        if ph < k || pw < k || s == 0 {
            return Err(Error::Input(format!("input {h}x{w} (padded {ph}x{pw}) smaller than kernel {k}x{k}")));
        }
        Ok(Window { n, h, w, c, k, s, ho: (ph - k) / s + 1, wo: (pw - k) / s + 1, top: p.top, left: p.left })
    }

    /// The window of layer `layer` (expecting `c` input channels) on the NHWC tensor `x`;
    /// errors name the layer and what it got.
    pub fn of_input(layer: &str, x: &Tensor, c: usize, k: usize, s: usize, padding: Padding) -> Result<Self> {
        let dims = x.dims4().map_err(|_| Error::Input(format!("{layer}: expected NHWC input, got {:?}", x.dims())))?;
        if dims.3 != c {
            return Err(Error::Input(format!("{layer}: input has {} channels, layer expects {c}", dims.3)));
        }
        Window::new(dims, k, s, padding).map_err(|e| Error::Input(format!("{layer}: {e}")))
    }

    /// Input pixel offset (in pixels, not floats) of tap (ky, kx) for output (b, oy, ox), or
    /// None when the tap falls in the zero padding.
    #[inline]
    pub fn tap(&self, b: usize, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let iy = (oy * self.s + ky).checked_sub(self.top)?;
        let ix = (ox * self.s + kx).checked_sub(self.left)?;
        (iy < self.h && ix < self.w).then(|| (b * self.h + iy) * self.w + ix)
    }

    /// (batch, row, column) of output pixel `p`.
    #[inline(always)]
    pub fn pixel(&self, p: usize) -> (usize, usize, usize) {
        (p / (self.ho * self.wo), (p / self.wo) % self.ho, p % self.wo)
    }

    /// The padding as candle's path applies it (bottom/right: what the outputs reach).
    pub fn pads(&self) -> Pads {
        let bottom = ((self.ho - 1) * self.s + self.k).saturating_sub(self.top + self.h);
        let right = ((self.wo - 1) * self.s + self.k).saturating_sub(self.left + self.w);
        Pads { top: self.top, bottom, left: self.left, right }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn same_padding_matches_tf() {
        // k3 s2 on even n: 0 before, 1 after; on odd n: 1, 1
        assert_eq!(same_padding(112, 3, 2), (0, 1));
        assert_eq!(same_padding(7, 3, 2), (1, 1));
        assert_eq!(same_padding(56, 3, 1), (1, 1));
        assert_eq!(same_padding(8, 1, 1), (0, 0));
        assert_eq!(same_padding(4, 7, 1), (3, 3));
        assert_eq!(same_padding(5, 2, 2), (0, 1));
        assert_eq!(same_padding(2, 3, 2), (0, 1));
        assert_eq!(same_padding(1, 3, 2), (1, 1));
        assert_eq!(Pads::same(112, 7, 3, 2), Pads { top: 0, bottom: 1, left: 1, right: 1 });
        // SAME outputs are ceil(n / s)
        for (n, k, s) in [(512, 3, 2), (7, 3, 2), (16, 3, 1), (2, 3, 2), (1, 3, 2), (5, 1, 1), (9, 1, 2)] {
            let win = Window::new((1, n, n, 1), k, s, Padding::Same).unwrap();
            assert_eq!((win.ho, win.top), (n.div_ceil(s), same_padding(n, k, s).0), "n{n} k{k} s{s}");
        }
    }

    #[test]
    fn pad2d_is_asymmetric_zero_padding() {
        let x = Tensor::from_slice(&[1f32, 2., 3., 4.], (1, 2, 2, 1), &Device::Cpu).unwrap();
        let y = pad2d(&x, Pads { top: 0, bottom: 1, left: 2, right: 0 }).unwrap();
        assert_eq!(y.dims(), &[1, 3, 4, 1]);
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0., 0., 1., 2., 0., 0., 3., 4., 0., 0., 0., 0.]
        );
    }
}
