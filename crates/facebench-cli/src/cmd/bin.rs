//! `facebench pack bin` and `facebench eval bin`: InsightFace `.bin` verification packs
//! (lfw.bin, cfp_fp.bin, agedb_30.bin, ...). Evaluation goes through the LFW path: the same
//! batched embedding (image and mirror), the same `evaluate` and the same rules, with the
//! pack's 10 contiguous folds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use facebench_bin::{check_pack, pack_pairs, write_pack, VerificationPack, WriteProtocol};
use facebench_core::Embeddings;
use facebench_extract::{forward, pipelined};
use facebench_image::{decode_bytes, FaceAnnotation, ImageF32, Preprocess};
use facebench_lfw::published::Published;
use facebench_lfw::{evaluate, LfwResults, MetricSettings, Pairs, PairsProtocol, Rule};
use facebench_model::FaceModel;
use facebench_report::plot::{roc_plot, score_histogram, RocCurve};
use facebench_report::table::{escape_html, Table};
use rayon::prelude::*;

use super::embed::{recipe, ModelName};
use super::keys::progress_bar;
use super::run_args::ModelRunArgs;
use super::{create_dir, create_parent, write_json, CmdResult};

/// Folds of every pack: InsightFace's `calculate_roc` uses `KFold(n_splits=10, shuffle=False)`.
const FOLDS: usize = 10;

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
    /// Alignment cache written by `facebench align` (needed by --crop arcface).
    #[arg(long)]
    alignments: Option<PathBuf>,
}

pub fn run_pack(cmd: PackCommand, data_root: &Path) -> CmdResult {
    match cmd {
        PackCommand::Bin(a) => pack_bin(a, data_root),
    }
}

