"""Open a harness output with zarr-python (a Zarr v3 reader that is not ours) and
check every value against the closed form (docs/FORMATS.md, "The values: a closed
form"), recomputed here in numpy. Either output layout: chunked, or sharded
(the sharding_indexed codec, which zarr-python decodes itself, checking each
shard index's crc32c).

Usage: python check_zarr.py OUTPUT_DIR [--expect chunked|sharded]
"""
import json
import os
import sys

import numpy as np
import zarr

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(z):
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def expected(g, V, S, ny, nx, seed, b):
    v, s, y, x = np.meshgrid(
        np.arange(V, dtype=np.uint64), np.arange(S, dtype=np.uint64),
        np.arange(ny, dtype=np.uint64), np.arange(nx, dtype=np.uint64), indexing="ij")
    g = np.uint64(g)
    with np.errstate(over="ignore"):
        key = (((g * np.uint64(V) + v) * np.uint64(S) + s) * np.uint64(ny) + y) * np.uint64(nx) + x
        smooth = (x + np.uint64(2) * y + np.uint64(3) * s + np.uint64(5) * v + np.uint64(7) * g) % np.uint64(4096)
        noise = splitmix64(np.uint64(seed) + key) >> np.uint64(64 - b) if b else np.zeros_like(key)
    q = (smooth << np.uint64(b)) + noise
    return (200.0 + q.astype(np.float64) / (1 << b)).astype(np.float32)


def storage_options(path):
    """For an s3:// output: the S3 server from the AWS_* environment that
    scripts/s3-server env prints (read through fsspec's s3fs)."""
    if not path.startswith("s3://"):
        return None
    env = os.environ
    return {
        "key": env["AWS_ACCESS_KEY_ID"],
        "secret": env["AWS_SECRET_ACCESS_KEY"],
        "client_kwargs": {"endpoint_url": env["AWS_ENDPOINT"], "region_name": env.get("AWS_REGION", "us-east-1")},
    }


def read_zarr_json(path):
    so = storage_options(path)
    if so is None:
        with open(os.path.join(path, "zarr.json")) as f:
            return json.load(f)
    import fsspec
    with fsspec.open(path.rstrip("/") + "/zarr.json", "r", **so) as f:
        return json.load(f)


def layout_of(path, arr):
    """The layout zarr.json declares, checked against what zarr-python made of it."""
    codecs = read_zarr_json(path)["codecs"]
    if [c["name"] for c in codecs] != ["sharding_indexed"]:
        assert arr.shards is None, arr.shards
        return "chunked"
    conf = codecs[0]["configuration"]
    assert arr.shards is not None, "zarr-python did not see the sharding codec"
    assert tuple(arr.chunks) == tuple(conf["chunk_shape"]), (arr.chunks, conf)
    assert [c["name"] for c in conf["index_codecs"]] == ["bytes", "crc32c"], conf
    assert conf["index_location"] == "end", conf
    return "sharded"


def main():
    args = sys.argv[1:]
    expect = None
    if len(args) == 3 and args[1] == "--expect":
        expect = args[2]
        args = args[:1]
    if len(args) != 1 or expect not in (None, "chunked", "sharded"):
        sys.exit("usage: check_zarr.py OUTPUT_DIR [--expect chunked|sharded]")
    path = args[0]
    arr = zarr.open_array(path, mode="r", storage_options=storage_options(path))
    layout = layout_of(path, arr)
    if expect is not None and layout != expect:
        sys.exit(f"{path}: a {layout} output, expected {expect}")
    attrs = arr.attrs["nwp_fields"]
    assert attrs["version"] == 1, attrs
    G, V, S, ny, nx = arr.shape
    assert arr.dtype == np.float32, arr.dtype
    assert tuple(arr.metadata.dimension_names) == ("init_time", "variable", "step", "y", "x")
    for g in range(G):
        got = arr[g]
        want = expected(g, V, S, ny, nx, attrs["seed"], attrs["noise_bits"])
        bad = np.argwhere(got != want)
        if len(bad):
            v, s, y, x = bad[0]
            sys.exit(f"{path}: value at (g {g}, v {v}, s {s}, y {y}, x {x}) is {got[v, s, y, x]}, "
                     f"expected {want[v, s, y, x]}")
    shards = f", shards {arr.shards}" if arr.shards is not None else ""
    print(f"zarr-python {zarr.__version__} read {path} ({layout}): shape {arr.shape}, "
          f"chunks {arr.chunks}{shards}, all {arr.size} values equal the closed form")


if __name__ == "__main__":
    main()
