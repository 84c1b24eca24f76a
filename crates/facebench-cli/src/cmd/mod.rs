pub mod align;
pub mod bench;
pub mod bin;
pub mod embed;
pub mod eval;
pub mod keys;
pub mod lfw_pipeline;
pub mod lmcl;
pub mod megaface;
pub mod provenance;
pub mod report;
pub mod run_args;
pub mod train;
pub mod ytf;

/// Errors reach the user as one readable line.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// Creates `dir` (and its parents); the error names it.
pub fn create_dir(dir: &std::path::Path) -> CmdResult {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(())
}

/// Creates the folder that will hold `file`, if it names one.
pub fn create_parent(file: &std::path::Path) -> CmdResult {
    match file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => create_dir(dir),
        None => Ok(()),
    }
}

/// Writes `v` as pretty JSON to `path`, creating its folder; the error names the file.
pub fn write_json<T: serde::Serialize>(path: &std::path::Path, v: &T) -> CmdResult {
    create_parent(path)?;
    std::fs::write(path, serde_json::to_string_pretty(v)?).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}
