//! `facebench fetch` against a real HTTP server on 127.0.0.1 started here (nothing else is
//! reached): a small deep-funneled archive built from real LFW images of the data root and
//! the real pairs.txt, served by a good source, one that corrupts, one that drops the
//! connection mid-transfer (and then honours Range) and one that 404s.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use facebench_fetch::{run, Error, Request};
use sha2::{Digest, Sha256};

fn data_root() -> PathBuf {
    std::env::var_os("FACEBENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// One request the server saw: path and Range header.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
}

/// Serves `/<mode>/<name>` for modes good, corrupt, drop (the first unranged request is cut
/// after half the body), and 404.
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (files, log) = (Arc::new(files), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (files, log) = (files.clone(), log.clone());
                std::thread::spawn(move || serve(stream.unwrap(), &files, &log));
            }
        });
        Server { base, seen }
    }

    fn url(&self, mode: &str, name: &str) -> String {
        format!("{}/{mode}/{name}", self.base)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, files: &HashMap<String, Vec<u8>>, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    log.lock().unwrap().push(Seen { path: path.clone(), range: range.clone() });
    let mut out = stream;
    let (mode, name) = path.trim_start_matches('/').split_once('/').unwrap_or(("", ""));
    let Some(body) = files.get(name).filter(|_| mode != "404") else {
        let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let mut body = body.clone();
    if mode == "corrupt" {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    let from = range.as_deref().and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok());
    let head = match from {
        Some(n) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {n}-{}/{}\r\nConnection: close\r\n\r\n",
            body.len() - n,
            body.len() - 1,
            body.len()
        ),
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()),
    };
    let _ = out.write_all(head.as_bytes());
    let part = match (mode, from) {
        ("drop", None) => &body[..body.len() / 2],
        (_, Some(n)) => &body[n..],
        _ => &body[..],
    };
    let _ = out.write_all(part);
    let _ = out.flush();
    // Dropping the stream closes it: for `drop`, before Content-Length bytes were sent.
}

/// The test archive: every image of the first few identities of the real deep-funneled set.
struct Fixture {
    pairs: Vec<u8>,
    archive: Vec<u8>,
    images: usize,
    folders: usize,
}

fn fixture() -> Fixture {
    let lfw = data_root().join("lfw");
    let mut people: Vec<PathBuf> =
        std::fs::read_dir(lfw.join("lfw-deepfunneled")).unwrap().map(|e| e.unwrap().path()).collect();
    people.sort();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut images = 0;
    for person in &people[..4] {
        let name = person.file_name().unwrap().to_str().unwrap();
        tar.append_dir_all(format!("lfw-deepfunneled/{name}"), person).unwrap();
        images += std::fs::read_dir(person).unwrap().count();
    }
    let archive = tar.into_inner().unwrap().finish().unwrap();
    Fixture { pairs: std::fs::read(lfw.join("pairs.txt")).unwrap(), archive, images, folders: 4 }
}

