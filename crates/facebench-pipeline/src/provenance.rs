//! Where a number came from: recorded in every results.json and report appendix.

use std::path::Path;

use crate::{io, Result};

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
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    Ok(facebench_pairs::sha256_hex(&bytes))
}

/// `<path> (sha256 <hex>)`, or the reason it could not be read.
pub fn described(path: &Path) -> String {
    file_sha256(path).map_or_else(|e| e.to_string(), |h| format!("{} (sha256 {h})", path.display()))
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
    fn provenance_has_the_standard_items_and_checksums_name_the_file() {
        let dir = std::env::temp_dir().join(format!("fb-prov-{}", std::process::id()));
        let path = dir.join("results.json");
        crate::write_json(&path, &serde_json::json!({"sizes": [1, 2]})).unwrap();
        let prov = collect(&[("model", "m".into()), ("weights sha256", file_sha256(&path).unwrap())]);
        for k in ["facebench", "git commit", "threads", "date (UTC)", "model", "weights sha256"] {
            assert!(prov.iter().any(|(key, _)| key == k), "{k} missing");
        }
        assert_eq!(prov.iter().find(|(k, _)| k == "weights sha256").unwrap().1.len(), 64);
        assert!(file_sha256(&dir.join("absent")).unwrap_err().to_string().contains("absent"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
