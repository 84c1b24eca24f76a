//! What a pair-verification protocol reports besides the ten-fold accuracies: one settings type
//! for every protocol file's `[metrics]` block and every evaluator's options.

use serde::{Deserialize, Serialize};

use crate::{MetricsError, Rule};

/// Accuracy rules and TAR@FAR targets of one evaluation, as a protocol file's `[metrics]`
/// block writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSettings {
    /// Ten-fold accuracy rules, reported in this order.
    pub rules: Vec<Rule>,
    /// FARs read off exactly from the sorted scores ([`crate::tar_at_far_exact`]).
    pub exact_fars: Vec<f64>,
    /// FARs read off with InsightFace's `calculate_val` rule ([`crate::tar_at_far_insightface`]).
    pub insightface_fars: Vec<f64>,
}

impl Default for MetricSettings {
    /// The InsightFace rule, TAR at FAR 1e-1..1e-3 exact and 1e-3 InsightFace-style.
    fn default() -> Self {
        MetricSettings {
            rules: vec![Rule::InsightFace],
            exact_fars: vec![1e-1, 1e-2, 1e-3],
            insightface_fars: vec![1e-3],
        }
    }
}

impl MetricSettings {
    /// At least one rule, no rule twice, every FAR in (0, 1].
    pub fn validate(&self) -> Result<(), MetricsError> {
        if self.rules.is_empty() {
            return Err(MetricsError::Invalid("metrics.rules is empty".into()));
        }
        if let Some((i, r)) = self.rules.iter().enumerate().find(|(i, r)| self.rules[..*i].contains(r)) {
            return Err(MetricsError::Invalid(format!("metrics.rules lists {r} twice (entry {})", i + 1)));
        }
        match self.exact_fars.iter().chain(&self.insightface_fars).find(|f| !(**f > 0.0 && **f <= 1.0)) {
            Some(&f) => Err(MetricsError::BadFarTarget(f)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[metrics]` block of a protocol file (or shared fragment) in the repository.
    fn block(file: &str) -> Result<MetricSettings, toml::de::Error> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols").join(file);
        let table: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        table["metrics"].clone().try_into()
    }

    #[test]
    fn every_protocol_files_metrics_block_reads() {
        let lfw = block("common/lfw_metrics.toml").unwrap();
        assert_eq!(lfw.rules, Rule::ALL);
        assert_eq!(lfw.exact_fars.len(), 3);
        lfw.validate().unwrap();
        let cfp = block("common/verification_metrics.toml").unwrap();
        assert_eq!(&cfp.rules[..], &[Rule::InsightFace, Rule::Exact][..]);
        cfp.validate().unwrap();
        MetricSettings::default().validate().unwrap();
    }

    #[test]
    fn bad_settings_are_named() {
        let e: toml::de::Error = toml::from_str::<MetricSettings>(
            "rules = [\"insightface\"]\nexact_fars = []\ninsightface_fars = []\nfars = [0.1]",
        )
        .unwrap_err();
        assert!(e.to_string().contains("fars"), "{e}");
        let s = MetricSettings { rules: vec![], ..Default::default() };
        assert!(s.validate().unwrap_err().to_string().contains("rules is empty"));
        let s = MetricSettings { rules: vec![Rule::Exact, Rule::Exact], ..Default::default() };
        assert!(s.validate().unwrap_err().to_string().contains("exact twice"));
        let s = MetricSettings { exact_fars: vec![0.1, 0.0], ..Default::default() };
        assert_eq!(s.validate().unwrap_err(), MetricsError::BadFarTarget(0.0));
    }
}
