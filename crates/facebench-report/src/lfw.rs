//! The pairs-verification report (LFW View 2, InsightFace `.bin` packs): `report.md`,
//! `report.html` (self-contained: figures inlined as SVG), `roc.png`/`roc.svg`,
//! `scores.png`/`scores.svg`, and the terminal table. What differs between protocols
//! (title, fold wording, published rows, an alignment-fallback section) is in the context.

use std::fmt::Write as _;
use std::path::Path;

use facebench_metrics::{Published, TarAtFar};
use facebench_pairs::{LfwResults, Rule};

use crate::plot::{roc_plot, score_histogram, RocCurve};
use crate::results::Stage;
use crate::table::{escape_html, pct, Table};
use crate::{Error, Result};

/// An extra accuracy row measured by us (another preprocessing variant, a baseline).
#[derive(Debug, Clone)]
pub struct VariantRow {
    pub name: String,
    /// Where the number comes from (e.g. "View 2, insightface rule").
    pub note: String,
    pub accuracy_mean: f64,
    pub accuracy_std: f64,
}

/// Everything the report shows besides the results themselves.
#[derive(Debug, Clone, Default)]
pub struct LfwReportContext {
    /// The protocol in titles: `LFW View 2`, `cfp_fp (.bin pack)`.
    pub protocol: String,
    /// How the folds were made, in the intro and headings: `folds`, `contiguous folds`.
    pub folds: String,
    /// Heading of the accuracy table: `Accuracy (10-fold, View 2)`.
    pub accuracy_heading: String,
    /// Header of the accuracy column: `LFW accuracy % (mean ± pop. std)`.
    pub accuracy_column: String,
    pub model: String,
    /// The preprocessing used, in words.
    pub preprocessing: String,
    /// How that preprocessing was chosen (e.g. "best of 3 variants on View 1").
    pub choice: Option<String>,
    pub variants: Vec<VariantRow>,
    /// The protocol file's published rows, shown beside the measured ones.
    pub published: Vec<Published>,
    /// Images where no face was found and the centre-box fallback was used; `None` when
    /// nothing was aligned (a pack of crops), which leaves the section out.
    pub fallbacks: Option<Vec<String>>,
    pub timings: Vec<Stage>,
    /// (key, value) for the provenance appendix.
    pub provenance: Vec<(String, String)>,
}

impl LfwReportContext {
    /// LFW View 2's wording; the caller sets `published` from the protocol file.
    pub fn lfw_view2(model: impl Into<String>, preprocessing: impl Into<String>) -> Self {
        LfwReportContext {
            protocol: "LFW View 2".into(),
            folds: "folds".into(),
            accuracy_heading: "Accuracy (10-fold, View 2)".into(),
            accuracy_column: "LFW accuracy % (mean ± pop. std)".into(),
            model: model.into(),
            preprocessing: preprocessing.into(),
            fallbacks: Some(Vec::new()),
            ..Default::default()
        }
    }

    /// Any other pairs protocol's wording: titled by the protocol (`title` = its name, fold
    /// count and pair count), its own published rows, an alignment-fallback section.
    pub fn pairs_protocol(
        title: impl Into<String>,
        n_folds: usize,
        model: impl Into<String>,
        preprocessing: impl Into<String>,
        published: Vec<Published>,
    ) -> Self {
        LfwReportContext {
            protocol: title.into(),
            folds: "folds".into(),
            accuracy_heading: format!("Accuracy ({n_folds} folds)"),
            accuracy_column: "accuracy % (mean ± pop. std)".into(),
            model: model.into(),
            preprocessing: preprocessing.into(),
            published,
            fallbacks: Some(Vec::new()),
            ..Default::default()
        }
    }

    /// A `.bin` pack's wording: `n_folds` contiguous folds, the protocol file's published rows.
    pub fn bin_pack(
        pack: &str,
        n_folds: usize,
        model: impl Into<String>,
        preprocessing: impl Into<String>,
        published: Vec<Published>,
    ) -> Self {
        LfwReportContext {
            protocol: format!("{pack} (.bin pack)"),
            folds: "contiguous folds".into(),
            accuracy_heading: format!("Accuracy ({n_folds} contiguous folds)"),
            accuracy_column: "accuracy % (mean ± pop. std)".into(),
            model: model.into(),
            preprocessing: preprocessing.into(),
            published,
            ..Default::default()
        }
    }
}

fn fmt_acc(mean: f64, std: f64) -> String {
    format!("{:.2} ± {:.2}", 100.0 * mean, 100.0 * std)
}

fn tar_cell(t: &TarAtFar) -> String {
    match t {
        TarAtFar::Measured { tar, far, threshold } => {
            format!("{:.2}% (FAR {:.2e}, thr {:.4})", 100.0 * tar, far, threshold)
        }
        TarAtFar::NotMeasurable { negatives, .. } => format!("not measurable ({negatives} negatives)"),
    }
}

