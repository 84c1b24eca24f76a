//! A pack against its protocol file (`protocols/cfp_fp.toml`, ...: the pairs-protocol shape
//! of `facebench_pairs::PairsProtocol` with `format = "bin"`), so that a new pack is a new
//! file, not new code; and the pack's pairs in the protocol's contiguous folds.

use std::path::Path;

use facebench_pairs::{Pairs, PairsFormat, PairsProtocol};

use crate::pack::{Error, Result, VerificationPack};

/// Checks that `pack` is what `protocol` declares: a `bin` protocol, its pair count and, when
/// one is recorded, its checksum. `protocol_path` and `pack_path` name the files in errors.
pub fn check_pack(
    protocol: &PairsProtocol,
    protocol_path: &Path,
    pack_path: &Path,
    pack: &VerificationPack,
    pack_sha256: &str,
) -> Result<()> {
    if protocol.pairs.format != PairsFormat::Bin {
        return Err(Error::Protocol {
            path: protocol_path.to_path_buf(),
            msg: format!("protocol {} is not a .bin pack protocol (pairs.format = \"bin\")", protocol.name),
        });
    }
    if pack.n_pairs() != protocol.pairs.count {
        return Err(Error::Pack {
            path: pack_path.to_path_buf(),
            msg: format!(
                "{} pairs, {} declares {} ({})",
                pack.n_pairs(),
                protocol_path.display(),
                protocol.pairs.count,
                protocol.name
            ),
        });
    }
    if let Some(want) = protocol.pairs_sha256() {
        if !want.eq_ignore_ascii_case(pack_sha256) {
            return Err(Error::Pack {
                path: pack_path.to_path_buf(),
                msg: format!(
                    "sha256 {pack_sha256} differs from {}'s {want}: not the published file",
                    protocol_path.display()
                ),
            });
        }
    }
    Ok(())
}

/// The pack's pairs in `folds` contiguous equal folds (InsightFace's KFold without
/// shuffling); pair `i` is images `2i` and `2i+1`, keyed by their index.
pub fn pack_pairs(pack: &VerificationPack, pack_path: &Path, folds: usize) -> Result<Pairs> {
    let ids = pack.folds(folds).map_err(|msg| Error::Pack { path: pack_path.to_path_buf(), msg })?;
    let keys = (0..pack.n_pairs()).map(|i| ((2 * i).to_string(), (2 * i + 1).to_string())).collect();
    Ok(Pairs::from_labels(pack_path, keys, &pack.issame, &ids)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_pack_protocols_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols");
        for (file, pairs) in [
            ("lfw_bin.toml", 6000),
            ("cfp_fp.toml", 7000),
            ("agedb_30.toml", 6000),
            ("calfw.toml", 6000),
            ("cplfw.toml", 6000),
        ] {
            let (p, _) = PairsProtocol::read(&dir.join(file)).unwrap();
            assert_eq!(p.pairs.format, PairsFormat::Bin, "{file}");
            assert_eq!((p.pairs.count, p.pairs.folds, p.image_size), (pairs, 10, Some([112, 112])), "{file}");
            assert_eq!(p.pairs_sha256(), None, "{file}: no checksum of a file we do not have");
        }
        // lfw_bin.toml: LFW's five rules replace the packs' two, and LFW's published rows.
        let (p, _) = PairsProtocol::read(&dir.join("lfw_bin.toml")).unwrap();
        assert_eq!(p.metrics.rules.len(), 5);
        assert!(p.published.iter().any(|r| r.accuracy == Some(99.73)));
        let (p, _) = PairsProtocol::read(&dir.join("cfp_fp.toml")).unwrap();
        assert_eq!(p.metrics.rules.len(), 2);
        assert!(p.published.is_empty());
    }

    #[test]
    fn pack_mismatches_are_errors_and_folds_follow_the_protocol() {
        let dir = std::env::temp_dir().join(format!("fb-bin-proto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = "name = \"x\"\ndescription = \"d\"\nimage_size = [112, 112]\n\
                    [pairs]\nformat = \"bin\"\nfile = \"x.bin\"\ncount = 20\nfolds = 5\n\
                    [metrics]\nrules = [\"insightface\"]\nexact_fars = []\ninsightface_fars = [0.001]\n";
        let path = dir.join("x.toml");
        std::fs::write(&path, good).unwrap();
        let (p, _) = PairsProtocol::read(&path).unwrap();
        let pack = VerificationPack { images: vec![vec![0]; 40], issame: vec![true; 20] };
        check_pack(&p, &path, Path::new("x.bin"), &pack, "ab").unwrap();
        let pairs = pack_pairs(&pack, Path::new("x.bin"), p.pairs.folds).unwrap();
        assert_eq!(pairs.n_folds, 5, "the protocol's folds are the ones used");
        assert_eq!(pairs.folds(), (0..20).map(|i| i / 4).collect::<Vec<_>>());
        assert_eq!((pairs.pairs[3].left.as_str(), pairs.pairs[3].right.as_str()), ("6", "7"));
        let e = pack_pairs(&pack, Path::new("x.bin"), 3).unwrap_err().to_string();
        assert!(e.starts_with("x.bin: 20 pairs cannot be split into 3"), "{e}");

        let small = VerificationPack { images: vec![vec![0]; 20], issame: vec![true; 10] };
        let e = check_pack(&p, &path, Path::new("x.bin"), &small, "ab").unwrap_err().to_string();
        assert!(e.starts_with("x.bin: 10 pairs") && e.contains("declares 20"), "{e}");

        let sum = "ab".repeat(32);
        std::fs::write(&path, format!("{good}[sha256]\n\"x.bin\" = \"{sum}\"\n")).unwrap();
        let (p, _) = PairsProtocol::read(&path).unwrap();
        check_pack(&p, &path, Path::new("x.bin"), &pack, &sum).unwrap();
        let e = check_pack(&p, &path, Path::new("x.bin"), &pack, &"cd".repeat(32)).unwrap_err().to_string();
        assert!(e.contains("not the published file"), "{e}");

        let list = good.replace("\"bin\"", "\"list\"").replace("image_size", "images = \"x\"\nimage_size");
        std::fs::write(&path, list).unwrap();
        let (p, _) = PairsProtocol::read(&path).unwrap();
        let e = check_pack(&p, &path, Path::new("x.bin"), &pack, "ab").unwrap_err().to_string();
        assert!(e.contains("x.toml: protocol x is not a .bin pack protocol"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