fn pack_bin(a: PackBinArgs, data_root: &Path) -> CmdResult {
    let protocol =
        WriteProtocol::from_number(a.protocol).ok_or_else(|| format!("--protocol {}: 2 or 4", a.protocol))?;
    let pairs_path = a.pairs.unwrap_or_else(|| data_root.join("lfw/pairs.txt"));
    let root = a.root.unwrap_or_else(|| data_root.join("lfw/lfw-deepfunneled"));
    let pairs = Pairs::read(&pairs_path)?;
    if pairs.len() % FOLDS != 0 {
        return Err(format!(
            "{}: {} pairs; a pack is scored on {FOLDS} equal contiguous folds, so the count must be a multiple of {FOLDS}",
            pairs_path.display(),
            pairs.len()
        )
        .into());
    }
    let faces = match (a.crop.as_str(), &a.alignments) {
        ("none", _) => None,
        ("arcface", Some(p)) => Some(facebench_extract::read_alignments(p)?.0),
        ("arcface", None) => return Err("--crop arcface needs --alignments FILE.jsonl (from `facebench align`)".into()),
        (c, _) => return Err(format!("--crop {c}: expected none or arcface").into()),
    };
    let warp = Preprocess::arcface(112);
    let t = Instant::now();
    let pb = progress_bar(2 * pairs.len(), "pack");
    let images = pairs
        .pairs
        .par_iter()
        .flat_map_iter(|p| [(&p.left, p.line), (&p.right, p.line)])
        .map(|(key, line)| {
            let path = root.join(key);
            let named = |e: String| format!("{} (named at {}:{line}): {e}", path.display(), pairs_path.display());
            let bytes = std::fs::read(&path).map_err(|e| named(e.to_string()))?;
            let bytes = match &faces {
                None => bytes,
                Some(faces) => {
                    let face = faces.get(key.as_str()).ok_or_else(|| named("not in the alignment cache".into()))?;
                    let img = decode_bytes(&bytes, &path.display().to_string()).map_err(|e| named(e.to_string()))?;
                    let crop = warp.apply(&img, face).map_err(|e| named(e.to_string()))?.to_rgb8();
                    let mut png = std::io::Cursor::new(Vec::new());
                    crop.write_to(&mut png, image::ImageFormat::Png).map_err(|e| named(e.to_string()))?;
                    png.into_inner()
                }
            };
            pb.inc(1);
            Ok(bytes)
        })
        .collect::<Vec<Result<Vec<u8>, String>>>()
        .into_iter()
        .collect::<Result<Vec<_>, String>>()?; // the first failure in pair order
    pb.finish_and_clear();
    let pack = VerificationPack { images, issame: pairs.labels() };
    create_parent(&a.out)?;
    write_pack(&a.out, &pack, protocol)?;
    let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {}: {} pairs ({} same), {} images ({}), pickle protocol {}, {:.1} MB, in {:.1}s",
        a.out.display(),
        pack.n_pairs(),
        pack.issame.iter().filter(|&&s| s).count(),
        pack.images.len(),
        if faces.is_some() { "ArcFace-aligned 112x112 PNG crops" } else { "files as they are" },
        protocol.number(),
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args)]
pub struct EvalBinArgs {
    /// The pack (a pickle of (images, issame), protocols 0-5).
    #[arg(long)]
    bin: PathBuf,
    #[arg(long, value_enum, default_value = "mobileface")]
    model: ModelName,
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
    run: ModelRunArgs,
    /// Output folder: results.json, pairs_scores.csv, report.md, report.html, roc.png/svg,
    /// scores.png/svg [default: reports/bin/<pack name>/<model>].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Embeds every image of `pack` (and its mirror), in batches; decoding of the next batch
/// (rayon) overlaps the model's forward pass on the current one. Keys are image indices.
fn embed_pack(
    pack: &VerificationPack,
    bin: &Path,
    model: &dyn FaceModel,
    pre: &Preprocess,
    size: Option<[u32; 2]>,
    batch: usize,
    flip: bool,
) -> Result<(Embeddings, Option<Embeddings>), Box<dyn std::error::Error>> {
    let dim = model.embedding_dim();
    let mut orig = Embeddings::new(dim);
    let mut mirror = flip.then(|| Embeddings::new(dim));
    let pb = progress_bar(pack.images.len(), &format!("embed {}", model.name()));
    let prepare = |start: usize, chunk: &[Vec<u8>]| -> Result<Vec<ImageF32>, String> {
        chunk
            .par_iter()
            .enumerate()
            .map(|(j, bytes)| {
                let i = start + j;
                let name = format!("{}: image {i} (pair {})", bin.display(), i / 2 + 1);
                let img = decode_bytes(bytes, &name).map_err(|e| e.to_string())?;
                if let Some([w, h]) = size {
                    if img.dimensions() != (w, h) {
                        let (gw, gh) = img.dimensions();
                        return Err(format!("{name} is {gw}x{gh}, the protocol file says {w}x{h}"));
                    }
                }
                pre.apply(&img, &FaceAnnotation::default()).map_err(|e| format!("{name}: {e}"))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .collect() // the first failure in image order
    };
    let prepare = |start: usize, chunk: &[Vec<u8>]| prepare(start, chunk).map(|v| (start, v));
    pipelined(&pack.images, batch, prepare, |(start, inputs): (usize, Vec<ImageF32>)| -> CmdResult {
        let rows = forward(model, &inputs, false)?;
        let flipped = if flip { Some(forward(model, &inputs, true)?) } else { None };
        for (j, row) in rows.iter().enumerate() {
            let i = start + j;
            if row.len() != dim || row.iter().any(|v| !v.is_finite()) {
                return Err(format!(
                    "{}: image {i}: model {} gave a non-finite or wrong-size embedding",
                    bin.display(),
                    model.name()
                )
                .into());
            }
            orig.push(i.to_string(), row)?;
            if let (Some(m), Some(f)) = (mirror.as_mut(), flipped.as_ref()) {
                m.push(i.to_string(), &f[j])?;
            }
        }
        pb.inc(inputs.len() as u64);
        Ok(())
    })?;
    pb.finish_and_clear();
    Ok((orig, mirror))
}

pub fn eval_bin(a: EvalBinArgs) -> CmdResult {
    let t_all = Instant::now();
    let proto = a.protocol_file.as_deref().map(PairsProtocol::read).transpose()?.map(|(p, _)| p);
    let t = Instant::now();
    let bytes = std::fs::read(&a.bin).map_err(|e| format!("{}: {e}", a.bin.display()))?;
    let pack_sha = facebench_lfw::sha256_hex(&bytes);
    let pack = facebench_bin::parse_pack(&bytes, &a.bin)?;
    drop(bytes);
    let read_secs = t.elapsed().as_secs_f64();
    if let (Some(p), Some(path)) = (&proto, &a.protocol_file) {
        check_pack(p, path, &a.bin, &pack, &pack_sha)?;
    }
    let pairs = pack_pairs(&pack, &a.bin, proto.as_ref().map_or(FOLDS, |p| p.pairs.folds))?;
    let name = proto.as_ref().map(|p| p.name.clone()).unwrap_or_else(|| {
        a.bin.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "pack".into())
    });
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("reports/bin").join(&name).join(a.model.as_str()));

    let r = recipe(a.model, &a.align)?;
    if r.uses_alignment {
        return Err(format!("--align {}: a pack holds aligned crops; use none or centre:S", a.align).into());
    }
    let net = a.run.load(a.model.as_str())?;
    let t = Instant::now();
    let size = proto.as_ref().and_then(|p| p.image_size);
    let (orig, mirror) = embed_pack(&pack, &a.bin, net.as_ref(), &r.preprocess, size, a.run.batch, !a.no_flip)?;
    let embed_secs = t.elapsed().as_secs_f64();

    let rules = a
        .rules
        .clone()
        .or_else(|| proto.as_ref().map(|p| p.metrics.rules.clone()))
        .unwrap_or_else(|| vec![Rule::InsightFace]);
    let mut opts = MetricSettings { rules, ..MetricSettings::default() };
    if let Some(p) = &proto {
        opts.exact_fars = p.metrics.exact_fars.clone();
        opts.insightface_fars = p.metrics.insightface_fars.clone();
    }
    let t = Instant::now();
    let results = evaluate(&pairs, &orig, mirror.as_ref(), &opts)?;
    let score_secs = t.elapsed().as_secs_f64();

    let preprocessing = format!(
        "{}, {}x{} input{}",
        if a.align == "none" {
            "images as packed (resized only if their size differs)".to_string()
        } else {
            format!("align {}", a.align)
        },
        r.preprocess.width,
        r.preprocess.height,
        if a.no_flip { ", no mirror" } else { ", mirror features fused" }
    );
    let provenance = super::provenance::collect(&[
        ("pack", a.bin.display().to_string()),
        ("pack sha256", pack_sha.clone()),
        ("protocol file", a.protocol_file.as_ref().map_or("none".into(), |p| p.display().to_string())),
        ("model", a.model.as_str().to_string()),
        ("weights sha256", net.weights_sha256().to_string()),
        ("device", a.run.device.clone()),
    ]);
    let timings = vec![
        ("read pack".to_string(), read_secs, format!("{} images", pack.images.len())),
        (
            format!("embed {}{}", a.model.as_str(), if a.no_flip { "" } else { " (+ mirrors)" }),
            embed_secs,
            format!(
                "{:.1} model inputs/s",
                (pack.images.len() * if a.no_flip { 1 } else { 2 }) as f64 / embed_secs.max(1e-9)
            ),
        ),
        ("score".to_string(), score_secs, String::new()),
        ("total".to_string(), t_all.elapsed().as_secs_f64(), String::new()),
    ];
    create_dir(&out)?;
    let doc = serde_json::json!({
        "protocol": format!("bin:{name}"),
        "model": a.model.as_str(),
        "pack": a.bin.display().to_string(),
        "pack_sha256": pack_sha,
        "protocol_file": proto,
        "preprocessing": preprocessing,
        "timings": timings.iter().map(|(s, t, n)| serde_json::json!({"stage": s, "seconds": t, "note": n})).collect::<Vec<_>>(),
        "provenance": provenance.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "results": &results,
    });
    write_json(&out.join("results.json"), &doc)?;
    results.write_pair_scores_csv(&out.join("pairs_scores.csv"))?;
    let published = proto.as_ref().map(|p| p.published.clone()).unwrap_or_default();
    let ctx = ReportContext {
        pack: name.clone(),
        model: a.model.as_str().into(),
        preprocessing,
        published,
        timings,
        provenance,
    };
    write_report(&out, &results, &ctx)?;
    print!("{}", super::eval::headline_table(&results).replacen("LFW ", &format!("bin:{name} "), 1));
    println!("wrote {} (results.json, pairs_scores.csv, report.md, report.html, roc, scores)", out.display());
    Ok(())
}

/// What the report shows besides the results.
struct ReportContext {
    pack: String,
    model: String,
    preprocessing: String,
    published: Vec<Published>,
    timings: Vec<(String, f64, String)>,
    provenance: Vec<(String, String)>,
}

/// The report's tables, each with a heading (shared by Markdown and HTML).
fn tables(r: &LfwResults, ctx: &ReportContext) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    let mut t = Table::new(["", "method", "rule", "accuracy % (mean ± pop. std)", "sample std", "SEM"]);
    for rep in &r.accuracy {
        t.row([
            "measured".to_string(),
            format!("{} ({})", ctx.model, ctx.preprocessing),
            rep.rule.to_string(),
            format!("{:.2} ± {:.2}", 100.0 * rep.mean, 100.0 * rep.std_population),
            format!("{:.2}", 100.0 * rep.std_sample),
            format!("{:.2}", 100.0 * rep.sem),
        ]);
    }
    for p in &ctx.published {
        t.row([
            "published".to_string(),
            format!("{}: {}", p.source, p.setting),
            "as published".into(),
            format!("{:.2}", p.accuracy),
            "-".into(),
            "-".into(),
        ]);
    }
    out.push((format!("Accuracy ({} contiguous folds)", r.n_folds), t));

