//! The shape every `results.json` shares: which protocol and model, what each stage cost,
//! where the numbers came from, and the protocol's own fields beside them. The writers
//! (facebench-pipeline) and the summary's loader use the same types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the envelope written by this build (absent in files written before it).
pub const SCHEMA: u32 = 1;

/// One row of a run's Time table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub stage: String,
    pub seconds: f64,
    /// Rates, counts, what was cached.
    #[serde(default)]
    pub note: String,
}

impl Stage {
    pub fn new(stage: impl Into<String>, seconds: f64, note: impl Into<String>) -> Self {
        Stage { stage: stage.into(), seconds, note: note.into() }
    }
}

/// A results.json: `protocol`, `model`, the protocol's fields (`B`, flattened in beside
/// them, usually including `results`), `timings` and `provenance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsEnvelope<B> {
    #[serde(default)]
    pub schema: u32,
    /// `lfw`, `ytf`, `bin:<name>`, `megaface`; older MegaFace files have none.
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(flatten)]
    pub body: B,
    #[serde(default)]
    pub timings: Vec<Stage>,
    #[serde(default)]
    pub provenance: BTreeMap<String, String>,
}

impl<B> ResultsEnvelope<B> {
    /// An envelope of this build's schema.
    pub fn new(
        protocol: impl Into<String>,
        model: impl Into<String>,
        body: B,
        timings: Vec<Stage>,
        provenance: &[(String, String)],
    ) -> Self {
        ResultsEnvelope {
            schema: SCHEMA,
            protocol: Some(protocol.into()),
            model: Some(model.into()),
            body,
            timings,
            provenance: provenance.iter().cloned().collect(),
        }
    }
}
