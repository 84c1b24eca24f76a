//! The MegaFace Challenge 1 report (official or a labelled stand-in): CMC and ROC figures
//! with one curve per distractor size, and `report.md` with the published rows kept apart.

use std::path::Path;

use facebench_megaface::{MegafaceResults, Scoring, TarExact};
use facebench_metrics::Published;

use crate::plot::{cmc_plot, roc_plot, CmcCurve, RocCurve};
use crate::table::{pct, Table};
use crate::{Error, Result};

/// `cmc.png/svg`, `roc.png/svg` and `report.md` in `out`; `label` names the data set and
/// its variant everywhere (`LFW-as-MegaFace (raw)`); `published` are the protocol file's rows.
pub fn write_megaface_report(out: &Path, r: &MegafaceResults, label: &str, published: &[Published]) -> Result<()> {
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
    std::fs::write(&md, report_markdown(r, label, published)).map_err(|e| Error::Io { path: md, source: e })
}

/// One row per size (rank-1, TAR@FAR exact and devkit-style), then the published rows.
fn report_markdown(r: &MegafaceResults, label: &str, published: &[Published]) -> String {
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
    for row in published {
        p.row([
            row.source.clone(),
            row.setting.clone(),
            pct(row.rank1),
            pct(row.rank1_r),
            pct(row.tar_at_far_1e6),
            pct(row.tar_at_far_1e6_r),
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
