//! Where a number came from: recorded in every results.json and report appendix.

/// facebench version, git commit, thread count, date (UTC) and the caller's items (model,
/// weight checksum, preprocessing, protocol file checksum, data root, device, ...).
pub fn collect(extra: &[(&str, String)]) -> Vec<(String, String)> {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown (not run from a git checkout)".into());
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    let mut v = vec![
        ("facebench".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("git commit".to_string(), if dirty { format!("{commit} (with uncommitted changes)") } else { commit }),
        ("threads".to_string(), rayon::current_num_threads().to_string()),
        ("date (UTC)".to_string(), utc_now()),
    ];
    v.extend(extra.iter().map(|(k, val)| (k.to_string(), val.clone())));
    v
}

/// sha256 of a file, hex; the error names the file.
pub fn file_sha256(path: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(facebench_lfw::sha256_hex(&bytes))
}

/// Stage timings as results.json records them: `[{"stage", "seconds", "note"}]`.
pub fn timings_json(timings: &[(String, f64, String)]) -> serde_json::Value {
    timings.iter().map(|(s, t, n)| serde_json::json!({"stage": s, "seconds": t, "note": n})).collect()
}

/// Adds `model`, `provenance` and `timings` to a results.json written by a library that
/// does not know them (MegaFace's writer), keeping everything already there.
pub fn annotate_results_json(
    path: &std::path::Path,
    model: &str,
    provenance: &[(String, String)],
    timings: &[(String, f64, String)],
) -> super::CmdResult {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let obj = doc.as_object_mut().ok_or_else(|| format!("{}: not a JSON object", path.display()))?;
    obj.insert("model".into(), model.into());
    let map: std::collections::BTreeMap<String, String> = provenance.iter().cloned().collect();
    obj.insert("provenance".into(), serde_json::to_value(map)?);
    obj.insert("timings".into(), timings_json(timings));
    super::write_json(path, &doc)
}

/// `YYYY-MM-DD hh:mm:ss` from the system clock (civil-from-days, proleptic Gregorian).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotate_keeps_results_and_adds_provenance() {
        let dir = std::env::temp_dir().join(format!("fb-prov-{}", std::process::id()));
        let path = dir.join("results.json");
        super::super::write_json(&path, &serde_json::json!({"dataset": "LFW-as-MegaFace", "sizes": [1, 2]})).unwrap();
        let prov = collect(&[("model", "m".into()), ("weights sha256", file_sha256(&path).unwrap())]);
        annotate_results_json(&path, "m", &prov, &[("score".into(), 1.5, "note".into())]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["sizes"], serde_json::json!([1, 2]));
        assert_eq!(v["model"], "m");
        assert_eq!(v["timings"][0]["seconds"], 1.5);
        for k in ["facebench", "git commit", "threads", "date (UTC)", "model", "weights sha256"] {
            assert!(v["provenance"][k].is_string(), "{k} missing");
        }
        assert_eq!(v["provenance"]["weights sha256"].as_str().unwrap().len(), 64);
        assert!(file_sha256(&dir.join("absent")).unwrap_err().contains("absent"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
