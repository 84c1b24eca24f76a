//! `facebench eval megaface` and `facebench bench megaface`.

use std::path::{Path, PathBuf};

use clap::Args;
use facebench_core::store;
use facebench_megaface::{
    bench_megaface, evaluate, read_distractor_lists, read_probe_list, write_devkit_results,
    write_results_json, DevkitNames, DistractorSet, EvalConfig, MegafaceResults, NoiseList, ProbeSet,
    Scoring,
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
    /// Score in bfloat16 (AVX-512 BF16): about 2x faster, approximate, labelled.
    #[arg(long)]
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
    let cfg = EvalConfig {
        dataset: "MegaFace".into(),
        max_rank: a.max_rank,
        scoring: if a.bf16 { Scoring::Bf16 } else { Scoring::F32 },
        ..EvalConfig::default()
    };
    let pb = progress_bar(0, "scoring");
    let results = evaluate(&probes, &dist, &cfg, &|done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    write_outputs(&a.out, &results, &a.alg, a.set)?;
    print!("{}", results.summary());
    println!("wrote {}", a.out.display());
    Ok(())
}

/// Devkit JSON (alg suffixed `_R` when cleaned: the devkit has no raw/R field),
/// results.json, and CMC/ROC figures with one curve per size.
pub fn write_outputs(out: &Path, r: &MegafaceResults, alg: &str, set: u32) -> CmdResult {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let cleaned = matches!(r.variant, facebench_megaface::Variant::R);
    let names = DevkitNames {
        probe: "facescrub".into(),
        distractor: "megaface".into(),
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
    Ok(())
}
