//! The YouTube Faces report: `report.md`, `report.html` (self-contained: figures inlined as SVG),
//! `roc.png`/`roc.svg` (one curve per scoring mode that could be measured) and
//! `scores.png`/`scores.svg` (genuine vs impostor video scores of the headline mode).
//!
//! A partial evaluation (videos missing) says so in the FIRST line of both reports. A mode whose
//! pairs cannot support 10-fold accuracy shows why instead of a number.

use std::fmt::Write as _;
use std::path::Path;

use facebench_metrics::{FoldAveragedRoc, FoldReport, InsightFaceVal, Published, TarAtFar};
use facebench_ytf::YtfResults;

use crate::lfw::CSS;
use crate::plot::{roc_plot, score_histogram, RocCurve};
use crate::results::Stage;
use crate::table::{escape_html, pct, Table};
use crate::{Error, Result};

/// One TAR@FAR read-out (the shape of LFW's rows).
#[derive(Debug, Clone)]
pub struct TarCell {
    pub far_target: f64,
    /// `exact` or `insightface`.
    pub method: String,
    pub exact: Option<TarAtFar>,
    pub insightface: Option<InsightFaceVal>,
}

/// What one video scoring mode measured.
#[derive(Debug, Clone, Default)]
pub struct YtfModeReport {
    /// `mean-feature`, `mean-pair`, `min-pair`, `max-pair`.
    pub mode: String,
    pub description: String,
    /// Empty when not measurable.
    pub accuracy: Vec<FoldReport>,
    /// rule -> the score it thresholds, in words.
    pub rule_scores: Vec<(String, String)>,
    pub auc: Option<f64>,
    pub eer: Option<f64>,
    pub tar_at_far: Vec<TarCell>,
    pub roc_folds: Option<FoldAveragedRoc>,
    /// Why accuracy could not be measured.
    pub not_measurable: Option<String>,
    /// Video scores of same-person and different-person pairs.
    pub genuine: Vec<f64>,
    pub impostor: Vec<f64>,
}

/// Everything the YTF report shows.
#[derive(Debug, Clone, Default)]
pub struct YtfReport {
    pub model: String,
    /// First line of the report when some pairs were left out.
    pub partial_line: Option<String>,
    /// Pairs, videos, layout, frame selection: one paragraph.
    pub summary: String,
    pub preprocessing: String,
    /// Frames/s of alignment and embedding, in words.
    pub speed: Option<String>,
    /// The first mode is the headline (per-fold table, score histogram).
    pub modes: Vec<YtfModeReport>,
    /// Header and rows of the per-pair score table (shown when short; always in the CSV).
    pub pair_header: Vec<String>,
    pub pair_rows: Vec<Vec<String>>,
    pub timings: Vec<Stage>,
    /// Frames where no face was detected in the search region.
    pub fallbacks: Vec<String>,
    pub provenance: Vec<(String, String)>,
    /// The protocol file's published rows, shown beside the measured ones.
    pub published: Vec<Published>,
}

/// What a YTF report shows beside the results: who embedded the frames, how, at what speed.
#[derive(Debug, Clone, Default)]
pub struct YtfRunInfo {
    pub model: String,
    pub preprocessing: String,
    /// Frames/s of alignment and embedding, in words.
    pub speed: Option<String>,
    pub timings: Vec<Stage>,
    pub fallbacks: Vec<String>,
    pub provenance: Vec<(String, String)>,
    /// The protocol file's published rows, shown beside the measured ones.
    pub published: Vec<Published>,
}

