//! Every command's flags, and their conversion to the library's request types: the one
//! place where command-line words become library objects.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use facebench_image::Decoder;
use facebench_pairs::Rule;
use facebench_pipeline::bin::{BinEval, PackRequest};
use facebench_pipeline::cache::CacheLayout;
use facebench_pipeline::embed::EmbedRequest;
use facebench_pipeline::images::{ImageSet, ProtocolImages};
use facebench_pipeline::lmcl::{AblationRequest, Common, ToyRequest};
use facebench_pipeline::megaface::{Features, MegafaceRequest};
use facebench_pipeline::pairs::StoreEval;
use facebench_pipeline::train::{TrainData, TrainRequest};
use facebench_pipeline::ytf::YtfRequest;
use facebench_pipeline::Workspace;
use facebench_ytf::{Layout, Mode};

/// `--model` where a command does not say otherwise.
const DEFAULT_MODEL: &str = "faceapi-resnet";

/// How a face model runs: batch size, device, threads, and where its weights are.
#[derive(Args, Debug, Clone)]
pub struct ModelRunArgs {
    /// Images per forward pass [default: 32].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65536))]
    batch: Option<u64>,
    /// cpu, or cuda[:N] (needs a build with the `cuda` feature) [default: cpu].
    #[arg(long)]
    device: Option<String>,
    /// Worker threads for decoding, the CPU kernels and scoring [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    threads: Option<u64>,
    /// Weights folder filled by `make models` [env FACEBENCH_MODELS, default <repo>/models].
    #[arg(long, env = "FACEBENCH_MODELS")]
    models_dir: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArg,
}

/// `--registry FILE`: where `--model` names are looked up.
#[derive(Args, Debug, Clone)]
pub struct RegistryArg {
    /// Model registry [env FACEBENCH_MODEL_REGISTRY, default <repo>/protocols/models.toml].
    #[arg(long = "registry", value_name = "FILE", env = "FACEBENCH_MODEL_REGISTRY")]
    path: Option<PathBuf>,
}

impl RegistryArg {
    pub fn path(&self) -> PathBuf {
        self.path.clone().unwrap_or_else(facebench_model::Registry::default_path)
    }
}

impl ModelRunArgs {
    pub fn workspace(&self, data_root: &Path, cache: &Path) -> Workspace {
        Workspace {
            data_root: data_root.to_path_buf(),
            cache: CacheLayout::new(cache),
            models_dir: self.models_dir.clone().unwrap_or_else(facebench_model::default_models_dir),
            registry: self.registry.path(),
            device: self.device.clone().unwrap_or_else(|| "cpu".into()),
            batch: self.batch.unwrap_or(32) as usize,
            threads: self.threads.unwrap_or(0) as usize,
        }
    }

    /// The flags given that only matter when a model runs.
    fn model_flags_given(&self) -> Vec<&'static str> {
        [("--batch", self.batch.is_some()), ("--device", self.device.is_some())]
            .into_iter()
            .filter_map(|(f, given)| given.then_some(f))
            .collect()
    }
}

/// `--embeddings STORE` and its companions: a protocol scored from precomputed features.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Embedding store (.npy with .keys beside it, .csv, .safetensors or .fbs), keys
    /// relative to the protocol's image root (`Name/Name_0001.jpg`). Used as given: already
    /// fused or concatenated by the caller unless --flip-store is set.
    #[arg(long)]
    embeddings: Option<PathBuf>,
    /// Keys file for a .npy store (one key per line), instead of `<store>.keys`.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Store of mirror-image features with the same keys; each rule then fuses them
    /// its own way (sum-then-normalise, or concatenation for sphereface/facenet). Two .fbs
    /// stores must agree on model, weights and preprocessing, the mirror flag apart.
    #[arg(long)]
    flip_store: Option<PathBuf>,
    /// Accept a --flip-store whose provenance cannot be checked (.npy, .csv, .safetensors
    /// stores record no model or preprocessing).
    #[arg(long)]
    unchecked_flip: bool,
    /// A pairs file with the protocol's format and fold structure, instead of the protocol's
    /// own [default: the protocol's, e.g. <data-root>/lfw/pairs.txt].
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Score the protocol's [tune] split instead: LFW View 1, threshold chosen on
    /// pairsDevTrain.txt and accuracy on pairsDevTest.txt.
    #[arg(long)]
    tune_split: bool,
    /// Name shown in the report for --embeddings [default: the embeddings file name].
    #[arg(long)]
    label: Option<String>,
}

