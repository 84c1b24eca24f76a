//! Figures, each written as PNG and SVG from one drawing function.
//!
//! Colour-blind-safe palette (Okabe-Ito); a caller passes the series index so one
//! model keeps one colour across every figure.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Error, Result};

/// Okabe-Ito colours, in the order models are assigned them.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
];

pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Palette slot per model name, the same in every figure of a report: each name starts at a
/// slot given by a hash of the name (so a model keeps its colour across reports that list
/// other models), and takes the next free slot on a clash, so that up to `PALETTE.len()`
/// models never share a colour. Black (the last slot) is given only to a 7th model: next to
/// the grey of impostor histograms it reads as "more grey". Names are taken in sorted order:
/// the result does not depend on the order they were given in.
pub fn colour_slots<S: AsRef<str>>(names: &[S]) -> std::collections::BTreeMap<String, usize> {
    let mut sorted: Vec<&str> = names.iter().map(|n| n.as_ref()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let n = PALETTE.len();
    let mut used = vec![false; n];
    let mut out = std::collections::BTreeMap::new();
    for (k, name) in sorted.into_iter().enumerate() {
        // FNV-1a: stable across runs and platforms, unlike std's randomised hasher.
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let start = (h % (n as u64 - 1)) as usize;
        let slot =
            if k < n { (0..n).map(|i| (start + i) % n).find(|&i| !used[i]).expect("a free slot") } else { start };
        used[slot] = true;
        out.insert(name.to_string(), slot);
    }
    out
}

const SIZE: (u32, u32) = (900, 600);

/// One ROC curve: `far`/`tar` in increasing FAR; `band` = (min, max) TAR per point.
pub struct RocCurve<'a> {
    pub label: String,
    pub colour_index: usize,
    pub far: &'a [f64],
    pub tar: &'a [f64],
    pub band: Option<(&'a [f64], &'a [f64])>,
}

/// One CMC curve: `rates[r-1]` = identification rate at rank r.
pub struct CmcCurve<'a> {
    pub label: String,
    pub colour_index: usize,
    pub rates: &'a [f64],
}

/// One labelled line series (with its legend swatch) in the model's colour.
fn curve<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    pts: Vec<(f64, f64)>,
    col: RGBColor,
    label: &str,
) -> std::result::Result<(), String> {
    chart
        .draw_series(LineSeries::new(pts, col.stroke_width(2)))
        .map_err(s)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(3)));
    Ok(())
}

/// The legend box every figure uses, placed where its curves are not.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(s)
}

pub(crate) fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Lowest decade at or below the smallest positive FAR of any curve.
fn far_floor(curves: &[RocCurve]) -> f64 {
    let min = curves.iter().flat_map(|c| c.far.iter().copied()).filter(|&f| f > 0.0).fold(1.0f64, f64::min);
    10f64.powf(min.log10().floor()).max(1e-9)
}

