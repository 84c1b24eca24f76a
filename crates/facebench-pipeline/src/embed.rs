//! `facebench embed`: images to a resumable store, or to MegaFace devkit feature files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use facebench_core::store::{self, AppendStore, Format};
use facebench_core::thousands;
use facebench_detect::read_alignments;
use facebench_extract::{BadImage, Job};

use crate::cache::flip_path;
use crate::images::ImageSet;
use crate::{Error, Result, Workspace};

#[derive(Debug, Clone)]
pub struct EmbedRequest {
    /// A registry name, or a trained backbone checkpoint.
    pub model: String,
    pub images: ImageSet,
    /// The output: a `.fbs` store, or a `.npy`, `.csv` or `.safetensors` file written from
    /// the store `<out>.fbs` beside it; with `devkit_ending`, a folder holding
    /// `embeddings.fbs` and the feature files.
    pub out: PathBuf,
    /// Also one devkit feature file per image, `<out>/<key><ending>`, L2-normalised.
    pub devkit_ending: Option<String>,
    pub align: String,
    pub alignments: Option<PathBuf>,
    pub flip: bool,
    /// Skip unreadable images, listing them in `<out>.skipped.json`.
    pub skip_bad: bool,
}

/// Where a request's rows go: the resumable store, and the file exported from it.
struct Target {
    store: PathBuf,
    /// `--out` in another format, written from `store` after the run.
    export: Option<PathBuf>,
}

impl Target {
    /// Checks `--out` before any work: a known extension (or a folder for devkit files)
    /// whose parent can be a folder.
    fn of(a: &EmbedRequest) -> Result<Target> {
        let out = &a.out;
        if let Some(dir) = out.ancestors().skip(1).find(|d| d.as_os_str().is_empty() || d.exists()) {
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                return Err(format!("--out {}: {} exists and is not a folder", out.display(), dir.display()).into());
            }
        }
        if a.devkit_ending.is_some() {
            if out.exists() && !out.is_dir() {
                return Err(format!(
                    "--out {}: exists and is not a folder (--format devkit writes a folder of feature files)",
                    out.display()
                )
                .into());
            }
            return Ok(Target { store: out.join("embeddings.fbs"), export: None });
        }
        if out.is_dir() {
            return Err(format!(
                "--out {}: is a folder; give a store file (.fbs, .npy, .csv or .safetensors)",
                out.display()
            )
            .into());
        }
        Ok(match Format::from_path(out)? {
            Format::Fbs => Target { store: out.clone(), export: None },
            _ => Target { store: with_suffix(out, ".fbs"), export: Some(out.clone()) },
        })
    }
}

/// `path` with `suffix` appended to its file name (`X.npy` + `.fbs` = `X.npy.fbs`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// The export of the mirror store: `X.flip.npy` beside `X.npy`.
fn flip_export(path: &Path) -> PathBuf {
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_extension(format!("flip.{ext}"))
}

