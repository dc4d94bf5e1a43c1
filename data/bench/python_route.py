"""The Python route `dynsim bench ingest` compares with: read every recording of an input
file (h5py for HDF5, pyarrow for Parquet) and write it as a Parquet file with pyarrow
(columns trial, time, x: fixed_size_list<float>[units], zstd), one file per recording,
which is what dynsim's ingest does. Prints JSON: seconds, float32 bytes, peak RSS bytes.

Usage: python3 data/bench/python_route.py INPUT OUT_DIR
"""
import json
import os
import resource
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
t0 = time.perf_counter()
values = 0


def write(name, x):
    global values
    tr, tm, u = x.shape
    t = pa.table({
        "trial": pa.array(np.repeat(np.arange(tr, dtype=np.uint32), tm)),
        "time": pa.array(np.tile(np.arange(tm, dtype=np.uint32), tr)),
        "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), u),
    })
    pq.write_table(t, os.path.join(out, name + ".parquet"), compression="zstd", compression_level=1)
    values += x.size


if src.endswith(".h5"):
    import h5py

    with h5py.File(src, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in names:
            write(n.replace("/", "_"), f[n][...].astype(np.float32))
else:
    t = pq.read_table(src)
    ck = np.asarray(t.column("checkpoint"))
    for c in np.unique(ck):
        sub = t.filter(pa.compute.equal(t.column("checkpoint"), c))
        order = np.lexsort((np.asarray(sub.column("time")), np.asarray(sub.column("trial"))))
        x = np.asarray(sub.column("x").combine_chunks().flatten(), dtype=np.float32)
        u = sub.column("x").type.list_size
        ntr = len(np.unique(np.asarray(sub.column("trial"))))
        x = x.reshape(-1, u)[order].reshape(ntr, -1, u)
        write(f"ckpt_{c}", x)
secs = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": secs, "bytes": values * 4, "peak_rss_bytes": rss}))