    let mut header = vec!["fold".to_string()];
    for rep in &r.accuracy {
        header.push(format!("{} accuracy %", rep.rule));
        header.push(format!("{} threshold", rep.rule));
    }
    let mut t = Table::new(header);
    for k in 0..r.accuracy.first().map_or(0, |a| a.folds.len()) {
        let mut cells = vec![(k + 1).to_string()];
        for rep in &r.accuracy {
            cells.push(format!("{:.2}", 100.0 * rep.folds[k].test_accuracy));
            cells.push(format!("{:.4}", rep.folds[k].threshold));
        }
        t.row(cells);
    }
    out.push(("Per fold (threshold chosen on the other folds)".to_string(), t));

    let mut t = Table::new(["measure", "value", "how"]);
    t.row(["AUC".to_string(), format!("{:.5}", r.auc), "pooled ROC of the fused cosine".into()]);
    t.row(["EER".to_string(), format!("{:.2}%", 100.0 * r.eer), "pooled, fused cosine".into()]);
    for row in &r.tar_at_far {
        let (value, how) = match (&row.exact, &row.insightface) {
            (Some(facebench_metrics::TarAtFar::Measured { tar, far, .. }), _) => {
                (format!("{:.2}% (FAR {far:.2e})", 100.0 * tar), "exact, pooled sorted scores")
            }
            (Some(facebench_metrics::TarAtFar::NotMeasurable { negatives, .. }), _) => {
                (format!("not measurable ({negatives} negatives)"), "exact, pooled sorted scores")
            }
            (None, Some(v)) => (
                format!("{:.2}% ± {:.2}% (mean FAR {:.2e})", 100.0 * v.val_mean, 100.0 * v.val_std, v.far_mean),
                "InsightFace calculate_val",
            ),
            (None, None) => ("-".into(), "-"),
        };
        t.row([format!("TAR@FAR={:.0e}", row.far_target), value, how.to_string()]);
    }
    out.push(("ROC read-outs".to_string(), t));

