//! InsightFace `.bin` verification packs (lfw.bin, cfp_fp.bin, agedb_30.bin, ...): writing
//! one from a pairs file, and evaluating one through the LFW path (the same batched
//! embedding of image and mirror, the same `evaluate` and rules) with the pack's 10
//! contiguous folds, reported by the same parameterised report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use facebench_bin::{check_pack, pack_pairs, write_pack, VerificationPack, WriteProtocol};
use facebench_core::overlap::pipelined;
use facebench_core::Embeddings;
use facebench_extract::forward;
use facebench_image::{decode_bytes, FaceAnnotation, ImageF32, Preprocess};
use facebench_model::FaceModel;
use facebench_pairs::{evaluate, MetricSettings, Pairs, PairsProtocol, Rule};
use facebench_report::lfw::{headline_table, write_lfw_report, LfwReportContext};
use rayon::prelude::*;
use serde::Serialize;

use crate::provenance::collect;
use crate::stages::StageLog;
use crate::{create_parent, io, output_set, progress_bar, write_json, Error, Result, ResultsEnvelope, Workspace};

/// Folds of every pack: InsightFace's `calculate_roc` uses `KFold(n_splits=10, shuffle=False)`.
const FOLDS: usize = 10;

/// `facebench pack bin`.
#[derive(Debug, Clone)]
pub struct PackRequest {
    /// [default: <data-root>/lfw/pairs.txt]
    pub pairs: Option<PathBuf>,
    /// [default: <data-root>/lfw/lfw-deepfunneled]
    pub root: Option<PathBuf>,
    pub out: PathBuf,
    /// Pickle protocol, 2 or 4.
    pub protocol: u8,
    /// `none` or `arcface`.
    pub crop: String,
    pub alignments: Option<PathBuf>,
}