/// A gzipped tar whose one member has a raw name (and link target) the builder would refuse.
fn hostile_archive(member: &str, kind: tar::EntryType, link: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut h = tar::Header::new_old();
    let data = b"not a face";
    h.as_old_mut().name[..member.len()].copy_from_slice(member.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(if kind == tar::EntryType::Regular { data.len() as u64 } else { 0 });
    h.set_cksum();
    tar.append(&h, if kind == tar::EntryType::Regular { &data[..] } else { &[][..] }).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn urls(list: &[String]) -> String {
    list.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ")
}

/// A protocols folder holding one test protocol file whose `[data]` declares the fixture.
fn protocols(dir: &Path, f: &Fixture, archive: &[u8], pairs_urls: &[String], archive_urls: &[String]) -> PathBuf {
    let p = dir.join("protocols");
    std::fs::create_dir_all(&p).unwrap();
    let text = format!(
        "name = \"tiny\"\n[data]\n\n[[data.files]]\nname = \"pairs.txt\"\ndest = \"lfw/pairs.txt\"\nurls = [{}]\n\
         bytes = {}\nsha256 = \"{}\"\n\n[[data.archives]]\nname = \"lfw-deepfunneled.tgz\"\nvariant = \"deepfunneled\"\n\
         urls = [{}]\nsha256 = \"{}\"\nmember_root = \"lfw-deepfunneled\"\ndest = \"lfw/lfw-deepfunneled\"\n\
         images = {}\nfolders = {}\nmax_bytes = 50000000\nmax_members = 1000\n",
        urls(pairs_urls),
        f.pairs.len(),
        sha256(&f.pairs),
        urls(archive_urls),
        sha256(archive),
        f.images,
        f.folders
    );
    std::fs::write(p.join("tiny.toml"), text).unwrap();
    p
}

fn request(protocols: PathBuf, data_root: &Path, mirror: Option<String>) -> Request {
    Request { protocols, data_root: data_root.to_path_buf(), dataset: Some("tiny".into()), variant: None, mirror }
}

fn serve_fixture(f: &Fixture, archive: &[u8]) -> Server {
    Server::start(HashMap::from([
        ("pairs.txt".to_string(), f.pairs.clone()),
        ("lfw-deepfunneled.tgz".to_string(), archive.to_vec()),
    ]))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

#[test]
fn fetch_into_an_empty_root_falls_back_past_failing_sources() {
    let f = fixture();
    let s = serve_fixture(&f, &f.archive);
    let tmp = tempfile::tempdir().unwrap();
    // Port 1 on 127.0.0.1: connection refused, the unreachable host.
    let sources = |name: &str| {
        vec![format!("http://127.0.0.1:1/{name}"), s.url("404", name), s.url("corrupt", name), s.url("good", name)]
    };
    let p = protocols(tmp.path(), &f, &f.archive, &sources("pairs.txt"), &sources("lfw-deepfunneled.tgz"));
    let root = tmp.path().join("data");
    let out = run(&request(p.clone(), &root, None)).unwrap();
    assert!(out.contains("fetched") && out.contains("verified"), "{out}");
    assert_eq!(std::fs::read(root.join("lfw/pairs.txt")).unwrap(), f.pairs);
    let tree = root.join("lfw/lfw-deepfunneled");
    let images: usize = entries(&tree).iter().map(|p| entries(&tree.join(p)).len()).sum();
    assert_eq!((entries(&tree).len(), images), (f.folders, f.images));
    assert_eq!(entries(&root), ["lfw"], "no .facebench-fetch left behind");
    assert_eq!(entries(&root.join("lfw")), ["lfw-deepfunneled", "pairs.txt"], "no staging folder left behind");
    let paths: Vec<String> = s.seen().into_iter().map(|r| r.path).collect();
    for mode in ["404", "corrupt", "good"] {
        assert!(paths.contains(&format!("/{mode}/lfw-deepfunneled.tgz")), "{paths:?}");
    }
    // A second run finds everything in place and downloads nothing.
    let before = s.seen().len();
    let again = run(&request(p, &root, None)).unwrap();
    assert_eq!(again.matches("present").count(), 2, "{again}");
    assert_eq!(s.seen().len(), before);
}

#[test]
fn the_mirror_is_tried_first() {
    let f = fixture();
    let s = serve_fixture(&f, &f.archive);
    let tmp = tempfile::tempdir().unwrap();
    let p = protocols(tmp.path(), &f, &f.archive, &[s.url("404", "pairs.txt")], &[s.url("404", "x.tgz")]);
    let root = tmp.path().join("data");
    run(&request(p, &root, Some(format!("{}/good/", s.base)))).unwrap();
    let paths: Vec<String> = s.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/good/pairs.txt", "/good/lfw-deepfunneled.tgz"]);
}

#[test]
fn a_dropped_connection_resumes_with_a_range_request() {
    let f = fixture();
    let s = serve_fixture(&f, &f.archive);
    let tmp = tempfile::tempdir().unwrap();
    let p =
        protocols(tmp.path(), &f, &f.archive, &[s.url("drop", "pairs.txt")], &[s.url("drop", "lfw-deepfunneled.tgz")]);
    let root = tmp.path().join("data");
    run(&request(p, &root, None)).unwrap();
    let seen = s.seen();
    let archive: Vec<&Seen> = seen.iter().filter(|r| r.path == "/drop/lfw-deepfunneled.tgz").collect();
    assert_eq!(archive.len(), 2, "{seen:?}");
    assert_eq!(archive[0].range, None);
    assert_eq!(archive[1].range.as_deref(), Some(format!("bytes={}-", f.archive.len() / 2).as_str()));
    assert_eq!(entries(&root.join("lfw/lfw-deepfunneled")).len(), f.folders);
    assert_eq!(std::fs::read(root.join("lfw/pairs.txt")).unwrap(), f.pairs);
}

#[test]
fn a_checksum_mismatch_is_refused_and_nothing_is_written() {
    let f = fixture();
    let s = serve_fixture(&f, &f.archive);
    let tmp = tempfile::tempdir().unwrap();
    let bad = s.url("corrupt", "pairs.txt");
    let p = protocols(tmp.path(), &f, &f.archive, std::slice::from_ref(&bad), &[s.url("good", "lfw-deepfunneled.tgz")]);
    let root = tmp.path().join("data");
    let e = run(&request(p, &root, None)).unwrap_err();
    assert!(matches!(e, Error::AllSourcesFailed { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("pairs.txt") && msg.contains(&bad) && msg.contains("sha256 mismatch"), "{msg}");
    assert_eq!(entries(&root), Vec::<String>::new(), "the data root holds nothing");
}

#[test]
fn unsafe_archive_members_are_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("lfw-deepfunneled/../../evil.jpg", tar::EntryType::Regular, "", "`..`"),
        ("/tmp/evil.jpg", tar::EntryType::Regular, "", "absolute"),
        ("lfw-deepfunneled/A/A_0001.jpg", tar::EntryType::Symlink, "/etc/passwd", "symbolic link"),
        ("lfw-deepfunneled/A/A_0001.jpg", tar::EntryType::Link, "../../x", "hard link"),
        ("lfw-deepfunneled/A/dev", tar::EntryType::Char, "", "device"),
    ];
    for (i, (member, kind, link, why)) in cases.into_iter().enumerate() {
        let archive = hostile_archive(member, kind, link);
        let s = serve_fixture(&f, &archive);
        let case = tmp.path().join(format!("case{i}"));
        let url = s.url("good", "lfw-deepfunneled.tgz");
        let p = protocols(&case, &f, &archive, &[s.url("good", "pairs.txt")], std::slice::from_ref(&url));
        let root = case.join("data");
        let msg = run(&request(p, &root, None)).unwrap_err().to_string();
        assert!(msg.contains(&url) && msg.contains("lfw-deepfunneled.tgz") && msg.contains(why), "{member}: {msg}");
        assert_eq!(entries(&root.join("lfw")), ["pairs.txt"], "{member}: no image folder and no staging left");
        assert_eq!(entries(&root), ["lfw"], "{member}: no .part left");
        assert!(!case.join("evil.jpg").exists() && !tmp.path().join("evil.jpg").exists());
    }
}

#[test]
fn restricted_data_says_where_to_ask_and_downloads_nothing() {
    let protocols = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols");
    let tmp = tempfile::tempdir().unwrap();
    for (name, site) in [("ytf", "cs.tau.ac.il"), ("megaface", "megaface.cs.washington.edu")] {
        let req = Request { dataset: Some(name.into()), ..request(protocols.clone(), tmp.path(), None) };
        let e = run(&req).unwrap_err();
        assert!(matches!(e, Error::Restricted(_)) && e.to_string().contains(site), "{e}");
    }
    let e = run(&Request { dataset: Some("nope".into()), ..request(protocols.clone(), tmp.path(), None) });
    assert!(matches!(e, Err(Error::Unknown(_))));
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
    let list = run(&Request { dataset: None, ..request(protocols, tmp.path(), None) }).unwrap();
    for want in ["facebench fetch lfw", "--variant deepfunneled (default)", "facebench fetch megaface-lists", "ytf"] {
        assert!(list.contains(want), "{want}: {list}");
    }
}
