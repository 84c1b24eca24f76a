//! Whole-or-nothing outputs: a reader sees the previous complete file (or
//! folder of files) or the new complete one, never half of one or a mix.
//!
//! - [`write`] / [`create`]: one file, written to a temporary file in the same
//!   folder, flushed, `fsync`ed and renamed over the target. A failure (disk
//!   full, an error half way) removes the temporary file and leaves the target
//!   as it was.
//! - [`OutputSet`]: a folder's outputs as one set (results, scores, report,
//!   figures). Files are written into a staging folder beside the target and
//!   moved into place only by [`OutputSet::commit`]; dropping the set without
//!   committing removes the staging folder and leaves the previous outputs
//!   untouched. The set's file names are recorded in [`MANIFEST`] in the
//!   target, so a commit also removes the files an earlier set wrote that this
//!   one does not (old figures never sit beside new results), while files the
//!   sets never wrote are left alone.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Error, Result};

/// The file in an [`OutputSet`]'s folder listing the set's files, one a line.
pub const MANIFEST: &str = ".facebench-outputs";

/// Writes `bytes` to `path` atomically (temp file + fsync + rename).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = create(path)?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.commit()
}

/// Like [`write`] but without the fsyncs: still atomic against a killed
/// process (a reader sees the old file or the new one), not durable against
/// power loss. For trees of many small files (MegaFace devkit features, a
/// million of them), where two fsyncs a file cost about 10 ms each file.
pub(crate) fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_beside(path, "tmp")?;
    let res = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Starts an atomic write of `path`: write through the returned file, then
/// [`AtomicFile::commit`]. Dropping it uncommitted removes the temporary file.
pub fn create(path: &Path) -> Result<AtomicFile> {
    let tmp = temp_beside(path, "tmp")?;
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    Ok(AtomicFile { path: path.to_path_buf(), tmp, w: Some(BufWriter::with_capacity(1 << 20, file)) })
}

/// A file being written atomically; see [`create`].
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    w: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// The final path (not the temporary one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and syncs the temporary file without renaming it, so that a
    /// writer of several files can make sure all of them fit on the disk
    /// before the first one replaces its target.
    pub fn sync(&mut self) -> Result<()> {
        let w = self.w.as_mut().expect("not yet committed");
        w.flush().and_then(|_| w.get_ref().sync_all()).map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        self.sync()?;
        self.w = None;
        if let Err(e) = std::fs::rename(&self.tmp, &self.path) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::io(&self.path, e));
        }
        sync_parent(&self.path);
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w.as_mut().expect("not yet committed").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.as_mut().expect("not yet committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.w.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A folder's outputs written as one set; see the module docs.
#[derive(Debug)]
pub struct OutputSet {
    target: PathBuf,
    staging: PathBuf,
    /// The manifest's file name in the target: [`MANIFEST`], or `MANIFEST.<part>`.
    manifest: String,
    committed: bool,
}

impl OutputSet {
    /// Starts a set of outputs for folder `target` (created on commit if it
    /// does not exist; an existing one must be a folder). The staging folder
    /// is created beside it, on the same file system, so the commit only renames.
    pub fn new(target: &Path) -> Result<OutputSet> {
        OutputSet::start(target, MANIFEST.to_string())
    }

    /// A set that is one part of a folder shared by several commands (e.g. the LMCL toy and
    /// ablation outputs in one folder): its manifest is `MANIFEST.<part>`, so committing it
    /// replaces this part's previous files and never removes another part's.
    pub fn part(target: &Path, part: &str) -> Result<OutputSet> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(Error::Invalid(format!("output part {part:?}: letters, digits, `_` and `-` only")));
        }
        OutputSet::start(target, format!("{MANIFEST}.{part}"))
    }

    fn start(target: &Path, manifest: String) -> Result<OutputSet> {
        if target.exists() && !target.is_dir() {
            return Err(Error::format(target, "the output folder exists and is not a folder"));
        }
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let staging = temp_beside(target, "staging")?;
        std::fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok(OutputSet { target: target.to_path_buf(), staging, manifest, committed: false })
    }

    /// The staging folder, for writers that take a folder (reports with figures); what they
    /// write there becomes the set. Prefer [`OutputSet::write`] for single files.
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    /// The final folder.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Where to write output `name` (a relative path such as `results.json` or
    /// `figures/roc.png`) before the commit; its parent folders are created.
    /// For writers that need a path (plotting libraries); prefer [`OutputSet::write`].
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        let rel = relative(name)?;
        let p = self.staging.join(rel);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        Ok(p)
    }

    /// Writes output `name` into the set.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path(name)?;
        std::fs::write(&p, bytes).map_err(|e| Error::io(self.target.join(name), e))
    }

    /// Moves the set into place: syncs every staged file, then renames the
    /// staging folder to the target (when there is none) or each file into the
    /// target, removes the files of the previous set that this one lacks and
    /// writes the manifest last.
    pub fn commit(mut self) -> Result<()> {
        let mut names = BTreeSet::new();
        collect_files(&self.staging, Path::new(""), &mut names)?;
        for name in &names {
            let p = self.staging.join(name);
            File::open(&p).and_then(|f| f.sync_all()).map_err(|e| Error::io(&p, e))?;
        }
        let manifest: String = names.iter().map(|n| format!("{}\n", n.display())).collect();
        if !self.target.exists() {
            write(&self.staging.join(&self.manifest), manifest.as_bytes())?;
            std::fs::rename(&self.staging, &self.target).map_err(|e| Error::io(&self.target, e))?;
            sync_parent(&self.target);
            self.committed = true;
            return Ok(());
        }
        let previous = std::fs::read_to_string(self.target.join(&self.manifest)).unwrap_or_default();
        for name in &names {
            let to = self.target.join(name);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            std::fs::rename(self.staging.join(name), &to).map_err(|e| Error::io(&to, e))?;
        }
        for stale in previous.lines().filter(|l| relative(l).is_ok() && !names.contains(Path::new(l))) {
            let _ = std::fs::remove_file(self.target.join(stale));
        }
        write(&self.target.join(&self.manifest), manifest.as_bytes())?;
        self.committed = true;
        let _ = std::fs::remove_dir_all(&self.staging);
        Ok(())
    }
}

impl Drop for OutputSet {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// `name` as a relative path that stays inside the set's folder.
fn relative(name: &str) -> Result<&Path> {
    let p = Path::new(name);
    let ok =
        !name.is_empty() && !name.starts_with(MANIFEST) && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p)
    } else {
        Err(Error::Invalid(format!("output name {name:?} must be a relative path without `..` (and not {MANIFEST})")))
    }
}

fn collect_files(root: &Path, rel: &Path, out: &mut BTreeSet<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let name = rel.join(entry.file_name());
        if entry.file_type().map_err(|e| Error::io(entry.path(), e))?.is_dir() {
            collect_files(root, &name, out)?;
        } else {
            out.insert(name);
        }
    }
    Ok(())
}

/// A fresh hidden name in `path`'s folder: `.<name>.<pid>.<n>.<what>`.
fn temp_beside(path: &Path, what: &str) -> Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: an output path must end in a file name", path.display())))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}.{n}.{what}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Makes a rename durable (best effort: not every platform can open a folder).
fn sync_parent(path: &Path) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
