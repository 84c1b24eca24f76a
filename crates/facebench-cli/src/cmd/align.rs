//! `facebench align`: detection + 68 landmarks per image, cached as JSON lines.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use facebench_detect::{align_images_with, Detector};
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

/// Keys already in a cache. A torn last line (a crash mid-write) is cut off so the
/// file stays valid JSON lines; any other malformed line is an error naming it.
fn existing_keys(path: &Path) -> Result<HashSet<String>, Box<dyn std::error::Error>> {
    let mut keys = HashSet::new();
    let Ok(file) = std::fs::File::open(path) else { return Ok(keys) };
    let lines: Vec<String> = std::io::BufReader::new(file).lines().collect::<Result<_, _>>()?;
    let mut good_bytes = 0u64;
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                let key = v["key"].as_str().ok_or_else(|| format!("{}:{}: no \"key\"", path.display(), i + 1))?;
                keys.insert(key.to_string());
                good_bytes += line.len() as u64 + 1;
            }
            Err(_) if i + 1 == lines.len() => {
                std::fs::OpenOptions::new().write(true).open(path)?.set_len(good_bytes)?;
            }
            Err(e) => return Err(format!("{}:{}: {e}", path.display(), i + 1).into()),
        }
    }
    Ok(keys)
}

/// What one (possibly resumed) alignment pass did.
pub struct AlignOutcome {
    pub aligned: usize,
    pub already: usize,
    pub fallbacks: Vec<String>,
    pub seconds: f64,
}

impl AlignOutcome {
    pub fn images_per_sec(&self) -> f64 {
        self.aligned as f64 / self.seconds.max(1e-9)
    }
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
    super::create_parent(out)?;
    let done = existing_keys(out)?;
    let todo: Vec<String> = keys.iter().filter(|k| !done.contains(*k)).cloned().collect();
    let already = keys.len() - todo.len();
    if todo.is_empty() {
        return Ok(AlignOutcome { aligned: 0, already, fallbacks: vec![], seconds: 0.0 });
    }
    let models_dir = models_dir.map(Path::to_path_buf).unwrap_or_else(facebench_model::default_models_dir);
    let detector = Detector::load(&models_dir, &facebench_model::device_from_name(device)?)?;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
    let pb = progress_bar(keys.len(), "align");
    pb.set_position(already as u64);
    let t0 = std::time::Instant::now();
    let mut write_err = None;
    let summary = align_images_with(root, &todo, &detector, decoder, |n| pb.inc(n as u64), |rec| {
        let line = serde_json::to_string(&rec).expect("serialisable");
        if let Err(e) = writeln!(file, "{line}") {
            write_err.get_or_insert(e);
        }
    })?;
    if let Some(e) = write_err {
        return Err(format!("{}: {e}", out.display()).into());
    }
    file.sync_all()?;
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
        o.images_per_sec(),
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
