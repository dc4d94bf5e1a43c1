"""Write data/ingest/arrays.npz.manifest.json: what numpy reads from arrays.npz, so the
ingest test checks the stored values against numpy's, not against our own reader.

Per array: dtype, shape, first/last value, and two checksums in the HDF5 manifest's scheme
(../shared/fixtures/README.md): the raw little-endian bytes (`raw`), and the values as the
store keeps them, cast to float32 and then to float64 (`stored_f64`). Checksum: bytes
zero-padded to a multiple of 8, read as u64 LE words w[0..n]; s1 = sum(w) mod 2^64,
s2 = sum((i+1) w[i]) mod 2^64, printed as s1:s2 in hex.
"""
import json
import os

import numpy as np

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ingest")


def checksum(b: bytes) -> str:
    b = b + b"\0" * (-len(b) % 8)
    w = np.frombuffer(b, dtype="<u8").astype(object)
    s1 = sum(w) % 2**64
    s2 = sum((i + 1) * int(x) for i, x in enumerate(w)) % 2**64
    return f"{s1:016x}:{s2:016x}"


out = {}
with np.load(os.path.join(here, "arrays.npz")) as z:
    for name in sorted(z.files):
        a = z[name]
        c = np.ascontiguousarray(a)
        out[name] = {
            "dtype": a.dtype.str,
            "shape": list(a.shape),
            "first": float(c.flat[0]),
            "last": float(c.flat[-1]),
            "raw": checksum(c.astype(c.dtype.newbyteorder("<")).tobytes()),
            "stored_f64": checksum(c.astype(np.float32).astype("<f8").tobytes()),
        }
with open(os.path.join(here, "arrays.npz.manifest.json"), "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps(out, indent=1))
