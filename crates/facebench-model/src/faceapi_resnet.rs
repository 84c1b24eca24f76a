//! `faceapi-resnet`: face-api's FaceRecognitionNet (dlib `dlib_face_recognition_resnet_model_v1`,
//! a ResNet-29-like net), as `@vladmandic/face-api@1.7.15` runs it. 150x150 RGB 0..255 in,
//! 128-D (not normalised) out. Layer by layer as in face-api's `src/faceRecognitionNet/*.ts`;
//! see the reference ARCHITECTURES.md §3.

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::tfjs::TfjsWeights;
use crate::{check_batch, FaceModel, InputSpec};
use facebench_nn::{add, pad2d, Activation, ChannelOp, Conv2d, Pads, Pool};

pub const NAME: &str = "faceapi-resnet";
const SIZE: usize = 150;
/// face-api's `normalize` mean (RGB); the input is then divided by 255 (@vladmandic's fork).
const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];

/// (prefix, kind, c_in, c_out) in forward order.
const LAYERS: [(&str, Kind, usize, usize); 14] = [
    ("conv32_1", Kind::Residual, 32, 32),
    ("conv32_2", Kind::Residual, 32, 32),
    ("conv32_3", Kind::Residual, 32, 32),
    ("conv64_down", Kind::Down, 32, 64),
    ("conv64_1", Kind::Residual, 64, 64),
    ("conv64_2", Kind::Residual, 64, 64),
    ("conv64_3", Kind::Residual, 64, 64),
    ("conv128_down", Kind::Down, 64, 128),
    ("conv128_1", Kind::Residual, 128, 128),
    ("conv128_2", Kind::Residual, 128, 128),
    ("conv256_down", Kind::Down, 128, 256),
    ("conv256_1", Kind::Residual, 256, 256),
    ("conv256_2", Kind::Residual, 256, 256),
    ("conv256_down_out", Kind::Down, 256, 256),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `relu(conv2(relu(conv1(x))) + x)`, both 3x3 s1 SAME.
    Residual,
    /// conv1 3x3 **s2 VALID**, conv2 3x3 s1 SAME; shortcut avgPool 2x2 s2, zero-extended.
    Down,
}

#[derive(Debug)]
struct Block {
    kind: Kind,
    c_in: usize,
    c_out: usize,
    conv1: Conv2d,
    conv2: Conv2d,
}

/// The dlib ResNet of face-api.
#[derive(Debug)]
pub struct FaceapiResnet {
    device: Device,
    sha256: String,
    conv32_down: Conv2d,
    blocks: Vec<Block>,
    fc: Tensor,
}

/// Every weight name this network reads, in forward order.
pub fn weight_names() -> Vec<String> {
    let unit = |p: &str| ["conv/filters", "conv/bias", "scale/weights", "scale/biases"].map(|s| format!("{p}/{s}"));
    let mut names: Vec<String> = unit("conv32_down").into();
    for (p, ..) in &LAYERS {
        names.extend(unit(&format!("{p}/conv1")));
        names.extend(unit(&format!("{p}/conv2")));
    }
    names.push("fc".into());
    names
}

/// conv + bias, then dlib's affine `* scale.weights + scale.biases`, then the activation.
/// `shape` is the TF filter shape `[k, k, c_in, c_out]`.
fn conv_unit(
    w: &TfjsWeights,
    p: &str,
    shape: [usize; 4],
    stride: usize,
    pads: Pads,
    act: Activation,
    dev: &Device,
) -> Result<Conv2d> {
    let c_out = shape[3];
    let filt = w.f32_values(&format!("{p}/conv/filters"), &shape)?;
    Ok(Conv2d::new(p, filt, shape, stride, pads, dev)?
        .with_bias(w.f32_values(&format!("{p}/conv/bias"), &[c_out])?)?
        .with_affine(
            w.f32_values(&format!("{p}/scale/weights"), &[c_out])?,
            w.f32_values(&format!("{p}/scale/biases"), &[c_out])?,
        )?
        .with_activation(act)?)
}

