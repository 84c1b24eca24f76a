//! LMCL (CosFace) and the margin-loss family it belongs to, on candle tensors with autograd,
//! plus a small deterministic trainer for heads on frozen face embeddings.
//!
//! * [`MarginLoss`]: Softmax, NormFace, LMCL/CosFace, A-Softmax/SphereFace, ArcFace and the
//!   combined margin `s(cos(m1 θ + m2) - m3)`; `logits` and `loss` (cross-entropy) are
//!   differentiable with candle's backprop.
//! * [`Sgd`]: SGD with momentum, Nesterov and weight decay in PyTorch's semantics (candle-nn's
//!   own `SGD` has no momentum), and [`LrSchedule`] (constant, step, cosine).
//! * [`train_head`]: trains a linear head plus class weights on frozen embeddings, seeded and
//!   bit-reproducible on CPU; the result is a [`TrainedHead`] that maps new embeddings and
//!   saves/loads safetensors checkpoints.
//! * [`angular_stats`]: within-class spread and between-class gaps on the sphere (the toy
//!   experiment's numbers).
//! * [`toy`] and [`ablation`]: the CosFace paper's toy (Fig. 3) and margin (Fig. 5)
//!   experiments at head scale.
//! * [`train_backbone`]: trains a small CNN end to end on an image folder
//!   (`<root>/<identity>/<image>`, [`ImageFolder`]) with any of the losses; CPU-sized.
//!
//! Performance note: head-sized matmuls are small, and candle's CPU gemm spreads each one over
//! `RAYON_NUM_THREADS` threads; on a busy machine that made head training up to 10x slower
//! than one thread (0.27 s vs 2.4 s per epoch at 4,000 x 128 -> 128, 1,000 classes).
//! [`ablation`] therefore trains each head inside a one-thread rayon pool (gemm splits its
//! work over the current pool), heads in parallel on the caller's pool. Results are
//! bit-identical either way.

mod backbone;
mod error;
mod experiments;
mod loss;
mod optim;
mod stats;
mod train;

pub use backbone::{train_backbone, BackboneArch, BackboneConfig, ImageFolder, TrainedBackbone};
pub use error::LmclError;
pub use experiments::{
    ablation, mean_std, toy, AblationConfig, AblationData, AblationRow, Setting, ToyConfig, ToyPanel, TrainSet,
};
pub use loss::{ArcFallback, MarginLoss};
pub use optim::{LrSchedule, Sgd, SgdParams};
pub use stats::{angular_stats, AngularStats, ClassAngles};
pub use train::{train_head, train_head_with, HeadInit, SphereAnneal, StepRecord, TrainConfig, TrainedHead};

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, LmclError>;
