//! The paper-style summary over many results.json files (`facebench report`): one table
//! shaped like the CosFace paper's (measured rows apart from published ones), per-protocol
//! detail tables, overlaid ROC and CMC figures, side-by-side score histograms, extra figures
//! (LMCL) and a provenance appendix, as `summary.md`, `summary.html` (one self-contained
//! file) and `summary.tex` (booktabs tables).
//!
//! Every number carries its protocol variant in its own cell (rule, raw/R, stand-in,
//! partial), since a table row copied into a paper loses its footnotes.
//!
//! Inputs are checked before anything is written (see `load`), and the outputs are written
//! as one set: a failed run leaves the previous summary, or none.

mod inputs;
mod latex;
mod load;
mod scores;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use facebench_metrics::Published;

use facebench_core::atomic::OutputSet;
use facebench_core::thousands;
pub use inputs::{find_figures, find_results};
use load::{load, Body, Entry, Megaface, Verification};

use crate::plot::{cmc_plot, colour_slots, roc_plot, score_histogram_panels, CmcCurve, HistPanel, RocCurve};
use crate::results::Stage;
use crate::table::{escape_html, pct, Table};
use crate::{Error, Result};

/// What [`write_summary`] built.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Every model found, sorted.
    pub models: Vec<String>,
    /// Results files used.
    pub used: usize,
    /// Files of an unknown protocol or shape, with the reason; listed in the report.
    pub unrecognised: Vec<(PathBuf, String)>,
    /// Every file written (in the output folder), in order.
    pub written: Vec<PathBuf>,
}

/// Training data of a model in the registry (protocols/models.toml), as its entry states it.
/// A summary of results files does not need the registry, so one that cannot be read just
/// leaves the cell to the results' own field or "unknown".
fn known_training_data(model: &str) -> Option<String> {
    let registry = facebench_model::Registry::load(facebench_model::Registry::default_path()).ok()?;
    registry.get(model).ok().map(|m| m.training_data.clone())
}

/// Training data of a published setting, read from its words.
fn published_training_data(s: &str) -> &'static str {
    if s.contains("CASIA") {
        "CASIA-WebFace (0.49M images, 10,575 people)"
    } else if s.contains("MS1MV2") {
        "MS1MV2 (5.8M images, 85K people)"
    } else if s.contains("MS1M") {
        "MS1M"
    } else if s.contains("large data") {
        "large (the CosFace paper's own set)"
    } else {
        "as published"
    }
}

/// A verification protocol without a column of its own (`.bin` packs, pairs protocol files):
/// its name in the "other sets" column.
fn other_set(p: &str) -> Option<&str> {
    match p {
        "lfw" | "ytf" => None,
        _ => Some(p.strip_prefix("bin:").unwrap_or(p)),
    }
}

/// The title of a protocol's section: a pairs protocol file's is its `name`.
fn protocol_title(p: &str) -> String {
    match p {
        "lfw" => "LFW".into(),
        "ytf" => "YTF".into(),
        _ => match p.strip_prefix("bin:") {
            Some(name) => format!("{name} (InsightFace .bin)"),
            None => p.to_string(),
        },
    }
}

/// A file-name-safe form of a label.
fn slug(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    out.trim_matches('_').to_string()
}

/// The headline accuracy cell: insightface and sphereface (the de-facto standard and the
/// CosFace paper's rule) when present, else the first rule; each number names its rule.
fn verification_cell(v: &Verification) -> String {
    let mut picked: Vec<_> = v.rules.iter().filter(|r| r.rule == "insightface" || r.rule == "sphereface").collect();
    if picked.is_empty() {
        picked = v.rules.iter().take(1).collect();
    }
    let mode = v.mode.as_ref().map_or(String::new(), |m| format!("; {m}"));
    let mut s =
        picked.iter().map(|r| format!("{:.2} ({}{mode})", 100.0 * r.mean, r.rule)).collect::<Vec<_>>().join(", ");
    if s.is_empty() {
        s = "not measurable".into();
    }
    if let Some(p) = &v.partial {
        s += &format!(" [{p}]");
    }
    s
}

