//! `facebench eval megaface` and `facebench bench megaface`.

use std::path::{Path, PathBuf};

use clap::Args;
use facebench_core::store;
use facebench_megaface::{
    bench_megaface, evaluate, read_distractor_lists, read_probe_list, write_devkit_results, write_results_json,
    DevkitNames, DistractorSet, EvalConfig, MegafaceResults, NoiseList, ProbeSet, Scoring,
};
use facebench_report::plot::{cmc_plot, roc_plot, CmcCurve, RocCurve};

use super::keys::progress_bar;
use super::CmdResult;

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
    /// Distractor set sizes, all scored in one pass.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000,100000,1000000")]
    sizes: Vec<usize>,
    /// Distractor list set number (the `<set>` of the list names).
    #[arg(long, default_value_t = 1)]
    set: u32,
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

#[derive(Args)]
pub struct MegafaceBenchArgs {
    /// Synthetic distractors (clustered unit vectors, seeded).
    #[arg(long, default_value_t = 1_000_000)]
    distractors: usize,
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// Worker threads [default: all cores].
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn bench(a: MegafaceBenchArgs) -> CmdResult {
    println!("{}", bench_megaface(a.distractors, a.dim, a.threads)?);
    Ok(())
}

pub fn run(a: MegafaceArgs, data_root: &Path) -> CmdResult {
    let t0 = std::time::Instant::now();
    let lists_dir = a.distractors.clone().unwrap_or_else(|| data_root.join("megaface/templatelists"));
    let probe_list_path = a.probe.clone().unwrap_or_else(|| lists_dir.join("facescrub_features_list.json"));
    let list = read_probe_list(&probe_list_path)?;
    let lists = read_distractor_lists(&lists_dir, &a.sizes, a.set as _)?;

    let mut probes = match (&a.probe_root, &a.probe_store) {
        (Some(root), _) => {
            let pb = progress_bar(list.paths.len(), "probe features");
            let p = ProbeSet::from_devkit(&list, root, &a.ending, |n| pb.inc(n as u64))?;
            pb.finish_and_clear();
            p
        }
        (None, Some(s)) => ProbeSet::from_store(&list, &store::read(s, None)?)?,
        (None, None) => unreachable!("clap requires one"),
    };
    let mut dist = match (&a.distractor_root, &a.distractor_store) {
        (Some(root), _) => {
            let total: usize = lists.iter().map(|(_, l)| l.len()).sum();
            let pb = progress_bar(total, "distractor features");
            let d = DistractorSet::from_devkit(&lists, root, &a.ending, |n| pb.inc(n as u64))?;
            pb.finish_and_clear();
            d
        }
        (None, Some(s)) => DistractorSet::from_store_lists(store::read(s, None)?, &lists)?,
        (None, None) => unreachable!("clap requires one"),
    };
    if a.clean {
        let noises = data_root.join("megaface/noises");
        probes.apply_noise_list(&NoiseList::read(&noises.join("facescrub_noises.txt"))?, 0)?;
        dist.apply_noise_list(&NoiseList::read(&noises.join("megaface_noises.txt"))?)?;
    }
    let read_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let cfg = EvalConfig {
        dataset: "MegaFace".into(),
        max_rank: a.max_rank,
        scoring: if a.bf16 { Scoring::Bf16 } else { a.scoring.parse()? },
        ..EvalConfig::default()
    };
    let pb = progress_bar(0, "scoring");
    let results = evaluate(&probes, &dist, &cfg, &|done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    let score_s = t1.elapsed().as_secs_f64();
    write_outputs(&a.out, &results, &a.alg, a.set, ("facescrub", "megaface"))?;
    let src = |root: &Option<PathBuf>, st: &Option<PathBuf>| match (root, st) {
        (Some(r), _) => format!("devkit files under {} (suffix `{}`)", r.display(), a.ending),
        (None, Some(s)) => {
            super::provenance::file_sha256(s).map_or_else(|e| e, |h| format!("{} (sha256 {h})", s.display()))
        }
        (None, None) => String::new(),
    };
    let provenance = super::provenance::collect(&[
        ("model", format!("{} (features computed elsewhere; weights not known here)", a.alg)),
        ("probe features", src(&a.probe_root, &a.probe_store)),
        ("distractor features", src(&a.distractor_root, &a.distractor_store)),
        (
            "protocol file",
            super::provenance::file_sha256(&probe_list_path)
                .map_or_else(|e| e, |h| format!("{} (sha256 {h})", probe_list_path.display())),
        ),
        ("distractor lists", lists_dir.display().to_string()),
        ("preprocessing", if a.clean { "InsightFace noise lists applied (R)".into() } else { "raw lists".to_string() }),
        ("data root", data_root.display().to_string()),
        ("device", format!("cpu ({} scoring)", results.scoring.name())),
    ]);
    let timings = [
        ("read lists and features".to_string(), read_s, String::new()),
        ("score all sizes (one pass)".to_string(), score_s, String::new()),
    ];
    super::provenance::annotate_results_json(&a.out.join("results.json"), &a.alg, &provenance, &timings)?;
    print!("{}", results.summary());
    println!("wrote {}", a.out.display());
    Ok(())
}

/// Devkit JSON (alg suffixed `_R` when cleaned: the devkit has no raw/R field),
/// results.json, and CMC/ROC figures with one curve per size.
/// `names` = (probe set, distractor set) as they appear in the devkit file names.
pub fn write_outputs(out: &Path, r: &MegafaceResults, alg: &str, set: u32, names: (&str, &str)) -> CmdResult {
    super::create_dir(out)?;
    let cleaned = matches!(r.variant, facebench_megaface::Variant::R);
    let names = DevkitNames {
        probe: names.0.into(),
        distractor: names.1.into(),
        alg: if cleaned { format!("{alg}_R") } else { alg.to_string() },
        set: set as _,
    };
    write_devkit_results(out, &names, r)?;
    write_results_json(&out.join("results.json"), r)?;
    let label = format!("{} ({})", r.dataset, if cleaned { "R" } else { "raw" });
    let cmc: Vec<CmcCurve> = r
        .sizes
        .iter()
        .enumerate()
        .map(|(i, s)| CmcCurve { label: format!("{} distractors", s.size), colour_index: i, rates: &s.cmc })
        .collect();
    cmc_plot(&out.join("cmc"), &format!("CMC, {label}"), &cmc)?;
    let roc: Vec<RocCurve> = r
        .sizes
        .iter()
        .enumerate()
        .map(|(i, s)| RocCurve {
            label: format!("{} distractors", s.size),
            colour_index: i,
            far: &s.roc.fpr,
            tar: &s.roc.tpr,
            band: None,
        })
        .collect();
    roc_plot(&out.join("roc"), &format!("Verification ROC, {label}"), &roc)?;
    let md = out.join("report.md");
    std::fs::write(&md, report_markdown(r, &label)).map_err(|e| format!("{}: {e}", md.display()))?;
    Ok(())
}

/// `report.md`: one row per size (rank-1, TAR@FAR exact and devkit-style), then the
/// published rows, kept apart and labelled as published.
fn report_markdown(r: &MegafaceResults, label: &str) -> String {
    use facebench_megaface::TarExact;
    use facebench_report::published::{pct, PUBLISHED};
    use facebench_report::table::Table;
    let mut header = vec!["distractors".to_string(), "Id (rank-1)".to_string()];
    let fars: Vec<f64> = r.sizes.first().map(|s| s.tar_at_far.iter().map(|t| t.far).collect()).unwrap_or_default();
    for f in &fars {
        header.push(format!("TAR@FAR={f:.0e} exact"));
        header.push(format!("TAR@FAR={f:.0e} devkit log-interp"));
    }
    let mut t = Table::new(header);
    for s in &r.sizes {
        let mut row = vec![s.distractors.to_string(), format!("{:.2}%", 100.0 * s.rank1)];
        for x in &s.tar_at_far {
            row.push(match x.exact {
                TarExact::Measured { tar, .. } => format!("{:.2}%", 100.0 * tar),
                TarExact::NotMeasurable { impostors } => format!("not measurable ({impostors} impostors)"),
            });
            row.push(x.devkit_log_interp.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v)));
        }
        t.row(row);
    }
    let mut p = Table::new(["source", "setting", "MF1 Id raw", "MF1 Id R", "MF1 Ver raw", "MF1 Ver R"]);
    for row in PUBLISHED.iter().filter(|p| p.mf_id.is_some() || p.mf_ver.is_some()) {
        p.row([
            row.source.to_string(),
            row.setting.to_string(),
            pct(row.mf_id),
            pct(row.mf_id_r),
            pct(row.mf_ver),
            pct(row.mf_ver_r),
        ]);
    }
    format!(
        "# {label}\n\n{} probes of {} identities, {} dimensions, {} scoring. Every number below is {label}.\n\n\
         ## Measured\n\n{}\n![CMC](cmc.png)\n\n![ROC](roc.png)\n\n\
         ## Published (MegaFace Challenge 1 at 1M distractors, as published; not comparable with a stand-in)\n\n{}",
        r.probes,
        r.identities,
        r.dim,
        match r.scoring {
            Scoring::F32 => "f32".to_string(),
            m => format!("{} (approximate)", m.name()),
        },
        t.markdown(),
        p.markdown()
    )
}

