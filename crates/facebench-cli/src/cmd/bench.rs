//! `facebench bench ...`: benchmarks that print a ratio against a baseline measured
//! in the same run (machines are noisy; absolute times alone say little).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use facebench_extract::Job;

use super::embed::{embed_cached, recipe, ModelName};
use super::keys::{ImageSet, ProtocolImages};
use super::CmdResult;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Blocked cosine scoring with a top-k reducer against a plain GEMM of the same shape.
    Score(ScoreArgs),
    /// Model throughput at batch 1 and 32: forward passes alone, then the whole
    /// extraction pipeline (decode + centre crop + forward + store) on real LFW images.
    Embed(EmbedBenchArgs),
    /// MegaFace-shaped synthetic evaluation (3,530 probes, N distractors) against a bare GEMM,
    /// and the bf16 / int8 scoring modes against f32.
    Megaface(super::megaface::MegafaceBenchArgs),
}

#[derive(Args)]
pub struct EmbedBenchArgs {
    #[arg(long, value_enum, default_value = "faceapi-resnet")]
    model: ModelName,
    /// Forward passes timed per batch size.
    #[arg(long, default_value_t = 8)]
    iters: usize,
    /// LFW images embedded for the decoding-included figure.
    #[arg(long, default_value_t = 512)]
    images: usize,
    /// cpu, or cuda[:N] (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Weights folder filled by `make models` [env FACEBENCH_MODELS, default <repo>/models].
    #[arg(long, env = "FACEBENCH_MODELS")]
    models_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// Number of query rows.
    #[arg(long, default_value_t = 4096)]
    queries: usize,
    /// Number of gallery rows.
    #[arg(long, default_value_t = 200_000)]
    gallery: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// k of the per-query top-k reducer.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

fn bench_embed(a: EmbedBenchArgs, data_root: &Path) -> CmdResult {
    let models_dir = a.models_dir.clone().unwrap_or_else(facebench_model::default_models_dir);
    let device = facebench_model::device_from_name(&a.device)?;
    let model = facebench_model::load(a.model.as_str(), &models_dir, &device)?;
    println!("{} on {} ({} threads)", a.model.as_str(), a.device, rayon::current_num_threads());
    for batch in [1, 32] {
        let iters = if batch == 1 { a.iters * 8 } else { a.iters };
        let r = facebench_model::bench_embed(model.as_ref(), batch, iters)?;
        println!("  forward only, batch {batch:>2}: {:>8.1} images/s", r.images_per_sec);
    }
    let set = ImageSet { root: None, list: None, protocol: Some(ProtocolImages::Lfw) };
    let (root, mut keys) = set.resolve(data_root)?;
    keys.truncate(a.images);
    let side = model.input_spec().width.min(model.input_spec().height) as u32;
    let r = recipe(a.model, &format!("centre:{}", side.max(1)))?;
    let tmp = std::env::temp_dir().join(format!("facebench-bench-embed-{}", std::process::id()));
    for batch in [1, 32] {
        let job = Job { model: model.as_ref(), recipe: &r, root: &root, batch, flip: false, skip_bad: false };
        let store = tmp.join(format!("b{batch}.fbs"));
        let s = embed_cached(&job, &keys, &Default::default(), &store)?;
        println!(
            "  decode + crop + forward + store, batch {batch:>2}: {:>8.1} images/s ({} LFW images, model busy {:.0}% of the time)",
            s.images_per_sec(),
            s.computed,
            100.0 * s.model_seconds / s.seconds.max(1e-9)
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

pub fn run(cmd: BenchCommand, data_root: &Path) -> CmdResult {
    match cmd {
        BenchCommand::Embed(a) => bench_embed(a, data_root),
        BenchCommand::Megaface(a) => super::megaface::bench(a),
        BenchCommand::Score(a) => {
            // 0 = all cores
            let threads = a.threads.unwrap_or(0);
            let report = facebench_score::bench::bench_score(a.queries, a.gallery, a.dim, a.k, threads)?;
            println!("{report}");
            Ok(())
        }
    }
}
