//! `facebench fetch`: downloads the public data a protocol file declares in its `[data]`
//! table (pairs and people lists, image archives), from the official site and mirrors.
//! Nothing reaches its place in the data root unverified: downloads go to
//! `<data-root>/.facebench-fetch/<file>.part` (resumed with HTTP Range requests), are
//! checked against the declared size and checksums, archives are extracted safely into a
//! staging folder beside their destination and counted, and only then renamed into place.

mod download;
mod extract;
mod spec;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use download::SourceError;
pub use extract::ExtractError;

use download::Fetcher;
use extract::Limits;
use spec::{ArchiveSpec, Declared, FileSpec};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}")]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: [data]: {msg}")]
    Spec { path: PathBuf, msg: String },
    #[error("no dataset `{0}` in the protocol files; `facebench fetch --list` shows the names")]
    Unknown(String),
    /// Data that may not be redistributed: where to request it, nothing downloaded.
    #[error("{0}")]
    Restricted(String),
    #[error("{}", all_failed(file, attempts))]
    AllSourcesFailed { file: String, attempts: Vec<Attempt> },
    /// Data already in place that is not what the protocol file declares; never overwritten.
    #[error("{path}: {msg}")]
    Present { path: PathBuf, msg: String },
}

/// One source tried for a file, and why it failed.
#[derive(Debug)]
pub struct Attempt {
    pub url: String,
    pub error: SourceError,
}

fn all_failed(file: &str, attempts: &[Attempt]) -> String {
    let mut s = format!("{file}: no source gave a verified copy ({} tried)", attempts.len());
    for a in attempts {
        let _ = write!(s, "\n  {}: {}", a.url, facebench_core::cause_chain(&a.error));
    }
    s
}

/// What `facebench fetch` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    /// Folder of the protocol files.
    pub protocols: PathBuf,
    pub data_root: PathBuf,
    /// The dataset to fetch; `None` lists what each protocol file declares.
    pub dataset: Option<String>,
    /// The archive variant (LFW: deepfunneled, funneled, original); default: the declared one.
    pub variant: Option<String>,
    /// A base URL serving the official file names, tried before the declared sources.
    pub mirror: Option<String>,
}

/// Runs the request; returns the text to print.
pub fn run(req: &Request) -> Result<String, Error> {
    let all = spec::read_all(&req.protocols)?;
    let Some(name) = &req.dataset else { return Ok(list(&all)) };
    if let Some(d) = all.iter().find(|d| d.fetch_name() == Some(name.as_str())) {
        return fetch(d, req);
    }
    match all.iter().find(|d| d.protocol == *name && !d.data.restricted.is_empty()) {
        Some(d) => Err(Error::Restricted(restricted(d, &req.data_root))),
        None => Err(Error::Unknown(name.clone())),
    }
}

fn list(all: &[Declared]) -> String {
    let mut s = String::new();
    for d in all {
        if let Some(name) = d.fetch_name() {
            let _ = writeln!(s, "{name} ({}): facebench fetch {name}", d.path.display());
            for f in &d.data.files {
                let _ = writeln!(s, "  {:<48} {}", f.dest.display(), size(f.bytes));
            }
            for a in &d.data.archives {
                let default = a.variant == d.data.default_variant.as_deref().unwrap_or(&a.variant);
                let _ = writeln!(
                    s,
                    "  --variant {}{}: {} -> {}/ ({} images, {} folders), {}{}",
                    a.variant,
                    if default { " (default)" } else { "" },
                    a.name,
                    a.dest.display(),
                    a.images,
                    a.folders,
                    size(a.bytes),
                    if a.sha256.is_none() { "; no published sha256, checked by md5" } else { "" }
                );
            }
        }
        for r in &d.data.restricted {
            let _ = writeln!(
                s,
                "{} ({}): not redistributable: {}; request it at {}",
                d.protocol,
                d.path.display(),
                r.what,
                r.request
            );
        }
    }
    s
}

fn size(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        Some(b) => format!("{:.1} KiB", b as f64 / 1024.0),
        None => "size not published".into(),
    }
}

fn restricted(d: &Declared, data_root: &Path) -> String {
    let mut s = format!("{}: nothing downloaded; this data may not be redistributed:", d.protocol);
    for r in &d.data.restricted {
        let _ = write!(
            s,
            "\n  {}\n    request it at: {}\n    layout facebench expects, under {}: {}",
            r.what,
            r.request,
            data_root.display(),
            r.layout
        );
    }
    if let Some(name) = d.fetch_name() {
        let _ = write!(s, "\n  the public part: facebench fetch {name}");
    }
    s
}

