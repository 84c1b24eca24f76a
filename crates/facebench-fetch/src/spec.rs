//! The `[data]` table of a protocol file: what `facebench fetch` may download for it, from
//! where, with which checksums, and what the extracted archives must hold. The protocol
//! crates keep the table opaque; its schema and validation live here only.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::download::Source;
use crate::Error;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataSpec {
    /// The name `facebench fetch` takes for the public files (default: the protocol's name).
    #[serde(default)]
    pub fetch: Option<String>,
    /// The archive variant fetched without `--variant` (the one the published numbers used).
    #[serde(default)]
    pub default_variant: Option<String>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub archives: Vec<ArchiveSpec>,
    /// Data that may not be redistributed: where to request it and the layout expected.
    #[serde(default)]
    pub restricted: Vec<Restricted>,
}

/// A file stored as downloaded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSpec {
    /// The official file name; a `--mirror` base serves it as `<base>/<name>`.
    pub name: String,
    /// Where it goes, relative to the data root.
    pub dest: PathBuf,
    /// Tried in order: the official site first, then mirrors.
    pub urls: Vec<String>,
    #[serde(default)]
    pub bytes: Option<u64>,
    /// At least one checksum: sha256, or md5 only where no source states a sha256.
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub md5: Option<String>,
}

/// A `.tgz` image archive of one variant, extracted below `dest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArchiveSpec {
    pub name: String,
    pub variant: String,
    pub urls: Vec<String>,
    #[serde(default)]
    pub bytes: Option<u64>,
    /// At least one checksum: sha256, or md5 only where no source states a sha256.
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub md5: Option<String>,
    /// The single top folder every member is under; its content becomes `dest`.
    pub member_root: String,
    pub dest: PathBuf,
    /// Image files (`.jpg`) and identity folders the extracted tree must hold.
    pub images: usize,
    pub folders: usize,
    /// Extraction limits: bytes of all members together, and members.
    pub max_bytes: u64,
    pub max_members: usize,
    /// An LFW-format pairs file (one of `files`) whose images must all be present.
    #[serde(default)]
    pub pairs: Option<PairsCheck>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PairsCheck {
    /// Relative to the data root.
    pub file: PathBuf,
    /// Distinct images the file names (LFW View 2: 7701).
    pub images: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Restricted {
    pub what: String,
    /// Where to request it (the owners' page or form).
    pub request: String,
    /// The layout facebench expects, relative to the data root.
    pub layout: String,
}

impl FileSpec {
    pub(crate) fn source(&self) -> Source<'_> {
        Source {
            name: &self.name,
            urls: &self.urls,
            bytes: self.bytes,
            sha256: self.sha256.as_deref(),
            md5: self.md5.as_deref(),
        }
    }
}

impl ArchiveSpec {
    pub(crate) fn source(&self) -> Source<'_> {
        Source {
            name: &self.name,
            urls: &self.urls,
            bytes: self.bytes,
            sha256: self.sha256.as_deref(),
            md5: self.md5.as_deref(),
        }
    }
}

/// One protocol file's `[data]` table.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub path: PathBuf,
    pub protocol: String,
    pub data: DataSpec,
}

impl Declared {
    /// The name `facebench fetch` takes for the public files, if there are any.
    pub fn fetch_name(&self) -> Option<&str> {
        let public = !self.data.files.is_empty() || !self.data.archives.is_empty();
        public.then(|| self.data.fetch.as_deref().unwrap_or(&self.protocol))
    }
}

/// Every `[data]` table of the protocol files in `dir` (not `common/`, not `models.toml`),
/// validated, in file-name order.
pub(crate) fn read_all(dir: &Path) -> Result<Vec<Declared>, Error> {
    let io = |source| Error::Io { path: dir.to_path_buf(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let toml = path.extension().is_some_and(|e| e == "toml");
        if toml && path.is_file() && path.file_name().is_some_and(|n| n != "models.toml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        if let Some(d) = read(&path)? {
            out.push(d);
        }
    }
    Ok(out)
}

/// The file's `[data]` table, validated; `None` when it has none.
fn read(path: &Path) -> Result<Option<Declared>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let bad = |source| Error::Toml { path: path.to_path_buf(), source };
    let mut table: toml::Table = toml::from_str(&text).map_err(bad)?;
    let Some(data) = table.remove("data") else { return Ok(None) };
    let data: DataSpec = data.try_into().map_err(bad)?;
    let protocol = match table.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        _ => return Err(Error::Spec { path: path.to_path_buf(), msg: "the file has no `name`".into() }),
    };
    data.validate().map_err(|msg| Error::Spec { path: path.to_path_buf(), msg })?;
    Ok(Some(Declared { path: path.to_path_buf(), protocol, data }))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A relative path of plain components: nothing is ever written outside the data root.
