//! `include = ["common/x.toml", ...]` in protocol files: shared blocks written once.
//!
//! Included files are read first, in the order listed (each with its own includes, paths
//! relative to the file that names them), then the including file is merged over them:
//! tables merge key by key, arrays of tables are concatenated (the includes' entries first),
//! and any other value of the including file replaces the included one. A cycle or a missing
//! include is an error naming the file that includes it.

use std::path::{Path, PathBuf};

use facebench_core::{Error, Result};
use sha2::{Digest, Sha256};
use toml::{Table, Value};

/// A protocol file with its includes merged.
#[derive(Debug)]
pub struct Merged {
    pub table: Table,
    /// sha256 over the bytes of every file read (the file itself, then its includes in
    /// reading order): a change in a shared fragment changes the protocol's provenance.
    pub sha256: String,
}

pub fn read_merged(path: &Path) -> Result<Merged> {
    let mut stack = Vec::new();
    let mut hash = Sha256::new();
    let table = load(path, &mut stack, &mut hash)?;
    Ok(Merged { table, sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect() })
}

fn load(path: &Path, stack: &mut Vec<PathBuf>, hash: &mut Sha256) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    hash.update(&bytes);
    let text = String::from_utf8(bytes).map_err(|e| Error::format(path, e.to_string()))?;
    let mut own: Table = toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?;
    let includes = match own.remove("include") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(Error::format(path, format!("include entries are file names, got {other}"))),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => return Err(Error::format(path, format!("include must be an array of file names, got {other}"))),
    };
    stack.push(path.canonicalize().map_err(|e| Error::io(path, e))?);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut base = Table::new();
    for inc in includes {
        let inc_path = dir.join(&inc);
        let canon = inc_path
            .canonicalize()
            .map_err(|e| Error::format(path, format!("include {inc:?} ({}): {e}", inc_path.display())))?;
        if let Some(start) = stack.iter().position(|p| *p == canon) {
            let chain: Vec<String> = stack[start..].iter().chain([&canon]).map(|p| p.display().to_string()).collect();
            return Err(Error::format(path, format!("include {inc:?} makes a cycle: {}", chain.join(" -> "))));
        }
        let t = load(&inc_path, stack, hash)?;
        merge(&mut base, t);
    }
    stack.pop();
    merge(&mut base, own);
    Ok(base)
}

fn is_array_of_tables(v: &[Value]) -> bool {
    !v.is_empty() && v.iter().all(Value::is_table)
}

/// Merges `over` into `base`; `over` wins except where tables merge and arrays of tables append.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (Some(Value::Array(b)), Value::Array(o)) if is_array_of_tables(b) && is_array_of_tables(&o) => b.extend(o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fb-include-{name}-{}", std::process::id()));
        std::fs::create_dir_all(d.join("common")).unwrap();
        d
    }

    #[test]
    fn includes_merge_and_the_including_file_wins() {
        let d = dir("merge");
        std::fs::write(
            d.join("common/a.toml"),
            "x = 1\nkeep = \"a\"\nlist = [1, 2]\n[t]\nu = 1\nv = 1\n[[rows]]\nn = \"a\"\n",
        )
        .unwrap();
        std::fs::write(d.join("common/b.toml"), "include = [\"a.toml\"]\nx = 2\n[[rows]]\nn = \"b\"\n").unwrap();
        std::fs::write(
            d.join("p.toml"),
            "include = [\"common/b.toml\"]\nx = 3\nlist = [9]\n[t]\nv = 2\n[[rows]]\nn = \"p\"\n",
        )
        .unwrap();
        let m = read_merged(&d.join("p.toml")).unwrap();
        let t = &m.table;
        assert_eq!(t["x"].as_integer(), Some(3));
        assert_eq!(t["keep"].as_str(), Some("a"));
        assert_eq!(t["list"].as_array().unwrap().len(), 1, "plain arrays are replaced");
        assert_eq!((t["t"]["u"].as_integer(), t["t"]["v"].as_integer()), (Some(1), Some(2)));
        let rows: Vec<&str> = t["rows"].as_array().unwrap().iter().map(|r| r["n"].as_str().unwrap()).collect();
        assert_eq!(rows, ["a", "b", "p"], "arrays of tables: includes first");
        assert!(!t.contains_key("include"));
        assert_eq!(m.sha256.len(), 64);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn cycles_and_missing_includes_name_the_file() {
        let d = dir("errors");
        std::fs::write(d.join("common/a.toml"), "include = [\"b.toml\"]\n").unwrap();
        std::fs::write(d.join("common/b.toml"), "include = [\"a.toml\"]\n").unwrap();
        std::fs::write(d.join("p.toml"), "include = [\"common/a.toml\"]\n").unwrap();
        let e = read_merged(&d.join("p.toml")).unwrap_err().to_string();
        assert!(e.contains("b.toml: include \"a.toml\" makes a cycle"), "{e}");
        std::fs::write(d.join("p.toml"), "include = [\"p.toml\"]\n").unwrap();
        let e = read_merged(&d.join("p.toml")).unwrap_err().to_string();
        assert!(e.contains("p.toml: include \"p.toml\" makes a cycle"), "{e}");
        std::fs::write(d.join("p.toml"), "include = [\"common/nope.toml\"]\n").unwrap();
        let e = read_merged(&d.join("p.toml")).unwrap_err().to_string();
        assert!(e.contains("p.toml: include \"common/nope.toml\""), "{e}");
        std::fs::write(d.join("p.toml"), "include = \"common/a.toml\"\n").unwrap();
        let e = read_merged(&d.join("p.toml")).unwrap_err().to_string();
        assert!(e.contains("p.toml: include must be an array"), "{e}");
        std::fs::remove_dir_all(&d).ok();
    }
}
