//! The multi-model summary (`facebench report`) from fixture results files: trimmed copies of
//! real `reports/lfw/<model>/results.json` and `reports/megaface/<model>/results.json`
//! (pooled ROC thinned, CMC curve cut), models renamed `fixture-a` / `fixture-b`
//! (fixture-b's MegaFace numbers are fixture-a's scaled by 0.8). fixture-a's
//! pairs_scores.csv is its run's whole file; fixture-b's keeps 240 real rows, and every other
//! pair of the 6,000 repeats the scores of one of those rows with the same label.
//! `pairs-mini` is a whole output folder of `facebench eval pairs --protocol-file
//! mini_pairs.toml --embeddings` (LFW's faceapi-resnet stores, model `landmarks`) on the 20
//! LFW pairs of that protocol file, which sits beside it. Every results.json carries the
//! envelope's schema 1.

use std::path::{Path, PathBuf};

use facebench_metrics::Published;
use facebench_report::plot::colour_slots;
use facebench_report::summary::{write_summary, Summary};

/// The published rows of the repository's protocol files.
fn published() -> Vec<Published> {
    facebench_pairs::published::all(&protocols_dir()).unwrap()
}

fn protocols_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols")
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// A fresh temporary folder, removed when the test ends.
struct Tmp(PathBuf);