/// ROC with a log-FAR axis (decades), one curve per model, optional min/max band.
pub fn roc_plot(stem: &Path, title: &str, curves: &[RocCurve]) -> Result<()> {
    let lo = far_floor(curves);
    // TAR axis from the lowest plotted value (band included), in steps of 0.1.
    let tar_min = curves
        .iter()
        .flat_map(|c| {
            let band = c.band.map(|(min, _)| min).unwrap_or(&[]);
            c.tar.iter().chain(band).zip(c.far.iter().chain(c.band.map(|_| c.far).unwrap_or(&[])))
        })
        .filter(|(_, &f)| f >= lo)
        .map(|(&t, _)| t)
        .fold(1.0f64, f64::min);
    let ymin = ((tar_min * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    struct Draw<'a> {
        title: &'a str,
        curves: &'a [RocCurve<'a>],
        lo: f64,
        ymin: f64,
    }
    impl Draw<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
            root.fill(&WHITE).map_err(s)?;
            let mut chart = ChartBuilder::on(root)
                .caption(self.title, ("sans-serif", 24))
                .margin(15)
                .x_label_area_size(50)
                .y_label_area_size(65)
                .build_cartesian_2d((self.lo * 0.9..1.0f64).log_scale(), self.ymin..1.0f64)
                .map_err(s)?;
            chart
                .configure_mesh()
                .x_desc("False accept rate (FAR, log scale)")
                .y_desc("True accept rate (TAR)")
                .x_label_formatter(&|v| format!("{v:.0e}"))
                .y_label_formatter(&|v| format!("{v:.2}"))
                .label_style(("sans-serif", 16))
                .draw()
                .map_err(s)?;
            for c in self.curves {
                let col = colour(c.colour_index);
                let keep = |i: &usize| c.far[*i] >= self.lo;
                if let Some((min, max)) = c.band {
                    let mut poly: Vec<(f64, f64)> = (0..c.far.len()).filter(keep).map(|i| (c.far[i], max[i])).collect();
                    poly.extend((0..c.far.len()).rev().filter(keep).map(|i| (c.far[i], min[i])));
                    chart.draw_series(std::iter::once(Polygon::new(poly, col.mix(0.18).filled()))).map_err(s)?;
                }
                let pts: Vec<(f64, f64)> = (0..c.far.len()).filter(keep).map(|i| (c.far[i], c.tar[i])).collect();
                curve(&mut chart, pts, col, &c.label)?;
            }
            // ROC curves rise to the upper right: the legend goes lower right.
            legend(&mut chart, SeriesLabelPosition::LowerRight)?;
            Ok(())
        }
    }
    let d = Draw { title, curves, lo, ymin };
    both_dyn(stem, |r| d.draw(r), |r| d.draw(r))
}

/// Writes `<stem>.png` and `<stem>.svg` from the same drawing code (one closure per
/// backend type, since plotters backends are distinct types).
fn both_dyn(
    stem: &Path,
    svg: impl Fn(&DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String>,
    png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    both_sized(stem, SIZE, svg, png)
}

/// [`both_dyn`] at a given pixel size.
pub(crate) fn both_sized(
    stem: &Path,
    size: (u32, u32),
    svg: impl Fn(&DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String>,
    png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    let png_path = stem.with_extension("png");
    let svg_path = stem.with_extension("svg");
    let err = |p: &Path, e: String| Error::Plot(format!("{}: {e}", p.display()));
    {
        let root = BitMapBackend::new(&png_path, size).into_drawing_area();
        png(&root).map_err(|e| err(&png_path, e))?;
        root.present().map_err(|e| err(&png_path, e.to_string()))?;
    }
    {
        let root = SVGBackend::new(&svg_path, size).into_drawing_area();
        svg(&root).map_err(|e| err(&svg_path, e))?;
        root.present().map_err(|e| err(&svg_path, e.to_string()))?;
    }
    Ok(())
}

/// Genuine vs impostor score histograms (fraction of pairs per bin) with the
/// decision threshold as a dashed vertical line.
pub fn score_histogram(
    stem: &Path,
    title: &str,
    genuine: &[f64],
    impostor: &[f64],
    threshold: Option<f64>,
    x_desc: &str,
) -> Result<()> {
    let all = genuine.iter().chain(impostor);
    let lo = all.clone().copied().fold(f64::INFINITY, f64::min);
    let hi = all.copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return Err(Error::Plot(format!("{}: no scores to plot", stem.display())));
    }
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
    const BINS: usize = 60;
    let w = (hi - lo) / BINS as f64;
    let hist = |v: &[f64]| {
        let mut h = vec![0f64; BINS];
        for &x in v {
            h[(((x - lo) / w) as usize).min(BINS - 1)] += 1.0;
        }
        let n = v.len().max(1) as f64;
        h.iter_mut().for_each(|c| *c /= n);
        h
    };
    let (hg, hi_) = (hist(genuine), hist(impostor));
    let ymax = hg.iter().chain(&hi_).copied().fold(0.0, f64::max) * 1.1 + 1e-9;
    let series: [(&str, &Vec<f64>, RGBColor, usize); 2] = [
        ("genuine (same person)", &hg, colour(2), genuine.len()),
        ("impostor (different people)", &hi_, colour(1), impostor.len()),
    ];
    macro_rules! body {
        ($root:expr) => {{
            let root = $root;
            root.fill(&WHITE).map_err(s)?;
            let mut chart = ChartBuilder::on(root)
                .caption(title, ("sans-serif", 24))
                .margin(15)
                .x_label_area_size(50)
                .y_label_area_size(65)
                .build_cartesian_2d(lo..hi, 0.0..ymax)
                .map_err(s)?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc("fraction of pairs per bin")
                .label_style(("sans-serif", 16))
                .draw()
                .map_err(s)?;
            for (name, h, col, n) in series.iter() {
                let col = *col;
                chart
                    .draw_series(h.iter().enumerate().map(|(i, &c)| {
                        let x0 = lo + i as f64 * w;
                        Rectangle::new([(x0, 0.0), (x0 + w, c)], col.mix(0.45).filled())
                    }))
                    .map_err(s)?
                    .label(format!("{name}, n = {n}"))
                    .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], col.mix(0.6).filled()));
            }
            if let Some(t) = threshold {
                let dashes: Vec<(f64, f64)> = (0..40)
                    .filter(|i| i % 2 == 0)
                    .flat_map(|i| [(t, ymax * i as f64 / 40.0), (t, ymax * (i + 1) as f64 / 40.0)])
                    .collect();
                for seg in dashes.chunks(2) {
                    chart.draw_series(LineSeries::new(seg.to_vec(), BLACK.stroke_width(2))).map_err(s)?;
                }
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("threshold {t:.4}"),
                        (t, ymax * 0.97),
                        ("sans-serif", 15),
                    )))
                    .map_err(s)?;
            }
            legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
            Ok(())
        }};
    }
    both_dyn(stem, |r| body!(r), |r| body!(r))
}

