//! MegaFace Challenge 1 from devkit feature files or stores, and MegaFace's protocol on a
//! real-image stand-in built from LFW (labelled LFW-as-MegaFace everywhere).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use facebench_core::store;
use facebench_megaface::{
    evaluate, read_distractor_lists, read_probe_list, write_devkit_results, DevkitNames, DistractorSet, EvalConfig,
    MegafaceProtocol, MegafaceResults, NoiseList, ProbeSet, Scoring,
};
use facebench_report::megaface::write_megaface_report;

use crate::provenance::{collect, described};
use crate::{io, output_set, progress_bar, write_json, Result, ResultsEnvelope, Stage, Workspace};

/// Where one side's features come from: devkit files under a folder, or a packed store.
#[derive(Debug, Clone)]
pub enum Features {
    /// `<root>/<list path><ending>`.
    Devkit(PathBuf),
    Store(PathBuf),
}

impl Features {
    fn describe(&self, ending: &str) -> String {
        match self {
            Features::Devkit(r) => format!("devkit files under {} (suffix `{ending}`)", r.display()),
            Features::Store(s) => described(s),
        }
    }
}

/// `protocols/megaface.toml` (list names, distractor sizes, noise lists, published rows) and
/// its path.
fn protocol() -> Result<(MegafaceProtocol, PathBuf)> {
    let path = facebench_pairs::published::default_dir().join("megaface.toml");
    Ok((MegafaceProtocol::read(&path)?, path))
}

/// `facebench eval megaface`.
#[derive(Debug, Clone)]
pub struct MegafaceRequest {
    /// [default: the protocol file's probe list, checked against its size]
    pub probe: Option<PathBuf>,
    pub probe_features: Features,
    /// Folder of the distractor lists [default: the protocol file's].
    pub distractors: Option<PathBuf>,
    pub distractor_features: Features,
    pub ending: String,
    /// Distractor set sizes [default: the protocol file's].
    pub sizes: Option<Vec<usize>>,
    /// Distractor list set number [default: the protocol file's].
    pub set: Option<u32>,
    pub clean: bool,
    pub max_rank: usize,
    pub scoring: Scoring,
    pub alg: String,
    pub out: PathBuf,
}

/// Devkit JSON (alg suffixed `_R` when cleaned: the devkit has no raw/R field), results.json
/// (the results' own fields at the top level, beside model, timings and provenance), and the
/// report with the protocol's published rows; `alg` is also the results' model. `names` =
/// (probe set, distractor set) as they appear in the devkit file names.
#[allow(clippy::too_many_arguments)]
fn write_outputs(
    out: &Path,
    r: &MegafaceResults,
    proto: &MegafaceProtocol,
    alg: &str,
    set: u32,
    names: (&str, &str),
    timings: Vec<Stage>,
    provenance: &[(String, String)],
) -> Result<()> {
    let outputs = output_set(out)?;
    let dir = outputs.dir();
    let cleaned = matches!(r.variant, facebench_megaface::Variant::R);
    let names = DevkitNames {
        probe: names.0.into(),
        distractor: names.1.into(),
        alg: if cleaned { format!("{alg}_R") } else { alg.to_string() },
        set: set as _,
    };
    write_devkit_results(dir, &names, r)?;
    write_json(&dir.join("results.json"), &ResultsEnvelope::new("megaface", alg, r, timings, provenance))?;
    let label = format!("{} ({})", r.dataset, if cleaned { "R" } else { "raw" });
    write_megaface_report(dir, r, &label, &proto.published)?;
    Ok(outputs.commit()?)
}