impl YtfReport {
    /// The report of `r`: every mode's accuracy, ROC and score split, the pair table.
    pub fn of(r: &YtfResults, run: YtfRunInfo) -> YtfReport {
        let modes = r
            .modes
            .iter()
            .map(|m| {
                let scores = |same: bool| {
                    r.pairs.iter().zip(&m.scores).filter(|(p, _)| p.is_same == same).map(|(_, &s)| s).collect()
                };
                let met = m.metrics.as_ref();
                YtfModeReport {
                    mode: m.mode.to_string(),
                    description: m.description.to_string(),
                    accuracy: met.map(|x| x.accuracy.clone()).unwrap_or_default(),
                    rule_scores: met.map(|x| x.rule_scores.clone().into_iter().collect()).unwrap_or_default(),
                    auc: met.map(|x| x.auc),
                    eer: met.map(|x| x.eer),
                    tar_at_far: met
                        .map(|x| {
                            x.tar_at_far
                                .iter()
                                .map(|t| TarCell {
                                    far_target: t.far_target,
                                    method: t.method.to_string(),
                                    exact: t.exact.clone(),
                                    insightface: t.insightface.clone(),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    roc_folds: met.map(|x| x.roc_folds.clone()),
                    not_measurable: m.not_measurable.clone(),
                    genuine: scores(true),
                    impostor: scores(false),
                }
            })
            .collect();
        let mut pair_header: Vec<String> =
            ["split", "pair", "left", "right", "same", "frames"].into_iter().map(String::from).collect();
        pair_header.extend(r.modes.iter().map(|m| m.mode.to_string()));
        let pair_rows = r
            .pairs
            .iter()
            .map(|p| {
                let mut row = vec![
                    p.split.to_string(),
                    p.pair.to_string(),
                    p.left.clone(),
                    p.right.clone(),
                    if p.is_same { "yes" } else { "no" }.to_string(),
                    format!("{} + {}", p.frames_left, p.frames_right),
                ];
                row.extend(r.modes.iter().map(|m| format!("{:.4}", p.scores[m.mode.name()])));
                row
            })
            .collect();
        YtfReport {
            model: run.model,
            partial_line: r.partial_line(),
            summary: format!(
                "{} of {} pairs of `{}` ({} of the {} named videos found; the dataset has {}), {} layout under `{}`, {} ({} frames scored).",
                r.pairs_evaluated,
                r.pairs_total,
                r.splits_file,
                r.videos_found,
                r.videos_named,
                r.dataset_videos,
                r.layout.name(),
                r.frames_root,
                r.frame_selection.describe(),
                r.frames_used
            ),
            preprocessing: run.preprocessing,
            speed: run.speed,
            modes,
            pair_header,
            pair_rows,
            timings: run.timings,
            fallbacks: run.fallbacks,
            provenance: run.provenance,
            published: run.published,
        }
    }
}

/// The terminal summary: partial line, accuracy per mode and rule (or why not), AUC/EER,
/// and the pairs themselves when there are at most 10.
pub fn headline_table(r: &YtfResults) -> String {
    let mut s = String::new();
    if let Some(p) = r.partial_line() {
        let _ = writeln!(s, "{p}");
    }
    let _ = writeln!(
        s,
        "YTF {}: {} pairs, {} frames, {}",
        r.splits_file,
        r.pairs_evaluated,
        r.frames_used,
        r.frame_selection.describe()
    );
    for m in &r.modes {
        match &m.metrics {
            Some(x) => {
                for rep in &x.accuracy {
                    let _ = writeln!(
                        s,
                        "{:<13} {:<12} {:>7.3}% +- {:.3}%",
                        m.mode.name(),
                        rep.rule.to_string(),
                        100.0 * rep.mean,
                        100.0 * rep.std_population
                    );
                }
                let _ = writeln!(s, "{:<13} AUC {:.5}  EER {:.3}%", m.mode.name(), x.auc, 100.0 * x.eer);
            }
            None => {
                let _ = writeln!(s, "{:<13} not measurable (below)", m.mode.name());
            }
        }
    }
    if let Some(why) = r.modes.iter().find_map(|m| m.not_measurable.as_deref()) {
        let _ = writeln!(s, "not measurable: {why}");
    }
    if r.pairs.len() <= 10 {
        for p in &r.pairs {
            let scores: Vec<String> =
                r.modes.iter().map(|m| format!("{} {:.4}", m.mode, p.scores[m.mode.name()])).collect();
            let _ = writeln!(
                s,
                "split {} pair {} {} vs {} (same: {}): {}",
                p.split,
                p.pair,
                p.left,
                p.right,
                p.is_same,
                scores.join(", ")
            );
        }
    }
    s
}

/// Pair tables longer than this are left to `pairs_scores.csv`.
const MAX_PAIR_ROWS: usize = 50;

fn tar_cell(t: &TarCell) -> (String, String) {
    match (&t.exact, &t.insightface) {
        (Some(TarAtFar::Measured { tar, far, threshold }), _) => (
            format!("{:.2}% (FAR {:.2e}, thr {:.4})", 100.0 * tar, far, threshold),
            "exact, pooled sorted scores".into(),
        ),
        (Some(TarAtFar::NotMeasurable { negatives, .. }), _) => {
            (format!("not measurable ({negatives} negatives)"), "exact, pooled sorted scores".into())
        }
        (None, Some(v)) => (
            format!("{:.2}% ± {:.2}% (mean FAR {:.2e})", 100.0 * v.val_mean, 100.0 * v.val_std, v.far_mean),
            "InsightFace calculate_val (per split, interpolated threshold)".into(),
        ),
        (None, None) => ("-".into(), "-".into()),
    }
}

/// The tables, in order, with a heading and a note after each (shared by Markdown and HTML).
fn tables(r: &YtfReport) -> Vec<(String, Table, String)> {
    let mut out = Vec::new();
    let mut reasons: Vec<&str> = r.modes.iter().filter_map(|m| m.not_measurable.as_deref()).collect();
    reasons.dedup();
    let mut t =
        Table::new(["", "method", "video score", "rule", "YTF accuracy % (mean ± pop. std)", "sample std", "SEM"]);
    for m in &r.modes {
        if let Some(why) = &m.not_measurable {
            let what = if reasons.len() == 1 {
                "not measurable (see below)".to_string()
            } else {
                format!("not measurable: {why}")
            };
            t.row(["measured".into(), r.model.clone(), m.mode.clone(), "-".into(), what, "-".into(), "-".into()]);
        }
        for rep in &m.accuracy {
            t.row([
                "measured".to_string(),
                r.model.clone(),
                m.mode.clone(),
                rep.rule.to_string(),
                format!("{:.2} ± {:.2}", 100.0 * rep.mean, 100.0 * rep.std_population),
                format!("{:.2}", 100.0 * rep.std_sample),
                format!("{:.2}", 100.0 * rep.sem),
            ]);
        }
    }
    for p in &r.published {
        t.row([
            "published".to_string(),
            format!("{}: {}", p.source, p.setting),
            "as published".into(),
            "as published".into(),
            pct(p.accuracy),
            "-".into(),
            "-".into(),
        ]);
    }
    let note = if reasons.len() == 1 { format!("Not measurable: {}.", reasons[0]) } else { String::new() };
    out.push(("Accuracy (10-fold over the splits of splits.txt)".to_string(), t, note));

    let mut t = Table::new(["video score", "how"]);
    for m in &r.modes {
        t.row([m.mode.clone(), m.description.clone()]);
    }
    out.push(("Video scoring modes".to_string(), t, String::new()));

    if let Some(head) = r.modes.iter().find(|m| !m.accuracy.is_empty()) {
        let mut header = vec!["split".to_string()];
        for rep in &head.accuracy {
            header.push(format!("{} accuracy %", rep.rule));
            header.push(format!("{} threshold", rep.rule));
        }
        let mut t = Table::new(header);
        for i in 0..head.accuracy[0].folds.len() {
            let mut cells = vec![(i + 1).to_string()];
            for rep in &head.accuracy {
                cells.push(format!("{:.2}", 100.0 * rep.folds[i].test_accuracy));
                cells.push(format!("{:.4}", rep.folds[i].threshold));
            }
            t.row(cells);
        }
        out.push((format!("Per split, {} (threshold chosen on the other 9 splits)", head.mode), t, String::new()));

        let mut t = Table::new(["video score", "rule", "score thresholded"]);
        for m in &r.modes {
            for (rule, how) in &m.rule_scores {
                t.row([m.mode.clone(), rule.clone(), how.clone()]);
            }
        }
        out.push(("What each rule thresholds".to_string(), t, String::new()));

        let mut t = Table::new(["video score", "measure", "value", "how"]);
        for m in r.modes.iter().filter(|m| m.auc.is_some()) {
            t.row([
                m.mode.clone(),
                "AUC".into(),
                format!("{:.5}", m.auc.unwrap_or(f64::NAN)),
                "pooled ROC of the video score".into(),
            ]);
            t.row([
                m.mode.clone(),
                "EER".into(),
                format!("{:.2}%", 100.0 * m.eer.unwrap_or(f64::NAN)),
                "pooled".into(),
            ]);
            for c in &m.tar_at_far {
                let (v, how) = tar_cell(c);
                t.row([m.mode.clone(), format!("TAR@FAR={:.0e}", c.far_target), v, how]);
            }
        }
        out.push(("ROC read-outs".to_string(), t, String::new()));
    }

    if !r.pair_rows.is_empty() && r.pair_rows.len() <= MAX_PAIR_ROWS {
        let mut t = Table::new(r.pair_header.clone());
        for row in &r.pair_rows {
            t.row(row.clone());
        }
        out.push(("Pair scores".to_string(), t, String::new()));
    }
    if !r.timings.is_empty() {
        let mut t = Table::new(["stage", "seconds", "note"]);
        for s in &r.timings {
            t.row([s.stage.clone(), format!("{:.1}", s.seconds), s.note.clone()]);
        }
        out.push(("Time".to_string(), t, String::new()));
    }
    out
}

/// Writes the figures, `report.md` and `report.html` into `dir`.
pub fn write_ytf_report(dir: &Path, r: &YtfReport) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    let mut figures = Vec::new();
    let curves: Vec<RocCurve> = r
        .modes
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let rf = m.roc_folds.as_ref()?;
            Some(RocCurve {
                label: if i == 0 {
                    format!("{} (split mean, min-max band)", m.mode)
                } else {
                    format!("{} (split mean)", m.mode)
                },
                colour_index: i,
                far: &rf.far,
                tar: &rf.tar_mean,
                band: (i == 0).then_some((&rf.tar_min[..], &rf.tar_max[..])),
            })
        })
        .collect();
    if curves.is_empty() {
        // A figure left by an earlier, measurable run in the same folder would mislead.
        for ext in ["png", "svg"] {
            let _ = std::fs::remove_file(dir.join(format!("roc.{ext}")));
        }
    } else {
        roc_plot(&dir.join("roc"), &format!("YTF ROC: {}", r.model), &curves)?;
        figures.push(("roc", "ROC"));
    }
    if let Some(head) = r.modes.first().filter(|m| !m.genuine.is_empty() || !m.impostor.is_empty()) {
        score_histogram(
            &dir.join("scores"),
            &format!("YTF video scores ({}): {}", head.mode, r.model),
            &head.genuine,
            &head.impostor,
            None,
            &format!("video score ({})", head.mode),
        )?;
        figures.push(("scores", "Scores"));
    }

    let tabs = tables(r);
    let mut md = String::new();
    if let Some(p) = &r.partial_line {
        let _ = writeln!(md, "**{p}**\n");
    }
    let _ = writeln!(md, "# YouTube Faces (YTF): {}\n", r.model);
    let _ = writeln!(md, "{} Preprocessing: {}.\n", r.summary, r.preprocessing);
    if let Some(sp) = &r.speed {
        let _ = writeln!(md, "{sp}\n");
    }
    for (h, t, note) in &tabs {
        let _ = write!(md, "## {h}\n\n{}\n", t.markdown());
        if !note.is_empty() {
            let _ = write!(md, "{note}\n\n");
        }
    }
    if r.pair_rows.len() > MAX_PAIR_ROWS {
        let _ =
            write!(md, "Every pair's score in every mode is in `pairs_scores.csv` ({} pairs).\n\n", r.pair_rows.len());
    }
    md += "## Figures\n\n";
    if curves.is_empty() {
        md += "No ROC: no mode could be measured (see above).\n\n";
    }
    for (stem, alt) in &figures {
        let _ = write!(md, "![{alt}]({stem}.png)\n\n");
    }
    let _ = write!(md, "## Alignment fallbacks\n\n{} frame(s) had no detected face in the search region; landmarks were found inside the fallback box.\n\n", r.fallbacks.len());
    for k in r.fallbacks.iter().take(MAX_PAIR_ROWS) {
        let _ = writeln!(md, "- `{k}`");
    }
    if !r.provenance.is_empty() {
        let mut t = Table::new(["item", "value"]);
        for (k, v) in &r.provenance {
            t.row([k.clone(), v.clone()]);
        }
        let _ = write!(md, "\n## Appendix: provenance\n\n{}", t.markdown());
    }

    let mut html = String::from("<!DOCTYPE html>\n");
    if let Some(p) = &r.partial_line {
        let _ = writeln!(html, "<!-- {} -->", p.replace("--", "- -"));
    }
    let _ = write!(
        html,
        "<html><head><meta charset=\"utf-8\"><title>YTF: {m}</title>\n<style>{CSS}</style></head><body>\n",
        m = escape_html(&r.model)
    );
    if let Some(p) = &r.partial_line {
        let _ = writeln!(html, "<p><strong>{}</strong></p>", escape_html(p));
    }
    let _ = write!(
        html,
        "<h1>YouTube Faces (YTF): {}</h1>\n<p>{} Preprocessing: {}.</p>\n",
        escape_html(&r.model),
        escape_html(&r.summary),
        escape_html(&r.preprocessing)
    );
    if let Some(sp) = &r.speed {
        let _ = writeln!(html, "<p>{}</p>", escape_html(sp));
    }
    for (h, t, note) in &tabs {
        let _ = write!(html, "<h2>{}</h2>\n{}", escape_html(h), t.html());
        if !note.is_empty() {
            let _ = writeln!(html, "<p>{}</p>", escape_html(note));
        }
    }
    html += "<h2>Figures</h2>\n";
    for (stem, _) in &figures {
        let p = dir.join(format!("{stem}.svg"));
        let svg = std::fs::read_to_string(&p).map_err(|e| Error::Io { path: p, source: e })?;
        let _ = writeln!(html, "<figure>{svg}</figure>");
    }
    let _ = write!(
        html,
        "<h2>Alignment fallbacks</h2>\n<p>{} frame(s) had no detected face in the search region.</p>\n",
        r.fallbacks.len()
    );
    if !r.provenance.is_empty() {
        let mut t = Table::new(["item", "value"]);
        for (k, v) in &r.provenance {
            t.row([k.clone(), v.clone()]);
        }
        let _ = write!(html, "<h2>Appendix: provenance</h2>\n{}", t.html());
    }
    html += "</body></html>\n";
    for (name, text) in [("report.md", md), ("report.html", html)] {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::Io { path: p, source: e })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_report_says_so_first_and_invents_no_accuracy() {
        let dir = std::env::temp_dir().join(format!("facebench-report-ytf-{}", std::process::id()));
        let r = YtfReport {
            model: "m".into(),
            partial_line: Some("PARTIAL EVALUATION: 1 of 5000 pairs".into()),
            summary: "1 pair.".into(),
            preprocessing: "p".into(),
            modes: vec![YtfModeReport {
                mode: "mean-feature".into(),
                not_measurable: Some("split 1 has no pairs".into()),
                genuine: vec![0.9],
                ..Default::default()
            }],
            pair_header: vec!["split".into(), "score".into()],
            pair_rows: vec![vec!["9".into(), "0.9".into()]],
            published: vec![Published {
                protocol: "ytf".into(),
                source: "CosFace paper".into(),
                setting: "s".into(),
                accuracy: Some(97.6),
                rank1: None,
                rank1_r: None,
                tar_at_far_1e6: None,
                tar_at_far_1e6_r: None,
            }],
            ..Default::default()
        };
        write_ytf_report(&dir, &r).unwrap();
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(md.lines().next().unwrap().contains("PARTIAL EVALUATION: 1 of 5000 pairs"), "{md}");
        assert!(
            md.contains("not measurable (see below)") && md.contains("Not measurable: split 1 has no pairs."),
            "{md}"
        );
        assert!(md.contains("| published |") && md.contains("97.60"), "published YTF rows");
        assert!(!dir.join("roc.png").exists() && dir.join("scores.png").exists());
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(html.lines().nth(1).unwrap().contains("PARTIAL EVALUATION"), "{html:.300}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
