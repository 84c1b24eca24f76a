use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::pixels::ImageF32;
use crate::{Error, Result};

/// Memory layout of one image in the batch tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Height, width, channel (TF / TF.js models).
    #[default]
    Nhwc,
    /// Channel, height, width (PyTorch / ONNX models).
    Nchw,
}

/// Channel order the network was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    /// OpenCV-trained models (InsightFace MXNet/ONNX exports).
    Bgr,
}

/// Value convention, applied to the 0..255 samples `v`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueScale {
    /// `v` unchanged: both face-api's ResNet and MobileFace normalise inside the graph.
    #[default]
    Raw255,
    /// `(v - 127.5) / 128` (MobileFaceNet, InsightFace).
    PlusMinusOne,
    /// `v / 255`.
    Unit,
    /// `(v - mean[c]) / std[c]`, `c` indexing R, G, B whatever the output order.
    MeanStd { mean: [f32; 3], std: [f32; 3] },
}

/// How a model wants its input tensor: declared by each model, applied by [`to_tensor_data`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub order: ChannelOrder,
    #[serde(default)]
    pub scale: ValueScale,
}

/// An image that can become a tensor: [`ImageF32`] or 8-bit [`RgbImage`].
pub trait TensorSource {
    #[doc(hidden)]
    fn dims(&self) -> (usize, usize);
    #[doc(hidden)]
    fn sample(&self, i: usize) -> f32;
}

impl TensorSource for ImageF32 {
    fn dims(&self) -> (usize, usize) {
        (self.width() as usize, self.height() as usize)
    }
    fn sample(&self, i: usize) -> f32 {
        self.as_slice()[i]
    }
}

impl TensorSource for RgbImage {
    fn dims(&self) -> (usize, usize) {
        (self.width() as usize, self.height() as usize)
    }
    fn sample(&self, i: usize) -> f32 {
        self.as_raw()[i] as f32
    }
}

/// One image as `f32` tensor data (`H*W*3` values) in the spec's layout, order and scale.
pub fn to_tensor_data<I: TensorSource + ?Sized>(img: &I, spec: &TensorSpec) -> Vec<f32> {
    let (w, h) = img.dims();
    let mut out = vec![0.0; w * h * 3];
    write_tensor_data(img, spec, &mut out).expect("buffer sized from the image");
    out
}

/// Like [`to_tensor_data`], into a caller's slice (one image's place in a batch buffer), so
/// batches are filled without extra copies. The slice must hold exactly `H*W*3` values.
pub fn write_tensor_data<I: TensorSource + ?Sized>(img: &I, spec: &TensorSpec, out: &mut [f32]) -> Result<()> {
    let (w, h) = img.dims();
    let n = w * h;
    if out.len() != n * 3 {
        return Err(Error::BufferSize { got: out.len(), needed: n * 3 });
    }
    for p in 0..n {
        for c in 0..3 {
            let src_c = match spec.order {
                ChannelOrder::Rgb => c,
                ChannelOrder::Bgr => 2 - c,
            };
            let v = img.sample(p * 3 + src_c);
            let v = match spec.scale {
                // Keep the documented formula exactly (division, not a reciprocal product).
                ValueScale::MeanStd { mean, std } => (v - mean[src_c]) / std[src_c],
                ValueScale::PlusMinusOne => (v - 127.5) / 128.0,
                ValueScale::Unit => v / 255.0,
                ValueScale::Raw255 => v,
            };
            let o = match spec.layout {
                Layout::Nhwc => p * 3 + c,
                Layout::Nchw => c * n + p,
            };
            out[o] = v;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img() -> RgbImage {
        // 2x1: pixel 0 = (10, 20, 30), pixel 1 = (40, 50, 60).
        RgbImage::from_raw(2, 1, vec![10, 20, 30, 40, 50, 60]).unwrap()
    }

    #[test]
    fn layouts_and_orders() {
        let nhwc = to_tensor_data(&img(), &TensorSpec::default());
        assert_eq!(nhwc, [10., 20., 30., 40., 50., 60.]);
        let nchw = TensorSpec { layout: Layout::Nchw, ..Default::default() };
        assert_eq!(to_tensor_data(&img(), &nchw), [10., 40., 20., 50., 30., 60.]);
        let bgr = TensorSpec { layout: Layout::Nchw, order: ChannelOrder::Bgr, ..Default::default() };
        assert_eq!(to_tensor_data(&img(), &bgr), [30., 60., 20., 50., 10., 40.]);
        // ImageF32 and RgbImage give the same tensor.
        assert_eq!(to_tensor_data(&ImageF32::from_rgb8(&img()), &nchw), to_tensor_data(&img(), &nchw));
    }

    #[test]
    fn value_scales() {
        let s = |scale| to_tensor_data(&img(), &TensorSpec { scale, ..Default::default() });
        assert_eq!(s(ValueScale::PlusMinusOne)[0], (10.0 - 127.5) / 128.0);
        assert_eq!(s(ValueScale::Unit)[5], 60.0 / 255.0);
        let ms = ValueScale::MeanStd { mean: [10.0, 0.0, 30.0], std: [1.0, 2.0, 3.0] };
        assert_eq!(s(ms), [0., 10., 0., 30., 25., 10.]);
        // BGR: the mean/std follow the RGB channel, not the output slot.
        let bgr = TensorSpec { order: ChannelOrder::Bgr, scale: ms, ..Default::default() };
        assert_eq!(to_tensor_data(&img(), &bgr), [0., 10., 0., 10., 25., 30.]);
    }

    #[test]
    fn batch_slot_must_fit() {
        let mut buf = vec![0.0; 5];
        let e = write_tensor_data(&img(), &TensorSpec::default(), &mut buf).unwrap_err();
        assert!(matches!(e, Error::BufferSize { got: 5, needed: 6 }));
        let mut batch = [0.0; 12];
        write_tensor_data(&img(), &TensorSpec::default(), &mut batch[6..]).unwrap();
        assert_eq!(&batch[6..], &[10., 20., 30., 40., 50., 60.]);
    }

    #[test]
    fn spec_from_json() {
        let s: TensorSpec = serde_json::from_str(r#"{"layout":"nchw","scale":"plus_minus_one"}"#).unwrap();
        assert_eq!(s, TensorSpec { layout: Layout::Nchw, order: ChannelOrder::Rgb, scale: ValueScale::PlusMinusOne });
        assert!(serde_json::from_str::<TensorSpec>(r#"{"layot":"nchw"}"#).is_err());
    }
}