/// MegaFace Ver: exact TAR at FAR = 1e-6 (or the smallest FAR target the file has, named).
fn megaface_ver(m: &Megaface) -> String {
    let Some(h) = m.headline() else { return "no sizes".into() };
    let best = h.tar_at_far.iter().min_by(|a, b| (a.0.log10() + 6.0).abs().total_cmp(&(b.0.log10() + 6.0).abs()));
    match best {
        Some((far, Some(tar), _)) => format!("{:.2} (TAR@FAR={far:.0e} exact; {})", 100.0 * tar, m.label()),
        Some((far, None, _)) => format!("not measurable at FAR={far:.0e} ({})", m.label()),
        None => format!("- ({})", m.label()),
    }
}

fn megaface_id(m: &Megaface) -> String {
    match m.headline() {
        Some(h) => format!("{:.2} (rank-1; {})", 100.0 * h.rank1, m.label()),
        None => "no sizes".into(),
    }
}

/// (FAR target, exact TAR, devkit log-interpolated TAR) of a MegaFace size.
type TarCell = (f64, Option<f64>, Option<f64>);

/// A document built once and rendered three ways.
enum Block {
    Heading(u8, String),
    Text(String),
    Table(Table),
    /// (file stem in the output folder or a path elsewhere, caption).
    Figure(PathBuf, String),
}

struct Doc {
    /// The summary's folder, which links are relative to.
    out: PathBuf,
    /// Where its files are written until the set is committed (figures in it are linked as
    /// if in `out`).
    stage: PathBuf,
    blocks: Vec<Block>,
    /// LaTeX tables (written to summary.tex).
    tex: String,
}

impl Doc {
    fn h(&mut self, level: u8, s: impl Into<String>) {
        self.blocks.push(Block::Heading(level, s.into()));
    }
    fn p(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Text(s.into()));
    }
    fn t(&mut self, t: Table) {
        self.blocks.push(Block::Table(t));
    }
    fn fig(&mut self, path: PathBuf, caption: impl Into<String>) {
        self.blocks.push(Block::Figure(path, caption.into()));
    }
}

/// Builds the summary of `results` (results.json files) into `out`, with every PNG/SVG
/// figure of `extra_figures` (e.g. the LMCL figures) linked or inlined and the protocol
/// files' `published` rows (`facebench_pairs::published::all`) in their own table.
/// Every input is read and checked first; the files are written as one
/// [`OutputSet`], so an error leaves `out` as it was.
pub fn write_summary(
    out: &Path,
    results: &[PathBuf],
    extra_figures: &[PathBuf],
    published: &[Published],
) -> Result<Summary> {
    let mut entries = Vec::new();
    let mut unrecognised = Vec::new();
    for p in results {
        let e = load(p)?;
        if let Body::Unrecognised { reason, .. } = &e.body {
            unrecognised.push((p.clone(), reason.clone()));
        }
        entries.push(e);
    }
    let mut models: Vec<String> = entries.iter().map(|e| e.model.clone()).collect();
    models.sort();
    models.dedup();
    let slots = colour_slots(&models);
    let set = OutputSet::new(out)?;
    let mut doc =
        Doc { out: out.to_path_buf(), stage: set.dir().to_path_buf(), blocks: Vec::new(), tex: String::new() };
    let mut written = Vec::new();

    doc.h(1, "facebench summary");
    doc.p(format!(
        "{} results file(s), {} model(s): {}. Measured numbers are ours, from the files listed in the provenance appendix; \
         published numbers are the papers' own, with other training data and networks, and are kept in a separate table. \
         Every number names its protocol variant: the accuracy rule (insightface = InsightFace verification.py, \
         sphereface = the SphereFace/CosFace Matlab evaluation), raw or R (noise-cleaned MegaFace), stand-ins \
         (LFW-as-MegaFace, synthetic) and partial evaluations.",
        entries.len(),
        models.len(),
        models.join(", ")
    ));
    comparison(&mut doc, &entries, &models, published);

    let mut protocols: Vec<&str> = entries
        .iter()
        .filter_map(|e| if let Body::Verification(v) = &e.body { Some(v.protocol.as_str()) } else { None })
        .collect();
    protocols.sort_by_key(|p| {
        (
            match *p {
                "lfw" => 0,
                "ytf" => 1,
                _ => 2,
            },
            p.to_string(),
        )
    });
    protocols.dedup();
    for p in protocols {
        written.extend(verification_section(&mut doc, &entries, p, &slots)?);
    }
    let mut datasets: Vec<&str> = entries
        .iter()
        .filter_map(|e| if let Body::Megaface(m) = &e.body { Some(m.dataset.as_str()) } else { None })
        .collect();
    datasets.sort();
    datasets.dedup();
    for d in datasets {
        written.extend(megaface_section(&mut doc, &entries, d, &slots)?);
    }
    extra_section(&mut doc, extra_figures);
    if !unrecognised.is_empty() {
        doc.h(2, "Inputs not recognised");
        let mut t = Table::new(["file", "why"]);
        for (p, why) in &unrecognised {
            t.row([p.display().to_string(), why.clone()]);
        }
        doc.t(t);
    }
    appendix(&mut doc, &entries);

    set.write("summary.md", render_markdown(&doc).as_bytes())?;
    set.write("summary.html", render_html(&doc)?.as_bytes())?;
    set.write("summary.tex", doc.tex.as_bytes())?;
    set.commit()?;
    // Figures were written in the staging folder; they now lie in `out`.
    let mut written: Vec<PathBuf> = written.iter().map(|p| out.join(p.strip_prefix(&doc.stage).unwrap_or(p))).collect();
    written.extend(["summary.md", "summary.html", "summary.tex"].map(|f| out.join(f)));
    Ok(Summary { models, used: entries.len() - unrecognised.len(), unrecognised, written })
}

