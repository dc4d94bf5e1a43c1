"""Write the inputs of `dynsim bench ingest` (not committed: about 1.5 GB).

Usage: python3 data/bench/make_ingest_bench.py OUT_DIR [--recordings 5] [--trials 100] [--time 1000] [--units 256]

Needs numpy, scipy, h5py, pyarrow. Seeded. Activations are smooth (AR(1)-filtered noise
through tanh), like recorded RNN states, so that gzip has something to compress.

- plain.h5: /ckpt_<i>/activations, float32, contiguous, no filter
- gzip.h5:  the same datasets chunked (4, 250, 64) with gzip level 4 + shuffle (h5py's usual)
- table.parquet: a long table (checkpoint, trial, time, x: fixed_size_list<float>[units]),
  written by pyarrow (snappy, the pandas default)
"""
import argparse
import os

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.signal import lfilter

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--recordings", type=int, default=5)
ap.add_argument("--trials", type=int, default=100)
ap.add_argument("--time", type=int, default=1000)
ap.add_argument("--units", type=int, default=256)
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
rng = np.random.default_rng(0)


def recording():
    noise = rng.standard_normal((a.trials, a.time, a.units), dtype=np.float32)
    return np.tanh(lfilter([0.1], [1.0, -0.95], noise, axis=1)).astype(np.float32)


plain = h5py.File(os.path.join(a.out, "plain.h5"), "w")
gz = h5py.File(os.path.join(a.out, "gzip.h5"), "w")
writer = None
for i in range(a.recordings):
    x = recording()
    plain.create_dataset(f"ckpt_{i}/activations", data=x)
    gz.create_dataset(f"ckpt_{i}/activations", data=x, chunks=(4, 250, 64), compression="gzip",
                      compression_opts=4, shuffle=True)
    n = a.trials * a.time
    t = pa.table({
        "checkpoint": pa.array(np.full(n, i, dtype=np.int64)),
        "trial": pa.array(np.repeat(np.arange(a.trials, dtype=np.int32), a.time)),
        "time": pa.array(np.tile(np.arange(a.time, dtype=np.int32), a.trials)),
        "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), a.units),
    })
    if writer is None:
        writer = pq.ParquetWriter(os.path.join(a.out, "table.parquet"), t.schema)
    writer.write_table(t, row_group_size=65536)
plain.close()
gz.close()
writer.close()
print({f: os.path.getsize(os.path.join(a.out, f)) for f in ("plain.h5", "gzip.h5", "table.parquet")})
