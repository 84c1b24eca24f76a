//! `facebench embed`: images to an embedding store, resumable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use facebench_core::store::AppendStore;
use facebench_extract::{extract, read_alignments, store_meta, Job, Recipe, Summary};
use facebench_image::{Crop, FaceAnnotation, Preprocess, ResizeMode};

use super::keys::{progress_bar, ImageSet};
use super::run_args::ModelRunArgs;
use super::CmdResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelName {
    /// face-api's dlib ResNet (150x150 RGB, 128-D).
    FaceapiResnet,
    /// MobileFace (112x112 RGB, 256-D).
    Mobileface,
}

impl ModelName {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelName::FaceapiResnet => "faceapi-resnet",
            ModelName::Mobileface => "mobileface",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Fbs,
    Devkit,
}

#[derive(Args)]
pub struct EmbedArgs {
    #[arg(long, value_enum, default_value = "faceapi-resnet")]
    pub model: ModelName,
    #[command(flatten)]
    pub images: ImageSet,
    /// Output store (.fbs, appendable: a rerun skips keys already in it). With --flip,
    /// mirror features go to <out stem>.flip.fbs. With --format devkit: a folder.
    #[arg(long)]
    pub out: PathBuf,
    /// `fbs` (the store), or `devkit`: also one MegaFace devkit feature file per image,
    /// `<out>/<key><ending>`, L2-normalised (the devkit ranks by L2 distance); the
    /// resumable store is kept as `<out>/embeddings.fbs`.
    #[arg(long, value_enum, default_value = "fbs")]
    pub format: OutputFormat,
    /// Suffix of devkit feature files, e.g. `_facebench.bin`.
    #[arg(long, default_value = "_facebench.bin")]
    pub ending: String,
    /// How a photo becomes model input: `none` (the image is already the crop; resized if
    /// needed), `centre:S` (centre square of side S, then resized), or `landmarks` (the
    /// model's own alignment from an --alignments cache: dlib box for faceapi-resnet,
    /// ArcFace 5-point warp for 112x112 models).
    #[arg(long, default_value = "landmarks")]
    pub align: String,
    /// Alignment cache written by `facebench align` (needed by --align landmarks).
    #[arg(long)]
    pub alignments: Option<PathBuf>,
    /// Also embed the horizontal mirror of every input.
    #[arg(long)]
    pub flip: bool,
    #[command(flatten)]
    pub run: ModelRunArgs,
    /// Count and list unreadable images (in <out>.skipped.json) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
}

/// The preprocessing an `--align` value means for a model.
pub fn recipe(model: ModelName, align: &str) -> Result<Recipe, Box<dyn std::error::Error>> {
    let size = match model {
        ModelName::FaceapiResnet => 150,
        ModelName::Mobileface => 112,
    };
    let plain = |crop| Preprocess { width: size, height: size, crop, resize: ResizeMode::Area, round: false };
    Ok(match align {
        "none" => Recipe { preprocess: plain(Crop::None), uses_alignment: false },
        "landmarks" => Recipe {
            preprocess: match model {
                ModelName::FaceapiResnet => Preprocess::faceapi_resnet(),
                ModelName::Mobileface => Preprocess::arcface(112),
            },
            uses_alignment: true,
        },
        a => match a.strip_prefix("centre:").or_else(|| a.strip_prefix("center:")) {
            Some(s) => {
                let side: u32 = s.parse().map_err(|_| format!("--align {a}: side must be a whole number"))?;
                Recipe { preprocess: plain(Crop::Centre { side: Some(side) }), uses_alignment: false }
            }
            None => return Err(format!("--align {a}: expected none, centre:S or landmarks").into()),
        },
    })
}

/// `<stem>.flip.fbs` beside the store.
pub fn flip_path(out: &Path) -> PathBuf {
    out.with_extension("flip.fbs")
}

/// Embeds every key not yet in the store at `out` (and its mirror store with `job.flip`).
pub fn embed_cached(
    job: &Job,
    keys: &[String],
    faces: &HashMap<String, FaceAnnotation>,
    out: &Path,
) -> Result<Summary, Box<dyn std::error::Error>> {
    super::create_parent(out)?;
    let mut store = AppendStore::create_or_open(out, &store_meta(job, false))?;
    let mut flip_store =
        if job.flip { Some(AppendStore::create_or_open(&flip_path(out), &store_meta(job, true))?) } else { None };
    let pb = progress_bar(keys.len(), &format!("embed {}", job.model.name()));
    let summary = extract(job, keys, faces, &mut store, flip_store.as_mut(), &|done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    if !summary.bad.is_empty() {
        let p = out.with_extension("skipped.json");
        super::write_json(&p, &summary.bad)?;
        eprintln!("skipped {} unreadable image(s), listed in {}", summary.bad.len(), p.display());
    }
    Ok(summary)
}

pub fn run(a: EmbedArgs, data_root: &Path) -> CmdResult {
    let (root, keys) = a.images.resolve(data_root)?;
    let model = a.run.load(a.model.as_str())?;
    let recipe = recipe(a.model, &a.align)?;
    let faces = match (&a.alignments, recipe.uses_alignment) {
        (Some(p), true) => read_alignments(p)?.0,
        (None, true) => return Err("--align landmarks needs --alignments FILE.jsonl (from `facebench align`)".into()),
        _ => Default::default(),
    };
    let job = Job {
        model: model.as_ref(),
        recipe: &recipe,
        root: &root,
        batch: a.run.batch,
        flip: a.flip,
        skip_bad: a.skip_bad,
    };
    let store_path = match a.format {
        OutputFormat::Fbs => a.out.clone(),
        OutputFormat::Devkit => a.out.join("embeddings.fbs"),
    };
    let summary = embed_cached(&job, &keys, &faces, &store_path)?;
    if a.format == OutputFormat::Devkit {
        let mut e = AppendStore::read(&store_path)?.1;
        e.l2_normalize()?;
        for (i, key) in e.keys().iter().enumerate() {
            facebench_core::store::write_devkit_feature(&a.out.join(format!("{key}{}", a.ending)), e.row(i))?;
        }
        println!("wrote {} devkit feature files <out>/<key>{}", e.len(), a.ending);
    }
    println!(
        "{}: {} embedded ({:.1} images/s{}), {} already stored, in {}",
        a.model.as_str(),
        summary.computed,
        summary.images_per_sec() * if a.flip { 2.0 } else { 1.0 },
        if a.flip { ", mirrors included" } else { "" },
        summary.already_stored,
        a.out.display()
    );
    Ok(())
}
