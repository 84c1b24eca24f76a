//! Downloads one declared file: the `--mirror` base first, then each declared URL; an
//! interrupted transfer resumes from its `.part` file with an HTTP Range request, and a file
//! is handed on only once its size and checksums match.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::extract::ExtractError;
use crate::{Attempt, Error};

/// Tries of one URL in a row while each try gets further (a dropped connection resumes).
const TRIES_PER_URL: usize = 3;

/// A declared download: its official name, sources and checksums.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub name: &'a str,
    pub urls: &'a [String],
    pub bytes: Option<u64>,
    pub sha256: Option<&'a str>,
    pub md5: Option<&'a str>,
}

/// Why one URL did not give a verified file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("HTTP {code} {text}")]
    Status { code: u16, text: String },
    #[error("{0}")]
    Transport(#[source] Box<ureq::Transport>),
    #[error("connection dropped after {got} bytes")]
    Dropped {
        got: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("truncated: {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("answered a Range request with `Content-Range: {0}`")]
    BadRange(String),
    #[error("{got} bytes, expected {expected}")]
    Size { got: u64, expected: u64 },
    #[error("{algo} mismatch: expected {expected}, got {got}")]
    Checksum { algo: &'static str, expected: String, got: String },
    #[error("archive")]
    Archive(#[from] ExtractError),
    /// The extracted content is not what the protocol file declares (counts, pairs images).
    #[error("{0}")]
    Content(String),
    #[error("the pairs file the content check reads")]
    Pairs(#[source] facebench_core::Error),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
        move |source| SourceError::Io { path: path.to_path_buf(), source }
    }
}

/// sha256 and md5 of a file, lowercase hex.
pub(crate) fn file_sums(path: &Path) -> std::io::Result<(String, String)> {
    let mut f = File::open(path)?;
    let (mut sha, mut md5) = (Sha256::new(), Md5::new());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Ok((hex(&sha.finalize()), hex(&md5.finalize())))
}

/// Whether `path` has the declared checksums (the first that differs is the error).
pub(crate) fn verify(src: &Source, path: &Path) -> Result<(), SourceError> {
    let len = path.metadata().map_err(SourceError::io(path))?.len();
    if let Some(expected) = src.bytes.filter(|&b| b != len) {
        return Err(SourceError::Size { got: len, expected });
    }
    let (sha, md5) = file_sums(path).map_err(SourceError::io(path))?;
    for (algo, want, got) in [("sha256", src.sha256, sha), ("md5", src.md5, md5)] {
        if let Some(want) = want.filter(|w| *w != got) {
            return Err(SourceError::Checksum { algo, expected: want.to_string(), got });
        }
    }
    Ok(())
}

pub(crate) struct Fetcher {
    agent: ureq::Agent,
    mirror: Option<String>,
    /// `<data-root>/.facebench-fetch`: the `.part` files, inside the data root so the final
    /// rename stays on one file system.
    part_dir: PathBuf,
}

impl Fetcher {
    pub(crate) fn new(data_root: &Path, mirror: Option<&str>) -> Fetcher {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(60))
            .user_agent(concat!("facebench-fetch/", env!("CARGO_PKG_VERSION")))
            .build();
        let mirror = mirror.map(|m| m.trim_end_matches('/').to_string());
        Fetcher { agent, mirror, part_dir: data_root.join(".facebench-fetch") }
    }

    /// Downloads `src` and hands the verified file to `accept` (which moves or extracts it);
    /// a source whose file fails the checks or `accept` is reported and the next one tried.
    pub(crate) fn fetch<T>(
        &self,
        src: &Source,
        mut accept: impl FnMut(&Path) -> Result<T, SourceError>,
    ) -> Result<T, Error> {
        std::fs::create_dir_all(&self.part_dir).map_err(|source| Error::Io { path: self.part_dir.clone(), source })?;
        let part = self.part_dir.join(format!("{}.part", src.name));
        let mirrored = self.mirror.iter().map(|m| format!("{m}/{}", src.name));
        let mut attempts = Vec::new();
        for url in mirrored.chain(src.urls.iter().cloned()) {
            let outcome = self.download(src, &url, &part).and_then(|()| {
                verify(src, &part).inspect_err(|_| {
                    let _ = std::fs::remove_file(&part);
                })
            });
            let outcome = outcome.and_then(|()| accept(&part));
            match outcome {
                Ok(t) => {
                    let _ = std::fs::remove_file(&part);
                    self.tidy();
                    return Ok(t);
                }
                Err(error) => {
                    eprintln!("{}: {url}: {}; trying the next source", src.name, facebench_core::cause_chain(&error));
                    if matches!(error, SourceError::Archive(_) | SourceError::Content(_)) {
                        let _ = std::fs::remove_file(&part);
                    }
                    attempts.push(Attempt { url, error });
                }
            }
        }
        self.tidy();
        Err(Error::AllSourcesFailed { file: src.name.to_string(), attempts })
    }

    /// Removes the part folder when nothing is left in it (a dropped download stays to resume).
    fn tidy(&self) {
        let _ = std::fs::remove_dir(&self.part_dir);
    }

    /// Brings `part` to the whole file from `url`, resuming while each try gets further.
    fn download(&self, src: &Source, url: &str, part: &Path) -> Result<(), SourceError> {
        let mut tries = 0;
        loop {
            let before = part.metadata().map(|m| m.len()).unwrap_or(0);
            if src.bytes.is_some_and(|b| b == before) {
                return Ok(()); // complete from an earlier run: verify decides
            }
            tries += 1;
            match self.get_into(src.name, url, part, before) {
                Err(e @ (SourceError::Dropped { .. } | SourceError::Truncated { .. })) => {
                    let after = part.metadata().map(|m| m.len()).unwrap_or(0);
                    if after <= before || tries >= TRIES_PER_URL {
                        return Err(e);
                    }
                    eprintln!("{}: {url}: {}; resuming at byte {after}", src.name, facebench_core::cause_chain(&e));
                }
                other => return other,
            }
        }
    }

    /// One GET of `url` into `part`, asking for the bytes after the `have` already there.
    fn get_into(&self, name: &str, url: &str, part: &Path, have: u64) -> Result<(), SourceError> {
        let mut request = self.agent.get(url);
        if have > 0 {
            request = request.set("Range", &format!("bytes={have}-"));
        }
        let response = match request.call() {
            Ok(r) => r,
            // Nothing after `have`: the part is whole (or wrong, which verify says).
            Err(ureq::Error::Status(416, _)) if have > 0 => return Ok(()),
            Err(ureq::Error::Status(code, r)) => {
                return Err(SourceError::Status { code, text: r.status_text().to_string() })
            }
            Err(ureq::Error::Transport(t)) => return Err(SourceError::Transport(Box::new(t))),
        };
        let resumed = match response.status() {
            200 => false,
            206 => {
                let range = response.header("Content-Range").unwrap_or("").to_string();
                if !range.starts_with(&format!("bytes {have}-")) {
                    return Err(SourceError::BadRange(range));
                }
                true
            }
            code => return Err(SourceError::Status { code, text: response.status_text().to_string() }),
        };
        let start = if resumed { have } else { 0 };
        let total = response.header("Content-Length").and_then(|v| v.parse::<u64>().ok()).map(|n| n + start);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(part)
            .map_err(SourceError::io(part))?;
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("a fixed template")
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(name.to_string());
        bar.set_position(start);
        let mut reader = response.into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = start;
        let result = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    file.write_all(&buf[..n]).map_err(SourceError::io(part))?;
                    got += n as u64;
                    bar.set_position(got);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => break Err(SourceError::Dropped { got, source }),
            }
        };
        bar.finish_and_clear();
        file.flush().map_err(SourceError::io(part))?;
        result?;
        match total {
            Some(expected) if got < expected => Err(SourceError::Truncated { got, expected }),
            _ => Ok(()),
        }
    }
}
