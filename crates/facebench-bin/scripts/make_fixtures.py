"""Writes the tiny verification packs in tests/fixtures/ with Python's own pickle, so that the
reader is tested on what Python 2 and Python 3 really write.

Run with both interpreters (dev-only; the outputs are committed):

    python2 scripts/make_fixtures.py tests/fixtures   # py2_proto{0,1,2}.bin: images as str
    python3 scripts/make_fixtures.py tests/fixtures   # py3_proto{0..5}.bin: images as bytes
                                                      # (+ py3_numpy_proto{2,4,5}.bin with numpy)

Every pack holds the same 10 pairs: 20 small PNGs (two of them over 255 bytes, so both the
short and the long string opcodes appear) and 10 bools; expected.json lists each image's
length and sha256 and the labels. Each file is read back with pickle before it is kept.
"""
import binascii
import hashlib
import json
import os
import pickle
import struct
import sys
import zlib

PY2 = sys.version_info[0] == 2
ISSAME = [True, True, False, True, False, False, True, False, True, False]


def png(width, height, seed, noisy):
    """A valid RGB PNG: flat colour, or deterministic noise (which does not compress)."""
    x = seed * 2654435761 % 4294967296
    rows = []
    for _ in range(height):
        row = bytearray([0])
        for _ in range(width):
            if noisy:
                for _ in range(3):
                    x = (1103515245 * x + 12345) % 2147483648
                    row.append((x >> 16) & 255)
            else:
                row.extend([seed * 37 % 256, seed * 91 % 256, seed * 53 % 256])
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        crc = binascii.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def images():
    return [png(6 if i not in (3, 16) else 10, 6 if i not in (3, 16) else 10, i + 1, i in (3, 16)) for i in range(20)]


def check(path, imgs, labels):
    with open(path, "rb") as f:
        got = pickle.load(f) if PY2 else pickle.load(f, encoding="bytes")
    got_imgs, got_labels = got
    assert [bytes(b) for b in got_imgs] == imgs, path
    assert [bool(b) for b in got_labels] == labels, path


def main(out):
    if not os.path.isdir(out):
        os.makedirs(out)
    imgs = images()
    assert min(len(b) for b in imgs) < 256 < max(len(b) for b in imgs)
    written = []
    tag = "py2" if PY2 else "py3"
    for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
        path = os.path.join(out, "%s_proto%d.bin" % (tag, proto))
        with open(path, "wb") as f:
            # InsightFace's lfw2pack.py: pickle.dump((bins, issame_list), f, protocol=...)
            pickle.dump((imgs, list(ISSAME)), f, protocol=proto)
        check(path, imgs, ISSAME)
        written.append(path)
    if not PY2:
        try:
            import numpy as np
        except ImportError:
            np = None
            print("numpy not installed: no numpy-label fixtures")
        if np is not None:
            for proto in (2, 4, 5):
                path = os.path.join(out, "py3_numpy_proto%d.bin" % proto)
                with open(path, "wb") as f:
                    pickle.dump((imgs, np.array(ISSAME)), f, protocol=proto)
                check(path, imgs, ISSAME)
                written.append(path)
        expected = {
            "issame": ISSAME,
            "images_len": [len(b) for b in imgs],
            "images_sha256": [hashlib.sha256(b).hexdigest() for b in imgs],
        }
        with open(os.path.join(out, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
            f.write("\n")
    for p in written:
        print("%s %d bytes" % (p, os.path.getsize(p)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