fn plain_relative(p: &Path) -> bool {
    p.components().next().is_some() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

impl Source<'_> {
    fn validate(&self) -> Result<(), String> {
        let name = self.name;
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(format!("`{name}`: a source name is one plain file name (a mirror serves <base>/<name>)"));
        }
        if self.urls.is_empty() {
            return Err(format!("{name}: no `urls`"));
        }
        if let Some(u) = self.urls.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
            return Err(format!("{name}: `{u}` is not an http(s) URL"));
        }
        let what = name;
        match (self.sha256, self.md5) {
            (None, None) => Err(format!("{what}: needs `sha256` (or, where no source states one, `md5`)")),
            (Some(s), _) if !is_hex(s, 64) => Err(format!("{what}: sha256 `{s}` is not 64 lowercase hex digits")),
            (_, Some(m)) if !is_hex(m, 32) => Err(format!("{what}: md5 `{m}` is not 32 lowercase hex digits")),
            _ => Ok(()),
        }
    }
}

impl DataSpec {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for f in &self.files {
            f.source().validate()?;
            if !plain_relative(&f.dest) {
                return Err(format!("{}: dest `{}` must be a plain relative path", f.name, f.dest.display()));
            }
            if !names.insert(&f.name) {
                return Err(format!("`{}` is declared twice", f.name));
            }
        }
        let mut variants = std::collections::BTreeSet::new();
        for a in &self.archives {
            a.source().validate()?;
            if !names.insert(&a.name) {
                return Err(format!("`{}` is declared twice", a.name));
            }
            if !variants.insert(a.variant.as_str()) {
                return Err(format!("variant `{}` is declared twice", a.variant));
            }
            if !plain_relative(&a.dest) || !plain_relative(Path::new(&a.member_root)) || a.member_root.contains('/') {
                return Err(format!("{}: `dest` and `member_root` must be plain relative paths (one folder)", a.name));
            }
            if a.images == 0 || a.folders == 0 || a.max_bytes == 0 || a.max_members < a.images {
                return Err(format!("{}: `images`, `folders`, `max_bytes` > 0 and `max_members` >= images", a.name));
            }
            if let Some(p) = &a.pairs {
                if !self.files.iter().any(|f| f.dest == p.file) {
                    return Err(format!("{}: pairs file `{}` is not one of `files`", a.name, p.file.display()));
                }
            }
        }
        match &self.default_variant {
            Some(v) if !variants.contains(v.as_str()) => return Err(format!("default_variant `{v}` has no archive")),
            None if variants.len() > 1 => return Err("several variants need a `default_variant`".into()),
            _ => {}
        }
        if let Some(r) =
            self.restricted.iter().find(|r| r.what.is_empty() || r.request.is_empty() || r.layout.is_empty())
        {
            return Err(format!("restricted `{}`: `what`, `request` and `layout` must all be given", r.what));
        }
        if self.files.is_empty() && self.archives.is_empty() && self.restricted.is_empty() {
            return Err("declares nothing (no files, archives or restricted data)".into());
        }
        Ok(())
    }

    /// The archive of `variant` (or the default one); `None` when there are no archives.
    pub(crate) fn archive(&self, variant: Option<&str>) -> Result<Option<&ArchiveSpec>, String> {
        let Some(v) = variant.or(self.default_variant.as_deref()) else { return Ok(self.archives.first()) };
        match self.archives.iter().find(|a| a.variant == v) {
            Some(a) => Ok(Some(a)),
            None => Err(format!(
                "no variant `{v}` (declared: {})",
                self.archives.iter().map(|a| a.variant.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Every `[data]` table under protocols/ parses with the typed schema and validates.
    #[test]
    fn every_protocol_data_table_validates() {
        let all = read_all(&repo().join("protocols")).unwrap();
        let names: Vec<&str> = all.iter().map(|d| d.protocol.as_str()).collect();
        for want in ["lfw", "megaface", "ytf"] {
            assert!(names.contains(&want), "{want} has no [data] table: {names:?}");
        }
        let lfw = all.iter().find(|d| d.protocol == "lfw").unwrap();
        let a = lfw.data.archive(None).unwrap().unwrap();
        assert_eq!((a.variant.as_str(), a.images, a.folders), ("deepfunneled", 13233, 5749));
        assert_eq!(a.dest, Path::new("lfw/lfw-deepfunneled"), "the folder protocols/lfw.toml `images` names");
        assert_eq!(a.pairs.as_ref().unwrap().images, 7701);
        // The file sums agree with the protocol's own [sha256] table.
        let proto: toml::Table = toml::from_str(&std::fs::read_to_string(&lfw.path).unwrap()).unwrap();
        for (path, sum) in proto["sha256"].as_table().unwrap() {
            let f = lfw.data.files.iter().find(|f| f.dest == Path::new(path)).unwrap();
            assert_eq!(f.sha256.as_deref(), sum.as_str(), "{path}");
        }
        let mf = all.iter().find(|d| d.protocol == "megaface").unwrap();
        assert_eq!(mf.fetch_name(), Some("megaface-lists"));
        assert!(!mf.data.restricted.is_empty());
        let ytf = all.iter().find(|d| d.protocol == "ytf").unwrap();
        assert_eq!(ytf.fetch_name(), None, "YTF has nothing public to fetch");
    }

    /// Every declared file that exists in the data root has the declared sha256.
    #[test]
    fn declared_sums_match_the_data_root() {
        let data = std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or(repo().join("../shared/data"));
        let mut checked = 0;
        for d in read_all(&repo().join("protocols")).unwrap() {
            for f in &d.data.files {
                let path = data.join(&f.dest);
                let Ok(meta) = path.metadata() else { continue };
                let (sha256, md5) = crate::download::file_sums(&path).unwrap();
                assert_eq!(Some(sha256), f.sha256, "{}", f.dest.display());
                if f.md5.is_some() {
                    assert_eq!(Some(md5), f.md5, "{}", f.dest.display());
                }
                assert_eq!(f.bytes, Some(meta.len()), "{}", f.dest.display());
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} declared files found in {}", data.display());
    }

    fn spec(extra: &str) -> Result<DataSpec, String> {
        let text = format!(
            "[[files]]\nname = \"pairs.txt\"\ndest = \"lfw/pairs.txt\"\nurls = [\"http://127.0.0.1/pairs.txt\"]\n\
             sha256 = \"{}\"\n{extra}",
            "0".repeat(64)
        );
        let d: DataSpec = toml::from_str(&text).map_err(|e| e.to_string())?;
        d.validate().map(|()| d)
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(spec("").is_ok());
        assert!(spec("bogus = 1").unwrap_err().contains("bogus"), "unknown keys are refused");
        let dup = "[[files]]\nname = \"pairs.txt\"\ndest = \"x\"\nurls = [\"http://a/x\"]\nmd5 = \"00000000000000000000000000000000\"";
        assert!(spec(dup).unwrap_err().contains("twice"));
        let up = "[[files]]\nname = \"p\"\ndest = \"../p\"\nurls = [\"http://a/x\"]\nmd5 = \"00000000000000000000000000000000\"";
        assert!(spec(up).unwrap_err().contains("plain relative"));
        let nosum = "[[files]]\nname = \"p\"\ndest = \"p\"\nurls = [\"http://a/x\"]";
        assert!(spec(nosum).unwrap_err().contains("sha256"));
        let ftp =
            "[[files]]\nname = \"p\"\ndest = \"p\"\nurls = [\"ftp://a/x\"]\nmd5 = \"00000000000000000000000000000000\"";
        assert!(spec(ftp).unwrap_err().contains("http"));
    }
}
