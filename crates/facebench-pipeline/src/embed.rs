//! `facebench embed`: images to a resumable store, or to MegaFace devkit feature files.

use std::path::PathBuf;

use facebench_core::store::AppendStore;
use facebench_detect::read_alignments;
use facebench_extract::Job;

use crate::images::ImageSet;
use crate::{Result, Workspace};

#[derive(Debug, Clone)]
pub struct EmbedRequest {
    /// A registry name, or a trained backbone checkpoint.
    pub model: String,
    pub images: ImageSet,
    /// The store; with `devkit_ending`, a folder holding `embeddings.fbs` and the files.
    pub out: PathBuf,
    /// Also one devkit feature file per image, `<out>/<key><ending>`, L2-normalised.
    pub devkit_ending: Option<String>,
    pub align: String,
    pub alignments: Option<PathBuf>,
    pub flip: bool,
    pub skip_bad: bool,
}

/// Embeds what is not yet stored; returns the summary lines.
pub fn run(ws: &Workspace, a: &EmbedRequest) -> Result<String> {
    let (root, keys) = a.images.resolve(&ws.data_root)?;
    let model = ws.load_model(&a.model)?;
    let recipe = model.recipe(&a.align)?;
    let faces = match (&a.alignments, recipe.uses_alignment) {
        (Some(p), true) => read_alignments(p)?.0,
        (None, true) => return Err("--align landmarks needs --alignments FILE.jsonl (from `facebench align`)".into()),
        _ => Default::default(),
    };
    let job =
        Job { model: model.net(), recipe: &recipe, root: &root, batch: ws.batch, flip: a.flip, skip_bad: a.skip_bad };
    let store_path = match &a.devkit_ending {
        None => a.out.clone(),
        Some(_) => a.out.join("embeddings.fbs"),
    };
    let summary = ws.embed(&job, &keys, &faces, &store_path)?;
    let mut s = String::new();
    if let Some(ending) = &a.devkit_ending {
        let mut e = AppendStore::read(&store_path)?.1;
        e.l2_normalize()?;
        for (i, key) in e.keys().iter().enumerate() {
            facebench_core::store::write_devkit_feature(&a.out.join(format!("{key}{ending}")), e.row(i))?;
        }
        s += &format!("wrote {} devkit feature files <out>/<key>{ending}\n", e.len());
    }
    s += &format!(
        "{}: {} embedded ({:.1} images/s{}), {} already stored, in {}\n",
        model.name(),
        summary.computed,
        summary.images_per_sec() * if a.flip { 2.0 } else { 1.0 },
        if a.flip { ", mirrors included" } else { "" },
        summary.already_stored,
        a.out.display()
    );
    Ok(s)
}
