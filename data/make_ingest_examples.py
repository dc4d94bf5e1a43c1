"""Make the small ingest examples in data/ingest/ (committed; rerun only to change them).

Requires numpy, h5py, pyarrow. Everything is seeded.

- study.h5: an h5py file laid out the way training scripts dump activations:
  /<group>/checkpoint_<step>/<task>/trial_<k>  (time x units, one dataset per trial)
  with attributes on the groups (seed, lr, arch) -> keys.
- long_table.parquet: a pandas-style long table, key columns + trial + time + u0..u7.
- list_table.parquet: the same recordings with the units in one list column.
- ragged_table.parquet: one trial is missing a time step.
- nonfinite.h5: a NaN in an otherwise fine recording.
- arrays.npz: two arrays (np.savez_compressed).
"""
import os

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ingest")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20261127)

with h5py.File(os.path.join(out, "study.h5"), "w") as f:
    f.attrs["arch"] = "leaky_rnn"
    for group, seed in (("pretrained", 1), ("scratch", 2)):
        g = f.create_group(group)
        g.attrs["seed"] = np.int64(seed)
        g.attrs["lr"] = np.float32(3e-4)
        for step in (0, 100, 200):
            c = g.create_group(f"checkpoint_{step}")
            c.attrs["progress"] = step / 200.0
            for task in ("go", "anti"):
                t = c.create_group(task)
                for k in range(4):
                    x = rng.standard_normal((25, 6)).astype(np.float32)
                    t.create_dataset(f"trial_{k}", data=x, chunks=(5, 6), compression="gzip", shuffle=True)

rows = []
cols = {"group": [], "checkpoint": [], "trial": [], "time": []}
units = {f"u{u}": [] for u in range(8)}
for group in ("a", "b"):
    for ckpt in (0, 10):
        x = rng.standard_normal((3, 12, 8))
        for tr in range(3):
            for tm in range(12):
                cols["group"].append(group)
                cols["checkpoint"].append(ckpt)
                cols["trial"].append(tr)
                cols["time"].append(tm)
                for u in range(8):
                    units[f"u{u}"].append(x[tr, tm, u])
table = pa.table({**cols, **units})
# shuffle the rows: ingest must put them back in (trial, time) order
perm = rng.permutation(table.num_rows)
table = table.take(pa.array(perm))
pq.write_table(table, os.path.join(out, "long_table.parquet"))

xs = np.stack([np.asarray(table.column(f"u{u}")) for u in range(8)], axis=1).astype(np.float32)
lt = pa.table({
    "group": table.column("group"),
    "checkpoint": table.column("checkpoint"),
    "trial": table.column("trial"),
    "time": table.column("time"),
    "x": pa.FixedSizeListArray.from_arrays(pa.array(xs.reshape(-1)), 8),
})
pq.write_table(lt, os.path.join(out, "list_table.parquet"))

mask = np.ones(table.num_rows, dtype=bool)
first = np.flatnonzero((np.asarray(table.column("trial")) == 1) & (np.asarray(table.column("time")) == 5))[0]
mask[first] = False
pq.write_table(table.filter(pa.array(mask)), os.path.join(out, "ragged_table.parquet"))

with h5py.File(os.path.join(out, "nonfinite.h5"), "w") as f:
    x = rng.standard_normal((2, 10, 3)).astype(np.float32)
    x[1, 4, 2] = np.nan
    f.create_dataset("acts", data=x)

np.savez_compressed(os.path.join(out, "arrays.npz"), ckpt_0=rng.standard_normal((2, 10, 3)), ckpt_5=rng.standard_normal((10, 3)).astype(np.float32))
print("wrote", sorted(os.listdir(out)))