/// Scores every size in one pass and writes the outputs; returns what the terminal shows.
pub fn run(data_root: &Path, a: &MegafaceRequest) -> Result<String> {
    let t0 = Instant::now();
    let (proto, proto_path) = protocol()?;
    let lists_dir = a.distractors.clone().unwrap_or_else(|| data_root.join(&proto.lists.distractors));
    let (probe_list_path, list) = match &a.probe {
        Some(p) => (p.clone(), read_probe_list(p)?),
        None => (data_root.join(&proto.lists.probe), proto.read_probe_list(data_root)?),
    };
    let sizes = a.sizes.clone().unwrap_or_else(|| proto.lists.sizes.clone());
    let set = a.set.unwrap_or(proto.lists.set as u32);
    let lists = read_distractor_lists(&lists_dir, &sizes, set as _)?;

    let mut probes = match &a.probe_features {
        Features::Devkit(root) => {
            let pb = progress_bar(list.paths.len(), "probe features");
            let p = ProbeSet::from_devkit(&list, root, &a.ending, |n| pb.inc(n as u64))?;
            pb.finish_and_clear();
            p
        }
        Features::Store(s) => ProbeSet::from_store(&list, &store::read(s, None)?)?,
    };
    let mut dist = match &a.distractor_features {
        Features::Devkit(root) => {
            let total: usize = lists.iter().map(|(_, l)| l.len()).sum();
            let pb = progress_bar(total, "distractor features");
            let d = DistractorSet::from_devkit(&lists, root, &a.ending, |n| pb.inc(n as u64))?;
            pb.finish_and_clear();
            d
        }
        Features::Store(s) => DistractorSet::from_store_lists(store::read(s, None)?, &lists)?,
    };
    if a.clean {
        probes.apply_noise_list(&NoiseList::read(&data_root.join(&proto.noises.probe))?, 0)?;
        dist.apply_noise_list(&NoiseList::read(&data_root.join(&proto.noises.distractor))?)?;
    }
    let read_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let cfg =
        EvalConfig { dataset: "MegaFace".into(), max_rank: a.max_rank, scoring: a.scoring, ..EvalConfig::default() };
    let pb = progress_bar(0, "scoring");
    let results = evaluate(&probes, &dist, &cfg, &|done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    let score_s = t1.elapsed().as_secs_f64();
    let provenance = collect(&[
        ("model", format!("{} (features computed elsewhere; weights not known here)", a.alg)),
        ("probe features", a.probe_features.describe(&a.ending)),
        ("distractor features", a.distractor_features.describe(&a.ending)),
        ("protocol file", described(&proto_path)),
        ("probe list", described(&probe_list_path)),
        ("distractor lists", lists_dir.display().to_string()),
        ("preprocessing", if a.clean { "InsightFace noise lists applied (R)".into() } else { "raw lists".to_string() }),
        ("data root", data_root.display().to_string()),
        ("device", format!("cpu ({} scoring)", results.scoring.name())),
    ]);
    let timings =
        vec![Stage::new("read lists and features", read_s, ""), Stage::new("score all sizes (one pass)", score_s, "")];
    write_outputs(&a.out, &results, &proto, &a.alg, set, ("facescrub", "megaface"), timings, &provenance)?;
    Ok(format!("{}wrote {}\n", results.summary(), a.out.display()))
}

/// MegaFace's protocol on all of LFW: probes = identities with >= `min_images` images,
/// distractors = every image of the other identities, at the protocol file's sizes below
/// their count (10, 100, 1000) and all.
/// `out` defaults to reports/megaface/<model>. Returns what the terminal shows.
pub fn run_lfw_stand_in(ws: &Workspace, model: &str, min_images: usize, out: Option<&Path>) -> Result<String> {
    let (proto, _) = protocol()?;
    let root = ws.lfw_images();
    let mut keys = Vec::new();
    let mut people: Vec<_> = std::fs::read_dir(&root)
        .map_err(io(&root))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    people.sort();
    for p in &people {
        let dir = root.join(p);
        let mut imgs: Vec<String> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .map(|e| format!("{p}/{}", e.file_name().to_string_lossy()))
            .filter(|k| k.ends_with(".jpg"))
            .collect();
        imgs.sort();
        keys.extend(imgs);
    }
    let e = ws.lfw_landmark_embeddings(model, &keys)?;
    // InsightFace's flip test: normalize(orig + flip).
    let fused = e.orig.fuse_flip_sum(&e.flip)?;

    let mut count = HashMap::<&str, usize>::new();
    for k in &keys {
        *count.entry(k.split('/').next().unwrap_or(k)).or_default() += 1;
    }
    let (mut ids, mut ppaths, mut pdata, mut ddata) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in &keys {
        let id = k.split('/').next().unwrap_or(k);
        let row = fused.get(k)?;
        if count[id] >= min_images {
            ids.push(id.to_string());
            ppaths.push(k.clone());
            pdata.extend_from_slice(row);
        } else {
            ddata.extend_from_slice(row);
        }
    }
    let n_dist = ddata.len() / fused.dim();
    let mut sizes: Vec<usize> = proto.lists.sizes.iter().copied().filter(|&s| s < n_dist).collect();
    sizes.push(n_dist);
    let probes = ProbeSet::new(&ids, ppaths, pdata, fused.dim())?;
    let dist = DistractorSet::from_raw_first_n(ddata, fused.dim(), &sizes)?;
    let cfg = EvalConfig { dataset: "LFW-as-MegaFace".into(), ..EvalConfig::default() };
    let t_score = Instant::now();
    let results = evaluate(&probes, &dist, &cfg, &|_, _| {})?;
    let score_s = t_score.elapsed().as_secs_f64();
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("reports/megaface").join(model));
    let provenance = collect(&[
        ("model", model.to_string()),
        ("weights sha256", e.weights_sha.clone()),
        ("preprocessing", "align landmarks (the model's own), mirror features fused: normalize(orig + flip)".into()),
        // No protocol file: the checksum is of the image list the split was made from.
        (
            "protocol",
            format!(
                "LFW-as-MegaFace stand-in: probes = identities with >= {} images of {} (sha256 of the {} image keys: {})",
                min_images,
                root.display(),
                keys.len(),
                facebench_pairs::sha256_hex(keys.join("\n").as_bytes())
            ),
        ),
        ("data root", ws.data_root.display().to_string()),
        ("device", ws.device.clone()),
    ]);
    let (o, s) = (&e.aligned, &e.embedded);
    let timings = vec![
        Stage::new("align (detector + 68 landmarks)", o.seconds, format!("{} new images", o.aligned)),
        Stage::new("embed (+ mirrors)", s.seconds, format!("{} new images", s.computed)),
        Stage::new("score all sizes (one pass)", score_s, ""),
    ];
    // The stand-in must never read as MegaFace, file names included.
    write_outputs(&out, &results, &proto, model, 1, ("lfwprobes", "lfwdistractors"), timings, &provenance)?;
    Ok(format!(
        "LFW-as-MegaFace (a stand-in, not MegaFace): {} probes of {} identities with >= {} images, {} distractors; \
         align {} new images ({:.1} images/s), embed {} new images; {} fallback(s) in the cache\n{}wrote {}\n",
        probes.len(),
        ids.iter().collect::<HashSet<_>>().len(),
        min_images,
        n_dist,
        o.aligned,
        o.per_second(),
        s.computed,
        e.fallbacks.len(),
        results.summary(),
        out.display()
    ))
}
