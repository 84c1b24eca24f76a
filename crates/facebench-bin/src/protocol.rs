//! A pack's protocol file (`protocols/cfp_fp.toml`, ...): what the pack must contain and how
//! it is scored, so that a new pack is a new file, not new code.

use std::path::Path;

use facebench_metrics::Rule;
use serde::{Deserialize, Serialize};

use crate::pack::{Error, Result, VerificationPack};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackProtocol {
    /// Short name, used as `bin:<name>` in results.
    pub name: String,
    /// What the pack contains, in words.
    pub description: String,
    /// The pack's usual file name (InsightFace's dataset folders).
    pub file: String,
    pub pairs: usize,
    /// Contiguous folds (InsightFace: 10).
    pub folds: usize,
    /// `[width, height]` of every decoded image.
    pub image_size: [u32; 2],
    /// sha256 of the pack file as published, or `"not recorded"`.
    pub sha256: String,
    pub metrics: PackMetrics,
    /// Published accuracies on this pack, shown beside ours and labelled as published.
    #[serde(default)]
    pub published: Vec<Published>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackMetrics {
    pub rules: Vec<Rule>,
    pub exact_fars: Vec<f64>,
    pub insightface_fars: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    pub source: String,
    pub setting: String,
    /// Accuracy in percent.
    pub accuracy: f64,
}

impl PackProtocol {
    pub fn read(path: &Path) -> Result<PackProtocol> {
        let err = |msg: String| Error::Protocol { path: path.to_path_buf(), msg };
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        let p: PackProtocol = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        if p.pairs == 0 || p.folds < 2 || !p.pairs.is_multiple_of(p.folds) {
            return Err(err(format!("{} pairs cannot be split into {} equal folds", p.pairs, p.folds)));
        }
        if p.metrics.rules.is_empty() {
            return Err(err("metrics.rules is empty".into()));
        }
        let hex = p.sha256.len() == 64 && p.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex && p.sha256 != "not recorded" {
            return Err(err(format!("sha256 {:?}: 64 hex digits or \"not recorded\"", p.sha256)));
        }
        Ok(p)
    }

    /// The recorded checksum, if any.
    pub fn recorded_sha256(&self) -> Option<&str> {
        (self.sha256 != "not recorded").then_some(self.sha256.as_str())
    }

    /// Checks the pack's pair count (and its file checksum when one is recorded and given).
    /// `protocol_path` and `pack_path` name the files in the error.
    pub fn check(
        &self,
        protocol_path: &Path,
        pack_path: &Path,
        pack: &VerificationPack,
        pack_sha256: Option<&str>,
    ) -> Result<()> {
        if pack.n_pairs() != self.pairs {
            return Err(Error::Pack {
                path: pack_path.to_path_buf(),
                msg: format!(
                    "{} pairs, {} declares {} ({})",
                    pack.n_pairs(),
                    protocol_path.display(),
                    self.pairs,
                    self.name
                ),
            });
        }
        if let (Some(want), Some(got)) = (self.recorded_sha256(), pack_sha256) {
            if !want.eq_ignore_ascii_case(got) {
                return Err(Error::Pack {
                    path: pack_path.to_path_buf(),
                    msg: format!(
                        "sha256 {got} differs from {}'s {want}: not the published file",
                        protocol_path.display()
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_pack_protocols_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols");
        for (file, pairs) in [
            ("lfw_bin.toml", 6000),
            ("cfp_fp.toml", 7000),
            ("agedb_30.toml", 6000),
            ("calfw.toml", 6000),
            ("cplfw.toml", 6000),
        ] {
            let p = PackProtocol::read(&dir.join(file)).unwrap();
            assert_eq!((p.pairs, p.folds, p.image_size), (pairs, 10, [112, 112]), "{file}");
            assert_eq!(p.recorded_sha256(), None, "{file}: no checksum of a file we do not have");
        }
    }

    #[test]
    fn bad_files_and_mismatches_are_errors() {
        let dir = std::env::temp_dir().join(format!("fb-bin-proto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = "name = \"x\"\ndescription = \"d\"\nfile = \"x.bin\"\npairs = 20\nfolds = 10\nimage_size = [112, 112]\n\
                    sha256 = \"not recorded\"\n[metrics]\nrules = [\"insightface\"]\nexact_fars = []\ninsightface_fars = [0.001]\n";
        let path = dir.join("x.toml");
        std::fs::write(&path, good).unwrap();
        let p = PackProtocol::read(&path).unwrap();
        let pack = VerificationPack { images: vec![vec![0]; 40], issame: vec![true; 20] };
        p.check(&path, Path::new("x.bin"), &pack, Some("ab")).unwrap();
        let small = VerificationPack { images: vec![vec![0]; 20], issame: vec![true; 10] };
        let e = p.check(&path, Path::new("x.bin"), &small, None).unwrap_err().to_string();
        assert!(e.starts_with("x.bin: 10 pairs") && e.contains("declares 20"), "{e}");

        for (from, to, want) in [
            ("pairs = 20", "pairs = 25", "cannot be split"),
            ("\"insightface\"", "\"nope\"", "unknown variant"),
            ("not recorded", "abc", "64 hex digits"),
        ] {
            std::fs::write(&path, good.replace(from, to)).unwrap();
            let e = PackProtocol::read(&path).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("x.toml"), "{e}");
        }
        let sum = "ab".repeat(32);
        std::fs::write(&path, good.replace("not recorded", &sum)).unwrap();
        let p = PackProtocol::read(&path).unwrap();
        let e = p.check(&path, Path::new("x.bin"), &pack, Some(&"cd".repeat(32))).unwrap_err().to_string();
        assert!(e.contains("not the published file"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
