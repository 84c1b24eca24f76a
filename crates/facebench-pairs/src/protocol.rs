//! The declarative pairs-protocol file (`protocols/lfw.toml`, `lfw_bin.toml`, `cfp_fp.toml`,
//! ...): one shape for every pairs benchmark. Which pairs (format, file, pair count, folds),
//! which images, their checksums, the metric settings, the optional View-1-style tuning
//! split, the preprocessing variants and the published rows. Shared blocks come from
//! `include = [...]` files (see the `include` module).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use facebench_core::{Error, Result};
pub use facebench_metrics::MetricSettings;
use facebench_metrics::{check_published, Figures, Published, Rule};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Pairs;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairsProtocol {
    /// Short name, used in results (`lfw`; a pack's results say `bin:<name>`).
    pub name: String,
    /// What the pairs are, in words; reports quote it.
    pub description: String,
    /// Image root, relative to the data root (`lfw` and `list` formats; a pack holds its images).
    #[serde(default)]
    pub images: Option<PathBuf>,
    /// `[width, height]` every decoded image must have (packs of aligned crops).
    #[serde(default)]
    pub image_size: Option<[u32; 2]>,
    pub pairs: PairsSpec,
    /// sha256 of data files, keyed by their path relative to the data root (a pack: by
    /// `pairs.file`); a different file is an error, not a different benchmark.
    #[serde(default)]
    pub sha256: BTreeMap<String, String>,
    pub metrics: MetricSettings,
    #[serde(default)]
    pub tune: Option<Tune>,
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Published accuracies, shown beside measured ones and labelled as published.
    #[serde(default)]
    pub published: Vec<Published>,
    /// The `[data]` table `facebench fetch` reads (sources, checksums); its schema lives there.
    #[serde(default)]
    pub data: Option<toml::Table>,
    /// How reports word the protocol; without it they use [`PairsProtocol::title`].
    #[serde(default)]
    pub report: Option<Wording>,
}

