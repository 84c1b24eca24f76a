//! `facebench eval ...`: protocols scored from precomputed embeddings.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use facebench_core::store;
use facebench_lfw::{evaluate, LfwResults, MetricSettings, Pairs, Rule};
use facebench_metrics::TarAtFar;
use facebench_report::lfw::{write_lfw_report, LfwReportContext};

use super::embed::ModelName;
use super::lfw_pipeline::{self, PipelineArgs};
use super::CmdResult;

#[derive(Subcommand)]
pub enum TuneCommand {
    /// Sweep protocols/lfw.toml's preprocessing variants on View 1 and write the choice.
    Lfw(TuneLfwArgs),
}

#[derive(Args)]
pub struct TuneLfwArgs {
    #[arg(long, value_enum, default_value = "faceapi-resnet")]
    model: ModelName,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

pub fn run_tune(cmd: TuneCommand, data_root: &Path) -> CmdResult {
    match cmd {
        TuneCommand::Lfw(a) => lfw_pipeline::tune(a.model, &a.pipeline, data_root),
    }
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// LFW verification (10-fold accuracy, ROC, AUC, EER, TAR@FAR) from an embedding store.
    Lfw(LfwArgs),
    /// MegaFace Challenge 1: CMC and TAR@FAR for every distractor size in one streaming pass.
    Megaface(super::megaface::MegafaceArgs),
    /// MegaFace's protocol on a real-image stand-in from LFW (labelled LFW-as-MegaFace):
    /// probes = identities with >= 10 images, distractors = all other identities' images.
    MegafaceLfw(super::megaface::LfwStandInArgs),
    /// An InsightFace .bin verification pack (lfw.bin, cfp_fp.bin, agedb_30.bin, ...):
    /// decode, embed (image + mirror), 10 contiguous folds, scored like LFW.
    Bin(super::bin::EvalBinArgs),
    /// YouTube Faces: 5000 video pairs of splits.txt, frames aligned and embedded (cached),
    /// scored per video (mean-feature, mean-pair, min-pair, max-pair), 10-fold over the splits.
    Ytf(super::ytf::YtfArgs),
}

/// Either `--model NAME` (the whole protocol from images: align, embed, tune on View 1,
/// score View 2, report) or `--embeddings FILE` (score a precomputed store).
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["model", "embeddings"])))]
pub struct LfwArgs {
    /// Run the protocol from images with this model (see protocols/lfw.toml).
    #[arg(long, value_enum)]
    model: Option<ModelName>,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Embedding store (.npy with .keys beside it, .csv, .safetensors or .fbs), keys
    /// relative to the LFW image root (`Name/Name_0001.jpg`). Used as given: already
    /// fused or concatenated by the caller unless --flip-store is set.
    #[arg(long)]
    embeddings: Option<PathBuf>,
    /// Keys file for a .npy store (one key per line), instead of `<store>.keys`.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Store of mirror-image features with the same keys; each rule then fuses them
    /// its own way (sum-then-normalise, or concatenation for sphereface/facenet).
    #[arg(long)]
    flip_store: Option<PathBuf>,
    /// Pairs file [default: <data-root>/lfw/pairs.txt]. View 1 files work too.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Accuracy rule(s), comma-separated: insightface, sphereface, facenet, facexzoo, exact.
    #[arg(long, value_delimiter = ',', default_value = "insightface")]
    protocol: Vec<Rule>,
    /// Name shown in the report for --embeddings [default: the embeddings file name].
    #[arg(long)]
    label: Option<String>,
    /// Output folder: results.json, pairs_scores.csv, report.md, report.html, roc.png/svg,
    /// scores.png/svg [default with --model: reports/lfw/<model>].
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(cmd: EvalCommand, data_root: &Path) -> CmdResult {
    match cmd {
        EvalCommand::Lfw(a) => eval_lfw(a, data_root),
        EvalCommand::Megaface(a) => super::megaface::run(a, data_root),
        EvalCommand::MegafaceLfw(a) => super::megaface::run_lfw_stand_in(a, data_root),
        EvalCommand::Bin(a) => super::bin::eval_bin(a),
        EvalCommand::Ytf(a) => super::ytf::run(a, data_root),
    }
}

fn eval_lfw(a: LfwArgs, data_root: &Path) -> CmdResult {
    if let Some(model) = a.model {
        let out = a.out.clone().unwrap_or_else(|| PathBuf::from("reports/lfw").join(model.as_str()));
        return lfw_pipeline::run(model, &a.pipeline, data_root, &out);
    }
    let embeddings = a.embeddings.clone().expect("clap requires --model or --embeddings");
    let out = a.out.clone().ok_or("--embeddings needs --out DIR")?;
    let pairs_path = a.pairs.unwrap_or_else(|| data_root.join("lfw/pairs.txt"));
    let t = std::time::Instant::now();
    let pairs = Pairs::read(&pairs_path)?;
    let orig = store::read(&embeddings, a.keys.as_deref())?;
    let flip = a.flip_store.as_deref().map(|p| store::read(p, None)).transpose()?;
    let mut timings = vec![("read pairs and stores".to_string(), t.elapsed().as_secs_f64(), String::new())];
    let t = std::time::Instant::now();
    let opts = MetricSettings { rules: a.protocol.clone(), ..MetricSettings::default() };
    let results = evaluate(&pairs, &orig, flip.as_ref(), &opts)?;
    timings.push(("score and evaluate".to_string(), t.elapsed().as_secs_f64(), format!("{} pairs", results.n_pairs)));

    super::create_dir(&out)?;
    let json_path = out.join("results.json");
    let model = a
        .label
        .clone()
        .unwrap_or_else(|| embeddings.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    let sha = |p: &Path| super::provenance::file_sha256(p).map(|h| format!("{} (sha256 {h})", p.display()));
    let provenance = super::provenance::collect(&[
        ("model", format!("{model} (precomputed embeddings; weights not known here)")),
        ("embeddings", sha(&embeddings)?),
        ("flip store", a.flip_store.as_deref().map_or(Ok("none".into()), sha)?),
        ("pairs", sha(&pairs_path)?),
        ("preprocessing", "as stored in the embeddings".into()),
        ("data root", data_root.display().to_string()),
        ("device", "cpu (scoring; the embeddings were computed elsewhere)".into()),
    ]);
    let doc = serde_json::json!({
        "protocol": "lfw",
        "model": model,
        "embeddings": embeddings.display().to_string(),
        "flip_store": a.flip_store.as_ref().map(|p| p.display().to_string()),
        "timings": super::provenance::timings_json(&timings),
        "provenance": provenance.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "results": &results,
    });
    super::write_json(&json_path, &doc)?;
    results.write_pair_scores_csv(&out.join("pairs_scores.csv"))?;
    let ctx = LfwReportContext {
        model,
        preprocessing: "as stored in the embeddings".into(),
        choice: "by the caller".into(),
        provenance,
        timings,
        ..Default::default()
    };
    write_lfw_report(&out, &results, &ctx)?;
    print!("{}", headline_table(&results));
    println!("wrote {} (results.json, pairs_scores.csv, report.md, report.html, roc, scores)", out.display());
    Ok(())
}

/// The terminal table: accuracy per rule, then the per-fold table, then ROC read-outs.
pub fn headline_table(r: &LfwResults) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "LFW {} : {} pairs, {} folds, flip fusion: {}", r.pairs_file, r.n_pairs, r.n_folds, r.flip);
    let _ = writeln!(s, "{:<12} {:>9} {:>10} {:>12} {:>8}", "rule", "accuracy", "std (pop)", "std (sample)", "SEM");
    for rep in &r.accuracy {
        let _ = writeln!(
            s,
            "{:<12} {:>8.3}% {:>9.3}% {:>11.3}% {:>7.3}%",
            rep.rule.to_string(),
            100.0 * rep.mean,
            100.0 * rep.std_population,
            100.0 * rep.std_sample,
            100.0 * rep.sem
        );
    }
    if !r.accuracy.is_empty() {
        let _ = write!(s, "{:<12}", "fold");
        for rep in &r.accuracy {
            let _ = write!(s, " {:>12} {:>10}", format!("{} acc", rep.rule), "threshold");
        }
        let _ = writeln!(s);
        for k in 0..r.accuracy[0].folds.len() {
            let _ = write!(s, "{:<12}", k + 1);
            for rep in &r.accuracy {
                let f = &rep.folds[k];
                let _ = write!(s, " {:>11.3}% {:>10.4}", 100.0 * f.test_accuracy, f.threshold);
            }
            let _ = writeln!(s);
        }
    }
    let _ = writeln!(s, "AUC {:.5}   EER {:.3}%", r.auc, 100.0 * r.eer);
    for row in &r.tar_at_far {
        let value = match (&row.exact, &row.insightface) {
            (Some(TarAtFar::Measured { tar, far, .. }), _) => {
                format!("{:.3}% (at FAR {:.2e})", 100.0 * tar, far)
            }
            (Some(TarAtFar::NotMeasurable { negatives, .. }), _) => {
                format!("not measurable ({negatives} negatives)")
            }
            (None, Some(v)) => {
                format!("{:.3}% +- {:.3}% (mean FAR {:.2e})", 100.0 * v.val_mean, 100.0 * v.val_std, v.far_mean)
            }
            (None, None) => "-".to_string(),
        };
        let _ = writeln!(s, "TAR@FAR={:.0e} ({}): {value}", row.far_target, row.method);
    }
    s
}