impl std::ops::Deref for Tmp {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Tmp {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(name: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("facebench-summary-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

fn two_models(out: &Path) -> Summary {
    let inputs = ["lfw-a", "lfw-b", "megaface-a", "megaface-b"].map(|d| fixture(&format!("{d}/results.json")));
    write_summary(out, &inputs, &[], &published()).unwrap()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Markdown tables as (header line, body lines).
fn md_tables(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in md.lines() {
        match (&mut cur, line.starts_with('|')) {
            (None, true) => cur = Some((line.to_string(), String::new())),
            (Some((_, body)), true) => *body += &format!("{line}\n"),
            (Some(_), false) => out.push(cur.take().unwrap()),
            (None, false) => {}
        }
    }
    out.extend(cur);
    out
}

#[test]
fn both_models_in_every_table_and_figure() {
    let out = tmp("both");
    let s = two_models(&out);
    assert_eq!(s.models, ["fixture-a", "fixture-b"]);
    assert_eq!(s.used, 4);
    assert!(s.unrecognised.is_empty());

    let md = read(&out.join("summary.md"));
    let tables = md_tables(&md);
    let model_tables: Vec<_> =
        tables.iter().filter(|(h, _)| h.starts_with("| method") || h.starts_with("| model")).collect();
    // Comparison (measured + published), LFW detail, LFW-as-MegaFace detail.
    assert_eq!(model_tables.len(), 4, "{md}");
    for (h, body) in &model_tables {
        if body.contains("CosFace paper") {
            assert!(!body.contains("fixture-"), "published rows are kept apart from measured ones");
            continue;
        }
        assert!(body.contains("fixture-a") && body.contains("fixture-b"), "table {h} lacks a model:\n{body}");
    }

    let figures: Vec<&PathBuf> = s.written.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")).collect();
    let stems: Vec<String> = figures.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(stems, ["roc_lfw", "scores_lfw", "cmc_lfw_as_megaface", "roc_megaface_lfw_as_megaface"]);
    for svg in figures {
        let text = read(svg);
        assert!(text.contains("fixture-a") && text.contains("fixture-b"), "{} lacks a model", svg.display());
        let png = svg.with_extension("png");
        assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "{} is empty", png.display());
        assert!(
            md.contains(&format!("]({})", png.file_name().unwrap().to_string_lossy())),
            "summary.md links {}",
            png.display()
        );
    }
    let html = read(&out.join("summary.html"));
    assert_eq!(html.matches("<svg").count(), 4, "every figure inlined once");
    let tex = read(&out.join("summary.tex"));
    assert!(tex.contains("fixture-a") && tex.contains("fixture-b") && tex.contains("\\toprule"));
}

#[test]
fn numbers_carry_their_protocol_variant_in_the_cell() {
    let out = tmp("variant");
    two_models(&out);
    let md = read(&out.join("summary.md"));
    let row = md.lines().find(|l| l.starts_with("| fixture-a |")).expect("measured row of fixture-a");
    assert!(row.contains("98.65 (insightface)") && row.contains("(sphereface)"), "{row}");
    assert!(row.contains("rank-1; LFW-as-MegaFace, 8,909 distractors, raw"), "{row}");
    assert!(row.contains("TAR@FAR=1e-6 exact; LFW-as-MegaFace"), "{row}");

    // A YTF file of LFW's shape with half the pairs: labelled YTF and partial.
    let dir = tmp("ytf-partial");
    let ytf_dir = dir.join("ytf");
    std::fs::create_dir_all(&ytf_dir).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&read(&fixture("lfw-b/results.json"))).unwrap();
    v["protocol"] = "ytf".into();
    v["results"]["n_pairs"] = 2500.into();
    v["results"]["mode"] = "mean-feature".into();
    v["results"]["modes"] = serde_json::json!([{ "mode": "mean-feature" }]);
    std::fs::write(ytf_dir.join("results.json"), v.to_string()).unwrap();
    // Its pairs_scores.csv in YTF's columns: the first 2,500 of lfw-b's pairs.
    let mut csv = String::from("split,pair,left,right,is_same,frames_left,frames_right,mean-feature\n");
    for (i, l) in read(&fixture("lfw-b/pairs_scores.csv")).lines().skip(1).take(2500).enumerate() {
        let c: Vec<&str> = l.split(',').collect();
        csv += &format!("{},{},{},{},{},10,10,{}\n", c[0], i % 600 + 1, c[1], c[2], c[3], c[4]);
    }
    std::fs::write(ytf_dir.join("pairs_scores.csv"), csv).unwrap();
    let s = write_summary(
        &dir.join("out"),
        &[fixture("lfw-a/results.json"), ytf_dir.join("results.json")],
        &[],
        &published(),
    )
    .unwrap();
    assert_eq!(s.used, 2);
    let md = read(&dir.join("out/summary.md"));
    let row = md.lines().find(|l| l.starts_with("| fixture-b |")).unwrap();
    assert!(row.contains("[partial: 2,500 of 5,000 pairs]"), "{row}");
    assert!(md.contains("## YTF: every model and rule"));
}

#[test]
fn html_has_no_external_references() {
    let out = tmp("html");
    // An extra figure given only as PNG goes in as a data URI, never as a file reference.
    let extra = out.join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    two_models(&out);
    std::fs::copy(out.join("roc_lfw.png"), extra.join("lmcl_margin.png")).unwrap();
    write_summary(
        &out,
        &[fixture("lfw-a/results.json"), fixture("lfw-b/results.json")],
        &[extra.join("lmcl_margin.png")],
        &published(),
    )
    .unwrap();
    let html = read(&out.join("summary.html"));
    assert!(html.contains("lmcl_margin"));
    let mut lower = html.to_ascii_lowercase();
    for (i, _) in lower.match_indices("src=") {
        assert!(lower[i..].starts_with("src=\"data:image/png;base64,"), "src= to a file at byte {i}");
    }
    // Data URIs are inline content (base64 may hold "//"): cut out before the search.
    while let Some(i) = lower.find("base64,") {
        let end = i + lower[i..].find('"').expect("closing quote");
        lower.replace_range(i..end, "");
    }
    for bad in ["http:", "https:", "//", "<link", "<script", "url(", "@import"] {
        assert!(!lower.contains(bad), "summary.html contains {bad}");
    }
    for (i, _) in lower.match_indices("href=") {
        assert!(lower[i..].starts_with("href=\"#"), "href= leaves the page at byte {i}");
    }
    let md = read(&out.join("summary.md"));
    assert!(md.contains("](extra/lmcl_margin.png)"), "extra figures are linked relative to summary.md");
}

#[test]
fn latex_compiles_if_pdflatex_is_present() {
    let out = tmp("tex");
    two_models(&out);
    let ok = std::process::Command::new("pdflatex").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipped: pdflatex is not installed, summary.tex was not compiled");
        return;
    }
    std::fs::write(
        out.join("paper.tex"),
        "\\documentclass{article}\n\\usepackage{booktabs,array}\n\\begin{document}\n\\input{summary.tex}\n\\end{document}\n",
    )
    .unwrap();
    let o = std::process::Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "paper.tex"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "pdflatex failed:\n{}", String::from_utf8_lossy(&o.stdout));
    assert!(out.join("paper.pdf").exists());
}

#[test]
fn unknown_protocols_are_listed_not_fatal() {
    let out = tmp("unknown");
    let s = write_summary(&out, &[fixture("lfw-a/results.json"), fixture("unknown/results.json")], &[], &published())
        .unwrap();
    assert_eq!(s.used, 1);
    assert_eq!(s.unrecognised.len(), 1);
    assert!(s.unrecognised[0].1.contains("`ijbc`"));
    let md = read(&out.join("summary.md"));
    assert!(md.contains("## Inputs not recognised") && md.contains("unknown/results.json"));
}

#[test]
fn bad_input_names_the_file_and_field() {
    let dir = tmp("bad");
    let p = dir.join("results.json");
    std::fs::write(&p, "{ not json").unwrap();
    let e = write_summary(&dir.join("out"), std::slice::from_ref(&p), &[], &published()).unwrap_err().to_string();
    assert!(e.contains(&p.display().to_string()) && e.contains("not valid JSON"), "{e}");

    let mut v: serde_json::Value = serde_json::from_str(&read(&fixture("lfw-a/results.json"))).unwrap();
    v["results"]["accuracy"][1]["mean"] = "high".into();
    std::fs::write(&p, v.to_string()).unwrap();
    let e = write_summary(&dir.join("out"), std::slice::from_ref(&p), &[], &published()).unwrap_err().to_string();
    assert!(e.contains("results.accuracy[1].mean"), "{e}");

    let csv = dir.join("pairs_scores.csv");
    let mut lines: Vec<String> = read(&fixture("lfw-a/pairs_scores.csv")).lines().map(String::from).collect();
    lines[2] = lines[2].replacen(",1,", ",maybe,", 1);
    std::fs::write(&csv, lines.join("\n")).unwrap();
    v["results"]["accuracy"][1]["mean"] = 0.97.into();
    std::fs::write(&p, v.to_string()).unwrap();
    let e = write_summary(&dir.join("out"), &[p], &[], &published()).unwrap_err().to_string();
    assert!(e.contains("pairs_scores.csv line 3: column is_same: \"maybe\" is neither 0 nor 1"), "{e}");
}

/// A copy of fixture folder `name` in `dir`: (its results.json, its pairs_scores.csv).
fn copy_fixture(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for f in std::fs::read_dir(fixture(name)).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
    (to.join("results.json"), to.join("pairs_scores.csv"))
}

/// The summary's error for one results file.
fn summary_error(dir: &Path, results: &Path) -> String {
    write_summary(&dir.join("out"), &[results.to_path_buf()], &[], &published()).unwrap_err().to_string()
}

/// Rewrites one line (1-based) of a text file.
fn edit_line(path: &Path, line: usize, f: impl FnOnce(&str) -> String) {
    let mut lines: Vec<String> = read(path).lines().map(String::from).collect();
    lines[line - 1] = f(&lines[line - 1]);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&read(path)).unwrap();
    f(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn a_good_folder_passes_its_checks() {
    let dir = tmp("good");
    let (lfw, _) = copy_fixture(&dir, "lfw-a");
    let (ytf, _) = copy_fixture(&dir, "ytf-partial");
    let (mf, _) = copy_fixture(&dir, "megaface-a");
    let s = write_summary(&dir.join("out"), &[lfw, ytf, mf], &[], &published()).unwrap();
    assert_eq!(s.used, 3);
}

#[test]
fn a_truncated_scores_csv_is_refused_with_its_row_count() {
    let dir = tmp("truncated");
    let (p, csv) = copy_fixture(&dir, "lfw-a");
    // 100 of the 6,000 rows, as a disk-full run or a hand-cut file leaves it.
    let text = read(&csv);
    let first: Vec<&str> = text.lines().take(101).collect();
    std::fs::write(&csv, first.join("\n") + "\n").unwrap();
    let e = summary_error(&dir, &p);
    let want = format!("{}: 100 rows, {} says n_pairs = 6,000", csv.display(), p.display());
    assert!(e.contains(&want), "{e}");

    // Cut inside a row (3,688 whole rows and part of the next): that row's columns are named.
    let cut = text.lines().take(3689).collect::<Vec<_>>().join("\n") + "\n1,Abel";
    std::fs::write(&csv, cut).unwrap();
    let e = summary_error(&dir, &p);
    assert!(e.contains(&format!("{} line 3690: 2 columns, the header has 10", csv.display())), "{e}");
}

#[test]
fn a_bad_scores_field_names_line_and_column() {
    let dir = tmp("bad-field");
    let (p, csv) = copy_fixture(&dir, "lfw-a");
    let put = |line: usize, col: usize, value: &str| {
        std::fs::copy(fixture("lfw-a/pairs_scores.csv"), &csv).unwrap();
        edit_line(&csv, line, |l| {
            let mut c: Vec<&str> = l.split(',').collect();
            c[col] = value;
            c.join(",")
        });
        summary_error(&dir, &p)
    };
    let e = put(12, 4, "abc");
    assert!(e.contains("pairs_scores.csv line 12: column cosine: \"abc\" is not a number"), "{e}");
    let e = put(40, 6, "NaN");
    assert!(e.contains("line 40: column sphereface_score: \"NaN\" is not a finite number"), "{e}");
    let e = put(41, 4, "inf");
    assert!(e.contains("line 41: column cosine: \"inf\" is not a finite number"), "{e}");
    let e = put(7, 0, "11");
    assert!(e.contains("line 7: column fold: 11 is not a fold number 1..=10"), "{e}");
    let e = put(8, 1, "");
    assert!(e.contains("line 8: column left: empty"), "{e}");
    let e = put(9, 3, "2");
    assert!(e.contains("line 9: column is_same: \"2\" is neither 0 nor 1"), "{e}");
    let e = put(10, 9, "0.5,0.5");
    assert!(e.contains("line 10: 11 columns, the header has 10"), "{e}");
}

#[test]
fn a_wrong_scores_header_is_refused() {
    let dir = tmp("bad-header");
    let (p, csv) = copy_fixture(&dir, "lfw-a");
    edit_line(&csv, 1, |h| h.replace("cosine", "score"));
    let e = summary_error(&dir, &p);
    assert!(e.contains(&format!("{} line 1: header column 5 is `score`, expected `cosine`", csv.display())), "{e}");

    // A rule the results do not have (another run's file).
    std::fs::copy(fixture("lfw-a/pairs_scores.csv"), &csv).unwrap();
    edit_json(&p, |v| {
        v["results"]["accuracy"].as_array_mut().unwrap().pop();
    });
    let e = summary_error(&dir, &p);
    assert!(e.contains("line 1: header column 10 is `exact_score`, expected nothing"), "{e}");
}

#[test]
fn a_missing_scores_csv_is_refused() {
    let dir = tmp("no-csv");
    let (p, csv) = copy_fixture(&dir, "lfw-a");
    std::fs::remove_file(&csv).unwrap();
    let e = summary_error(&dir, &p);
    assert!(e.contains(&format!("{}: missing", csv.display())) && e.contains("n_pairs = 6,000"), "{e}");
}

#[test]
fn ytf_rows_must_match_the_pairs_the_results_list() {
    let dir = tmp("ytf-rows");
    let (p, csv) = copy_fixture(&dir, "ytf-partial");
    edit_line(&csv, 2, |l| l.replacen("Alek_Wek/4", "Alek_Wek/5", 1));
    let e = summary_error(&dir, &p);
    assert!(e.contains("line 2: column right: Alek_Wek/5, but") && e.contains("with Alek_Wek/4"), "{e}");
    std::fs::copy(fixture("ytf-partial/pairs_scores.csv"), &csv).unwrap();
    edit_line(&csv, 1, |h| h.replace(",max-pair", ""));
    let e = summary_error(&dir, &p);
    assert!(e.contains("line 1: header column 11 is nothing, expected `max-pair`"), "{e}");
}

#[test]
fn the_envelope_is_checked() {
    let dir = tmp("envelope");
    let (p, _) = copy_fixture(&dir, "lfw-a");
    let original = read(&p);
    let check = |f: &dyn Fn(&mut serde_json::Value), want: &str| {
        std::fs::write(&p, &original).unwrap();
        edit_json(&p, f);
        let e = summary_error(&dir, &p);
        assert!(e.contains(&p.display().to_string()) && e.contains(want), "{e}");
    };
    check(&|v| v["schema"] = 2.into(), "field `schema`: 2; this facebench reads results.json of schema 1");
    check(&|v| drop(v.as_object_mut().unwrap().remove("schema")), "field `schema`: absent (0)");
    check(&|v| v["model"] = " ".into(), "field `model`: empty");
    check(&|v| drop(v.as_object_mut().unwrap().remove("protocol")), "field `protocol`: missing");
    // serde_json writes a NaN or an infinity as null.
    check(&|v| v["results"]["accuracy"][0]["mean"] = serde_json::Value::Null, "field `results.accuracy[0].mean`");
    check(
        &|v| v["results"]["accuracy"][2]["mean"] = 98.5.into(),
        "field `results.accuracy[2].mean`: 98.5 is not a rate",
    );
    check(&|v| v["results"]["roc"]["tar"][3] = (-0.5).into(), "field `results.roc.tar[3]`: -0.5 is not a rate");
    check(&|v| v["timings"][0]["seconds"] = (-1.0).into(), "field `timings[0].seconds`: -1 is negative");
    check(&|v| v["results"]["n_pairs"] = 6001.into(), "6,000 rows");

    let (mf, _) = copy_fixture(&dir, "megaface-a");
    edit_json(&mf, |v| v["sizes"][0]["cmc"][1] = 1.25.into());
    let e = summary_error(&dir, &mf);
    assert!(e.contains("field `sizes[0].cmc[1]`: 1.25 is not a rate"), "{e}");
}

/// Every file of a folder (but the set's manifest) with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_failed_summary_leaves_the_previous_one() {
    let dir = tmp("failed-write");
    let out = dir.join("summary");
    let inputs = ["lfw-a", "lfw-b", "megaface-a"].map(|d| fixture(&format!("{d}/results.json")));
    let s = write_summary(&out, &inputs, &[], &published()).unwrap();
    assert!(s.written.iter().all(|p| p.starts_with(&out) && p.is_file()), "{:?}", s.written);
    let before = snapshot(&out);
    assert!(before.len() > 3);

    // Fails after the figures are drawn: an extra "figure" that cannot be read.
    let bad = dir.join("extra/broken.png");
    std::fs::create_dir_all(&bad).unwrap();
    let e = write_summary(&out, &inputs[..1], std::slice::from_ref(&bad), &published()).unwrap_err().to_string();
    assert!(e.contains("broken.png"), "{e}");
    assert_eq!(snapshot(&out), before, "the previous summary is intact");

    // Fails on an input: nothing is written either.
    let (p, csv) = copy_fixture(&dir, "lfw-b");
    edit_line(&csv, 5, |l| l.replacen(",0,", ",x,", 1).replacen(",1,", ",x,", 1));
    assert!(write_summary(&out, &[inputs[0].clone(), p], &[], &published()).is_err());
    assert_eq!(snapshot(&out), before);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|f| f.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains("staging")), "no staging folder left: {left:?}");

    // A fresh run into a folder that does not exist fails the same way and leaves none.
    let fresh = dir.join("fresh");
    assert!(write_summary(&fresh, &inputs[..1], std::slice::from_ref(&bad), &published()).is_err());
    assert!(!fresh.exists());
}