/// One line of the published table: a source and setting, with its row of each protocol.
struct PublishedLine<'a> {
    source: &'a str,
    setting: &'a str,
    rows: Vec<&'a Published>,
}

impl PublishedLine<'_> {
    fn of(&self, protocol: &str) -> Option<&Published> {
        self.rows.iter().copied().find(|r| r.protocol == protocol)
    }

    /// Accuracies on protocols without a column of their own: `cfp_fp: 98.37`.
    fn other(&self) -> Vec<String> {
        let own = |p: &str| ["lfw", "ytf", "megaface"].contains(&p);
        let rows = self.rows.iter().filter(|r| !own(&r.protocol));
        rows.filter_map(|r| Some(format!("{}: {}", r.protocol, pct(Some(r.accuracy?))))).collect()
    }
}

/// Rows of one source and setting, across protocol files, make one line. A line new to the
/// table goes right after the line of the row before it in the same protocol, so every
/// file's order is kept (the files list their rows in the CosFace paper's order).
fn published_lines(rows: &[Published]) -> Vec<PublishedLine<'_>> {
    let mut lines: Vec<PublishedLine> = Vec::new();
    let mut prev: Option<(&str, usize)> = None;
    for r in rows {
        let i = match lines.iter().position(|l| l.source == r.source && l.setting == r.setting) {
            Some(i) => i,
            None => {
                let i = match prev {
                    Some((p, i)) if p == r.protocol => i + 1,
                    _ => lines.len(),
                };
                lines.insert(i, PublishedLine { source: &r.source, setting: &r.setting, rows: Vec::new() });
                i
            }
        };
        lines[i].rows.push(r);
        prev = Some((&r.protocol, i));
    }
    lines
}

