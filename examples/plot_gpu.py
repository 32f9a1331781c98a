"""
Running on a GPU
================

Every solver takes ``device``: ``"auto"`` (the default) picks CUDA when PyTorch sees a
GPU and the CPU otherwise; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``
choose explicitly. This example runs as is on either kind of machine and prints what it
used.

Installing: install the PyTorch build for your machine first, then this package (pip
keeps the torch you have). On a GPU machine that is the CUDA build for your driver, e.g.
``pip install torch --index-url https://download.pytorch.org/whl/cu126``; on a machine
without a GPU, the CPU build (``--index-url https://download.pytorch.org/whl/cpu``)
avoids downloading several GB of CUDA libraries. See :doc:`/user_guide/gpu`.
"""

import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.devices import resolve_device
from sklearn_attns.persistence import load_model, save_model
from sklearn_attns.systems import SpringMass

warnings.filterwarnings("ignore", category=ConvergenceWarning)

print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
print(f'device="auto" resolves to: {resolve_device("auto")}')

# %%
# Fit and predict
# ---------------
# The data stays in NumPy; the solver moves what it needs to the device. States and the
# base integrator run in float64 there, the network in ``dtype`` (float32 by default).
system = SpringMass(n_masses=10)
X = make_trajectories(system, n_trajectories=100, t_end=10.0, dt=0.2, fine_dt=1e-3, random_state=0)

start = time.perf_counter()
solver = AttNSSolver(system=system, dt=0.2, width=256, max_epochs=10, batch_size=512, device="auto",
                     random_state=0).fit(X)
elapsed = time.perf_counter() - start
print(f"fitted on {solver.device_} in {elapsed:.1f} s, training MSE {-solver.score(X):.3g}")

u0 = system.sample_initial_conditions(1000, random_state=1)
start = time.perf_counter()
paths = solver.predict(u0, n_steps=50)
elapsed = time.perf_counter() - start
print(f"predicted {paths.shape} ({type(paths).__name__}, {paths.dtype}) in {elapsed:.2f} s")

# %%
# Moving a fitted model between machines
# --------------------------------------
# A pickle stores the weights as CPU tensors and the device the model was on. Unpickled
# where that device exists, the model goes back to it; a model fitted on a GPU and
# unpickled on a machine without CUDA is loaded on the CPU with a ``UserWarning``. To
# get a CPU copy on a GPU machine, unpickle it in a process that sees no GPU
# (``CUDA_VISIBLE_DEVICES=""``), as done here in a subprocess.
blob = pickle.dumps(solver)
restored = pickle.loads(blob)
print(f"unpickled here on: {restored.device_}")

script = (
    "import pickle, sys, warnings\n"
    "warnings.simplefilter('always')\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    model = pickle.load(sys.stdin.buffer)\n"
    "print('unpickled without a GPU on:', model.device_)\n"
    "for w in caught:\n"
    "    print('warning:', w.message)\n"
)
result = subprocess.run([sys.executable, "-c", script], input=blob, capture_output=True, check=True,
                        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
print(result.stdout.decode().strip())

# %%
# The safe format of :func:`~sklearn_attns.persistence.save_model` also stores CPU
# arrays and the device's name; :func:`~sklearn_attns.persistence.load_model` follows
# the same rule (the stored device where it exists, else the CPU with a warning).
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "solver.npz")
    save_model(solver, path)
    loaded = load_model(path)
    print(f"save_model: {os.path.getsize(path) / 1e6:.2f} MB; load_model put it on {loaded.device_}")
    same = (loaded.predict(u0[:5], n_steps=10) == solver.predict(u0[:5], n_steps=10)).all()
    print(f"identical predictions after the round trip: {bool(same)}")