#[test]
fn colour_slots_are_stable_and_distinct() {
    let a = colour_slots(&["mobileface", "faceapi-resnet", "lmcl-head"]);
    let b = colour_slots(&["lmcl-head", "faceapi-resnet", "mobileface"]);
    assert_eq!(a, b, "the order models are given in does not matter");
    let many: Vec<String> = (0..7).map(|i| format!("model-{i}")).collect();
    let slots = colour_slots(&many);
    let mut used: Vec<usize> = slots.values().copied().collect();
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 7, "up to 7 models never share a colour");
}

#[test]
fn ytf_partial_not_measurable_run_is_labelled() {
    // Shape of `facebench eval ytf` on the frames subset: 1 of 5000 pairs, no accuracy.
    let out = tmp("ytf-real");
    let s =
        write_summary(&out, &[fixture("lfw-a/results.json"), fixture("ytf-partial/results.json")], &[], &published())
            .unwrap();
    assert_eq!(s.used, 2);
    let md = read(&out.join("summary.md"));
    let row = md.lines().find(|l| l.starts_with("| fixture-b |")).unwrap();
    assert!(row.contains("not measurable [partial: 1 of 5,000 pairs]"), "{row}");
    assert!(md.contains("PARTIAL EVALUATION: 1 of 5000 pairs"), "the file's own words are kept");
    let svg = read(&out.join("scores_ytf.svg"));
    assert!(svg.contains("fixture-b") && svg.contains("video pair score"));
}

