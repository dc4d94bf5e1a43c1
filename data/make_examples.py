"""Write the example recordings in data/examples/ from the golden fixtures in data/reference/.

Usage: python3 data/make_examples.py   (needs numpy)

lorenz_x.npy      16 trials x 200 steps x 3 units, the Lorenz recording shared by both Lorenz fixtures
lorenz_same.npy   a recording of the same regime (public_lorenz_same_regime y)
lorenz_other.npy  a recording of another regime (public_lorenz_other_regime y)
lorenz_same_f32.npy   lorenz_same as float32
lorenz_x_trial0.npy   the first trial of lorenz_x as one time x units trajectory
"""
import json
import pathlib

import numpy as np

here = pathlib.Path(__file__).resolve().parent
ref = here / "reference"
out = here / "examples"
out.mkdir(exist_ok=True)
same = json.loads((ref / "public_lorenz_same_regime.json").read_text())
other = json.loads((ref / "public_lorenz_other_regime.json").read_text())
x = np.array(same["x"], dtype=np.float64)
assert np.array_equal(x, np.array(other["x"])), "the two Lorenz fixtures share x"
np.save(out / "lorenz_x.npy", x)
np.save(out / "lorenz_same.npy", np.array(same["y"], dtype=np.float64))
np.save(out / "lorenz_other.npy", np.array(other["y"], dtype=np.float64))
np.save(out / "lorenz_same_f32.npy", np.array(same["y"], dtype=np.float32))
np.save(out / "lorenz_x_trial0.npy", x[0])