impl StoreArgs {
    /// The store evaluation, refusing flags that only matter when a model runs.
    fn store_eval(
        &self,
        protocol_file: &Path,
        rules: Option<Vec<Rule>>,
        default_rules: Option<Vec<Rule>>,
        unused: Vec<&'static str>,
        out: Option<&Path>,
        rules_flag: &'static str,
    ) -> Result<Option<StoreEval>, String> {
        let Some(embeddings) = &self.embeddings else {
            // clap's `requires` is not checked for arguments in a group, so say it here.
            let store_only = [
                ("--keys", self.keys.is_some()),
                ("--flip-store", self.flip_store.is_some()),
                ("--unchecked-flip", self.unchecked_flip),
                ("--pairs", self.pairs.is_some()),
                ("--tune-split", self.tune_split),
                ("--label", self.label.is_some()),
                (rules_flag, rules.is_some()),
            ];
            let given: Vec<&str> = store_only.iter().filter(|(_, g)| *g).map(|(f, _)| *f).collect();
            if !given.is_empty() {
                return Err(format!(
                    "{} {} only to --embeddings; a --model run takes its pairs and rules from the protocol file",
                    given.join(", "),
                    if given.len() == 1 { "applies" } else { "apply" }
                ));
            }
            return Ok(None);
        };
        if !unused.is_empty() {
            return Err(format!("{} not used with --embeddings (no model runs)", unused.join(", ")));
        }
        if self.unchecked_flip && self.flip_store.is_none() {
            return Err("--unchecked-flip applies only to a --flip-store".into());
        }
        Ok(Some(StoreEval {
            protocol_file: protocol_file.to_path_buf(),
            embeddings: embeddings.clone(),
            keys: self.keys.clone(),
            flip_store: self.flip_store.clone(),
            pairs: self.pairs.clone(),
            tune_split: self.tune_split,
            rules: rules.or(default_rules),
            label: self.label.clone(),
            unchecked_flip: self.unchecked_flip,
            out: out.ok_or("--embeddings needs --out DIR")?.to_path_buf(),
        }))
    }
}

/// The image set of a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProtocolArg {
    /// LFW View 2: the 7,701 images named by pairs.txt.
    Lfw,
    /// LFW View 1: the images of pairsDevTrain.txt and pairsDevTest.txt.
    LfwView1,
    /// YouTube Faces: every frame of the videos named by <data-root>/ytf/splits.txt that exist
    /// under --root (default <data-root>/ytf/frame_images_DB, else frame_images_DB_subset),
    /// layout <Name>/<video>/<video>.<frame>.jpg; prints how many of the named videos it found.
    Ytf,
    /// MegaFace Challenge 1: the FaceScrub probes and the distractors of every devkit list
    /// in <data-root>/megaface/templatelists (images under --root).
    Megaface,
}

/// `--list FILE | --protocol NAME`, with the image root.
#[derive(Args, Debug, Clone)]
pub struct ImageSetArgs {
    /// Image root; keys are paths relative to it [default for LFW: <data-root>/lfw/lfw-deepfunneled].
    #[arg(long)]
    root: Option<PathBuf>,
    /// File of image keys, one path (relative to --root) per line.
    #[arg(long, conflicts_with = "protocol")]
    list: Option<PathBuf>,
    /// A protocol's images instead of a list.
    #[arg(long)]
    protocol: Option<ProtocolArg>,
}

impl ImageSetArgs {
    pub fn image_set(&self) -> ImageSet {
        ImageSet {
            root: self.root.clone(),
            list: self.list.clone(),
            protocol: self.protocol.map(|p| match p {
                ProtocolArg::Lfw => ProtocolImages::Lfw,
                ProtocolArg::LfwView1 => ProtocolImages::LfwView1,
                ProtocolArg::Ytf => ProtocolImages::Ytf,
                ProtocolArg::Megaface => ProtocolImages::Megaface,
            }),
        }
    }
}

