"""Check a harness grib2-dir output against its source files with ecCodes.

zarr-python opens the output; its attributes.grib2_dir give the source
directory, how the scan told files apart and the name of every group, variable
and step. For a seeded sample of (g, v, s) (always the first and the last) the
source file is found independently of the harness — by the pattern with the
names put back, or by the keys ecCodes reads from every file (grib_get), named
as docs/FORMATS.md says — unwrapped if .bz2, decoded by grib_get_data, and its
values must equal the output's slice [g, v, s] bit for bit as float32 (NaN where
ecCodes reports a missing value).

Usage: python check_own_files.py OUTPUT_DIR [SAMPLES]
"""
import bz2
import os
import random
import sys
import tempfile

import numpy as np
import zarr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_grib_eccodes import run  # noqa: E402  (one way to call ecCodes' tools)


def unwrapped(path, tmp):
    """The file as ecCodes can read it: .bz2 decompressed into tmp."""
    if not path.endswith(".bz2"):
        return path
    out = os.path.join(tmp, os.path.basename(path)[:-4])
    with open(path, "rb") as f, open(out, "wb") as g:
        g.write(bz2.decompress(f.read()))
    return out


def all_files(root):
    for d, _, names in os.walk(root):
        for n in names:
            yield os.path.join(d, n)


def number(scaled, factor):
    """A level's value, printed the way the harness prints it (minimal decimal)."""
    if factor == 0:
        return str(scaled)
    v = scaled / 10 ** factor
    return ("%.10f" % v).rstrip("0").rstrip(".")


def duration(seconds):
    if seconds == 0:
        return "PT0S"
    if seconds % 3600 == 0:
        return f"PT{seconds // 3600}H"
    if seconds % 60 == 0:
        return f"PT{seconds // 60}M"
    return f"PT{seconds}S"


# Code table 4.4 (unit of time range) in seconds, as grib_get prints stepUnits.
UNIT = {"0": 60, "1": 3600, "2": 86400, "10": 10800, "11": 21600, "12": 43200, "13": 1,
        "m": 60, "h": 3600, "D": 86400, "s": 1}


def keys_index(root, tmp):
    """(group, variable, step) names → file, from ecCodes' keys of every file."""
    keys = ("dataDate,dataTime,discipline,parameterCategory,parameterNumber,"
            "productDefinitionTemplateNumber,typeOfFirstFixedSurface:i,"
            "scaleFactorOfFirstFixedSurface,scaledValueOfFirstFixedSurface,endStep,stepUnits:i")
    index = {}
    for path in sorted(all_files(root)):
        one = unwrapped(path, tmp)
        lines = run("grib_get", "-p", keys, one).strip().split("\n")
        if len(lines) != 1:
            sys.exit(f"{path}: {len(lines)} messages; this script checks one message per file")
        got = lines[0].split()
        date, time, d, c, n, t, level_type, factor, scaled, end, unit = got
        group = f"{date[:4]}-{date[4:6]}-{date[6:]}T{int(time) // 100:02}:{int(time) % 100:02}:00Z"
        level = "" if scaled == "MISSING" else "=" + number(int(scaled), int(factor) if factor != "MISSING" else 0)
        variable = f"{d}.{c}.{n}@{level_type}{level}"
        if t not in ("0", "8"):
            variable += f"/t{t}"
        if t in ("8", "11"):
            stat = run("grib_get", "-p", "typeOfStatisticalProcessing:i", one).split()[0]
            variable += f"/stat{stat}"
        if t in ("1", "11"):
            member = run("grib_get", "-p", "perturbationNumber:i", one).split()[0]
            variable += f"/m{member}"
        if t == "2":
            derived = run("grib_get", "-p", "derivedForecast:i", one).split()[0]
            variable += f"/d{derived}"
        if unit not in UNIT:
            sys.exit(f"{path}: step unit {unit!r} (ecCodes' stepUnits) is not one this script knows")
        step = duration(int(end) * UNIT[unit])
        index[(group, variable, step)] = path
        if one != path:
            os.remove(one)
    return index


def main():
    out_dir = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    arr = zarr.open_array(out_dir, mode="r")
    a = arr.attrs.get("grib2_dir")
    if a is None:
        sys.exit(f"{out_dir}: no attributes.grib2_dir: not an output of a grib2-dir run")
    G, V, S, ny, nx = arr.shape
    root, scan = a["source"], a["scan"]
    names = (a["groups"], a["variables"], a["steps"])
    n = G * V * S
    rng = random.Random(n)
    picks = sorted({0, n - 1} | {rng.randrange(n) for _ in range(samples)})
    with tempfile.TemporaryDirectory() as tmp:
        if scan["from"] == "pattern":
            def find(g, v, s):
                rel = scan["pattern"].replace("{init}", names[0][g]).replace(
                    "{var}", names[1][v]).replace("{step}", names[2][s])
                if "{level}" in rel:
                    sys.exit("a pattern with {level}: not checked by this script")
                return os.path.join(root, rel)
        else:
            index = keys_index(root, tmp)

            def find(g, v, s):
                key = (names[0][g], names[1][v], names[2][s])
                if key not in index:
                    sys.exit(f"no source file has the keys {key} (ecCodes' reading); "
                             f"first keys found: {sorted(index)[:3]}")
                return index[key]
        for i in picks:
            g, v, s = i // (V * S), (i // S) % V, i % S
            path = find(g, v, s)
            one = unwrapped(path, tmp)
            out = run("grib_get_data", "-m", "nan", "-F", "%.17g", one).split("\n")[1:]
            values = np.array([float(line.split()[2]) for line in out if line.strip()])
            if one != path:
                os.remove(one)
            got = np.asarray(arr[g, v, s]).reshape(-1)
            if values.size != got.size:
                sys.exit(f"{path}: ecCodes decodes {values.size} values, the output has {got.size}")
            want = values.astype(np.float32)
            same = (want == got) | (np.isnan(want) & np.isnan(got))
            bad = np.flatnonzero(~same)
            if bad.size:
                k = bad[0]
                sys.exit(f"{path} ([{g}, {v}, {s}]): value {k} (y {k // nx}, x {k % nx}) is "
                         f"{got[k]} in the output, {want[k]} per ecCodes ({bad.size} differ)")
    version = run("grib_ls", "-V").strip().splitlines()[0].strip()
    print(f"{version} decoded {len(picks)} of {n} source files of {out_dir} ({scan['from']} scan): "
          f"all {len(picks) * ny * nx} values equal the output's, read by zarr-python {zarr.__version__}")


if __name__ == "__main__":
    main()
