//! The stage log: the Time table of a run, and `<cache>/stages.json`, which remembers what
//! computing each cached stage cost so that a later run that finds everything cached still
//! reports it (and its rate).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{write_json, Result, Stage};

/// What a stage cost when it did work: `stages.json` maps stage names to this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Computed {
    pub seconds: f64,
    pub note: String,
    /// Items (images, frames) computed in that time.
    pub items: usize,
}

/// The stages of one run, in order, with the cache's memory of earlier work.
#[derive(Debug, Default)]
pub struct StageLog {
    /// `None`: nothing is remembered (runs without a cache).
    path: Option<PathBuf>,
    known: BTreeMap<String, Computed>,
    stages: Vec<Stage>,
}

impl StageLog {
    /// A log remembering work in `path` (`<cache>/stages.json`); an unreadable file or one of
    /// an older schema is treated as empty and rewritten at the next stage that does work.
    pub fn open(path: PathBuf) -> Self {
        let known = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        StageLog { path: Some(path), known, stages: Vec::new() }
    }

    /// A log with no memory.
    pub fn new() -> Self {
        StageLog::default()
    }

    /// A stage that did no cached work (reading, scoring, a total).
    pub fn push(&mut self, name: impl Into<String>, seconds: f64, note: impl Into<String>) {
        self.stages.push(Stage::new(name, seconds, note));
    }

    /// A cached stage that computed `items` now (0: everything came from the cache). Returns
    /// the stage's rate in items/s, now or when the cache was filled (`None` if not known).
    pub fn cached(&mut self, name: &str, seconds: f64, note: String, items: usize) -> Result<Option<f64>> {
        if items > 0 {
            self.known.insert(name.to_string(), Computed { seconds, note: note.clone(), items });
            if let Some(p) = &self.path {
                write_json(p, &self.known)?;
            }
            self.push(name, seconds, note);
            return Ok(Some(items as f64 / seconds.max(1e-9)));
        }
        Ok(match self.known.get(name).cloned() {
            Some(c) => {
                self.push(name, seconds, format!("{note}; when computed: {:.1} s, {}", c.seconds, c.note));
                Some(c.items as f64 / c.seconds.max(1e-9))
            }
            None => {
                self.push(name, seconds, note);
                None
            }
        })
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    pub fn into_stages(self) -> Vec<Stage> {
        self.stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_run_reports_what_computing_cost() {
        let dir = std::env::temp_dir().join(format!("fb-stages-{}", std::process::id()));
        let path = dir.join("stages.json");
        let mut log = StageLog::open(path.clone());
        assert_eq!(log.cached("embed", 2.0, "10 images".into(), 10).unwrap(), Some(5.0));
        let mut again = StageLog::open(path);
        assert_eq!(again.cached("embed", 0.1, "all 10 images cached".into(), 0).unwrap(), Some(5.0));
        assert_eq!(again.stages()[0].note, "all 10 images cached; when computed: 2.0 s, 10 images");
        assert_eq!(again.cached("align", 0.1, "n".into(), 0).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
