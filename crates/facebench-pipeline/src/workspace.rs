//! The Workspace: where the data, the cache and the weights are, and how models run; with
//! the cached stages every protocol uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use facebench_core::store::AppendStore;
use facebench_core::Embeddings;
use facebench_detect::{align_images_with, AlignCache, AlignOutcome, Detector};
use facebench_extract::{extract, store_meta, Job, Summary};
use facebench_image::{Decoder, FaceAnnotation};

use crate::cache::{flip_path, CacheLayout};
use crate::models::Model;
use crate::{create_parent, progress_bar, Result};

#[derive(Debug, Clone)]
pub struct Workspace {
    /// Holds lfw/, ytf/, megaface/.
    pub data_root: PathBuf,
    pub cache: CacheLayout,
    /// Weights filled by `make models`.
    pub models_dir: PathBuf,
    /// The model registry `--model` names are looked up in.
    pub registry: PathBuf,
    /// `cpu` or `cuda[:N]`.
    pub device: String,
    /// Images per forward pass.
    pub batch: usize,
    /// Worker threads of [`Workspace::install`]'s pool; 0 = all cores.
    pub threads: usize,
}

impl Workspace {
    /// Runs `f` with every parallel stage inside it (decoding, the CPU kernels, scoring) on
    /// a pool of `threads` workers, or on the global pool (all cores) when `threads` is 0.
    pub fn install<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        if self.threads == 0 {
            return f();
        }
        rayon::ThreadPoolBuilder::new().num_threads(self.threads).build()?.install(f)
    }

    /// Loads a recognition model onto the workspace's device: a registry name, or the path
    /// of a checkpoint written by `facebench train --images`.
    pub fn load_model(&self, name_or_path: &str) -> Result<Model> {
        Model::load(&self.registry, name_or_path, &self.models_dir, &self.device)
    }

    /// Loads the face detector (+ landmarks) onto the workspace's device.
    pub fn load_detector(&self) -> Result<Detector> {
        Ok(Detector::load(&self.models_dir, &facebench_model::device_from_name(&self.device)?)?)
    }

    /// Aligns every key not yet in the cache file `out`, appending one JSON line per image.
    pub fn align(&self, root: &Path, keys: &[String], out: &Path, decoder: Decoder) -> Result<AlignOutcome> {
        let mut cache = AlignCache::open(out)?;
        let todo = cache.missing(keys);
        let already = keys.len() - todo.len();
        if todo.is_empty() {
            return Ok(AlignOutcome { already, ..Default::default() });
        }
        let detector = self.load_detector()?;
        let pb = progress_bar(keys.len(), "align");
        pb.set_position(already as u64);
        let t0 = std::time::Instant::now();
        let mut write_err = None;
        let summary = align_images_with(
            root,
            &todo,
            &detector,
            decoder,
            |n| pb.inc(n as u64),
            |rec| {
                if let Err(e) = cache.append(&rec) {
                    write_err.get_or_insert(e);
                }
            },
        )?;
        if let Some(e) = write_err {
            return Err(e.into());
        }
        cache.sync()?;
        pb.finish_and_clear();
        Ok(AlignOutcome {
            aligned: summary.images,
            already,
            fallbacks: summary.fallbacks,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Embeds every key not yet in the store at `out` (and its mirror store with `job.flip`);
    /// images skipped under `job.skip_bad` are in the summary. A torn tail recovered on
    /// reopening is reported in one line on stderr; a store corrupted before its tail is an
    /// error and is left unchanged. A store this call created is removed again if the run
    /// fails before storing a row, so a failed first run leaves no header-only file.
    pub fn embed(
        &self,
        job: &Job,
        keys: &[String],
        faces: &HashMap<String, FaceAnnotation>,
        out: &Path,
    ) -> Result<Summary> {
        create_parent(out)?;
        let flip_out = flip_path(out);
        let created: Vec<&Path> =
            [out, flip_out.as_path()].into_iter().take(if job.flip { 2 } else { 1 }).filter(|p| !p.exists()).collect();
        let run = || -> Result<Summary> {
            let mut store = AppendStore::create_or_open(out, &store_meta(job, false))?;
            let mut flip_store =
                if job.flip { Some(AppendStore::create_or_open(&flip_out, &store_meta(job, true))?) } else { None };
            for s in std::iter::once(&store).chain(flip_store.as_ref()) {
                if let Some(t) = s.recovered_tail() {
                    eprintln!("{t}");
                }
            }
            let pb = progress_bar(keys.len(), &format!("embed {}", job.model.name()));
            let r = extract(job, keys, faces, &mut store, flip_store.as_mut(), &|done| pb.set_position(done as u64));
            pb.finish_and_clear();
            Ok(r?)
        };
        run().inspect_err(|_| {
            // Only stores this call created and that still hold no row: never user data.
            for p in &created {
                if AppendStore::read(p).is_ok_and(|(_, e)| e.is_empty()) {
                    let _ = std::fs::remove_file(p);
                }
            }
        })
    }

    /// A store written by [`Workspace::embed`] and its mirror store.
    pub fn read_with_flip(&self, store: &Path) -> Result<(Embeddings, Embeddings)> {
        let (_, orig) = AppendStore::read(store)?;
        let (_, flip) = AppendStore::read(&flip_path(store))?;
        Ok((orig, flip))
    }

    /// The LFW image root under the data root.
    pub fn lfw_images(&self) -> PathBuf {
        self.data_root.join("lfw/lfw-deepfunneled")
    }

    /// Landmark-aligned embeddings (+ mirrors) of LFW `keys` with `model`, from the LFW cache
    /// (whatever is missing is computed and added), and the cache's alignment fallbacks.
    pub fn lfw_landmark_embeddings(&self, model: &str, keys: &[String]) -> Result<LandmarkEmbeddings> {
        let root = self.lfw_images();
        let align_path = self.cache.align();
        let aligned = self.align(&root, keys, &align_path, Decoder::Image)?;
        let (faces, fallbacks) = facebench_detect::read_alignments(&align_path)?;
        let net = self.load_model(model)?;
        let r = net.recipe("landmarks")?;
        let job = Job { model: net.net(), recipe: &r, root: &root, batch: self.batch, flip: true, skip_bad: false };
        let path = self.cache.store(net.name(), "landmarks");
        let embedded = self.embed(&job, keys, &faces, &path)?;
        let (orig, flip) = self.read_with_flip(&path)?;
        Ok(LandmarkEmbeddings {
            orig,
            flip,
            fallbacks,
            aligned,
            embedded,
            weights_sha: net.net().weights_sha256().to_string(),
        })
    }
}

/// What [`Workspace::lfw_landmark_embeddings`] found and did.
pub struct LandmarkEmbeddings {
    pub orig: Embeddings,
    pub flip: Embeddings,
    /// Every fallback in the alignment cache (not only those of the keys asked for).
    pub fallbacks: Vec<String>,
    pub aligned: AlignOutcome,
    pub embedded: Summary,
    pub weights_sha: String,
}
