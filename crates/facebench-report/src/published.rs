//! Published results (../shared/PROTOCOLS.md, "Reference numbers"), shown beside our
//! measured rows and always labelled as published. Percentages; `None` = not reported.

#[derive(Debug, Clone, Copy)]
pub struct PublishedRow {
    pub source: &'static str,
    pub setting: &'static str,
    pub lfw: Option<f64>,
    pub ytf: Option<f64>,
    /// MegaFace Challenge 1 rank-1 identification at 1M, raw and noise-cleaned (R).
    pub mf_id: Option<f64>,
    pub mf_id_r: Option<f64>,
    /// MegaFace Challenge 1 TAR@FAR=1e-6 at 1M, raw and R.
    pub mf_ver: Option<f64>,
    pub mf_ver_r: Option<f64>,
}

const fn row(
    source: &'static str,
    setting: &'static str,
    lfw: Option<f64>,
    ytf: Option<f64>,
    mf: [Option<f64>; 4],
) -> PublishedRow {
    PublishedRow { source, setting, lfw, ytf, mf_id: mf[0], mf_id_r: mf[1], mf_ver: mf[2], mf_ver_r: mf[3] }
}

pub const PUBLISHED: &[PublishedRow] = &[
    row(
        "CosFace paper",
        "large data, single model, 64-layer CNN, s=64, m=0.35",
        Some(99.73),
        Some(97.6),
        [Some(82.72), None, Some(96.65), None],
    ),
    row("CosFace paper", "large data, 3-patch ensemble", None, None, [Some(84.26), None, Some(97.96), None]),
    row(
        "CosFace paper",
        "CASIA-WebFace (small protocol), LMCL",
        Some(99.33),
        Some(96.1),
        [Some(77.11), None, Some(89.88), None],
    ),
    row(
        "CosFace paper",
        "CASIA-WebFace, Softmax baseline",
        Some(97.88),
        Some(93.1),
        [Some(54.85), None, Some(65.92), None],
    ),
    row(
        "CosFace paper",
        "CASIA-WebFace, A-Softmax (SphereFace)",
        Some(99.42),
        Some(95.0),
        [Some(72.72), None, Some(85.56), None],
    ),
    row("ArcFace paper", "R100 MS1MV2, CosFace loss", None, None, [Some(80.56), Some(97.91), Some(96.56), Some(97.91)]),
    row(
        "ArcFace paper",
        "R100 MS1MV2, ArcFace loss",
        Some(99.83),
        Some(98.02),
        [Some(81.03), Some(98.35), Some(96.98), Some(98.48)],
    ),
    row("InsightFace model zoo", "MobileFaceNet, MS1M, ArcFace", Some(99.50), None, [None, None, None, None]),
];

/// `99.73` or `-`.
pub fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}