/// The tables, in order, with a heading each (shared by Markdown and HTML).
fn tables(r: &LfwResults, ctx: &LfwReportContext) -> Vec<(String, Table)> {
    let mut out = Vec::new();

    let mut t = Table::new(["", "method", "rule", ctx.accuracy_column.as_str(), "sample std", "SEM"]);
    for rep in &r.accuracy {
        t.row([
            "measured".to_string(),
            format!("{} ({})", ctx.model, ctx.preprocessing),
            rep.rule.to_string(),
            fmt_acc(rep.mean, rep.std_population),
            format!("{:.2}", 100.0 * rep.std_sample),
            format!("{:.2}", 100.0 * rep.sem),
        ]);
    }
    for v in &ctx.variants {
        t.row([
            "measured".to_string(),
            format!("{} ({})", ctx.model, v.name),
            v.note.clone(),
            fmt_acc(v.accuracy_mean, v.accuracy_std),
            "-".into(),
            "-".into(),
        ]);
    }
    for p in &ctx.published {
        t.row([
            "published".to_string(),
            format!("{}: {}", p.source, p.setting),
            "as published".into(),
            pct(p.accuracy),
            "-".into(),
            "-".into(),
        ]);
    }
    out.push((ctx.accuracy_heading.clone(), t));

    let mut header = vec!["fold".to_string()];
    for rep in &r.accuracy {
        header.push(format!("{} accuracy %", rep.rule));
        header.push(format!("{} threshold", rep.rule));
    }
    let mut t = Table::new(header);
    let k = r.accuracy.first().map(|a| a.folds.len()).unwrap_or(0);
    for i in 0..k {
        let mut cells = vec![(i + 1).to_string()];
        for rep in &r.accuracy {
            cells.push(format!("{:.2}", 100.0 * rep.folds[i].test_accuracy));
            cells.push(format!("{:.4}", rep.folds[i].threshold));
        }
        t.row(cells);
    }
    let others = r.n_folds.saturating_sub(1);
    out.push((format!("Per fold (threshold chosen on the other {others} folds)"), t));

    let mut t = Table::new(["measure", "value", "how"]);
    t.row(["AUC".to_string(), format!("{:.5}", r.auc), "pooled ROC of the fused cosine".into()]);
    t.row(["EER".to_string(), format!("{:.2}%", 100.0 * r.eer), "pooled, fused cosine".into()]);
    for row in &r.tar_at_far {
        let (value, how) = match (&row.exact, &row.insightface) {
            (Some(e), _) => (tar_cell(e), "exact, pooled sorted scores".to_string()),
            (None, Some(v)) => (
                format!("{:.2}% ± {:.2}% (mean FAR {:.2e})", 100.0 * v.val_mean, 100.0 * v.val_std, v.far_mean),
                "InsightFace calculate_val (per fold, interpolated threshold)".to_string(),
            ),
            (None, None) => ("-".into(), "-".into()),
        };
        t.row([format!("TAR@FAR={:.0e}", row.far_target), value, how]);
    }
    out.push(("ROC read-outs".to_string(), t));
    out
}

/// The threshold used for the score histogram: the first rule's mean fold threshold,
/// converted to cosine where the rule scores by squared L2 (d = 2 - 2 cos).
fn cosine_threshold(r: &LfwResults) -> Option<f64> {
    let rep = r.accuracy.iter().find(|a| a.rule == Rule::InsightFace).or(r.accuracy.first())?;
    let mean = rep.folds.iter().map(|f| f.threshold).sum::<f64>() / rep.folds.len().max(1) as f64;
    Some(if rep.rule.lower_is_same() { 1.0 - mean / 2.0 } else { mean })
}

/// Writes the figures, `report.md` and `report.html` into `dir`.
pub fn write_lfw_report(dir: &Path, r: &LfwResults, ctx: &LfwReportContext) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    let rf = &r.roc_folds;
    let title = format!("{}: {}", ctx.protocol, ctx.model);
    roc_plot(
        &dir.join("roc"),
        &format!("{} ROC: {}", ctx.protocol, ctx.model),
        &[RocCurve {
            label: format!("{} (fold mean, min-max band)", ctx.model),
            colour_index: 0,
            far: &rf.far,
            tar: &rf.tar_mean,
            band: Some((&rf.tar_min, &rf.tar_max)),
        }],
    )?;
    let genuine: Vec<f64> = r.pair_scores.iter().filter(|p| p.is_same).map(|p| p.cosine).collect();
    let impostor: Vec<f64> = r.pair_scores.iter().filter(|p| !p.is_same).map(|p| p.cosine).collect();
    score_histogram(
        &dir.join("scores"),
        &format!("{} scores: {}", ctx.protocol, ctx.model),
        &genuine,
        &impostor,
        cosine_threshold(r),
        "cosine similarity (fused features)",
    )?;

    let tabs = tables(r, ctx);
    let chosen = ctx.choice.as_ref().map(|c| format!(" Chosen: {c}.")).unwrap_or_default();
    let intro = format!(
        "{} pairs in {} {} from `{}`. Preprocessing: {}.{chosen}",
        r.n_pairs, r.n_folds, ctx.folds, r.pairs_file, ctx.preprocessing
    );
    let mut md = format!("# {title}\n\n{intro}\n\n");
    for (h, t) in &tabs {
        let _ = write!(md, "## {h}\n\n{}\n", t.markdown());
    }
    let _ = write!(md, "## Figures\n\n![ROC](roc.png)\n\n![Scores](scores.png)\n\n");
    let _ = write!(md, "{}", notes_md(ctx));

    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>{CSS}</style></head><body>\n<h1>{t}</h1>\n<p>{i}</p>\n",
        t = escape_html(&title),
        i = escape_html(&intro).replace(&format!("`{}`", escape_html(&r.pairs_file)), &format!("<code>{}</code>", escape_html(&r.pairs_file))),
    );
    for (h, t) in &tabs {
        let _ = write!(html, "<h2>{}</h2>\n{}", escape_html(h), t.html());
    }
    html += "<h2>Figures</h2>\n";
    for stem in ["roc", "scores"] {
        let svg_path = dir.join(format!("{stem}.svg"));
        let svg = std::fs::read_to_string(&svg_path).map_err(|e| Error::Io { path: svg_path, source: e })?;
        let _ = writeln!(html, "<figure>{svg}</figure>");
    }
    html += &notes_html(ctx);
    html += "</body></html>\n";

    for (name, text) in [("report.md", md), ("report.html", html)] {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::Io { path: p, source: e })?;
    }
    Ok(())
}