#[derive(Args)]
pub struct AlignArgs {
    #[command(flatten)]
    pub images: ImageSetArgs,
    /// Output cache, one JSON line per image; a rerun appends only missing keys.
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, or cuda[:N] (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Weights folder filled by `make models` [env FACEBENCH_MODELS, default <repo>/models].
    #[arg(long, env = "FACEBENCH_MODELS")]
    models_dir: Option<PathBuf>,
    /// Worker threads [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    threads: Option<u64>,
    /// JPEG decoder: image (default), or jpeg-js to decode as face-api's reference did (boxes
    /// and landmarks then agree with face-api's to 1e-4 px instead of ~1 px).
    #[arg(long, default_value = "image")]
    pub decoder: Decoder,
}

impl AlignArgs {
    pub fn workspace(&self, data_root: &Path) -> Workspace {
        let run = ModelRunArgs {
            batch: None,
            device: Some(self.device.clone()),
            threads: self.threads,
            models_dir: self.models_dir.clone(),
            registry: RegistryArg { path: None },
        };
        run.workspace(data_root, Path::new("."))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Fbs,
    Devkit,
}

#[derive(Args)]
pub struct EmbedArgs {
    /// A name from protocols/models.toml (faceapi-resnet, mobileface, ...; see `facebench models`),
    /// or a checkpoint file written by `facebench train --images`.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    #[command(flatten)]
    images: ImageSetArgs,
    /// Output: a store `X.fbs` (appendable: a rerun skips keys already in it; with --flip the
    /// mirrors go to `X.flip.fbs`), or `X.npy` (+ `X.keys`), `X.csv` or `X.safetensors`, written
    /// when the run ends from the resumable store `X.npy.fbs` etc. beside it (with --flip
    /// also `X.flip.npy` ...). With --format devkit: a folder.
    #[arg(long)]
    out: PathBuf,
    /// `fbs` (the store), or `devkit`: also one MegaFace devkit feature file per image,
    /// `<out>/<key><ending>`, L2-normalised (the devkit ranks by L2 distance); the
    /// resumable store is kept as `<out>/embeddings.fbs`.
    #[arg(long, value_enum, default_value = "fbs")]
    format: OutputFormat,
    /// With --format devkit: suffix of the feature files [default: _facebench.bin].
    #[arg(long)]
    ending: Option<String>,
    /// How a photo becomes model input: `none` (the image is already the crop; resized if
    /// needed), `centre:S` (centre square of side S, then resized), or `landmarks` (the
    /// model's own alignment from an --alignments cache: dlib box for faceapi-resnet,
    /// ArcFace 5-point warp for 112x112 models).
    #[arg(long, default_value = "landmarks")]
    align: String,
    /// Alignment cache written by `facebench align` (needed by --align landmarks, refused
    /// where the model input is not aligned from landmarks).
    #[arg(long)]
    alignments: Option<PathBuf>,
    /// Also embed the horizontal mirror of every input.
    #[arg(long)]
    flip: bool,
    #[command(flatten)]
    pub run: ModelRunArgs,
    /// Count and list unreadable images instead of stopping at the first: every such run
    /// rewrites `<out>.skipped.json` (`[]` when none was skipped).
    #[arg(long)]
    skip_bad: bool,
}

impl EmbedArgs {
    /// The request, refusing `--ending` without `--format devkit` (clap cannot tell an
    /// explicit `--format fbs` from its default).
    pub fn request(&self) -> Result<EmbedRequest, String> {
        let devkit_ending = match (self.format, &self.ending) {
            (OutputFormat::Devkit, ending) => Some(ending.clone().unwrap_or_else(|| "_facebench.bin".into())),
            (OutputFormat::Fbs, Some(_)) => return Err("--ending only applies to --format devkit".into()),
            (OutputFormat::Fbs, None) => None,
        };
        Ok(EmbedRequest {
            model: self.model.clone(),
            images: self.images.image_set(),
            out: self.out.clone(),
            devkit_ending,
            align: self.align.clone(),
            alignments: self.alignments.clone(),
            flip: self.flip,
            skip_bad: self.skip_bad,
        })
    }
}

/// The LFW cache and how models run: shared by everything built on LFW's images.
#[derive(Args, Debug, Clone)]
pub struct LfwCacheArgs {
    /// Cache of alignments and embeddings, reused by later runs [default: cache/lfw].
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    run: ModelRunArgs,
}

impl LfwCacheArgs {
    pub fn workspace(&self, data_root: &Path) -> Workspace {
        self.run.workspace(data_root, self.cache.as_deref().unwrap_or(Path::new("cache/lfw")))
    }

    fn model_flags_given(&self) -> Vec<&'static str> {
        let mut v = self.run.model_flags_given();
        if self.cache.is_some() {
            v.push("--cache");
        }
        v
    }
}

/// The LFW protocol file with the LFW cache and run options: `eval lfw`, `tune lfw`.
#[derive(Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Protocol file declaring files, checksums, metric settings and preprocessing variants
    /// [default: lfw.toml of the protocols folder: env FACEBENCH_PROTOCOLS, else <repo>/protocols].
    #[arg(long)]
    protocol_file: Option<PathBuf>,
    #[command(flatten)]
    lfw: LfwCacheArgs,
}

impl PipelineArgs {
    pub fn protocol_file(&self) -> PathBuf {
        self.protocol_file.clone().unwrap_or_else(|| facebench_pairs::published::default_dir().join("lfw.toml"))
    }

    pub fn workspace(&self, data_root: &Path) -> Workspace {
        self.lfw.workspace(data_root)
    }

    fn model_flags_given(&self) -> Vec<&'static str> {
        self.lfw.model_flags_given()
    }
}

#[derive(Subcommand)]
pub enum TuneCommand {
    /// Sweep protocols/lfw.toml's preprocessing variants on View 1 and write the choice.
    Lfw(TuneLfwArgs),
}

#[derive(Args)]
pub struct TuneLfwArgs {
    /// A name from protocols/models.toml (faceapi-resnet, mobileface, ...; see `facebench models`),
    /// or a checkpoint file written by `facebench train --images`.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// LFW verification (10-fold accuracy, ROC, AUC, EER, TAR@FAR) from an embedding store.
    Lfw(LfwArgs),
    /// MegaFace Challenge 1: CMC and TAR@FAR for every distractor size in one streaming pass.
    Megaface(MegafaceArgs),
    /// MegaFace's protocol on a real-image stand-in from LFW (labelled LFW-as-MegaFace):
    /// probes = identities with >= 10 images, distractors = all other identities' images.
    MegafaceLfw(LfwStandInArgs),
    /// An InsightFace .bin verification pack (lfw.bin, cfp_fp.bin, agedb_30.bin, ...):
    /// decode, embed (image + mirror), 10 contiguous folds, scored like LFW.
    Bin(EvalBinArgs),
    /// Any pairs protocol file (`lfw` or `list` format: LFW, CALFW, CPLFW, ... from images):
    /// align, embed, choose a variant on its [tune] split (or the first, or --variant), score,
    /// report titled by the protocol. A `bin`-format file is evaluated by `eval bin`.
    Pairs(PairsArgs),
    /// YouTube Faces: 5000 video pairs of splits.txt, frames aligned and embedded (cached),
    /// scored per video (mean-feature, mean-pair, min-pair, max-pair), 10-fold over the splits.
    Ytf(YtfArgs),
}

