//! The declarative LFW protocol file (`protocols/lfw.toml`): which files, their
//! checksums, the metric settings and the preprocessing variants to tune over.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use facebench_core::{Error, Result};
use facebench_metrics::Rule;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolFile {
    pub name: String,
    /// Image root, relative to the data root.
    pub images: PathBuf,
    pub view2: PathBuf,
    pub view1_train: PathBuf,
    pub view1_test: PathBuf,
    pub view2_pairs: usize,
    pub view2_images: usize,
    /// sha256 of protocol files, keyed by their path relative to the data root.
    #[serde(default)]
    pub sha256: BTreeMap<String, String>,
    pub metrics: MetricSettings,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSettings {
    pub rules: Vec<Rule>,
    pub exact_fars: Vec<f64>,
    pub insightface_fars: Vec<f64>,
    pub tune_rule: Rule,
}

/// One preprocessing variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// `landmarks` or `centre:S` (see the protocol file's comments).
    pub align: String,
    pub flip: bool,
    /// Reported beside the chosen variant, never chosen.
    #[serde(default)]
    pub baseline: bool,
}

impl ProtocolFile {
    /// Reads and validates the file; `sha256` is the file's own checksum (for provenance).
    pub fn read(path: &Path) -> Result<(ProtocolFile, String)> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes.clone()).map_err(|e| Error::format(path, e.to_string()))?;
        let p: ProtocolFile = toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?;
        if p.variants.iter().all(|v| v.baseline) {
            return Err(Error::format(path, "no non-baseline variant to choose"));
        }
        let mut names = std::collections::HashSet::new();
        if let Some(v) = p.variants.iter().find(|v| !names.insert(v.name.as_str())) {
            return Err(Error::format(path, format!("variant {:?} is declared twice", v.name)));
        }
        Ok((p, sha256_hex(&bytes)))
    }

    /// Checks every listed protocol file under `data_root` against its checksum.
    pub fn verify(&self, data_root: &Path) -> Result<()> {
        for (rel, want) in &self.sha256 {
            let path = data_root.join(rel);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let got = sha256_hex(&bytes);
            if &got != want {
                return Err(Error::format(
                    &path,
                    format!("sha256 {got} differs from the protocol's {want}: not the official file"),
                ));
            }
        }
        Ok(())
    }

    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_protocol_file_parses_and_matches_the_data() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let (p, sum) = ProtocolFile::read(&root.join("protocols/lfw.toml")).unwrap();
        assert_eq!(sum.len(), 64);
        assert!(p.variants.iter().any(|v| v.baseline) && p.variants.iter().any(|v| !v.baseline));
        let data = std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or(root.join("../shared/data"));
        p.verify(&data).unwrap();
        let pairs = crate::Pairs::read(&data.join(&p.view2)).unwrap();
        assert_eq!(pairs.len(), p.view2_pairs);
        assert_eq!(pairs.image_keys().len(), p.view2_images);
    }

    #[test]
    fn checksum_mismatch_is_an_error() {
        let dir = std::env::temp_dir().join(format!("fb-lfw-proto-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lfw")).unwrap();
        std::fs::write(dir.join("lfw/pairs.txt"), "1\t1\n").unwrap();
        let mut sha256 = BTreeMap::new();
        sha256.insert("lfw/pairs.txt".to_string(), "00".repeat(32));
        let p = ProtocolFile {
            name: "lfw".into(),
            images: "lfw".into(),
            view2: "lfw/pairs.txt".into(),
            view1_train: "x".into(),
            view1_test: "y".into(),
            view2_pairs: 1,
            view2_images: 1,
            sha256,
            metrics: MetricSettings {
                rules: vec![],
                exact_fars: vec![],
                insightface_fars: vec![],
                tune_rule: Rule::InsightFace,
            },
            variants: vec![],
        };
        assert!(p.verify(&dir).unwrap_err().to_string().contains("not the official file"));
    }
}