/// A protocol's own words in reports (LFW: `LFW View 2`, `LFW accuracy %`, `10-fold, View 2`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wording {
    /// Report title, e.g. `LFW View 2`.
    pub title: String,
    /// Short name for the terminal table and the accuracy column, e.g. `LFW`.
    pub short: String,
    /// The evaluated split, after the fold count in the accuracy heading, e.g. `View 2`.
    pub split: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairsSpec {
    pub format: PairsFormat,
    /// Relative to the data root (a pack: its usual file name, `eval bin --bin` names the copy).
    pub file: PathBuf,
    /// Pairs the file must hold.
    pub count: usize,
    /// Folds the pairs are scored on: `lfw` files must have exactly this many blocks;
    /// `bin` and `list` files are cut into this many contiguous equal folds.
    pub folds: usize,
    /// Distinct images the pairs name, when the protocol states it (LFW View 2: 7701).
    #[serde(default)]
    pub unique_images: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairsFormat {
    /// LFW's `pairs.txt`: header `folds n`, then `Name i j` and `Name1 i Name2 j` lines.
    Lfw,
    /// An InsightFace `.bin` pack: pair `i` = images `2i`, `2i+1`, labels in the pickle.
    Bin,
    /// Image-pair lists with labels (CALFW, CPLFW, SLLFW, XQLFW): see [`Pairs::parse_list`].
    List,
}

/// A development split to choose the preprocessing variant on (LFW's View 1): threshold on
/// `train`, accuracy on `test`, both in the protocol's pairs format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tune {
    pub train: PathBuf,
    pub test: PathBuf,
    pub rule: Rule,
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

impl PairsProtocol {
    /// Reads (includes merged) and validates the file; the `String` is the sha256 of every
    /// file read (for provenance).
    pub fn read(path: &Path) -> Result<(PairsProtocol, String)> {
        let merged = crate::include::read_merged(path)?;
        let mut p: PairsProtocol =
            toml::Value::Table(merged.table).try_into().map_err(|e| Error::format(path, e.to_string()))?;
        p.validate().map_err(|msg| Error::format(path, msg))?;
        check_published(&mut p.published, &p.name, Figures::Accuracy).map_err(|msg| Error::format(path, msg))?;
        Ok((p, merged.sha256))
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let s = &self.pairs;
        if s.count == 0 || s.folds < 2 || !s.count.is_multiple_of(s.folds) {
            return Err(format!("{} pairs cannot be split into {} equal folds (2 or more)", s.count, s.folds));
        }
        self.metrics.validate().map_err(|e| e.to_string())?;
        match (s.format, &self.images) {
            (PairsFormat::Bin, Some(_)) => return Err("a bin pack holds its images: no `images` root".into()),
            (PairsFormat::Lfw | PairsFormat::List, None) => return Err("`images` (the image root) is missing".into()),
            _ => {}
        }
        if s.format == PairsFormat::Bin && (self.tune.is_some() || s.unique_images.is_some()) {
            return Err("a bin pack has no [tune] split and no unique_images count".into());
        }
        if let Some((file, sum)) =
            self.sha256.iter().find(|(_, v)| v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(format!("sha256 of {file:?} is {sum:?}, not 64 hex digits"));
        }
        if !self.variants.is_empty() && self.variants.iter().all(|v| v.baseline) {
            return Err("no non-baseline variant to choose".into());
        }
        if self.tune.is_some() && self.variants.is_empty() {
            return Err("[tune] without [[variants]] to choose among".into());
        }
        let mut names = HashSet::new();
        if let Some(v) = self.variants.iter().find(|v| !names.insert(v.name.as_str())) {
            return Err(format!("variant {:?} is declared twice", v.name));
        }
        Ok(())
    }

    /// How reports title results of this protocol: its `[report]` title, else
    /// `name (10 folds, 6000 pairs)`.
    pub fn title(&self) -> String {
        match &self.report {
            Some(w) => w.title.clone(),
            None => format!("{} ({} folds, {} pairs)", self.name, self.pairs.folds, self.pairs.count),
        }
    }

    /// The heading of the terminal table: the `[report]` short name, else the title.
    pub fn short_title(&self) -> String {
        self.report.as_ref().map_or_else(|| self.title(), |w| w.short.clone())
    }

    /// Checks every listed file under `data_root` against its checksum.
    pub fn verify(&self, data_root: &Path) -> Result<()> {
        for (rel, want) in &self.sha256 {
            let path = data_root.join(rel);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let got = sha256_hex(&bytes);
            if !got.eq_ignore_ascii_case(want) {
                return Err(Error::format(
                    &path,
                    format!("sha256 {got} differs from the protocol's {want}: not the official file"),
                ));
            }
        }
        Ok(())
    }

    /// The recorded checksum of the pairs file (a pack's), if any.
    pub fn pairs_sha256(&self) -> Option<&str> {
        self.sha256.get(&*self.pairs.file.to_string_lossy()).map(String::as_str)
    }

    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// Reads the pairs file (`lfw` and `list` formats) and checks it against the protocol.
    /// A pack's pairs come from the pack (`facebench_bin::pack_pairs`).
    pub fn read_pairs(&self, data_root: &Path) -> Result<Pairs> {
        self.read_pairs_file(&data_root.join(&self.pairs.file))
    }

    /// Reads another pairs file in the protocol's format; it must have the protocol's
    /// structure (see [`PairsProtocol::check_pairs`]).
    pub fn read_pairs_file(&self, path: &Path) -> Result<Pairs> {
        let pairs = self.read_in_format(path, self.pairs.folds)?;
        self.check_pairs(&pairs)?;
        Ok(pairs)
    }

    /// The `[tune]` split as one two-fold problem (see [`Pairs::view1`]), if the protocol has one.
    pub fn read_tune_pairs(&self, data_root: &Path) -> Result<Option<Pairs>> {
        let Some(t) = &self.tune else { return Ok(None) };
        // A tuning file is one fold: threshold on all of train, accuracy on all of test.
        let train = self.read_in_format(&data_root.join(&t.train), 1)?;
        let test = self.read_in_format(&data_root.join(&t.test), 1)?;
        Ok(Some(Pairs::view1(&train, &test)))
    }

    fn read_in_format(&self, path: &Path, folds: usize) -> Result<Pairs> {
        match self.pairs.format {
            PairsFormat::Lfw => Pairs::read(path),
            PairsFormat::List => Pairs::read_list(path, folds),
            PairsFormat::Bin => Err(Error::format(
                path,
                format!("protocol {}: a pack's pairs are read with the pack (facebench-bin)", self.name),
            )),
        }
    }

    /// The pairs must have the protocol's fold structure: its pair count, its fold count
    /// and equal folds, and its count of distinct images when stated.
    pub fn check_pairs(&self, pairs: &Pairs) -> Result<()> {
        let s = &self.pairs;
        let mut sizes = vec![0usize; pairs.n_folds];
        for p in &pairs.pairs {
            sizes[p.fold] += 1;
        }
        let equal = sizes.iter().all(|&n| n == s.count / s.folds);
        if pairs.len() != s.count || pairs.n_folds != s.folds || !equal {
            return Err(Error::format(
                &pairs.path,
                format!(
                    "{} pairs in {} folds of {:?} pairs; protocol {} declares {} pairs in {} equal folds",
                    pairs.len(),
                    pairs.n_folds,
                    sizes,
                    self.name,
                    s.count,
                    s.folds
                ),
            ));
        }
        if let Some(want) = s.unique_images {
            let got = pairs.image_keys().len();
            if got != want {
                return Err(Error::format(
                    &pairs.path,
                    format!("{got} distinct images; protocol {} declares {want}", self.name),
                ));
            }
        }
        Ok(())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn data_root() -> PathBuf {
        std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or(repo().join("../shared/data"))
    }

    #[test]
    fn repository_lfw_protocol_parses_and_matches_the_data() {
        let (p, sum) = PairsProtocol::read(&repo().join("protocols/lfw.toml")).unwrap();
        assert_eq!(sum.len(), 64);
        assert_eq!((p.pairs.format, p.pairs.count, p.pairs.folds), (PairsFormat::Lfw, 6000, 10));
        assert!(p.variants.iter().any(|v| v.baseline) && p.variants.iter().any(|v| !v.baseline));
        assert_eq!(p.tune.as_ref().map(|t| t.rule), Some(Rule::InsightFace));
        assert_eq!((p.title(), p.short_title()), ("LFW View 2".to_string(), "LFW".to_string()));
        let data = data_root();
        p.verify(&data).unwrap();
        let pairs = p.read_pairs(&data).unwrap();
        assert_eq!((pairs.len(), pairs.n_folds, pairs.image_keys().len()), (6000, 10, 7701));
        let view1 = p.read_tune_pairs(&data).unwrap().unwrap();
        assert_eq!((view1.len(), view1.n_folds), (2200 + 1000, 2));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const LIST: &str = "name = \"x\"\ndescription = \"d\"\nimages = \"x/images\"\n\
                        [pairs]\nformat = \"list\"\nfile = \"x/pairs.txt\"\ncount = 4\nfolds = 2\n\
                        [metrics]\nrules = [\"insightface\"]\nexact_fars = []\ninsightface_fars = [0.001]\n";

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("fb-lfw-proto-bad-{}", std::process::id()));
        let path = write(&dir, "x.toml", LIST);
        PairsProtocol::read(&path).unwrap();
        for (from, to, want) in [
            ("count = 4", "count = 5", "cannot be split"),
            ("folds = 2", "folds = 1", "cannot be split"),
            ("\"insightface\"", "\"nope\"", "unknown variant"),
            ("\"list\"", "\"csv\"", "unknown variant"),
            ("images = \"x/images\"\n", "", "`images`"),
            ("folds = 2\n", "folds = 2\nshards = 3\n", "unknown field"),
            ("rules = [\"insightface\"]", "rules = []", "metrics.rules is empty"),
        ] {
            write(&dir, "x.toml", &LIST.replace(from, to));
            let e = PairsProtocol::read(&path).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("x.toml"), "{from} -> {to}: {e}");
        }
        let bin = LIST.replace("images = \"x/images\"\n", "").replace("\"list\"", "\"bin\"");
        write(&dir, "x.toml", &bin);
        PairsProtocol::read(&path).unwrap();
        for (extra, want) in [
            ("[sha256]\n\"x/pairs.txt\" = \"abc\"\n", "not 64 hex digits"),
            ("[tune]\ntrain = \"a\"\ntest = \"b\"\nrule = \"insightface\"\n", "no [tune]"),
            ("[[variants]]\nname = \"v\"\nalign = \"centre:150\"\nflip = true\nbaseline = true\n", "non-baseline"),
            ("[[published]]\nsource = \"s\"\nsetting = \"t\"\naccuracy = 997.3\n", "not a percentage"),
            ("[[published]]\nsource = \"s\"\nsetting = \"t\"\n", "no `accuracy`"),
            ("[[published]]\nsource = \"s\"\nsetting = \"t\"\naccuracy = 99.0\nrank1 = 80.0\n", "MegaFace figure"),
        ] {
            write(&dir, "x.toml", &format!("{bin}{extra}"));
            let e = PairsProtocol::read(&path).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("x.toml"), "{extra}: {e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn list_protocol_reads_its_pairs_and_checks_the_fold_structure() {
        let dir = std::env::temp_dir().join(format!("fb-lfw-proto-list-{}", std::process::id()));
        let path = write(&dir, "x.toml", LIST);
        let (p, _) = PairsProtocol::read(&path).unwrap();
        write(
            &dir.join("x"),
            "pairs.txt",
            "a/1.jpg a/2.jpg 1\nb/1.jpg c/1.jpg 0\nd/1.jpg d/2.jpg 1\ne/1.jpg f/1.jpg 0\n",
        );
        let pairs = p.read_pairs(&dir).unwrap();
        assert_eq!((pairs.folds(), pairs.labels()), (vec![0, 0, 1, 1], vec![true, false, true, false]));
        write(&dir.join("x"), "pairs.txt", "a/1.jpg a/2.jpg 1\nb/1.jpg c/1.jpg 0\n");
        let e = p.read_pairs(&dir).unwrap_err().to_string();
        assert!(e.contains("pairs.txt: 2 pairs") && e.contains("declares 4 pairs in 2 equal folds"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn lfw_file_with_other_folds_than_the_protocol_is_an_error() {
        let (p, _) = PairsProtocol::read(&repo().join("protocols/lfw.toml")).unwrap();
        let pairs = Pairs::parse("2\t1\nA\t1\t2\nB\t1\tC\t3\nD\t2\t4\nE\t10\tF\t1\n", Path::new("p.txt")).unwrap();
        let e = p.check_pairs(&pairs).unwrap_err().to_string();
        assert!(e.starts_with("p.txt: 4 pairs in 2 folds") && e.contains("declares 6000 pairs in 10"), "{e}");
    }

    #[test]
    fn checksum_mismatch_is_an_error() {
        let dir = std::env::temp_dir().join(format!("fb-lfw-proto-{}", std::process::id()));
        write(&dir.join("lfw"), "pairs.txt", "1\t1\n");
        let mut sha256 = BTreeMap::new();
        sha256.insert("lfw/pairs.txt".to_string(), "00".repeat(32));
        let p = PairsProtocol {
            name: "lfw".into(),
            description: "d".into(),
            images: Some("lfw".into()),
            image_size: None,
            pairs: PairsSpec {
                format: PairsFormat::Lfw,
                file: "lfw/pairs.txt".into(),
                count: 2,
                folds: 2,
                unique_images: None,
            },
            sha256,
            metrics: MetricSettings::default(),
            tune: None,
            variants: vec![],
            published: vec![],
            data: None,
            report: None,
        };
        assert!(p.verify(&dir).unwrap_err().to_string().contains("not the official file"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