pub(crate) const CSS: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right}\
th{background:#eee}td:first-child,th:first-child{text-align:left}figure{margin:1em 0}svg{max-width:100%;height:auto}";

/// A heading with an optional paragraph, table and list of code items.
struct Section {
    heading: &'static str,
    text: String,
    table: Option<Table>,
    items: Vec<String>,
}

/// The sections after the figures: time, alignment fallbacks, provenance.
fn note_sections(ctx: &LfwReportContext) -> Vec<Section> {
    let mut out = Vec::new();
    if !ctx.timings.is_empty() {
        let mut t = Table::new(["stage", "seconds", "note"]);
        for s in &ctx.timings {
            t.row([s.stage.clone(), format!("{:.1}", s.seconds), s.note.clone()]);
        }
        out.push(Section { heading: "Time", text: String::new(), table: Some(t), items: vec![] });
    }
    if let Some(fallbacks) = &ctx.fallbacks {
        out.push(Section {
            heading: "Alignment fallbacks",
            text: format!("{} image(s) had no detected face and used the centre box.", fallbacks.len()),
            table: None,
            items: fallbacks.clone(),
        });
    }
    if !ctx.provenance.is_empty() {
        let mut t = Table::new(["item", "value"]);
        for (k, v) in &ctx.provenance {
            t.row([k.clone(), v.clone()]);
        }
        out.push(Section { heading: "Appendix: provenance", text: String::new(), table: Some(t), items: vec![] });
    }
    out
}

fn notes_md(ctx: &LfwReportContext) -> String {
    let mut s = String::new();
    for sec in note_sections(ctx) {
        let _ = write!(s, "## {}\n\n", sec.heading);
        if !sec.text.is_empty() {
            let _ = write!(s, "{}\n\n", sec.text);
        }
        if let Some(t) = &sec.table {
            let _ = writeln!(s, "{}", t.markdown());
        }
        if !sec.items.is_empty() {
            let list: Vec<String> = sec.items.iter().map(|k| format!("- `{k}`")).collect();
            let _ = write!(s, "{}\n\n", list.join("\n"));
        }
    }
    s
}

fn notes_html(ctx: &LfwReportContext) -> String {
    let mut s = String::new();
    for sec in note_sections(ctx) {
        let _ = writeln!(s, "<h2>{}</h2>", sec.heading);
        if !sec.text.is_empty() {
            let _ = writeln!(s, "<p>{}</p>", escape_html(&sec.text));
        }
        if let Some(t) = &sec.table {
            s += &t.html();
        }
        if !sec.items.is_empty() {
            s += "<ul>";
            for k in &sec.items {
                let _ = write!(s, "<li><code>{}</code></li>", escape_html(k));
            }
            s += "</ul>\n";
        }
    }
    s
}

/// The terminal table: accuracy per rule, then the per-fold table, then ROC read-outs.
/// `protocol` heads the first line (`LFW`, `bin:cfp_fp`).
pub fn headline_table(protocol: &str, r: &LfwResults) -> String {
    let mut s = String::new();
    let _ =
        writeln!(s, "{protocol} {} : {} pairs, {} folds, flip fusion: {}", r.pairs_file, r.n_pairs, r.n_folds, r.flip);
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
            (Some(TarAtFar::Measured { tar, far, .. }), _) => format!("{:.3}% (at FAR {:.2e})", 100.0 * tar, far),
            (Some(TarAtFar::NotMeasurable { negatives, .. }), _) => format!("not measurable ({negatives} negatives)"),
            (None, Some(v)) => {
                format!("{:.3}% +- {:.3}% (mean FAR {:.2e})", 100.0 * v.val_mean, 100.0 * v.val_std, v.far_mean)
            }
            (None, None) => "-".to_string(),
        };
        let _ = writeln!(s, "TAR@FAR={:.0e} ({}): {value}", row.far_target, row.method);
    }
    s
}