    let mut t = Table::new(["stage", "seconds", "note"]);
    for (s, secs, n) in &ctx.timings {
        t.row([s.clone(), format!("{secs:.1}"), n.clone()]);
    }
    out.push(("Time".to_string(), t));
    let mut t = Table::new(["item", "value"]);
    for (k, v) in &ctx.provenance {
        t.row([k.clone(), v.clone()]);
    }
    out.push(("Appendix: provenance".to_string(), t));
    out
}

/// `report.md`, `report.html` (figures inlined as SVG), `roc.png/svg`, `scores.png/svg`.
fn write_report(dir: &Path, r: &LfwResults, ctx: &ReportContext) -> CmdResult {
    let title = format!("{} (.bin pack): {}", ctx.pack, ctx.model);
    let rf = &r.roc_folds;
    let curve = RocCurve {
        label: format!("{} (fold mean, min-max band)", ctx.model),
        colour_index: 0,
        far: &rf.far,
        tar: &rf.tar_mean,
        band: Some((&rf.tar_min, &rf.tar_max)),
    };
    roc_plot(&dir.join("roc"), &format!("{title}: ROC"), &[curve])?;
    let genuine: Vec<f64> = r.pair_scores.iter().filter(|p| p.is_same).map(|p| p.cosine).collect();
    let impostor: Vec<f64> = r.pair_scores.iter().filter(|p| !p.is_same).map(|p| p.cosine).collect();
    // The first rule's mean threshold, as a cosine (squared-L2 rules: d = 2 - 2 cos).
    let threshold = r.accuracy.first().map(|rep| {
        let m = rep.folds.iter().map(|f| f.threshold).sum::<f64>() / rep.folds.len().max(1) as f64;
        if rep.rule.lower_is_same() {
            1.0 - m / 2.0
        } else {
            m
        }
    });
    score_histogram(
        &dir.join("scores"),
        &format!("{title}: scores"),
        &genuine,
        &impostor,
        threshold,
        "cosine similarity (fused features)",
    )?;

    let intro = format!(
        "{} pairs in {} contiguous folds from `{}`. Preprocessing: {}.",
        r.n_pairs, r.n_folds, r.pairs_file, ctx.preprocessing
    );
    let tabs = tables(r, ctx);
    let mut md = format!("# {title}\n\n{intro}\n\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head><body>\n<h1>{t}</h1>\n<p>{i}</p>\n",
        t = escape_html(&title),
        i = escape_html(&intro)
    );
    for (i, (h, t)) in tabs.iter().enumerate() {
        if i == 3 {
            md += "## Figures\n\n![ROC](roc.png)\n\n![Scores](scores.png)\n\n";
            html += "<h2>Figures</h2>\n";
            for stem in ["roc", "scores"] {
                let p = dir.join(format!("{stem}.svg"));
                let svg = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                let _ = writeln!(html, "<figure>{svg}</figure>");
            }
        }
        let _ = write!(md, "## {h}\n\n{}\n", t.markdown());
        let _ = write!(html, "<h2>{}</h2>\n{}", escape_html(h), t.html());
    }
    html += "</body></html>\n";
    for (file, text) in [("report.md", md), ("report.html", html)] {
        let p = dir.join(file);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}
