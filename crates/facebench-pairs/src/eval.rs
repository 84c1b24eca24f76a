//! LFW evaluation from precomputed embeddings.
//!
//! Each rule sees the features the way its tool builds them:
//! - `insightface`: `normalize(orig + flip)` (or `normalize(orig)`), squared L2 distance;
//! - `facenet`: `[normalize(orig), normalize(flip)]` concatenated (or `normalize(orig)`), squared L2;
//! - `sphereface`: `[orig, flip]` concatenated raw, then per test fold the training folds'
//!   mean is subtracted and the cosine taken (CosFace's `evaluation.m`);
//! - `facexzoo`, `exact`: cosine of `normalize(orig + flip)`.
//!
//! ROC, AUC, EER and exact TAR@FAR use that same fused cosine; the InsightFace
//! VAL@FAR rule uses the insightface distances.

use facebench_core::{Embeddings, Error, Result};
use facebench_metrics::{self as metrics, FoldReport, FoldScores, Rule, TarRow, VerificationScores};
use facebench_score::{score_pairs, Matrix};
use serde::Serialize;

use crate::{MetricSettings, Pairs, PairsProtocol};

/// The scores one rule used, pair by pair.
#[derive(Debug, Clone, Serialize)]
pub struct RuleScores {
    pub rule: Rule,
    /// Score of each pair as used when its fold was the test fold.
    pub scores: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairScore {
    pub fold: usize,
    pub left: String,
    pub right: String,
    pub is_same: bool,
    pub cosine: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LfwResults {
    pub pairs_file: String,
    pub n_pairs: usize,
    pub n_folds: usize,
    /// `sum` (flip features fused by sum-then-normalise / concatenation per rule) or `none`.
    pub flip: &'static str,
    pub accuracy: Vec<FoldReport>,
    pub auc: f64,
    pub eer: f64,
    pub tar_at_far: Vec<TarRow>,
    /// Pooled ROC over the fused cosine (far, tar, threshold).
    pub roc: metrics::Roc,
    /// Fold-averaged ROC (mean, min, max TAR across folds) on a log-FAR grid.
    pub roc_folds: metrics::FoldAveragedRoc,
    #[serde(skip)]
    pub pair_scores: Vec<PairScore>,
    #[serde(skip)]
    pub rule_scores: Vec<RuleScores>,
}

/// Gathers the rows of `e` for the left and right images of every pair, in pair
/// order; the first absent image is an error naming it and its pairs-file line.
fn gather(pairs: &Pairs, e: &Embeddings) -> Result<(Vec<f32>, Vec<f32>)> {
    let d = e.dim();
    let mut left = Vec::with_capacity(pairs.len() * d);
    let mut right = Vec::with_capacity(pairs.len() * d);
    for p in &pairs.pairs {
        for (key, out) in [(&p.left, &mut left), (&p.right, &mut right)] {
            let row = e.get(key).map_err(|_| {
                Error::Invalid(format!(
                    "{key} (named at {}:{}) is not in the embedding store",
                    pairs.path.display(),
                    p.line
                ))
            })?;
            out.extend_from_slice(row);
        }
    }
    Ok((left, right))
}

fn normalized(e: &Embeddings) -> Result<Embeddings> {
    let mut n = e.clone();
    n.l2_normalize()?;
    Ok(n)
}

/// Scores `pairs` under every requested rule, plus ROC/AUC/EER/TAR@FAR.
pub fn evaluate(
    pairs: &Pairs,
    orig: &Embeddings,
    flip: Option<&Embeddings>,
    opts: &MetricSettings,
) -> Result<LfwResults> {
    // Check every image first so the error names the first missing one.
    gather(pairs, orig)?;
    if let Some(f) = flip {
        gather(pairs, f)?;
    }
    let labels = pairs.labels();
    let folds = pairs.folds();
    let invalid = |e: metrics::MetricsError| Error::cause(e);

    // The InsightFace feature: normalize(orig + flip), or normalize(orig).
    let fused = match flip {
        Some(f) => orig.fuse_flip_sum(f)?,
        None => normalized(orig)?,
    };
    let (fl, fr) = gather(pairs, &fused)?;
    let d = fused.dim();
    let n = pairs.len();
    let idx: Vec<(usize, usize)> = (0..n).map(|i| (i, i)).collect();
    let score_err = |e: facebench_score::ScoreError| Error::cause(e);
    let cosine: Vec<f64> =
        score_pairs(Matrix::new(&fl, n, d).map_err(score_err)?, Matrix::new(&fr, n, d).map_err(score_err)?, &idx)
            .map_err(score_err)?
            .into_iter()
            .map(f64::from)
            .collect();
    let insightface_dist = metrics::squared_l2(&fl, &fr, d).map_err(invalid)?;

    // Each rule's scores (SphereFace's differ per test fold; it keeps the test fold's).
    let mut rule_scores = Vec::new();
    let mut per_test_fold = Vec::new();
    for &rule in &opts.rules {
        let (scores, per_fold) = match rule {
            Rule::InsightFace => (insightface_dist.clone(), None),
            Rule::FaceNet => {
                let feat = match flip {
                    Some(f) => normalized(orig)?.fuse_flip_concat(&normalized(f)?)?,
                    None => normalized(orig)?,
                };
                let (l, r) = gather(pairs, &feat)?;
                (metrics::squared_l2(&l, &r, feat.dim()).map_err(invalid)?, None)
            }
            Rule::SphereFace => {
                let feat = match flip {
                    Some(f) => orig.fuse_flip_concat(f)?,
                    None => orig.clone(),
                };
                let (l, r) = gather(pairs, &feat)?;
                let per_fold = metrics::mean_subtracted_cosines(&l, &r, feat.dim(), &folds).map_err(invalid)?;
                ((0..n).map(|i| per_fold[folds[i]][i]).collect(), Some(per_fold))
            }
            Rule::FaceXZoo | Rule::Exact => (cosine.clone(), None),
        };
        rule_scores.push(RuleScores { rule, scores });
        per_test_fold.push(per_fold);
    }
    let rules: Vec<(Rule, FoldScores)> = rule_scores
        .iter()
        .zip(&per_test_fold)
        .map(|(rs, per_fold)| match per_fold {
            Some(p) => (rs.rule, FoldScores::PerTestFold(p)),
            None => (rs.rule, FoldScores::Shared(&rs.scores)),
        })
        .collect();
    let scores = VerificationScores {
        is_same: &labels,
        folds: &folds,
        rules: &rules,
        similarity: &cosine,
        distance: &insightface_dist,
    };
    let m = metrics::verification_metrics(&scores, &opts.exact_fars, &opts.insightface_fars).map_err(invalid)?;

    let pair_scores = pairs
        .pairs
        .iter()
        .zip(&cosine)
        .map(|(p, &c)| PairScore {
            fold: p.fold,
            left: p.left.clone(),
            right: p.right.clone(),
            is_same: p.is_same,
            cosine: c,
        })
        .collect();

    Ok(LfwResults {
        pairs_file: pairs.path.display().to_string(),
        n_pairs: n,
        n_folds: pairs.n_folds,
        flip: if flip.is_some() { "sum" } else { "none" },
        accuracy: m.accuracy,
        auc: m.auc,
        eer: m.eer,
        tar_at_far: m.tar_at_far,
        roc: m.roc,
        roc_folds: m.roc_folds,
        pair_scores,
        rule_scores,
    })
}

/// A protocol's results, carrying the protocol's name and description (and, through
/// `results`, the pairs file, pair count and fold count), so a report is titled by the
/// protocol it measured.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolResults {
    pub protocol: String,
    pub description: String,
    #[serde(flatten)]
    pub results: LfwResults,
}

impl ProtocolResults {
    /// `cfp_fp (10 folds, 7000 pairs)`.
    pub fn title(&self) -> String {
        format!("{} ({} folds, {} pairs)", self.protocol, self.results.n_folds, self.results.n_pairs)
    }
}

/// Evaluates `pairs` (read with [`PairsProtocol::read_pairs`], or a pack's) under the
/// protocol's metric settings, after checking they have the protocol's fold structure.
pub fn evaluate_protocol(
    protocol: &PairsProtocol,
    pairs: &Pairs,
    orig: &Embeddings,
    flip: Option<&Embeddings>,
) -> Result<ProtocolResults> {
    protocol.check_pairs(pairs)?;
    Ok(ProtocolResults {
        protocol: protocol.name.clone(),
        description: protocol.description.clone(),
        results: evaluate(pairs, orig, flip, &protocol.metrics)?,
    })
}

impl LfwResults {
    /// `pairs_scores.csv`: one row per pair with the fused cosine and each rule's score.
    pub fn write_pair_scores_csv(&self, path: &std::path::Path) -> Result<()> {
        use std::io::Write;
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = std::io::BufWriter::new(file);
        let io = |e| Error::io(path, e);
        write!(w, "fold,left,right,is_same,cosine").map_err(io)?;
        for rs in &self.rule_scores {
            write!(w, ",{}_score", rs.rule).map_err(io)?;
        }
        writeln!(w).map_err(io)?;
        for (i, p) in self.pair_scores.iter().enumerate() {
            write!(w, "{},{},{},{},{}", p.fold + 1, p.left, p.right, p.is_same as u8, p.cosine).map_err(io)?;
            for rs in &self.rule_scores {
                write!(w, ",{}", rs.scores[i]).map_err(io)?;
            }
            writeln!(w).map_err(io)?;
        }
        w.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn evaluate_protocol_names_the_protocol_and_checks_its_folds() {
        let dir = std::env::temp_dir().join(format!("fb-lfw-evalproto-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("x")).unwrap();
        let proto = "name = \"x\"\ndescription = \"a test list\"\nimages = \"x\"\n\
                     [pairs]\nformat = \"list\"\nfile = \"x/pairs.txt\"\ncount = 8\nfolds = 2\n\
                     [metrics]\nrules = [\"insightface\", \"exact\"]\nexact_fars = [0.5]\ninsightface_fars = []\n";
        std::fs::write(dir.join("x.toml"), proto).unwrap();
        // Same-person images share a direction (plus a small offset); others are orthogonal-ish.
        let mut list = String::new();
        let mut e = Embeddings::new(3);
        for i in 0..8 {
            let (a, b) = (format!("a{i}"), format!("b{i}"));
            let same = i % 2 == 0;
            list += &format!("{a} {b} {}\n", u8::from(same));
            let t = i as f32 * 0.1;
            e.push(a, &[1.0, t, 0.0]).unwrap();
            e.push(b, &if same { [1.0, t + 0.05, 0.1] } else { [0.0, 1.0, t] }).unwrap();
        }
        std::fs::write(dir.join("x/pairs.txt"), &list).unwrap();
        let (p, _) = PairsProtocol::read(&dir.join("x.toml")).unwrap();
        let pairs = p.read_pairs(&dir).unwrap();
        let r = evaluate_protocol(&p, &pairs, &e, None).unwrap();
        assert_eq!((r.protocol.as_str(), r.description.as_str()), ("x", "a test list"));
        assert_eq!(r.title(), "x (2 folds, 8 pairs)");
        let direct = evaluate(&pairs, &e, None, &p.metrics).unwrap();
        assert_eq!(r.results.accuracy.len(), 2);
        for (a, b) in r.results.accuracy.iter().zip(&direct.accuracy) {
            assert_eq!((a.rule, a.mean), (b.rule, b.mean));
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (json["protocol"].as_str(), json["n_folds"].as_u64(), json["n_pairs"].as_u64()),
            (Some("x"), Some(2), Some(8))
        );

        let other = Pairs::parse_list(&list, Path::new("other.txt"), 4).unwrap();
        let err = evaluate_protocol(&p, &other, &e, None).unwrap_err().to_string();
        assert!(
            err.starts_with("other.txt: 8 pairs in 4 folds") && err.contains("protocol x declares 8 pairs in 2"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