/// The CosFace-paper-shaped table: measured rows, then published rows, apart.
fn comparison(doc: &mut Doc, entries: &[Entry], models: &[String], published_rows: &[Published]) {
    let lines = published_lines(published_rows);
    let has_other =
        entries.iter().any(|e| matches!(&e.body, Body::Verification(v) if other_set(&v.protocol).is_some()))
            || lines.iter().any(|l| !l.other().is_empty());
    let mut header: Vec<String> =
        ["method", "training data", "LFW %", "YTF %", "MegaFace Id %", "MegaFace Ver %"].map(String::from).to_vec();
    if has_other {
        header.push("other sets %".into());
    }
    let mut measured = Table::new(header.clone());
    for m in models {
        let mine: Vec<&Entry> = entries.iter().filter(|e| &e.model == m).collect();
        let training = mine
            .iter()
            .find_map(|e| e.training_data.clone())
            .or_else(|| known_training_data(m))
            .unwrap_or_else(|| "unknown".into());
        let cell = |f: &dyn Fn(&Entry) -> Option<String>| {
            let parts: Vec<String> = mine.iter().filter_map(|e| f(e)).collect();
            if parts.is_empty() {
                "-".to_string()
            } else {
                parts.join("; ")
            }
        };
        let verif = |proto: &'static str| {
            move |e: &Entry| match &e.body {
                Body::Verification(v) if v.protocol == proto => Some(verification_cell(v)),
                _ => None,
            }
        };
        let mut row = vec![
            m.clone(),
            training,
            cell(&verif("lfw")),
            cell(&verif("ytf")),
            cell(&|e| if let Body::Megaface(x) = &e.body { Some(megaface_id(x)) } else { None }),
            cell(&|e| if let Body::Megaface(x) = &e.body { Some(megaface_ver(x)) } else { None }),
        ];
        if has_other {
            row.push(cell(&|e| match &e.body {
                Body::Verification(v) => other_set(&v.protocol).map(|name| format!("{name}: {}", verification_cell(v))),
                _ => None,
            }));
        }
        measured.row(row);
    }
    let mut published = Table::new(header.clone());
    let both = |raw: Option<f64>, r: Option<f64>| match (raw, r) {
        (None, None) => "-".to_string(),
        (raw, None) => format!("{} (raw)", pct(raw)),
        (None, r) => format!("{} (R)", pct(r)),
        (raw, r) => format!("{} (raw); {} (R)", pct(raw), pct(r)),
    };
    for l in &lines {
        let mf = l.of("megaface");
        let mut row = vec![
            format!("{}: {}", l.source, l.setting),
            published_training_data(l.setting).to_string(),
            pct(l.of("lfw").and_then(|r| r.accuracy)),
            pct(l.of("ytf").and_then(|r| r.accuracy)),
            both(mf.and_then(|r| r.rank1), mf.and_then(|r| r.rank1_r)),
            both(mf.and_then(|r| r.tar_at_far_1e6), mf.and_then(|r| r.tar_at_far_1e6_r)),
        ];
        if has_other {
            let other = l.other();
            row.push(if other.is_empty() { "-".into() } else { other.join("; ") });
        }
        published.row(row);
    }
    doc.h(2, "Comparison (the CosFace paper's table layout)");
    doc.h(3, "Measured here");
    doc.t(measured.clone());
    doc.h(3, "Published (as reported; not measured here)");
    doc.p("LFW and YTF as each paper evaluated them (the CosFace paper used the SphereFace Matlab protocol); \
         MegaFace Challenge 1 at 1M distractors: Id = rank-1 identification, Ver = TAR at FAR 1e-6; \
         R = InsightFace's noise-cleaned lists.");
    doc.t(published.clone());
    let widths: Vec<f64> =
        if has_other { vec![2.6, 2.6, 2.2, 1.6, 2.6, 2.6, 2.2] } else { vec![3.0, 3.0, 2.6, 1.8, 2.9, 2.9] };
    doc.tex += "% facebench summary: \\input this file (needs \\usepackage{booktabs,array}).\n\n";
    doc.tex += &latex::table(
        "Face verification and identification: measured here (top) and as published (bottom). Each number names its protocol variant.",
        "tab:facebench-comparison",
        &header,
        &[("Measured here", &measured), ("Published", &published)],
        &widths,
    );
}

