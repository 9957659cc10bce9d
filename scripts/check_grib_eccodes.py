"""Check a harness nwp-grib2 dataset with ecCodes' command-line tools.

For a seeded sample of messages (always the first and the last): unwrap (.bz2)
or cut out of its container, then `grib_get` must show the keys the format
fixes and `grib_get_data` must print exactly the closed-form values (the same
closed form scripts/check_zarr.py recomputes; docs/FORMATS.md).

Usage: python check_grib_eccodes.py DATASET_DIR [SAMPLES]
"""
import bz2
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_zarr import splitmix64  # noqa: E402  (the one closed form of the scripts)


def field(g, v, s, p):
    """The values of field (g, v, s) as float64 (exact: multiples of 2^-b)."""
    V, S, ny, nx, b = p["variables"], p["steps"], p["ny"], p["nx"], p["noise_bits"]
    y, x = np.meshgrid(np.arange(ny, dtype=np.uint64), np.arange(nx, dtype=np.uint64), indexing="ij")
    with np.errstate(over="ignore"):
        key = (((np.uint64(g) * np.uint64(V) + np.uint64(v)) * np.uint64(S) + np.uint64(s))
               * np.uint64(ny) + y) * np.uint64(nx) + x
        smooth = (x + np.uint64(2) * y + np.uint64(3 * s + 5 * v + 7 * g)) % np.uint64(4096)
        noise = splitmix64(np.uint64(p["seed"]) + key) >> np.uint64(64 - b) if b else 0 * key
    q = (smooth << np.uint64(b)) + noise
    return 200.0 + q.astype(np.float64) / (1 << b)


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def message_bytes(root, p, g, v, s):
    ext = "grib2.bz2" if p["format"]["wrap"] == "bz2" else "grib2"
    if p["layout"] == "files":
        path = os.path.join(root, f"g{g:05}", f"v{v:04}", f"s{s:05}.{ext}")
        with open(path, "rb") as f:
            raw = f.read()
    else:
        path = os.path.join(root, f"g{g:05}.{ext}")
        with open(os.path.join(root, f"g{g:05}.idx")) as f:
            lines = f.read().split("\n")
        vv, ss, off, n = map(int, lines[v * p["steps"] + s].split())
        assert (vv, ss) == (v, s), (path, vv, ss, v, s)
        with open(path, "rb") as f:
            f.seek(off)
            raw = f.read(n)
    return path, bz2.decompress(raw) if ext.endswith("bz2") else raw


def main():
    root = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    with open(os.path.join(root, "manifest.json")) as f:
        manifest = json.load(f)
    p = manifest["params"]
    if p.get("format", {}).get("kind") != "grib2":
        sys.exit(f"{root}: not a GRIB2 dataset (manifest format {p.get('format')})")
    G, V, S, ny, nx, b = p["groups"], p["variables"], p["steps"], p["ny"], p["nx"], p["noise_bits"]
    n = G * V * S
    rng = random.Random(p["seed"])
    picks = sorted({0, n - 1} | {rng.randrange(n) for _ in range(samples)})
    packing = {"ccsds": "grid_ccsds", "simple": "grid_simple"}[p["format"]["packing"]]
    keys = "centre,dataDate,dataTime,stepRange,stepUnits,discipline,parameterCategory,parameterNumber," \
           "Ni,Nj,gridType,packingType,bitsPerValue,typeOfLevel,level,numberOfValues"
    with tempfile.TemporaryDirectory() as tmp:
        for i in picks:
            g, v, s = i // (V * S), (i // S) % V, i % S
            path, msg = message_bytes(root, p, g, v, s)
            one = os.path.join(tmp, "m.grib2")
            with open(one, "wb") as f:
                f.write(msg)
            ref = datetime.datetime(2026, 1, 1) + datetime.timedelta(hours=6 * g)
            want = {
                "centre": "edzw", "dataDate": ref.strftime("%Y%m%d"), "dataTime": str(ref.hour * 100),
                "stepRange": str(s), "stepUnits": "1", "discipline": "0",
                "parameterCategory": str(v // 256), "parameterNumber": str(v % 256),
                "Ni": str(nx), "Nj": str(ny), "gridType": "regular_ll", "packingType": packing,
                "bitsPerValue": str(12 + b), "typeOfLevel": "heightAboveGround", "level": "2",
                "numberOfValues": str(ny * nx),
            }
            got = dict(zip(keys.split(","), run("grib_get", "-p", keys, one).split()))
            diff = {k: (got.get(k), w) for k, w in want.items() if got.get(k) != w}
            if diff:
                sys.exit(f"{path} (g {g}, v {v}, s {s}): ecCodes reads {diff} (got, expected)")
            out = run("grib_get_data", "-F", "%.17g", one).split("\n")[1:]
            values = np.array([float(line.split()[2]) for line in out if line.strip()])
            expected = field(g, v, s, p).reshape(-1)
            if values.shape != expected.shape:
                sys.exit(f"{path}: grib_get_data printed {values.size} values, expected {expected.size}")
            bad = np.flatnonzero(values != expected)
            if bad.size:
                k = bad[0]
                sys.exit(f"{path}: value {k} (y {k // nx}, x {k % nx}) is {values[k]} per ecCodes, "
                         f"expected {expected[k]}")
    version = run("grib_ls", "-V").strip().splitlines()[0].strip()
    print(f"{version} read {len(picks)} of {n} messages of {root}: "
          f"keys as written, all {len(picks) * ny * nx} values equal the closed form")


if __name__ == "__main__":
    main()