/// Either `--model NAME` (the whole protocol from images: align, embed, tune on View 1,
/// score View 2, report) or `--embeddings FILE` (score a precomputed store).
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["model", "embeddings"])))]
pub struct LfwArgs {
    /// Run the protocol from images with this model: a name from protocols/models.toml
    /// (faceapi-resnet, mobileface, ...; see `facebench models`), or a checkpoint file
    /// written by `facebench train --images`.
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Accuracy rule(s) for --embeddings, comma-separated: insightface, sphereface, facenet,
    /// facexzoo, exact [default: insightface; a --model run reports the protocol file's rules].
    #[arg(long, value_delimiter = ',')]
    protocol: Option<Vec<Rule>>,
    /// Output folder: results.json, pairs_scores.csv, report.md, report.html, roc.png/svg,
    /// scores.png/svg [default with --model: reports/lfw/<model>].
    #[arg(long)]
    out: Option<PathBuf>,
}

impl LfwArgs {
    /// The report folder of a model run.
    pub fn model_out(&self, model: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from("reports/lfw").join(model_folder(model)))
    }

    /// `Some` with --embeddings.
    pub fn store_eval(&self) -> Result<Option<StoreEval>, String> {
        self.store.store_eval(
            &self.pipeline.protocol_file(),
            self.protocol.clone(),
            Some(vec![Rule::InsightFace]),
            self.pipeline.model_flags_given(),
            self.out.as_deref(),
            "--protocol",
        )
    }
}

/// A report folder name for `--model`: the name, or a checkpoint path's file stem.
fn model_folder(model: &str) -> String {
    Path::new(model).file_stem().map_or(model.to_string(), |s| s.to_string_lossy().into_owned())
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").args(["model", "embeddings"])))]
pub struct PairsArgs {
    /// The protocol file (protocols/lfw.toml, protocols/calfw_images.toml, ...).
    #[arg(long)]
    pub protocol_file: PathBuf,
    /// A name from protocols/models.toml (faceapi-resnet, mobileface, ...; see `facebench models`),
    /// or a checkpoint file written by `facebench train --images` [default: faceapi-resnet
    /// unless --embeddings is given].
    #[arg(long)]
    model: Option<String>,
    /// Use this variant of the protocol file instead of choosing one on its [tune] split.
    #[arg(long, conflicts_with = "embeddings")]
    pub variant: Option<String>,
    /// Cache of alignments and embeddings [default: cache/<protocol file stem>].
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    run: ModelRunArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Accuracy rule(s) for --embeddings, comma-separated [default: the protocol file's].
    #[arg(long, value_delimiter = ',')]
    rules: Option<Vec<Rule>>,
    /// Output folder [default: reports/<protocol file stem>/<model>; --embeddings needs it].
    #[arg(long)]
    out: Option<PathBuf>,
}

impl PairsArgs {
    fn stem(&self) -> String {
        self.protocol_file.file_stem().map_or("pairs".into(), |s| s.to_string_lossy().into_owned())
    }

    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }

    pub fn workspace(&self, data_root: &Path) -> Workspace {
        let cache = self.cache.clone().unwrap_or_else(|| Path::new("cache").join(self.stem()));
        self.run.workspace(data_root, &cache)
    }

    pub fn out(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| Path::new("reports").join(self.stem()).join(model_folder(self.model())))
    }

    /// `Some` with --embeddings.
    pub fn store_eval(&self) -> Result<Option<StoreEval>, String> {
        let mut unused = self.run.model_flags_given();
        if self.cache.is_some() {
            unused.push("--cache");
        }
        self.store.store_eval(&self.protocol_file, self.rules.clone(), None, unused, self.out.as_deref(), "--rules")
    }
}

