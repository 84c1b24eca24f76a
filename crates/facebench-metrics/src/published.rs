//! Published results: one row of a protocol file's `[[published]]` table, for every protocol
//! (pairs, YTF, MegaFace). The row type lives here, below every protocol crate, so that each
//! protocol reads the same type and checks the figures it reports ([`Figures`]).

use serde::{Deserialize, Serialize};

/// A published row, percentages; `None` = the source does not report it. Rows of one source
/// and setting are one line of the CosFace paper's table, across protocols.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// The protocol file's `name` (`lfw`, `ytf`, `megaface`, `cfp_fp`, ...), set by the
    /// reader of that file ([`check_published`]), never written in the row.
    #[serde(skip)]
    pub protocol: String,
    pub source: String,
    pub setting: String,
    /// Verification accuracy (pairs protocols, YTF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// MegaFace Challenge 1 at 1M distractors: rank-1 identification, raw and noise-cleaned (R).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank1_r: Option<f64>,
    /// MegaFace Challenge 1 at 1M distractors: TAR at FAR = 1e-6, raw and R.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar_at_far_1e6: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar_at_far_1e6_r: Option<f64>,
}

/// Which figures a protocol's published rows report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figures {
    /// Pairs protocols and YTF: an `accuracy`, nothing else.
    Accuracy,
    /// MegaFace Challenge 1: no `accuracy`; at least one of rank-1 and TAR@FAR=1e-6, raw or R.
    Megaface,
}

impl Published {
    /// The MegaFace figures with their field names.
    fn megaface(&self) -> [(&'static str, Option<f64>); 4] {
        [
            ("rank1", self.rank1),
            ("rank1_r", self.rank1_r),
            ("tar_at_far_1e6", self.tar_at_far_1e6),
            ("tar_at_far_1e6_r", self.tar_at_far_1e6_r),
        ]
    }

    /// Why the row does not fit a protocol reporting `figures`, if it does not.
    fn misfit(&self, figures: Figures) -> Option<String> {
        let mf = self.megaface();
        let percent = |v: f64| (0.0..=100.0).contains(&v);
        match figures {
            Figures::Accuracy => match (self.accuracy, mf.iter().find(|(_, v)| v.is_some())) {
                (_, Some((name, _))) => {
                    Some(format!("`{name}` is a MegaFace figure; this protocol's rows give `accuracy`"))
                }
                (None, None) => Some("no `accuracy`".into()),
                (Some(a), None) if !percent(a) => Some(format!("accuracy {a} is not a percentage")),
                (Some(_), None) => None,
            },
            Figures::Megaface => {
                if self.accuracy.is_some() {
                    Some(
                        "`accuracy` is not a MegaFace figure; give rank1, rank1_r, tar_at_far_1e6 or tar_at_far_1e6_r"
                            .into(),
                    )
                } else if mf.iter().all(|(_, v)| v.is_none()) || mf.iter().filter_map(|(_, v)| *v).any(|v| !percent(v))
                {
                    Some("rank1, rank1_r, tar_at_far_1e6, tar_at_far_1e6_r: percentages, at least one".into())
                } else {
                    None
                }
            }
        }
    }
}

/// Names every row with its protocol and checks it reports `figures`; the message names the
/// first row that does not (its reader adds the file).
pub fn check_published(rows: &mut [Published], protocol: &str, figures: Figures) -> Result<(), String> {
    for r in rows.iter_mut() {
        if let Some(why) = r.misfit(figures) {
            return Err(format!("published row {:?} / {:?}: {why}", r.source, r.setting));
        }
        r.protocol = protocol.to_string();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(toml_text: &str) -> Published {
        toml::from_str(&format!("source = \"s\"\nsetting = \"t\"\n{toml_text}")).unwrap()
    }

    fn check(toml_text: &str, figures: Figures) -> Result<Published, String> {
        let mut rows = [row(toml_text)];
        check_published(&mut rows, "p", figures)?;
        let [r] = rows;
        Ok(r)
    }

    #[test]
    fn each_protocol_checks_the_figures_it_reports() {
        let r = check("accuracy = 99.5", Figures::Accuracy).unwrap();
        assert_eq!((r.protocol.as_str(), r.accuracy), ("p", Some(99.5)));
        assert!(check("rank1 = 80.0\ntar_at_far_1e6_r = 97.0", Figures::Megaface).is_ok());
        for (text, figures, want) in [
            ("", Figures::Accuracy, "no `accuracy`"),
            ("accuracy = 997.3", Figures::Accuracy, "not a percentage"),
            ("accuracy = 99.0\nrank1 = 80.0", Figures::Accuracy, "`rank1` is a MegaFace figure"),
            ("accuracy = 99.0", Figures::Megaface, "not a MegaFace figure"),
            ("", Figures::Megaface, "at least one"),
            ("rank1_r = -1.0", Figures::Megaface, "percentages"),
        ] {
            let e = check(text, figures).unwrap_err();
            assert!(e.starts_with("published row \"s\" / \"t\": ") && e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_and_absent_figures_are_not_written() {
        let e = toml::from_str::<Published>("source = \"s\"\nsetting = \"t\"\nrank_1 = 1.0\n").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let json = serde_json::to_string(&row("accuracy = 99.0")).unwrap();
        assert_eq!(json, r#"{"source":"s","setting":"t","accuracy":99.0}"#);
    }
}