fn verification_section(
    doc: &mut Doc,
    entries: &[Entry],
    protocol: &str,
    slots: &BTreeMap<String, usize>,
) -> Result<Vec<PathBuf>> {
    let title = protocol_title(protocol);
    let rows: Vec<(&Entry, &Verification)> = entries
        .iter()
        .filter_map(|e| match &e.body {
            Body::Verification(v) if v.protocol == protocol => Some((e, &**v)),
            _ => None,
        })
        .collect();
    doc.h(2, format!("{title}: every model and rule"));
    let mut t = Table::new([
        "model",
        "preprocessing",
        "pairs",
        "rule",
        "accuracy % (mean ± pop. std)",
        "sample std",
        "SEM",
        "AUC",
        "EER %",
        "TAR@FAR",
    ]);
    for (e, v) in &rows {
        let pairs = match &v.partial {
            Some(p) => format!("{} [{p}]", thousands(v.n_pairs)),
            None => thousands(v.n_pairs),
        };
        let tar = v
            .tar_at_far
            .iter()
            .map(|(far, tar, how)| match tar {
                Some(t) => format!("{:.2} @{far:.0e} ({how})", 100.0 * t),
                None => format!("n/m @{far:.0e} ({how})"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        if v.rules.is_empty() {
            t.row([
                e.model.clone(),
                v.preprocessing.clone(),
                pairs.clone(),
                "-".into(),
                "not measurable".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for (i, r) in v.rules.iter().enumerate() {
            let first = i == 0;
            let opt = |x: Option<f64>| x.map_or("-".into(), |x| format!("{:.2}", 100.0 * x));
            t.row([
                e.model.clone(),
                if first { v.preprocessing.clone() } else { "″".into() },
                pairs.clone(),
                match &v.mode {
                    Some(m) => format!("{} ({m})", r.rule),
                    None => r.rule.clone(),
                },
                format!("{:.2} ± {:.2}", 100.0 * r.mean, 100.0 * r.std_population),
                opt(r.std_sample),
                opt(r.sem),
                if first { v.auc.map_or("-".into(), |a| format!("{a:.5}")) } else { "″".into() },
                if first { opt(v.eer) } else { "″".into() },
                if first { tar.clone() } else { "″".into() },
            ]);
        }
        for (name, rule, mean, std) in &v.other_variants {
            t.row([
                e.model.clone(),
                format!("{name} (other variant, same run)"),
                pairs.clone(),
                rule.clone(),
                format!("{:.2} ± {:.2}", 100.0 * mean, 100.0 * std),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
    }
    doc.t(t.clone());
    for (e, v) in &rows {
        for n in &v.notes {
            doc.p(format!("{}: {n}", e.model));
        }
    }
    let tex_t = {
        // The LaTeX copy leaves out the ROC read-outs column (too wide for a page).
        let mut x = Table::new(t.header[..9].to_vec());
        x.rows = t.rows.iter().map(|r| r[..9].to_vec()).collect();
        x
    };
    let mut folds: Vec<String> = rows.iter().map(|(_, v)| v.n_folds.map_or("k".into(), |n| n.to_string())).collect();
    folds.sort();
    folds.dedup();
    doc.tex += &latex::table(
        &format!("{title}: accuracy under each tool's rule ({}-fold).", folds.join(" or ")),
        &format!("tab:facebench-{}", slug(protocol)),
        &tex_t.header,
        &[("", &tex_t)],
        &[1.9, 3.0, 1.2, 1.9, 2.0, 1.2, 0.9, 1.4, 0.9],
    );

    let mut written = Vec::new();
    let curves: Vec<RocCurve> = rows
        .iter()
        .filter_map(|(e, v)| {
            let (far, tar, what) = v.roc.as_ref()?;
            Some(RocCurve {
                label: format!(
                    "{} ({what}{})",
                    e.model,
                    v.partial.as_ref().map_or(String::new(), |p| format!(", {p}"))
                ),
                colour_index: slots[&e.model],
                far,
                tar,
                band: None,
            })
        })
        .collect();
    if !curves.is_empty() {
        let stem = doc.stage.join(format!("roc_{}", slug(protocol)));
        roc_plot(&stem, &format!("{title} ROC, all models"), &curves)?;
        doc.fig(stem.clone(), format!("{title}: ROC of every model (TAR against FAR on a log axis; fold-mean curves where the file has them)."));
        written.extend([stem.with_extension("png"), stem.with_extension("svg")]);
    }
    let panels: Vec<HistPanel> = rows
        .iter()
        .filter_map(|(e, v)| {
            let (g, i) = v.scores.as_ref()?;
            Some(HistPanel {
                label: e.model.clone(),
                colour_index: slots[&e.model],
                genuine: g,
                impostor: i,
                threshold: v.rules.iter().find(|r| r.rule == "insightface").and_then(|r| r.cosine_threshold),
            })
        })
        .collect();
    if !panels.is_empty() {
        let stem = doc.stage.join(format!("scores_{}", slug(protocol)));
        let x_desc = if protocol == "ytf" { "video pair score (cosine-like)" } else { "cosine similarity of the pair" };
        score_histogram_panels(&stem, &format!("{title}: pair scores per model"), &panels, x_desc)?;
        let what = if protocol == "ytf" { "video pair scores (each run's scoring mode)" } else { "cosine scores" };
        doc.fig(stem.clone(), format!("{title}: genuine and impostor {what}, one panel per model (each on its own score range); dashed: the insightface rule's mean threshold as a cosine."));
        written.extend([stem.with_extension("png"), stem.with_extension("svg")]);
    }
    let missing: Vec<&str> = rows.iter().filter(|(_, v)| v.scores.is_none()).map(|(e, _)| e.model.as_str()).collect();
    if !missing.is_empty() {
        doc.p(format!(
            "No pairs_scores.csv beside the results of {}: no score histogram for them.",
            missing.join(", ")
        ));
    }
    Ok(written)
}

fn megaface_section(
    doc: &mut Doc,
    entries: &[Entry],
    dataset: &str,
    slots: &BTreeMap<String, usize>,
) -> Result<Vec<PathBuf>> {
    let rows: Vec<(&Entry, &Megaface)> = entries
        .iter()
        .filter_map(|e| match &e.body {
            Body::Megaface(m) if m.dataset == dataset => Some((e, m)),
            _ => None,
        })
        .collect();
    let stand_in = if dataset == "MegaFace" { "" } else { " (a stand-in, not MegaFace)" };
    doc.h(2, format!("MegaFace Challenge 1 protocol on {dataset}{stand_in}"));
    let mut t = Table::new([
        "model",
        "data, variant",
        "distractors",
        "probes",
        "Id % (rank-1)",
        "TAR@FAR exact %",
        "TAR@FAR devkit log-interp %",
    ]);
    for (e, m) in &rows {
        let mut sizes: Vec<_> = m.sizes.iter().collect();
        sizes.sort_by_key(|s| s.size);
        for s in sizes {
            let tars = |f: &dyn Fn(&TarCell) -> Option<f64>| {
                s.tar_at_far
                    .iter()
                    .map(|x| format!("{} @{:.0e}", f(x).map_or("n/m".into(), |t| format!("{:.2}", 100.0 * t)), x.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            t.row([
                e.model.clone(),
                format!("{}, {}", m.dataset, m.variant),
                thousands(s.size),
                thousands(m.probes),
                format!("{:.2}", 100.0 * s.rank1),
                tars(&|x| x.1),
                tars(&|x| x.2),
            ]);
        }
    }
    doc.t(t.clone());
    doc.tex += &latex::table(
        &format!("MegaFace Challenge 1 protocol on {dataset}{stand_in}: rank-1 identification and TAR at each FAR, per distractor size."),
        &format!("tab:facebench-megaface-{}", slug(dataset)),
        &t.header,
        &[("", &t)],
        &[2.2, 2.6, 1.4, 1.1, 1.4, 4.0, 4.0],
    );
    let mut written = Vec::new();
    let label = |e: &Entry, m: &Megaface| format!("{} ({})", e.model, m.label());
    let cmc: Vec<CmcCurve> = rows
        .iter()
        .filter_map(|(e, m)| {
            let h = m.headline().filter(|h| !h.cmc.is_empty())?;
            Some(CmcCurve { label: label(e, m), colour_index: slots[&e.model], rates: &h.cmc })
        })
        .collect();
    if !cmc.is_empty() {
        let stem = doc.stage.join(format!("cmc_{}", slug(dataset)));
        cmc_plot(&stem, &format!("CMC on {dataset}, all models (largest size)"), &cmc)?;
        doc.fig(
            stem.clone(),
            format!("{dataset}: identification rate against rank at each run's largest distractor size."),
        );
        written.extend([stem.with_extension("png"), stem.with_extension("svg")]);
    }
    let roc: Vec<RocCurve> = rows
        .iter()
        .filter_map(|(e, m)| {
            let h = m.headline().filter(|h| !h.roc_fpr.is_empty())?;
            Some(RocCurve {
                label: label(e, m),
                colour_index: slots[&e.model],
                far: &h.roc_fpr,
                tar: &h.roc_tpr,
                band: None,
            })
        })
        .collect();
    if !roc.is_empty() {
        let stem = doc.stage.join(format!("roc_megaface_{}", slug(dataset)));
        roc_plot(&stem, &format!("Verification ROC on {dataset}, all models"), &roc)?;
        doc.fig(stem.clone(), format!("{dataset}: TAR against FAR (log axis) at each run's largest distractor size."));
        written.extend([stem.with_extension("png"), stem.with_extension("svg")]);
    }
    Ok(written)
}

/// Extra figures (LMCL): one entry per stem, the SVG inlined in HTML where there is one.
fn extra_section(doc: &mut Doc, files: &[PathBuf]) {
    let mut stems: Vec<PathBuf> = files
        .iter()
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "svg")))
        .map(|p| p.with_extension(""))
        .collect();
    stems.sort();
    stems.dedup();
    if stems.is_empty() {
        return;
    }
    doc.h(2, "LMCL and other figures");
    for s in stems {
        let name = format!(
            "{} (from {})",
            s.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            s.parent().map_or(String::new(), |p| p.display().to_string())
        );
        doc.fig(s, name);
    }
}

fn appendix(doc: &mut Doc, entries: &[Entry]) {
    doc.h(2, "Appendix: provenance of every results file");
    for e in entries {
        doc.h(3, e.path.display().to_string());
        if e.provenance.is_empty() {
            doc.p("No provenance recorded in this file (written by a facebench version that did not record it).");
        } else {
            let mut t = Table::new(["item", "value"]);
            for (k, v) in &e.provenance {
                t.row([k.clone(), v.clone()]);
            }
            doc.t(t);
        }
        let missing = missing_provenance(e);
        if !e.provenance.is_empty() && !missing.is_empty() {
            doc.p(format!("Not recorded in this file: {}.", missing.join(", ")));
        }
        if !e.timings.is_empty() {
            let mut t = Table::new(["stage", "wall time (s)", "note"]);
            for Stage { stage, seconds: secs, note } in &e.timings {
                t.row([stage.clone(), format!("{secs:.2}"), note.clone()]);
            }
            doc.t(t);
        }
    }
}

/// The provenance items a number needs to be traced (issue #8) that a file lacks. A checksum
/// of the weights, features or pack all count as "weights or input checksum".
fn missing_provenance(e: &Entry) -> Vec<&'static str> {
    let has = |k: &str| e.provenance.iter().any(|(key, _)| key == k);
    let mut out: Vec<&'static str> =
        ["facebench", "git commit", "model", "preprocessing", "data root", "device", "threads", "date (UTC)"]
            .into_iter()
            .filter(|k| !has(k))
            .collect();
    let checksum = |k: &str, v: &str| k.contains("sha256") || v.contains("sha256");
    if !e.provenance.iter().any(|(k, v)| checksum(k, v) && !k.starts_with("protocol")) {
        out.push("weights or input checksum");
    }
    if !e.provenance.iter().any(|(k, v)| k.starts_with("protocol") && checksum(k, v)) {
        out.push("protocol file checksum");
    }
    if e.timings.is_empty() {
        out.push("stage wall times");
    }
    out
}

/// `to` relative to the folder `from` (both made absolute; `from` need not exist yet), with
/// `/` separators.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .ok()
            .or_else(|| {
                let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
            })
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_default().join(p))
    };
    let (from, to) = (abs(from), abs(to));
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

fn render_markdown(doc: &Doc) -> String {
    let mut s = String::new();
    for b in &doc.blocks {
        match b {
            Block::Heading(l, h) => {
                let _ = write!(s, "{} {h}\n\n", "#".repeat(*l as usize));
            }
            Block::Text(t) => {
                let _ = write!(s, "{t}\n\n");
            }
            Block::Table(t) => {
                let _ = writeln!(s, "{}", t.markdown());
            }
            Block::Figure(stem, caption) => {
                let png = stem.with_extension("png");
                let file = if png.exists() { png } else { stem.with_extension("svg") };
                let rel = match file.strip_prefix(&doc.stage) {
                    Ok(own) => own.to_path_buf(),
                    Err(_) => relative(&doc.out, &file),
                };
                let rel = rel.to_string_lossy().replace('\\', "/");
                let _ = write!(s, "![{caption}]({rel})\n\n*{caption}*\n\n");
            }
        }
    }
    s
}

/// An SVG file's text made safe to inline: the XML prolog and namespace declarations go
/// (HTML5 needs neither, and they are the only URLs plotters writes); anything still
/// referring outside (href, url, a URL) makes it unsuitable (None).
fn inline_svg(text: &str) -> Option<String> {
    let start = text.find("<svg")?;
    let mut s = text[start..].to_string();
    while let Some(i) = s.find(" xmlns") {
        let rest = &s[i + 1..];
        let q1 = rest.find('"')?;
        let q2 = rest[q1 + 1..].find('"')?;
        s.replace_range(i..i + 1 + q1 + 1 + q2 + 1, "");
    }
    let lower = s.to_ascii_lowercase();
    let external = ["http:", "https:", "//", "href", "url(", "<script", "<image", "src="];
    if external.iter().any(|x| lower.contains(x)) {
        return None;
    }
    Some(s)
}

/// Standard base64 (RFC 4648) for PNG data URIs.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(A[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn render_html(doc: &Doc) -> Result<String> {
    let mut body = String::new();
    let mut toc = String::new();
    let mut n = 0;
    for b in &doc.blocks {
        match b {
            Block::Heading(l, h) => {
                n += 1;
                let _ = writeln!(body, "<h{l} id=\"s{n}\">{}</h{l}>", escape_html(h));
                if *l == 1 {
                    // The contents go right under the title, filled in once all headings are known.
                    body += "<!--toc-->";
                }
                if *l == 2 {
                    let _ = write!(toc, "<li><a href=\"#s{n}\">{}</a></li>", escape_html(h));
                }
            }
            Block::Text(t) => {
                let _ = writeln!(body, "<p>{}</p>", escape_html(t));
            }
            Block::Table(t) => {
                let _ = writeln!(body, "<div class=\"t\">{}</div>", t.html());
            }
            Block::Figure(stem, caption) => {
                let svg_path = stem.with_extension("svg");
                let png_path = stem.with_extension("png");
                let svg = std::fs::read_to_string(&svg_path).ok().and_then(|t| inline_svg(&t));
                let inner = match svg {
                    Some(svg) => svg,
                    None if png_path.exists() => {
                        let bytes =
                            std::fs::read(&png_path).map_err(|e| Error::Io { path: png_path.clone(), source: e })?;
                        format!(
                            "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
                            escape_html(caption),
                            base64(&bytes)
                        )
                    }
                    None => {
                        format!("<p>(figure {} could not be inlined)</p>", escape_html(&stem.display().to_string()))
                    }
                };
                let _ = writeln!(body, "<figure>{inner}<figcaption>{}</figcaption></figure>", escape_html(caption));
            }
        }
    }
    const CSS: &str = "body{font-family:sans-serif;max-width:1500px;margin:1em auto;padding:0 1em;color:#111}\
        table{border-collapse:collapse;margin:.5em 0;font-size:90%}td,th{border:1px solid #bbb;padding:3px 7px;text-align:left;vertical-align:top}\
        th{background:#eee}.t{overflow-x:auto}figure{margin:1em 0}figcaption{font-style:italic;color:#333}\
        svg,img{max-width:100%;height:auto}nav li{display:inline;margin-right:1.2em}";
    let body = body.replacen("<!--toc-->", &format!("<nav><ul>{toc}</ul></nav>\n"), 1);
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>facebench summary</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn inline_svg_drops_namespaces_and_refuses_external_references() {
        let s = inline_svg("<?xml version=\"1.0\"?>\n<svg width=\"1\" xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\"><rect/></svg>").unwrap();
        assert_eq!(s, "<svg width=\"1\"><rect/></svg>");
        assert!(inline_svg("<svg><image href=\"a.png\"/></svg>").is_none());
    }

    #[test]
    fn relative_paths_climb_out() {
        let d = std::env::temp_dir().join(format!("fb-rel-{}", std::process::id()));
        std::fs::create_dir_all(d.join("summary")).unwrap();
        std::fs::create_dir_all(d.join("lmcl")).unwrap();
        assert_eq!(relative(&d.join("summary"), &d.join("lmcl/x.png")), PathBuf::from("../lmcl/x.png"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