/// CMC curves: identification rate against rank (log-scale rank axis).
pub fn cmc_plot(stem: &Path, title: &str, curves: &[CmcCurve]) -> Result<()> {
    let max_rank = curves.iter().map(|c| c.rates.len()).max().unwrap_or(1).max(2) as f64;
    let ymin = curves.iter().flat_map(|c| c.rates.iter().copied()).fold(1.0f64, f64::min);
    let ymin = ((ymin * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    macro_rules! body {
        ($root:expr) => {{
            let root = $root;
            root.fill(&WHITE).map_err(s)?;
            let mut chart = ChartBuilder::on(root)
                .caption(title, ("sans-serif", 24))
                .margin(15)
                .x_label_area_size(50)
                .y_label_area_size(65)
                .build_cartesian_2d((1.0f64..max_rank).log_scale(), ymin..1.0f64)
                .map_err(s)?;
            chart
                .configure_mesh()
                .x_desc("rank (log scale)")
                .y_desc("identification rate")
                .x_label_formatter(&|v| format!("{v:.0}"))
                .label_style(("sans-serif", 16))
                .draw()
                .map_err(s)?;
            for c in curves {
                let col = colour(c.colour_index);
                let pts: Vec<(f64, f64)> = c.rates.iter().enumerate().map(|(i, &r)| ((i + 1) as f64, r)).collect();
                curve(&mut chart, pts, col, &c.label)?;
            }
            legend(&mut chart, SeriesLabelPosition::LowerRight)?;
            Ok(())
        }};
    }
    both_dyn(stem, |r| body!(r), |r| body!(r))
}

/// One model's scores for [`score_histogram_panels`].
pub struct HistPanel<'a> {
    pub label: String,
    pub colour_index: usize,
    pub genuine: &'a [f64],
    pub impostor: &'a [f64],
    pub threshold: Option<f64>,
}

/// Score histograms of several models side by side, one panel per model, each on its own
/// score range (models' score scales differ too much to share one: a shared axis squeezes
/// a model whose scores are all above 0.7 into a few bins). Genuine pairs are drawn in the
/// model's colour, impostors in grey (the same in every panel), the threshold dashed and
/// named in the legend.
pub fn score_histogram_panels(stem: &Path, title: &str, panels: &[HistPanel], x_desc: &str) -> Result<()> {
    if panels.is_empty() {
        return Err(Error::Plot(format!("{}: no models to plot", stem.display())));
    }
    const BINS: usize = 50;
    struct Binned {
        lo: f64,
        hi: f64,
        w: f64,
        genuine: Vec<f64>,
        impostor: Vec<f64>,
        ymax: f64,
    }
    let mut hists = Vec::new();
    for p in panels {
        let all = || p.genuine.iter().chain(p.impostor).copied();
        let lo = all().fold(f64::INFINITY, f64::min);
        let hi = all().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() || !hi.is_finite() {
            return Err(Error::Plot(format!("{}: no scores to plot for {}", stem.display(), p.label)));
        }
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
        let w = (hi - lo) / BINS as f64;
        let hist = |v: &[f64]| {
            let mut h = vec![0f64; BINS];
            for &x in v {
                h[(((x - lo) / w) as usize).min(BINS - 1)] += 1.0;
            }
            let n = v.len().max(1) as f64;
            h.iter_mut().for_each(|c| *c /= n);
            h
        };
        let (genuine, impostor) = (hist(p.genuine), hist(p.impostor));
        // Headroom above the highest bar keeps the legend (upper left) off the bars.
        let ymax = genuine.iter().chain(&impostor).copied().fold(0.0, f64::max) * 1.45 + 1e-9;
        hists.push(Binned { lo, hi, w, genuine, impostor, ymax });
    }
    let grey = RGBColor(0x80, 0x80, 0x80);
    let n = panels.len();
    let size = ((460 * n as u32).max(900), 520);
    macro_rules! body {
        ($root:expr) => {{
            let root = $root;
            root.fill(&WHITE).map_err(s)?;
            let root = root.titled(title, ("sans-serif", 24)).map_err(s)?;
            for (area, (p, b)) in root.split_evenly((1, n)).iter().zip(panels.iter().zip(&hists)) {
                let col = colour(p.colour_index);
                let (lo, hi, w, ymax) = (b.lo, b.hi, b.w, b.ymax);
                let mut chart = ChartBuilder::on(area)
                    .caption(&p.label, ("sans-serif", 18).into_font().color(&col))
                    .margin(12)
                    .x_label_area_size(50)
                    .y_label_area_size(60)
                    .build_cartesian_2d(lo..hi, 0.0..ymax)
                    .map_err(s)?;
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .y_desc("fraction of pairs per bin")
                    .x_labels(6)
                    .label_style(("sans-serif", 14))
                    .draw()
                    .map_err(s)?;
                let series =
                    [("impostor", &b.impostor, grey, p.impostor.len()), ("genuine", &b.genuine, col, p.genuine.len())];
                for (name, h, c, count) in series {
                    chart
                        .draw_series(h.iter().enumerate().map(|(i, &v)| {
                            let x0 = lo + i as f64 * w;
                            Rectangle::new([(x0, 0.0), (x0 + w, v)], c.mix(0.55).filled())
                        }))
                        .map_err(s)?
                        .label(format!("{name}, n = {count}"))
                        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.mix(0.7).filled()));
                }
                if let Some(t) = p.threshold.filter(|t| (lo..=hi).contains(t)) {
                    let dashes = (0..40).step_by(2).map(|i| {
                        PathElement::new(
                            vec![(t, ymax * i as f64 / 40.0), (t, ymax * (i + 1) as f64 / 40.0)],
                            BLACK.stroke_width(2),
                        )
                    });
                    chart.draw_series(dashes).map_err(s)?.label(format!("threshold {t:.3}")).legend(|(x, y)| {
                        PathElement::new(vec![(x, y), (x + 8, y), (x + 12, y), (x + 20, y)], BLACK.stroke_width(2))
                    });
                }
                legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
            }
            Ok(())
        }};
    }
    both_sized(stem, size, |r| body!(r), |r| body!(r))
}
