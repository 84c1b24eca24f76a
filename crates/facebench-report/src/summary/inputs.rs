//! Which results.json files `facebench report` reads: files, folders (searched), and quoted
//! glob patterns (`*` within a name, `**` any depth).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

fn not_found(path: &Path, msg: &str) -> Error {
    Error::Io { path: path.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::NotFound, msg.to_string()) }
}

/// Every results.json the arguments name, sorted and deduplicated, leaving out files under
/// `out` (the summary folder's own files are never inputs). Arguments that match nothing
/// are returned beside them.
pub fn find_results(args: &[String], out: &Path) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let mut files = Vec::new();
    let mut unmatched = Vec::new();
    for arg in args {
        let found = expand(arg)?;
        if found.is_empty() {
            unmatched.push(arg.clone());
        }
        files.extend(found);
    }
    let out_abs = absolute(out);
    files.retain(|f| !absolute(f).starts_with(&out_abs));
    files.sort();
    files.dedup();
    Ok((files, unmatched))
}

/// Every .png/.svg in `dir` (none if it does not exist), sorted.
pub fn find_figures(dir: &Path) -> Vec<PathBuf> {
    let mut figures: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "svg")))
            .collect(),
        Err(_) => Vec::new(),
    };
    figures.sort();
    figures
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| std::env::current_dir().unwrap_or_default().join(p))
}

/// A file as is; a folder: every results.json below it; a pattern: its matches (the shell
/// leaves `**` unexpanded without globstar, and a quoted pattern reaches us whole).
fn expand(arg: &str) -> Result<Vec<PathBuf>> {
    let p = Path::new(arg);
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    if p.is_dir() {
        let mut out = Vec::new();
        walk(p, &mut |f| {
            if f.file_name().is_some_and(|n| n == "results.json") {
                out.push(f.to_path_buf());
            }
        })?;
        return Ok(out);
    }
    if !arg.contains(['*', '?']) {
        return Err(not_found(p, "no such file or folder"));
    }
    // The folder before the first wildcard component is where the search starts.
    let parts: Vec<&str> = arg.split('/').collect();
    let fixed = parts.iter().take_while(|c| !c.contains(['*', '?'])).count();
    let base = if fixed == 0 { PathBuf::from(".") } else { PathBuf::from(parts[..fixed].join("/")) };
    let pattern = &parts[fixed..];
    let mut out = Vec::new();
    if base.is_dir() {
        walk(&base, &mut |f| {
            let rel: Vec<String> = f
                .strip_prefix(&base)
                .map(|r| r.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
            if path_matches(pattern, &rel) {
                out.push(f.to_path_buf());
            }
        })?;
    }
    Ok(out)
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, f)?;
        } else {
            f(&p);
        }
    }
    Ok(())
}

/// Path components against pattern components; `**` matches any number of components.
fn path_matches(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|i| path_matches(rest, &path[i..])),
        Some((p, rest)) => {
            !path.is_empty() && name_matches(p.as_bytes(), path[0].as_bytes()) && path_matches(rest, &path[1..])
        }
    }
}

/// `*` (any run) and `?` (one character) within one name.
fn name_matches(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| name_matches(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && name_matches(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && name_matches(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_globstar() {
        let m = |p: &str, s: &str| path_matches(&p.split('/').collect::<Vec<_>>(), &s.split('/').collect::<Vec<_>>());
        assert!(m("**/results.json", "lfw/faceapi-resnet/results.json"));
        assert!(m("**/results.json", "results.json"));
        assert!(m("*/m*/results.json", "lfw/mobileface/results.json"));
        assert!(!m("*/results.json", "lfw/mobileface/results.json"));
        assert!(!m("**/results.json", "lfw/mobileface/pairs_scores.csv"));
        assert!(m("lfw/*-res?et/*.json", "lfw/faceapi-resnet/results.json"));
    }

    #[test]
    fn expands_folders_and_patterns() {
        let d = std::env::temp_dir().join(format!("fb-report-glob-{}", std::process::id()));
        for sub in ["lfw/a", "megaface/b", "summary"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
            std::fs::write(d.join(sub).join("results.json"), "{}").unwrap();
        }
        std::fs::write(d.join("lfw/a/report.md"), "").unwrap();
        assert_eq!(expand(d.to_str().unwrap()).unwrap().len(), 3);
        let pat = format!("{}/**/results.json", d.display());
        assert_eq!(expand(&pat).unwrap().len(), 3);
        let pat = format!("{}/lfw/*/results.json", d.display());
        assert_eq!(expand(&pat).unwrap(), vec![d.join("lfw/a/results.json")]);
        assert!(expand(&format!("{}/nothing.json", d.display())).unwrap_err().to_string().contains("no such file"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