/// A copy of the repository's protocols/ (with common/) in `dir`.
fn copy_protocols(dir: &Path) -> PathBuf {
    let protocols = dir.join("protocols");
    std::fs::create_dir_all(protocols.join("common")).unwrap();
    for sub in ["", "common"] {
        for f in std::fs::read_dir(protocols_dir().join(sub)).unwrap() {
            let f = f.unwrap().path();
            if f.is_file() {
                std::fs::copy(&f, protocols.join(sub).join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    protocols
}

/// Published numbers come from the protocol files: a row edited in a copy of protocols/
/// shows up in the summary's Markdown and LaTeX.
#[test]
fn an_edited_published_row_shows_in_the_summary() {
    let dir = tmp("edited-protocols");
    let protocols = copy_protocols(&dir);
    let ytf = protocols.join("ytf.toml");
    let text = read(&ytf);
    assert!(text.contains("accuracy = 96.1\n"));
    std::fs::write(&ytf, text.replace("accuracy = 96.1\n", "accuracy = 91.23\n")).unwrap();
    let rows = facebench_pairs::published::all(&protocols).unwrap();
    write_summary(&dir.join("out"), &[fixture("lfw-a/results.json")], &[], &rows).unwrap();
    let md = read(&dir.join("out/summary.md"));
    let line = md.lines().find(|l| l.contains("CASIA-WebFace (small protocol), LMCL")).expect("LMCL row");
    assert!(line.contains("| 99.33 | 91.23 |") && !line.contains("96.10"), "{line}");
    assert!(read(&dir.join("out/summary.tex")).contains("91.23"));
}

/// A pairs protocol file's result (fixture `pairs-mini`: `facebench eval pairs --embeddings`
/// of LFW's faceapi-resnet stores on `mini_pairs.toml`, 20 LFW pairs in 2 folds) gets a
/// column entry and a table of its own titled by its name, and its protocol file's published
/// row when that file is in the protocol folder.
#[test]
fn a_pairs_protocol_result_has_its_own_column_and_table() {
    let dir = tmp("pairs-protocol");
    let protocols = copy_protocols(&dir);
    std::fs::copy(fixture("pairs-mini/mini_pairs.toml"), protocols.join("mini_pairs.toml")).unwrap();
    let rows = facebench_pairs::published::all(&protocols).unwrap();
    let out = dir.join("out");
    let inputs = [fixture("lfw-a/results.json"), fixture("pairs-mini/results.json")];
    let s = write_summary(&out, &inputs, &[], &rows).unwrap();
    assert_eq!((s.used, s.unrecognised.len()), (2, 0), "{:?}", s.unrecognised);

    let md = read(&out.join("summary.md"));
    let tables = md_tables(&md);
    let (header, measured) = &tables[0];
    assert!(header.ends_with("| other sets % |"), "{header}");
    let landmarks = measured.lines().find(|l| l.starts_with("| landmarks |")).expect("the fixture's model");
    assert!(
        landmarks.contains("| mini_pairs: 95.00 (insightface) |") && landmarks.contains("| - | - |"),
        "{landmarks}"
    );
    let published_table = &tables[1].1;
    let test_row =
        published_table.lines().find(|l| l.contains("a test row: not a real result")).expect("its published row");
    assert!(test_row.ends_with("| mini_pairs: 50.00 |"), "{test_row}");
    assert!(md.contains("## mini_pairs: every model and rule"), "{md}");
    assert!(read(&out.join("summary.tex")).contains("mini\\_pairs: accuracy under each tool's rule (2-fold)."));
    let figures: Vec<String> =
        s.written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(figures.contains(&"roc_mini_pairs.svg".into()) && figures.contains(&"scores_mini_pairs.svg".into()));

    // Without its protocol file in the folder, the result is still summarised.
    let s = write_summary(&out, &inputs, &[], &published()).unwrap();
    assert_eq!(s.used, 2);
    assert!(!read(&out.join("summary.md")).contains("a test row"));
}

/// Its pairs_scores.csv is checked as LFW's is; a file not of a pairs protocol's shape under
/// an unknown name (no `n_folds`, or an `lfw:tune` View 1 result) stays not recognised.
#[test]
fn a_pairs_protocol_result_is_checked_and_other_shapes_stay_unrecognised() {
    let dir = tmp("pairs-protocol-checks");
    let (p, csv) = copy_fixture(&dir, "pairs-mini");
    edit_line(&csv, 5, |l| l.replacen(",1,", ",maybe,", 1));
    let e = summary_error(&dir, &p);
    assert!(e.contains("pairs_scores.csv line 5: column is_same: \"maybe\" is neither 0 nor 1"), "{e}");
    let text = read(&fixture("pairs-mini/pairs_scores.csv"));
    std::fs::write(&csv, text.lines().take(11).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let e = summary_error(&dir, &p);
    assert!(e.contains(&format!("{}: 10 rows, {} says n_pairs = 20", csv.display(), p.display())), "{e}");

    std::fs::write(&csv, text).unwrap();
    edit_json(&p, |v| v["results"]["accuracy"][0]["mean"] = 1.5.into());
    assert!(summary_error(&dir, &p).contains("results.accuracy[0].mean"));

    edit_json(&p, |v| {
        v["results"]["accuracy"][0]["mean"] = 0.95.into();
        v["results"].as_object_mut().unwrap().remove("n_folds");
    });
    let tune = dir.join("tune/results.json");
    std::fs::create_dir_all(tune.parent().unwrap()).unwrap();
    let body = r#"{"train": "a", "test": "b", "n_train": 2200, "n_test": 1000, "rows": []}"#;
    std::fs::write(&tune, format!(r#"{{"schema": 1, "protocol": "lfw:tune", "model": "m", "results": {body}}}"#))
        .unwrap();
    let s = write_summary(&dir.join("out"), &[p, tune], &[], &published()).unwrap();
    assert_eq!(s.used, 0);
    let why: Vec<&str> = s.unrecognised.iter().map(|(_, w)| w.as_str()).collect();
    assert_eq!(
        why,
        ["protocol `mini_pairs` is not one the summary knows", "protocol `lfw:tune` is not one the summary knows"]
    );
}
