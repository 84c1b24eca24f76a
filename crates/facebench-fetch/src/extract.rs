//! Safe `.tgz` extraction into a fresh staging folder: only plain files and folders under
//! the declared top folder, no absolute paths, no `..`, no links, no device files, and
//! caps on total bytes and member count; anything else refuses the whole archive.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use tar::EntryType;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("member `{member}`: {why}; refused")]
    Unsafe { member: String, why: &'static str },
    #[error("member `{member}` is not under the top folder `{root}/`")]
    OutsideRoot { member: String, root: String },
    #[error("its members hold more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("it has more than {limit} members")]
    TooMany { limit: usize },
    #[error("member `{member}` appears twice")]
    Duplicate { member: String },
    /// A truncated or corrupt gzip or tar stream.
    #[error("reading it")]
    Read(#[source] io::Error),
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub(crate) struct Limits {
    pub max_bytes: u64,
    pub max_members: usize,
}

/// Extracts the members under `root/` of `archive` into `staging` (created, must not exist),
/// stripping `root/`.
pub(crate) fn extract_tgz(archive: &Path, root: &str, staging: &Path, limits: &Limits) -> Result<(), ExtractError> {
    let write = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExtractError::Write { path, source }
    };
    std::fs::create_dir(staging).map_err(write(staging))?;
    let file = File::open(archive).map_err(ExtractError::Read)?;
    let mut tar = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
    let (mut bytes, mut members) = (0u64, 0usize);
    for entry in tar.entries().map_err(ExtractError::Read)? {
        let mut entry = entry.map_err(ExtractError::Read)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            continue; // pax metadata, not a member
        }
        let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        members += 1;
        if members > limits.max_members {
            return Err(ExtractError::TooMany { limit: limits.max_members });
        }
        let rel = relative_under(&member, root)?;
        let unsafe_kind = |why| ExtractError::Unsafe { member: member.clone(), why };
        match kind {
            EntryType::Regular | EntryType::Continuous => {}
            EntryType::Directory => {
                if let Some(rel) = rel {
                    let dir = staging.join(rel);
                    std::fs::create_dir_all(&dir).map_err(write(&dir))?;
                }
                continue;
            }
            EntryType::Symlink => return Err(unsafe_kind("a symbolic link")),
            EntryType::Link => return Err(unsafe_kind("a hard link")),
            EntryType::Char | EntryType::Block | EntryType::Fifo => return Err(unsafe_kind("a device file or FIFO")),
            _ => return Err(unsafe_kind("not a plain file or folder")),
        }
        let Some(rel) = rel else { return Err(unsafe_kind("a file in place of the top folder")) };
        let size = entry.header().size().map_err(ExtractError::Read)?;
        bytes = bytes.saturating_add(size);
        if bytes > limits.max_bytes {
            return Err(ExtractError::TooLarge { limit: limits.max_bytes });
        }
        let dest = staging.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(write(parent))?;
        }
        let mut out = match File::create_new(&dest) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(ExtractError::Duplicate { member }),
            Err(e) => return Err(write(&dest)(e)),
        };
        // The header's size bounds the copy: a lying header cannot write past the cap.
        let copied = io::copy(&mut (&mut entry).take(size), &mut out).map_err(ExtractError::Read)?;
        if copied < size {
            return Err(ExtractError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("`{member}` is cut short"),
            )));
        }
    }
    Ok(())
}

/// The member's path below `root/` (`None` for `root/` itself), or why it is refused.
fn relative_under(member: &str, root: &str) -> Result<Option<PathBuf>, ExtractError> {
    let unsafe_path = |why| ExtractError::Unsafe { member: member.to_string(), why };
    let mut parts = Vec::new();
    for c in Path::new(member).components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("a `..` path")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_path("an absolute path")),
        }
    }
    if parts.first().is_none_or(|p| *p != root) {
        return Err(ExtractError::OutsideRoot { member: member.to_string(), root: root.to_string() });
    }
    Ok((parts.len() > 1).then(|| parts[1..].iter().collect()))
}

/// `.jpg` files and identity folders (one level down) of an image tree.
pub(crate) fn count_images(dir: &Path) -> io::Result<(usize, usize)> {
    let (mut images, mut folders) = (0, 0);
    for person in std::fs::read_dir(dir)? {
        let person = person?;
        if !person.file_type()?.is_dir() {
            continue;
        }
        folders += 1;
        for f in std::fs::read_dir(person.path())? {
            let f = f?;
            if f.file_type()?.is_file() && f.path().extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")) {
                images += 1;
            }
        }
    }
    Ok((images, folders))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        let ok = |m| relative_under(m, "lfw").unwrap();
        assert_eq!(ok("lfw/"), None);
        assert_eq!(ok("./lfw/A/A_0001.jpg"), Some(PathBuf::from("A/A_0001.jpg")));
        for bad in ["/etc/passwd", "lfw/../x", "../lfw/x", "lfw/A/../../x"] {
            assert!(matches!(relative_under(bad, "lfw"), Err(ExtractError::Unsafe { .. })), "{bad}");
        }
        assert!(matches!(relative_under("other/x.jpg", "lfw"), Err(ExtractError::OutsideRoot { .. })));
    }
}
