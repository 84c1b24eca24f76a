//! `facebench align`: detection + 68 landmarks per image, cached as JSON lines.

use std::path::{Path, PathBuf};

use clap::Args;
use facebench_detect::{align_images_with, AlignCache, AlignOutcome, Detector};
use facebench_image::Decoder;

use super::keys::{progress_bar, ImageSet};
use super::CmdResult;

#[derive(Args)]
pub struct AlignArgs {
    #[command(flatten)]
    pub images: ImageSet,
    /// Output cache, one JSON line per image; a rerun appends only missing keys.
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, or cuda[:N] (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights folder filled by `make models` [env FACEBENCH_MODELS, default <repo>/models].
    #[arg(long, env = "FACEBENCH_MODELS")]
    pub models_dir: Option<PathBuf>,
    /// JPEG decoder: image (default), or jpeg-js to decode as face-api's reference did (boxes
    /// and landmarks then agree with face-api's to 1e-4 px instead of ~1 px).
    #[arg(long, default_value = "image")]
    pub decoder: Decoder,
}

/// Aligns every key not yet in the cache at `out`, appending one JSON line per image.
pub fn align_cached(
    root: &Path,
    keys: &[String],
    out: &Path,
    device: &str,
    models_dir: Option<&Path>,
) -> Result<AlignOutcome, Box<dyn std::error::Error>> {
    align_cached_with(root, keys, out, device, models_dir, Decoder::Image)
}

/// [`align_cached`] with a choice of JPEG decoder.
pub fn align_cached_with(
    root: &Path,
    keys: &[String],
    out: &Path,
    device: &str,
    models_dir: Option<&Path>,
    decoder: Decoder,
) -> Result<AlignOutcome, Box<dyn std::error::Error>> {
    let mut cache = AlignCache::open(out)?;
    let todo = cache.missing(keys);
    let already = keys.len() - todo.len();
    if todo.is_empty() {
        return Ok(AlignOutcome { already, ..Default::default() });
    }
    let models_dir = models_dir.map(Path::to_path_buf).unwrap_or_else(facebench_model::default_models_dir);
    let detector = Detector::load(&models_dir, &facebench_model::device_from_name(device)?)?;
    let pb = progress_bar(keys.len(), "align");
    pb.set_position(already as u64);
    let t0 = std::time::Instant::now();
    let mut write_err = None;
    let summary = align_images_with(
        root,
        &todo,
        &detector,
        decoder,
        |n| pb.inc(n as u64),
        |rec| {
            if let Err(e) = cache.append(&rec) {
                write_err.get_or_insert(e);
            }
        },
    )?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    cache.sync()?;
    pb.finish_and_clear();
    Ok(AlignOutcome {
        aligned: summary.images,
        already,
        fallbacks: summary.fallbacks,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

pub fn run(a: AlignArgs, data_root: &Path) -> CmdResult {
    let (root, keys) = a.images.resolve(data_root)?;
    let o = align_cached_with(&root, &keys, &a.out, &a.device, a.models_dir.as_deref(), a.decoder)?;
    println!(
        "aligned {} image(s) in {:.1}s ({:.1} images/s), {} already cached; {} fallback(s) to the centre box{}",
        o.aligned,
        o.seconds,
        o.per_second(),
        o.already,
        o.fallbacks.len(),
        match o.fallbacks.len() {
            0 => String::new(),
            // A long list buries the summary; every fallback is flagged in the JSONL cache.
            n if n <= 10 => format!(": {}", o.fallbacks.join(", ")),
            n => format!(
                " (first 10: {}, ...; all {n} have \"fallback\": true in {})",
                o.fallbacks[..10].join(", "),
                a.out.display()
            ),
        }
    );
    Ok(())
}