/// With `--skip-bad`, writes this run's skipped images to `<out>.skipped.json` (`[]` when
/// none), replacing the previous run's list; without it, a run that got here skipped
/// nothing, so a list left by an earlier `--skip-bad` run is stale and removed.
fn record_skipped(a: &EmbedRequest, bad: &[BadImage]) -> Result<PathBuf> {
    let path = with_suffix(&a.out, ".skipped.json");
    if a.skip_bad {
        let json = serde_json::to_vec_pretty(bad).map_err(|source| Error::Json { path: path.clone(), source })?;
        facebench_core::atomic::write(&path, &json)?;
    } else if path.exists() {
        std::fs::remove_file(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    }
    Ok(path)
}

/// Embeds what is not yet stored; returns the summary lines.
pub fn run(ws: &Workspace, a: &EmbedRequest) -> Result<String> {
    let target = Target::of(a)?;
    let (root, keys) = a.images.resolve(&ws.data_root)?;
    if keys.is_empty() {
        return Err(match &a.images.list {
            Some(list) => format!("{}: the image list is empty: no keys to embed", list.display()).into(),
            None => "the protocol names no images to embed".into(),
        });
    }
    let model = ws.load_model(&a.model)?;
    let recipe = model.recipe(&a.align)?;
    let faces = match (&a.alignments, recipe.uses_alignment) {
        (Some(p), true) => read_alignments(p)?.0,
        (None, true) => return Err("--align landmarks needs --alignments FILE.jsonl (from `facebench align`)".into()),
        (Some(p), false) => {
            return Err(format!(
                "--alignments {} is not used: --align {} for {} crops without landmarks",
                p.display(),
                a.align,
                model.name()
            )
            .into())
        }
        (None, false) => Default::default(),
    };
    let job =
        Job { model: model.net(), recipe: &recipe, root: &root, batch: ws.batch, flip: a.flip, skip_bad: a.skip_bad };
    let new_store = !target.store.exists();
    let summary = ws.embed(&job, &keys, &faces, &target.store)?;
    let skipped = record_skipped(a, &summary.bad)?;
    let mut s = String::new();
    if !summary.bad.is_empty() {
        s += &format!("skipped {} unreadable image(s), listed in {}\n", summary.bad.len(), skipped.display());
    }
    if summary.computed + summary.already_stored == 0 {
        if new_store {
            // Header-only stores of this run: nothing in them to resume from.
            for p in [target.store.clone(), flip_path(&target.store)] {
                let _ = std::fs::remove_file(p);
            }
        }
        return Err(format!(
            "0 of {} images embedded: all skipped, listed in {}",
            thousands(keys.len() as u64),
            skipped.display()
        )
        .into());
    }
    if let Some(ending) = &a.devkit_ending {
        let mut e = AppendStore::read(&target.store)?.1;
        e.l2_normalize()?;
        for (i, key) in e.keys().iter().enumerate() {
            store::write_devkit_feature(&a.out.join(format!("{key}{ending}")), e.row(i))?;
        }
        s += &format!("wrote {} devkit feature files <out>/<key><ending>\n", e.len());
    }
    if let Some(export) = &target.export {
        let mut pairs = vec![(target.store.clone(), export.clone())];
        if a.flip {
            pairs.push((flip_path(&target.store), flip_export(export)));
        }
        for (from, to) in pairs {
            let e = AppendStore::read(&from)?.1;
            store::write(&to, &e)?;
            s += &format!("wrote {} ({} rows) from the resumable store {}\n", to.display(), e.len(), from.display());
        }
    }
    s += &format!(
        "{}: {} embedded ({:.1} images/s{}), {} already stored, in {}\n",
        model.name(),
        summary.computed,
        summary.images_per_sec() * if a.flip { 2.0 } else { 1.0 },
        if a.flip { ", mirrors included" } else { "" },
        summary.already_stored,
        target.store.display()
    );
    Ok(s)
}

/// `facebench repair`: truncates the `.fbs` store at `path` at its first bad record and
/// returns the line [`AppendStore::repair`] reports (an intact store is unchanged).
pub fn repair(path: &Path) -> Result<String> {
    if Format::from_path(path)? != Format::Fbs {
        return Err(format!(
            "{}: only .fbs stores can be repaired; .npy, .csv and .safetensors files are written whole",
            path.display()
        )
        .into());
    }
    Ok(format!("{}\n", AppendStore::repair(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(out: &str, devkit: bool) -> EmbedRequest {
        EmbedRequest {
            model: "m".into(),
            images: ImageSet::default(),
            out: out.into(),
            devkit_ending: devkit.then(|| "_x.bin".into()),
            align: "none".into(),
            alignments: None,
            flip: false,
            skip_bad: false,
        }
    }

    #[test]
    fn out_names_the_store_and_the_export() {
        let t = Target::of(&request("no-such-dir/x.fbs", false)).unwrap();
        assert_eq!((t.store, t.export), (PathBuf::from("no-such-dir/x.fbs"), None));
        let t = Target::of(&request("no-such-dir/x.npy", false)).unwrap();
        assert_eq!(t.store, Path::new("no-such-dir/x.npy.fbs"));
        assert_eq!(t.export.as_deref(), Some(Path::new("no-such-dir/x.npy")));
        assert_eq!(flip_path(&t.store), Path::new("no-such-dir/x.npy.flip.fbs"));
        assert_eq!(flip_export(Path::new("d/x.safetensors")), Path::new("d/x.flip.safetensors"));
        let t = Target::of(&request("no-such-dir/feats", true)).unwrap();
        assert_eq!(t.store, Path::new("no-such-dir/feats/embeddings.fbs"));
        let e = Target::of(&request("x.pkl", false)).err().unwrap().to_string();
        assert!(e.contains(".npy, .csv, .safetensors or .fbs"), "{e}");
    }

    #[test]
    fn the_skipped_list_is_named_after_out_exactly() {
        assert_eq!(with_suffix(Path::new("d/X.fbs"), ".skipped.json"), Path::new("d/X.fbs.skipped.json"));
        assert_eq!(with_suffix(Path::new("feats/"), ".skipped.json"), Path::new("feats.skipped.json"));
    }
}