impl FaceapiResnet {
    /// Builds the network from face-api's `face_recognition_model-weights_manifest.json`.
    pub fn from_weights(w: &TfjsWeights, device: &Device) -> Result<Self> {
        w.expect_names(NAME, &weight_names())?;
        let conv32_down = conv_unit(w, "conv32_down", [7, 7, 3, 32], 2, Pads::NONE, Activation::Relu, device)?;
        let mut blocks = Vec::new();
        for &(p, kind, c_in, c_out) in &LAYERS {
            let (stride1, pads1) = match kind {
                Kind::Residual => (1, Pads::uniform(1)),
                Kind::Down => (2, Pads::NONE),
            };
            // 3x3 s1 SAME is a symmetric pad of 1 at every size. A residual block's final ReLU
            // (after the shortcut add) is fused into conv2.
            let conv1 =
                conv_unit(w, &format!("{p}/conv1"), [3, 3, c_in, c_out], stride1, pads1, Activation::Relu, device)?;
            let act2 = if kind == Kind::Residual { Activation::Relu } else { Activation::None };
            let conv2 = conv_unit(w, &format!("{p}/conv2"), [3, 3, c_out, c_out], 1, Pads::uniform(1), act2, device)?;
            blocks.push(Block { kind, c_in, c_out, conv1, conv2 });
        }
        Ok(FaceapiResnet {
            device: device.clone(),
            sha256: w.sha256().to_string(),
            conv32_down,
            blocks,
            fc: w.tensor("fc", &[256, 128], device)?,
        })
    }

    /// One block on NHWC activations.
    fn block(&self, b: &Block, x: &Tensor) -> Result<Tensor> {
        let h = b.conv1.forward(x)?;
        if b.kind == Kind::Residual {
            return Ok(b.conv2.forward_residual(&h, x)?);
        }
        let h = b.conv2.forward(&h)?;
        let mut pooled = Pool::Avg { k: 2, s: 2 }.forward(x)?;
        let (n, ph, pw, _) = pooled.dims4()?;
        let (_, hh, hw, _) = h.dims4()?;
        // The conv branch loses a row/column on sizes where VALID s2 is short by one:
        // face-api appends one zero row at the bottom and one zero column at the right.
        let h =
            if hh < ph || hw < pw { pad2d(&h, Pads { top: 0, bottom: ph - hh, left: 0, right: pw - hw })? } else { h };
        if b.c_out > b.c_in {
            // the shortcut's missing channels are zeros, after the pooled ones
            let zeros = Tensor::zeros((n, ph, pw, b.c_out - b.c_in), DType::F32, x.device())?;
            pooled = Tensor::cat(&[&pooled, &zeros], 3)?;
        }
        Ok(add(&[&pooled, &h], true)?)
    }
}

impl FaceModel for FaceapiResnet {
    fn name(&self) -> &str {
        NAME
    }

    fn input_spec(&self) -> InputSpec {
        InputSpec::rgb_255(SIZE, SIZE)
    }

    fn embedding_dim(&self) -> usize {
        128
    }

    fn weights_sha256(&self) -> &str {
        &self.sha256
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn forward(&self, batch: &Tensor) -> Result<Tensor> {
        check_batch(NAME, &self.input_spec(), batch)?;
        // 8 images per sub-batch: large enough gemm blocks, small enough to stay in cache.
        crate::forward_chunked(batch, 8, |b| self.forward_all(b))
    }
}

impl FaceapiResnet {
    fn forward_all(&self, batch: &Tensor) -> Result<Tensor> {
        let x = ChannelOp::SubDiv(MEAN_RGB.to_vec(), 255.0).forward(&batch.to_device(&self.device)?)?;
        let x = self.conv32_down.forward(&x)?;
        let mut x = Pool::Max { k: 3, s: 2 }.forward(&x)?;
        for b in &self.blocks {
            x = self.block(b, &x)?;
        }
        let v = x.mean((1, 2))?;
        v.matmul(&self.fc).map_err(Error::from)
    }
}