#[derive(Args)]
pub struct MegafaceArgs {
    /// FaceScrub probe list [default: <data-root>/megaface/templatelists/facescrub_features_list.json].
    #[arg(long)]
    probe: Option<PathBuf>,
    /// Folder of probe feature files (`<probe-root>/<list path><ending>`).
    #[arg(long, required_unless_present = "probe_store")]
    probe_root: Option<PathBuf>,
    /// A packed store of probe features instead (keys = the list's paths).
    #[arg(long, conflicts_with = "probe_root")]
    probe_store: Option<PathBuf>,
    /// Folder of the distractor lists `megaface_features_list.json_<size>_<set>`
    /// [default: <data-root>/megaface/templatelists].
    #[arg(long)]
    distractors: Option<PathBuf>,
    /// Folder of distractor feature files (`<distractor-root>/<list path><ending>`).
    #[arg(long, required_unless_present = "distractor_store")]
    distractor_root: Option<PathBuf>,
    /// A packed store of distractor features instead (keys = the lists' paths).
    #[arg(long, conflicts_with = "distractor_root")]
    distractor_store: Option<PathBuf>,
    /// Feature file suffix, e.g. `_facebench.bin`.
    #[arg(long, default_value = "")]
    ending: String,
    /// Distractor set sizes, all scored in one pass [default: protocols/megaface.toml's,
    /// 10,100,1000,10000,100000,1000000].
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Distractor list set number, the `<set>` of the list names [default: megaface.toml's, 1].
    #[arg(long)]
    set: Option<u32>,
    /// Apply InsightFace's noise lists (probe noise -> identity mean; noisy distractors never rank).
    #[arg(long)]
    clean: bool,
    /// CMC ranks 1..R.
    #[arg(long, default_value_t = 10)]
    max_rank: usize,
    /// Scoring arithmetic: f32 (exact), bf16 (AVX-512 BF16) or int8 (AVX-512 VNNI,
    /// per-vector scale); at 1M distractors bf16 took about 1.7-1.8x and int8 2.4-2.8x less
    /// CPU time than f32. bf16 and int8 are approximate and labelled so in every output.
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16", "int8"])]
    scoring: String,
    /// Same as `--scoring bf16`.
    #[arg(long, conflicts_with = "scoring")]
    bf16: bool,
    /// Algorithm name in the devkit file names.
    #[arg(long, default_value = "facebench")]
    alg: String,
    /// Output folder: devkit cmc_*.json files, results.json, cmc.png/svg, roc.png/svg.
    #[arg(long)]
    out: PathBuf,
}

/// `--x-root DIR` or `--x-store FILE` (clap requires one).
fn features(root: &Option<PathBuf>, store: &Option<PathBuf>) -> Features {
    match (root, store) {
        (Some(r), _) => Features::Devkit(r.clone()),
        (None, Some(s)) => Features::Store(s.clone()),
        (None, None) => unreachable!("clap requires one"),
    }
}

impl MegafaceArgs {
    pub fn request(&self) -> Result<MegafaceRequest, String> {
        if !self.ending.is_empty() && self.probe_root.is_none() && self.distractor_root.is_none() {
            return Err("--ending names devkit feature files: it needs --probe-root or --distractor-root".into());
        }
        Ok(MegafaceRequest {
            probe: self.probe.clone(),
            probe_features: features(&self.probe_root, &self.probe_store),
            distractors: self.distractors.clone(),
            distractor_features: features(&self.distractor_root, &self.distractor_store),
            ending: self.ending.clone(),
            sizes: self.sizes.clone(),
            set: self.set,
            clean: self.clean,
            max_rank: self.max_rank,
            scoring: if self.bf16 { facebench_megaface::Scoring::Bf16 } else { self.scoring.parse()? },
            alg: self.alg.clone(),
            out: self.out.clone(),
        })
    }
}

#[derive(Args)]
pub struct LfwStandInArgs {
    /// A name from protocols/models.toml (faceapi-resnet, mobileface, ...; see `facebench models`),
    /// or a checkpoint file written by `facebench train --images`.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Identities with at least this many images are the probes; all images of the
    /// other identities are the distractors.
    #[arg(long, default_value_t = 10)]
    pub min_images: usize,
    #[command(flatten)]
    pub lfw: LfwCacheArgs,
    /// Output folder [default: reports/megaface/<model>].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct EvalBinArgs {
    /// The pack (a pickle of (images, issame), protocols 0-5).
    #[arg(long)]
    bin: PathBuf,
    /// A name from protocols/models.toml (faceapi-resnet, mobileface, ...; see `facebench models`),
    /// or a checkpoint file written by `facebench train --images`.
    #[arg(long, default_value = "mobileface")]
    model: String,
    /// The pack's protocol file (protocols/lfw_bin.toml, cfp_fp.toml, agedb_30.toml, ...):
    /// checks the pair count and image size, and gives the rules and published rows.
    #[arg(long)]
    protocol_file: Option<PathBuf>,
    /// Accuracy rule(s), comma-separated [default: the protocol file's, else insightface].
    #[arg(long, value_delimiter = ',')]
    rules: Option<Vec<Rule>>,
    /// `none`: the images are the crops (packs hold aligned 112x112 crops), resized to the
    /// model input if their size differs; `centre:S`: centre square of side S first.
    #[arg(long, default_value = "none")]
    align: String,
    /// Only the image's own features (no mirror-image fusion).
    #[arg(long)]
    no_flip: bool,
    #[command(flatten)]
    pub run: ModelRunArgs,
    /// Output folder: results.json, pairs_scores.csv, report.md, report.html, roc.png/svg,
    /// scores.png/svg [default: reports/bin/<pack name>/<model>].
    #[arg(long)]
    out: Option<PathBuf>,
}

impl EvalBinArgs {
    pub fn request(&self) -> BinEval {
        BinEval {
            bin: self.bin.clone(),
            model: self.model.clone(),
            protocol_file: self.protocol_file.clone(),
            rules: self.rules.clone(),
            align: self.align.clone(),
            flip: !self.no_flip,
            out: self.out.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LayoutArg {
    /// aligned_images_DB/<Name>/<vid>/aligned_detect_<vid>.<frame>.jpg
    Aligned,
    /// frame_images_DB/<Name>/<vid>/<vid>.<frame>.jpg with labeled_faces.txt boxes
    Frames,
}

#[derive(Args)]
pub struct YtfArgs {
    /// Model that embeds the frames: a name from protocols/models.toml (faceapi-resnet,
    /// mobileface, ...), or a `facebench train --images` checkpoint [default: faceapi-resnet
    /// unless --embeddings is given].
    #[arg(long)]
    model: Option<String>,
    /// A store of frame features instead of a model (.npy/.csv/.safetensors/.fbs), keys =
    /// frame paths relative to the layout root (`Alek_Wek/4/4.74.jpg`), used as given.
    #[arg(long, conflicts_with = "model")]
    embeddings: Option<PathBuf>,
    /// Keys file for a .npy --embeddings store.
    #[arg(long, requires = "embeddings")]
    keys: Option<PathBuf>,
    /// Frame layout [default: aligned if <data-root>/ytf/aligned_images_DB exists, else frames;
    /// with --root, what the folder's name says].
    #[arg(long, value_enum)]
    layout: Option<LayoutArg>,
    /// Folder of the videos [default: <data-root>/ytf/aligned_images_DB, or frame_images_DB,
    /// else frame_images_DB_subset].
    #[arg(long)]
    root: Option<PathBuf>,
    /// The pairs file [default: <data-root>/ytf/splits.txt].
    #[arg(long)]
    splits: Option<PathBuf>,
    /// Evaluate the pairs whose two videos exist instead of stopping at the first missing
    /// video; the report's first line then says how many of the 5000 pairs were evaluated.
    #[arg(long)]
    allow_missing: bool,
    /// Video scoring mode(s), comma-separated; the first is the headline:
    /// mean-feature, mean-pair, min-pair, max-pair.
    #[arg(long, value_delimiter = ',', default_value = "mean-feature,mean-pair,min-pair,max-pair")]
    mode: Vec<Mode>,
    /// Accuracy rule(s): insightface, sphereface, facenet, facexzoo, exact.
    #[arg(long, value_delimiter = ',', default_value = "insightface,sphereface")]
    protocol: Vec<Rule>,
    /// Use at most the first N frames of each video (after --stride).
    #[arg(long)]
    max_frames: Option<usize>,
    /// Use every K-th frame (frame-number order, from the first).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    stride: u64,
    /// How a frame becomes model input: `landmarks` (detector + 68 landmarks; for full frames
    /// the labelled box is the search region), `none` or `centre:S` (aligned layout only: the
    /// aligned crop as it is, or its centre square).
    #[arg(long, default_value = "landmarks", conflicts_with = "embeddings")]
    align: String,
    /// Search region = the labelled box grown by MARGIN x its size on every side.
    #[arg(long, default_value_t = facebench_ytf::DEFAULT_MARGIN, conflicts_with = "embeddings")]
    margin: f64,
    /// The detector sees the search region on a black canvas CONTEXT x its size.
    #[arg(long, default_value_t = facebench_ytf::DEFAULT_CONTEXT, conflicts_with = "embeddings")]
    context: f64,
    /// Also embed mirrored frames; frame feature = normalize(orig + flip).
    #[arg(long, conflicts_with = "embeddings")]
    flip: bool,
    /// Cache of alignments and embeddings, reused by later runs.
    #[arg(long, default_value = "cache/ytf", conflicts_with = "embeddings")]
    pub cache: PathBuf,
    #[command(flatten)]
    pub run: ModelRunArgs,
    /// Output folder: results.json, pairs_scores.csv, report.md, report.html, roc.png/svg,
    /// scores.png/svg [default: reports/ytf/<model>].
    #[arg(long)]
    out: Option<PathBuf>,
}

impl YtfArgs {
    pub fn request(&self) -> Result<YtfRequest, String> {
        let unused = self.run.model_flags_given();
        if self.embeddings.is_some() && !unused.is_empty() {
            return Err(format!("{} not used with --embeddings (no model runs)", unused.join(", ")));
        }
        Ok(YtfRequest {
            model: self.model.clone().or_else(|| self.embeddings.is_none().then(|| DEFAULT_MODEL.to_string())),
            embeddings: self.embeddings.clone(),
            keys: self.keys.clone(),
            layout: self.layout.map(|l| match l {
                LayoutArg::Aligned => Layout::Aligned,
                LayoutArg::Frames => Layout::Frames,
            }),
            root: self.root.clone(),
            splits: self.splits.clone(),
            allow_missing: self.allow_missing,
            modes: self.mode.clone(),
            rules: self.protocol.clone(),
            max_frames: self.max_frames,
            stride: self.stride as usize,
            align: self.align.clone(),
            margin: self.margin,
            context: self.context,
            flip: self.flip,
            out: self.out.clone(),
        })
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Loss: softmax | normface:s=30 | cosface:s=64,m=0.35 (alias lmcl) | sphereface:m=4[,lambda=5]
    /// | arcface:s=64,m=0.5[,fallback=insightface|easy|none] | combined:s=,m1=,m2=,m3=
    #[arg(long, default_value = "cosface:s=30,m=0.35")]
    loss: String,
    /// Train a head on this store's frozen embeddings; the label is the key's first path
    /// component (`Name/Name_0001.jpg` -> `Name`).
    #[arg(long, required_unless_present = "images", conflicts_with = "images")]
    embeddings: Option<PathBuf>,
    /// Train a backbone on an image folder `<root>/<identity>/<image>` instead (CPU: small nets).
    #[arg(long)]
    images: Option<PathBuf>,
    /// With --images: keep only the N identities with the most images.
    #[arg(long, conflicts_with = "embeddings")]
    classes: Option<usize>,
    /// With --images: use at most the first N images of each identity.
    #[arg(long, conflicts_with = "embeddings")]
    max_per_class: Option<usize>,
    /// With --embeddings: width of the head's output features [default: 128].
    #[arg(long, conflicts_with = "images")]
    out_dim: Option<usize>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Base learning rate (SGD, momentum 0.9, weight decay 5e-4, cosine decay).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, or cuda[:N] (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output folder: model.safetensors and steps.csv (epoch, step, loss, accuracy, lr).
    #[arg(long)]
    out: PathBuf,
}

impl TrainArgs {
    pub fn request(&self) -> TrainRequest {
        let data = match (&self.embeddings, &self.images) {
            (Some(store), _) => TrainData::Embeddings { store: store.clone(), out_dim: self.out_dim.unwrap_or(128) },
            (None, Some(root)) => {
                TrainData::Images { root: root.clone(), classes: self.classes, max_per_class: self.max_per_class }
            }
            (None, None) => unreachable!("clap requires --images or --embeddings"),
        };
        TrainRequest {
            loss: self.loss.clone(),
            data,
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            seed: self.seed,
            device: self.device.clone(),
            out: self.out.clone(),
        }
    }
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Blocked cosine scoring with a top-k reducer against a plain GEMM of the same shape.
    Score(ScoreArgs),
    /// Model throughput at batch 1 and --batch (32): forward passes alone, then the whole
    /// extraction pipeline (decode + centre crop + forward + store) on real LFW images.
    Embed(EmbedBenchArgs),
    /// MegaFace-shaped synthetic evaluation (3,530 probes, N distractors) against a bare GEMM,
    /// and the bf16 / int8 scoring modes against f32.
    Megaface(MegafaceBenchArgs),
}

#[derive(Args)]
pub struct EmbedBenchArgs {
    /// A name from protocols/models.toml (faceapi-resnet, mobileface, ...; see `facebench models`),
    /// or a checkpoint file written by `facebench train --images`.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Forward passes timed per batch size.
    #[arg(long, default_value_t = 8)]
    pub iters: usize,
    /// LFW images embedded for the decoding-included figure.
    #[arg(long, default_value_t = 512)]
    pub images: usize,
    /// (--batch: the batch size measured beside batch 1.)
    #[command(flatten)]
    pub run: ModelRunArgs,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// Number of query rows.
    #[arg(long, default_value_t = 4096)]
    pub queries: usize,
    /// Number of gallery rows.
    #[arg(long, default_value_t = 200_000)]
    pub gallery: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 512)]
    pub dim: usize,
    /// k of the per-query top-k reducer.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args)]
pub struct MegafaceBenchArgs {
    /// Synthetic distractors (clustered unit vectors, seeded).
    #[arg(long, default_value_t = 1_000_000)]
    pub distractors: usize,
    #[arg(long, default_value_t = 512)]
    pub dim: usize,
    /// Worker threads [default: all cores].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Subcommand)]
pub enum PackCommand {
    /// Write an InsightFace `.bin` verification pack from a pairs file and an image root
    /// (the image files' bytes as they are, like InsightFace's lfw2pack.py).
    Bin(PackBinArgs),
}

#[derive(Args)]
pub struct PackBinArgs {
    /// Pairs file in LFW's format; its pair order is the pack's [default: <data-root>/lfw/pairs.txt].
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Image root the pairs' keys (`Name/Name_0001.jpg`) are relative to
    /// [default: <data-root>/lfw/lfw-deepfunneled].
    #[arg(long)]
    root: Option<PathBuf>,
    /// The pack to write.
    #[arg(long)]
    out: PathBuf,
    /// Pickle protocol: 4 = Python 3 (images as bytes), 2 = Python 2 (images as str, as the
    /// published packs were written).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(2..=4))]
    protocol: u8,
    /// `none`: the files' bytes as they are (for folders of aligned crops, like lfw2pack.py);
    /// `arcface`: the ArcFace 5-point warp to 112x112 from an --alignments cache, PNG-encoded
    /// (lossless), which makes a pack like the published ones from raw photos.
    #[arg(long, default_value = "none")]
    crop: String,
    /// Alignment cache written by `facebench align` (needed by --crop arcface, refused with
    /// --crop none).
    #[arg(long)]
    alignments: Option<PathBuf>,
}

impl PackBinArgs {
    pub fn request(&self) -> PackRequest {
        PackRequest {
            pairs: self.pairs.clone(),
            root: self.root.clone(),
            out: self.out.clone(),
            protocol: self.protocol,
            crop: self.crop.clone(),
            alignments: self.alignments.clone(),
        }
    }
}

#[derive(Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// Weights folder filled by `make models` [env FACEBENCH_MODELS, default <repo>/models].
    #[arg(long, env = "FACEBENCH_MODELS")]
    models_dir: Option<PathBuf>,
}

impl ModelsArgs {
    pub fn registry(&self) -> PathBuf {
        self.registry.path()
    }

    pub fn models_dir(&self) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(facebench_model::default_models_dir)
    }
}

#[derive(Args)]
pub struct ReportArgs {
    /// results.json files, folders (searched for results.json), or quoted glob patterns such
    /// as 'reports/**/results.json' (`*` within a name, `**` any depth).
    #[arg(long, num_args = 1.., required = true)]
    pub results: Vec<String>,
    /// Output folder: summary.md, summary.html, summary.tex and the figures (PNG + SVG).
    #[arg(long, default_value = "reports/summary")]
    pub out: PathBuf,
    /// Folder of extra figures to include (every .png/.svg in it), e.g. the LMCL figures.
    #[arg(long, default_value = "reports/lmcl")]
    pub figures: PathBuf,
}

#[derive(Subcommand)]
pub enum LmclCommand {
    /// CosFace Fig. 3: the identities with the most LFW images, a learned map to 2-D,
    /// trained with Softmax, NormFace and LMCL; one panel per loss in <out>/toy.png.
    Toy(ToyArgs),
    /// CosFace Fig. 5: per View-2 fold, heads trained on the other folds' people
    /// (people.txt), LMCL m = 0..0.45 against Softmax, A-Softmax, ArcFace and raw features.
    Ablation(AblationArgs),
}

#[derive(Args)]
pub struct CommonArgs {
    /// Backbone whose frozen, landmark-aligned embeddings are used.
    /// A name from protocols/models.toml (faceapi-resnet, mobileface, ...; see `facebench models`),
    /// or a checkpoint file written by `facebench train --images`.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    #[command(flatten)]
    pub lfw: LfwCacheArgs,
    /// Output folder.
    #[arg(long, default_value = "reports/lmcl")]
    out: PathBuf,
}

impl CommonArgs {
    fn common(&self) -> Common {
        Common { model: self.model.clone(), out: self.out.clone() }
    }
}

#[derive(Args)]
pub struct ToyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Number of identities (those with the most images in people.txt).
    #[arg(long, default_value_t = 8)]
    identities: usize,
    /// Scale s of NormFace and LMCL.
    #[arg(long, default_value_t = 16.0)]
    s: f64,
    /// LMCL margins, one panel each.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.35")]
    margins: Vec<f64>,
    /// Epochs and base learning rate (cosine decay); measured on the 8 largest identities:
    /// 40 epochs at 0.1 leave NormFace/LMCL near 56% training accuracy, 200 at 1.0 reach 88-99%.
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    #[arg(long, default_value_t = 1.0)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl ToyArgs {
    pub fn request(&self) -> ToyRequest {
        ToyRequest {
            common: self.common.common(),
            identities: self.identities,
            s: self.s,
            margins: self.margins.clone(),
            epochs: self.epochs,
            lr: self.lr,
            seed: self.seed,
        }
    }
}

#[derive(Args)]
pub struct AblationArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Scale s of every normalised loss.
    #[arg(long, default_value_t = 30.0)]
    s: f64,
    /// Seeds per head setting (raw features need none).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Head-training batch size (--batch is the embedding batch).
    #[arg(long, default_value_t = 256)]
    head_batch: usize,
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Train only on people with at least this many images (a class needs two to teach
    /// anything about within-class spread).
    #[arg(long, default_value_t = 2)]
    min_images: u32,
    /// `identity`: heads start as the raw features (fine-tuning a d x d layer); `random`.
    #[arg(long, default_value = "identity")]
    init: String,
    /// Settings instead of the paper's sweep, `;`-separated: `raw` or a loss spec
    /// (`cosface:s=30,m=0.35`, `softmax`, `sphereface:m=4`, `arcface:s=30,m=0.5`, ...).
    #[arg(long)]
    settings: Option<String>,
}

impl AblationArgs {
    pub fn request(&self) -> AblationRequest {
        AblationRequest {
            common: self.common.common(),
            s: self.s,
            seeds: self.seeds,
            epochs: self.epochs,
            head_batch: self.head_batch,
            lr: self.lr,
            min_images: self.min_images,
            init: self.init.clone(),
            settings: self.settings.clone(),
        }
    }
}

#[derive(Args)]
pub struct RepairArgs {
    /// The `.fbs` store to repair (a mirror store `X.flip.fbs` is repaired by naming it).
    pub store: PathBuf,
}

#[derive(Args)]
pub struct FetchArgs {
    /// Dataset to fetch: `lfw`, `megaface-lists`; `ytf` and `megaface` say where to request
    /// their images. `--list` shows what each protocol file declares.
    #[arg(required_unless_present = "list")]
    dataset: Option<String>,
    /// List the datasets, their files, sizes and variants; downloads nothing.
    #[arg(long, conflicts_with = "dataset")]
    list: bool,
    /// Image-archive variant (LFW: deepfunneled, funneled, original) [default: the protocol
    /// file's `default_variant`, the one its published numbers used].
    #[arg(long)]
    variant: Option<String>,
    /// Base URL serving the official file names (`URL/pairs.txt`, `URL/lfw-deepfunneled.tgz`),
    /// tried before the declared sources.
    #[arg(long)]
    mirror: Option<String>,
    /// Folder of the protocol files whose `[data]` tables declare the sources.
    #[arg(long, default_value = "protocols")]
    protocols: PathBuf,
}

impl FetchArgs {
    pub fn request(&self, data_root: &Path) -> facebench_fetch::Request {
        facebench_fetch::Request {
            protocols: self.protocols.clone(),
            data_root: data_root.to_path_buf(),
            dataset: self.dataset.clone().filter(|_| !self.list),
            variant: self.variant.clone(),
            mirror: self.mirror.clone(),
        }
    }
}
