//! The options of every command that runs a face model, declared once so that their flags,
//! defaults and help read the same everywhere.

use std::path::PathBuf;

use clap::Args;
use facebench_model::FaceModel;

/// How a face model runs: batch size, device, and where its weights are.
#[derive(Args, Debug, Clone)]
pub struct ModelRunArgs {
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// cpu, or cuda[:N] (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights folder filled by `make models` [env FACEBENCH_MODELS, default <repo>/models].
    #[arg(long, env = "FACEBENCH_MODELS")]
    pub models_dir: Option<PathBuf>,
}

impl ModelRunArgs {
    /// `--models-dir`, or the default weights folder.
    pub fn weights_dir(&self) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(facebench_model::default_models_dir)
    }

    /// Loads the model named `model` from the weights folder onto `--device`.
    pub fn load(&self, model: &str) -> Result<Box<dyn FaceModel>, Box<dyn std::error::Error>> {
        let device = facebench_model::device_from_name(&self.device)?;
        Ok(facebench_model::load(model, &self.weights_dir(), &device)?)
    }
}