fn fetch(d: &Declared, req: &Request) -> Result<String, Error> {
    let archive = d.data.archive(req.variant.as_deref()).map_err(|msg| Error::Spec { path: d.path.clone(), msg })?;
    let root = &req.data_root;
    let fetcher = Fetcher::new(root, req.mirror.as_deref());
    let mut out = String::new();
    // Files first: an archive's pairs check reads them.
    for f in &d.data.files {
        let _ = writeln!(out, "{}", fetch_file(&fetcher, root, f)?);
    }
    if let Some(a) = archive {
        let _ = writeln!(out, "{}", fetch_archive(&fetcher, root, a)?);
    }
    Ok(out)
}

fn fetch_file(fetcher: &Fetcher, root: &Path, f: &FileSpec) -> Result<String, Error> {
    let dest = root.join(&f.dest);
    let src = f.source();
    if dest.exists() {
        return match download::verify(&src, &dest) {
            Ok(()) => Ok(format!("present  {}", dest.display())),
            Err(e) => Err(Error::Present {
                path: dest,
                msg: format!(
                    "already there but not the declared file ({}); move it away and rerun",
                    facebench_core::cause_chain(&e)
                ),
            }),
        };
    }
    fetcher.fetch(&src, |part| {
        let parent = dest.parent().expect("dest is below the data root");
        std::fs::create_dir_all(parent).map_err(SourceError::io(parent))?;
        std::fs::rename(part, &dest).map_err(SourceError::io(&dest))
    })?;
    Ok(format!("fetched  {} ({}, verified)", dest.display(), size(f.bytes)))
}

fn fetch_archive(fetcher: &Fetcher, root: &Path, a: &ArchiveSpec) -> Result<String, Error> {
    let dest = root.join(&a.dest);
    if dest.exists() {
        let counts = extract::count_images(&dest).map_err(|source| Error::Io { path: dest.clone(), source })?;
        return match counts {
            (images, folders) if images == a.images && folders == a.folders => {
                Ok(format!("present  {}/ ({images} images, {folders} folders)", dest.display()))
            }
            (images, folders) => Err(Error::Present {
                path: dest,
                msg: format!(
                    "holds {images} images in {folders} folders, not the declared {} in {}; move it away and rerun",
                    a.images, a.folders
                ),
            }),
        };
    }
    let parent = dest.parent().expect("dest is below the data root").to_path_buf();
    let staging = parent.join(format!(".{}.staging", dest.file_name().expect("a plain path").to_string_lossy()));
    let limits = Limits { max_bytes: a.max_bytes, max_members: a.max_members };
    fetcher.fetch(&a.source(), |part| {
        std::fs::create_dir_all(&parent).map_err(SourceError::io(&parent))?;
        // A staging folder left by an interrupted run is incomplete by definition.
        remove_staging(&staging)?;
        let result = extract::extract_tgz(part, &a.member_root, &staging, &limits)
            .map_err(SourceError::from)
            .and_then(|()| check_content(root, &staging, a))
            .and_then(|()| std::fs::rename(&staging, &dest).map_err(SourceError::io(&dest)));
        if result.is_err() {
            remove_staging(&staging)?;
        }
        result
    })?;
    Ok(format!("fetched  {}/ ({} images, {} folders, verified)", dest.display(), a.images, a.folders))
}

fn remove_staging(staging: &Path) -> Result<(), SourceError> {
    match std::fs::remove_dir_all(staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SourceError::io(staging)(e)),
        _ => Ok(()),
    }
}

/// The extracted tree holds the declared counts, and every image the pairs file names.
fn check_content(root: &Path, tree: &Path, a: &ArchiveSpec) -> Result<(), SourceError> {
    let (images, folders) = extract::count_images(tree).map_err(SourceError::io(tree))?;
    if (images, folders) != (a.images, a.folders) {
        return Err(SourceError::Content(format!(
            "extracted {images} images in {folders} folders, expected {} in {}",
            a.images, a.folders
        )));
    }
    if let Some(p) = &a.pairs {
        let present = pairs_images_present(&root.join(&p.file), tree)?;
        if present != p.images {
            return Err(SourceError::Content(format!(
                "{} names {} images; {present} of them are in the archive",
                p.file.display(),
                p.images
            )));
        }
    }
    Ok(())
}

/// How many of the distinct images an LFW-format pairs file names exist under `tree`.
fn pairs_images_present(pairs: &Path, tree: &Path) -> Result<usize, SourceError> {
    let keys = facebench_pairs::Pairs::read(pairs).map_err(SourceError::Pairs)?.image_keys();
    Ok(keys.iter().filter(|k| tree.join(k).is_file()).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_root() -> PathBuf {
        std::env::var_os("FACEBENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
    }

    /// The View-2 check on the real deep-funneled tree: all 7,701 images; a partial tree fails.
    #[test]
    fn view2_images_in_the_real_tree() {
        let lfw = data_root().join("lfw");
        assert_eq!(pairs_images_present(&lfw.join("pairs.txt"), &lfw.join("lfw-deepfunneled")).unwrap(), 7701);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(pairs_images_present(&lfw.join("pairs.txt"), empty.path()).unwrap(), 0);
    }
}