#[derive(Args)]
pub struct LfwStandInArgs {
    #[arg(long, value_enum, default_value = "faceapi-resnet")]
    model: super::embed::ModelName,
    /// Identities with at least this many images are the probes; all images of the
    /// other identities are the distractors.
    #[arg(long, default_value_t = 10)]
    min_images: usize,
    #[command(flatten)]
    pipeline: super::lfw_pipeline::PipelineArgs,
    /// Output folder [default: reports/megaface/<model>].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// MegaFace's protocol on a real-image stand-in built from all of LFW (labelled
/// "LFW-as-MegaFace" everywhere): probes = identities with >= `min_images` images,
/// distractors = every image of the other identities, sizes 10, 100, 1000 and all.
pub fn run_lfw_stand_in(a: LfwStandInArgs, data_root: &Path) -> CmdResult {
    use super::embed::{embed_cached, flip_path, recipe};
    let root = data_root.join("lfw/lfw-deepfunneled");
    let mut keys = Vec::new();
    let mut people: Vec<_> = std::fs::read_dir(&root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    people.sort();
    for p in &people {
        let mut imgs: Vec<String> = std::fs::read_dir(root.join(p))?
            .filter_map(|e| e.ok())
            .map(|e| format!("{p}/{}", e.file_name().to_string_lossy()))
            .filter(|k| k.ends_with(".jpg"))
            .collect();
        imgs.sort();
        keys.extend(imgs);
    }
    let cache = &a.pipeline.cache;
    let align_path = cache.join("align.jsonl");
    let o = super::align::align_cached(
        &root,
        &keys,
        &align_path,
        &a.pipeline.run.device,
        a.pipeline.run.models_dir.as_deref(),
    )?;
    let (faces, fallbacks) = facebench_extract::read_alignments(&align_path)?;
    let net = a.pipeline.run.load(a.model.as_str())?;
    let r = recipe(a.model, "landmarks")?;
    let job = facebench_extract::Job {
        model: net.as_ref(),
        recipe: &r,
        root: &root,
        batch: a.pipeline.run.batch,
        flip: true,
        skip_bad: false,
    };
    let path = cache.join(a.model.as_str()).join("landmarks.fbs");
    let s = embed_cached(&job, &keys, &faces, &path)?;
    let orig = facebench_core::store::AppendStore::read(&path)?.1;
    let flip = facebench_core::store::AppendStore::read(&flip_path(&path))?.1;
    // InsightFace's flip test: normalize(orig + flip).
    let fused = orig.fuse_flip_sum(&flip)?;

    let mut count = std::collections::HashMap::<&str, usize>::new();
    for k in &keys {
        *count.entry(k.split('/').next().unwrap_or(k)).or_default() += 1;
    }
    let (mut ids, mut ppaths, mut pdata, mut ddata) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in &keys {
        let id = k.split('/').next().unwrap_or(k);
        let row = fused.get(k)?;
        if count[id] >= a.min_images {
            ids.push(id.to_string());
            ppaths.push(k.clone());
            pdata.extend_from_slice(row);
        } else {
            ddata.extend_from_slice(row);
        }
    }
    let n_dist = ddata.len() / fused.dim();
    let mut sizes: Vec<usize> = [10, 100, 1000].into_iter().filter(|&s| s < n_dist).collect();
    sizes.push(n_dist);
    let probes = ProbeSet::new(&ids, ppaths, pdata, fused.dim())?;
    let dist = DistractorSet::from_raw_first_n(ddata, fused.dim(), &sizes)?;
    let cfg = EvalConfig { dataset: "LFW-as-MegaFace".into(), ..EvalConfig::default() };
    let t_score = std::time::Instant::now();
    let results = evaluate(&probes, &dist, &cfg, &|_, _| {})?;
    let score_s = t_score.elapsed().as_secs_f64();
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("reports/megaface").join(a.model.as_str()));
    // The stand-in must never read as MegaFace, file names included.
    write_outputs(&out, &results, a.model.as_str(), 1, ("lfwprobes", "lfwdistractors"))?;
    let provenance = super::provenance::collect(&[
        ("model", a.model.as_str().to_string()),
        ("weights sha256", net.weights_sha256().to_string()),
        ("preprocessing", "align landmarks (the model's own), mirror features fused: normalize(orig + flip)".into()),
        // No protocol file: the checksum is of the image list the split was made from.
        (
            "protocol",
            format!(
                "LFW-as-MegaFace stand-in: probes = identities with >= {} images of {} (sha256 of the {} image keys: {})",
                a.min_images,
                root.display(),
                keys.len(),
                facebench_lfw::sha256_hex(keys.join("\n").as_bytes())
            ),
        ),
        ("data root", data_root.display().to_string()),
        ("device", a.pipeline.run.device.clone()),
    ]);
    let timings = [
        ("align (detector + 68 landmarks)".to_string(), o.seconds, format!("{} new images", o.aligned)),
        ("embed (+ mirrors)".to_string(), s.seconds, format!("{} new images", s.computed)),
        ("score all sizes (one pass)".to_string(), score_s, String::new()),
    ];
    super::provenance::annotate_results_json(&out.join("results.json"), a.model.as_str(), &provenance, &timings)?;
    println!(
        "LFW-as-MegaFace (a stand-in, not MegaFace): {} probes of {} identities with >= {} images, {} distractors; \
         align {} new images ({:.1} images/s), embed {} new images; {} fallback(s) in the cache",
        probes.len(),
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        a.min_images,
        n_dist,
        o.aligned,
        o.per_second(),
        s.computed,
        fallbacks.len()
    );
    print!("{}", results.summary());
    println!("wrote {}", out.display());
    Ok(())
}