/// Writes the pack; returns the line the terminal shows.
pub fn pack(data_root: &Path, a: &PackRequest) -> Result<String> {
    let protocol = WriteProtocol::from_number(a.protocol)
        .ok_or_else(|| Error::Invalid(format!("--protocol {}: 2 or 4", a.protocol)))?;
    let pairs_path = a.pairs.clone().unwrap_or_else(|| data_root.join("lfw/pairs.txt"));
    let root = a.root.clone().unwrap_or_else(|| data_root.join("lfw/lfw-deepfunneled"));
    let pairs = Pairs::read(&pairs_path)?;
    if pairs.len() % FOLDS != 0 {
        return Err(Error::Invalid(format!(
            "{}: {} pairs; a pack is scored on {FOLDS} equal contiguous folds, so the count must be a multiple of {FOLDS}",
            pairs_path.display(),
            pairs.len()
        )));
    }
    let faces = match (a.crop.as_str(), &a.alignments) {
        ("none", None) => None,
        ("none", Some(p)) => {
            return Err(Error::Invalid(format!(
                "--alignments {} is not used with --crop none (only --crop arcface reads it)",
                p.display()
            )))
        }
        ("arcface", Some(p)) => Some(facebench_detect::read_alignments(p)?.0),
        ("arcface", None) => return Err("--crop arcface needs --alignments FILE.jsonl (from `facebench align`)".into()),
        (c, _) => return Err(Error::Invalid(format!("--crop {c}: expected none or arcface"))),
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
        .collect::<Vec<std::result::Result<Vec<u8>, String>>>()
        .into_iter()
        .collect::<std::result::Result<Vec<_>, String>>()?; // the first failure in pair order
    pb.finish_and_clear();
    let pack = VerificationPack { images, issame: pairs.labels() };
    create_parent(&a.out)?;
    write_pack(&a.out, &pack, protocol)?;
    let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    Ok(format!(
        "wrote {}: {} pairs ({} same), {} images ({}), pickle protocol {}, {:.1} MB, in {:.1}s",
        a.out.display(),
        pack.n_pairs(),
        pack.issame.iter().filter(|&&s| s).count(),
        pack.images.len(),
        if faces.is_some() { "ArcFace-aligned 112x112 PNG crops" } else { "files as they are" },
        protocol.number(),
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ))
}

/// `facebench eval bin`.
#[derive(Debug, Clone)]
pub struct BinEval {
    pub bin: PathBuf,
    /// A registry name, or a trained backbone checkpoint.
    pub model: String,
    pub protocol_file: Option<PathBuf>,
    /// [default: the protocol file's, else insightface]
    pub rules: Option<Vec<Rule>>,
    /// `none` or `centre:S`.
    pub align: String,
    pub flip: bool,
    /// [default: reports/bin/<pack name>/<model>]
    pub out: Option<PathBuf>,
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
) -> Result<(Embeddings, Option<Embeddings>)> {
    let dim = model.embedding_dim();
    let mut orig = Embeddings::new(dim);
    let mut mirror = flip.then(|| Embeddings::new(dim));
    let pb = progress_bar(pack.images.len(), &format!("embed {}", model.name()));
    let prepare = |start: usize, chunk: &[Vec<u8>]| -> std::result::Result<Vec<ImageF32>, String> {
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
    pipelined(&pack.images, batch, prepare, |(start, inputs): (usize, Vec<ImageF32>)| -> Result<()> {
        let rows = forward(model, &inputs, false)?;
        let flipped = if flip { Some(forward(model, &inputs, true)?) } else { None };
        for (j, row) in rows.iter().enumerate() {
            let i = start + j;
            if row.len() != dim || row.iter().any(|v| !v.is_finite()) {
                return Err(Error::Invalid(format!(
                    "{}: image {i}: model {} gave a non-finite or wrong-size embedding",
                    bin.display(),
                    model.name()
                )));
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

#[derive(Serialize)]
struct BinBody<'a> {
    pack: String,
    pack_sha256: String,
    protocol_file: Option<&'a PairsProtocol>,
    preprocessing: String,
    results: &'a facebench_pairs::LfwResults,
}

/// Evaluates a pack and writes results.json, pairs_scores.csv and the report. Returns what
/// the terminal shows.
pub fn eval(ws: &Workspace, a: &BinEval) -> Result<String> {
    let t_all = Instant::now();
    let proto = a.protocol_file.as_deref().map(PairsProtocol::read).transpose()?.map(|(p, _)| p);
    let t = Instant::now();
    let bytes = std::fs::read(&a.bin).map_err(io(&a.bin))?;
    let pack_sha = facebench_pairs::sha256_hex(&bytes);
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
    let model = ws.load_model(&a.model)?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("reports/bin").join(&name).join(model.name()));

    let r = model.recipe(&a.align)?;
    if r.uses_alignment {
        return Err(Error::Invalid(format!("--align {}: a pack holds aligned crops; use none or centre:S", a.align)));
    }
    let net = model.net();
    let t = Instant::now();
    let size = proto.as_ref().and_then(|p| p.image_size);
    let (orig, mirror) = embed_pack(&pack, &a.bin, net, &r.preprocess, size, ws.batch, a.flip)?;
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
        if a.flip { ", mirror features fused" } else { ", no mirror" }
    );
    let provenance = collect(&[
        ("pack", a.bin.display().to_string()),
        ("pack sha256", pack_sha.clone()),
        ("protocol file", a.protocol_file.as_ref().map_or("none".into(), |p| p.display().to_string())),
        ("model", model.name().to_string()),
        ("weights sha256", net.weights_sha256().to_string()),
        ("device", ws.device.clone()),
    ]);
    let mut log = StageLog::new();
    log.push("read pack", read_secs, format!("{} images", pack.images.len()));
    let inputs = pack.images.len() * if a.flip { 2 } else { 1 };
    log.push(
        format!("embed {}{}", model.name(), if a.flip { " (+ mirrors)" } else { "" }),
        embed_secs,
        format!("{:.1} model inputs/s", inputs as f64 / embed_secs.max(1e-9)),
    );
    log.push("score", score_secs, "");
    log.push("total", t_all.elapsed().as_secs_f64(), "");
    let timings = log.into_stages();
    let set = output_set(&out)?;
    let dir = set.dir();
    let body = BinBody {
        pack: a.bin.display().to_string(),
        pack_sha256: pack_sha,
        protocol_file: proto.as_ref(),
        preprocessing: preprocessing.clone(),
        results: &results,
    };
    let doc = ResultsEnvelope::new(format!("bin:{name}"), model.name(), body, timings.clone(), &provenance);
    write_json(&dir.join("results.json"), &doc)?;
    results.write_pair_scores_csv(&dir.join("pairs_scores.csv"))?;
    let published = proto.as_ref().map(|p| p.published.clone()).unwrap_or_default();
    let mut ctx = LfwReportContext::bin_pack(&name, results.n_folds, model.name(), preprocessing, published);
    ctx.timings = timings;
    ctx.provenance = provenance;
    write_lfw_report(dir, &results, &ctx)?;
    set.commit()?;
    Ok(format!(
        "{}wrote {} (results.json, pairs_scores.csv, report.md, report.html, roc, scores)\n",
        headline_table(&format!("bin:{name}"), &results),
        out.display()
    ))
}
