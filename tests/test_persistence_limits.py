"""What a model file may make load_model decompress, and what save_model cannot store.

load_model checks every member of the archive against the model its description declares
(names, declared sizes, then each .npy header) before decompressing any array data, so a
small file cannot inflate into a large allocation; these tests build such files by hand.
"""

import io
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import sklearn_attns
from sklearn_attns import HybridSolverRegressor, make_trajectories
from sklearn_attns.persistence import load_model, save_model
from sklearn_attns.systems import SpringMass

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SYSTEM = SpringMass(n_masses=2)  # 4 state components
X = make_trajectories(SYSTEM, n_trajectories=6, t_end=0.4, dt=0.1, fine_dt=0.01, random_state=0)
SMALL = dict(system=SYSTEM, dt=0.1, width=16, max_epochs=1, batch_size=8, device="cpu", random_state=0)
FIRST_WEIGHT = "weight/network.0.weight.npy"  # nn.Linear(4, width).weight: shape (width, 4), float32


def fit_and_save(path, **params):
    """A fitted model, its file and its members ``{name: bytes}``."""
    estimator = HybridSolverRegressor(**{**SMALL, **params}).fit(X)
    save_model(estimator, path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return estimator, path, members


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A fitted width-16 model, its file and its members."""
    return fit_and_save(tmp_path_factory.mktemp("model") / "model.npz")


def npy_header(shape, descr):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_archive(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def damage_last_byte(path, name):
    """Flip the last data byte of a stored member: reading it to its end then fails zip's CRC check,
    so a load that fails for another reason has not read that member's data."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    data = bytearray(Path(path).read_bytes())
    local = data[info.header_offset: info.header_offset + 30]  # the local header, then name and extra field
    start = info.header_offset + 30 + sum(int.from_bytes(local[i: i + 2], "little") for i in (26, 28))
    data[start + info.compress_size - 1] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    return path


def assert_reading_fails(path, name):
    """The damaged member really fails when it is read (the control for damage_last_byte)."""
    with zipfile.ZipFile(path) as archive, pytest.raises(zipfile.BadZipFile, match="CRC"):
        archive.read(name)


LOAD_AND_MEASURE = """
import resource, sys, torch
torch.set_num_threads(1)
from sklearn_attns.persistence import load_model
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_model(sys.argv[1])
    message = "loaded"
except ValueError as exc:
    message = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(after - before)
print(message)
"""


def load_in_fresh_process(path):
    """Peak-memory growth (bytes) of ``load_model(path)`` in a fresh interpreter, and its error message."""
    package_root = str(Path(sklearn_attns.__file__).resolve().parents[1])  # the checkout under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", LOAD_AND_MEASURE, str(path)], capture_output=True,
                            text=True, env=env, timeout=120, check=True)
    growth_kib, message = result.stdout.split("\n", 1)
    return int(growth_kib) * 1024, message.strip()


# --- members are checked before they are decompressed --------------------------------------------


@pytest.mark.slow  # a fresh interpreter imports torch: several seconds
@pytest.mark.skipif(sys.platform != "linux",
                    reason="ru_maxrss is in KiB on Linux (in bytes on macOS, absent on Windows)")
def test_a_compressed_bomb_member_is_refused_before_it_is_inflated(saved, tmp_path):
    """A 256 MiB array of zeros deflates to about 1 MiB; appended to a valid model file as an
    extra member, it must be refused by name without being inflated. (256 MiB rather than 1 GiB:
    deflating 1 GiB takes 5 to 10 s on one core; any size far above the 50 MB margin shows it.)"""
    _, path, _ = saved
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(path.read_bytes())
    n_values = 2**25  # float64: 256 MiB
    chunk = bytes(2**24)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("weight/bomb.npy", "w", force_zip64=True) as member:
        member.write(npy_header((n_values,), "<f8"))
        for _ in range(8 * n_values // len(chunk)):
            member.write(chunk)
    assert bomb.stat().st_size < path.stat().st_size + 2 * 2**20  # the file itself stays small

    growth, message = load_in_fresh_process(bomb)
    assert "weight/bomb.npy" in message, message
    assert growth < 50 * 2**20, f"loading grew the peak memory by {growth / 2**20:.0f} MiB"


def test_a_header_declaring_another_shape_is_refused_before_the_data_is_read(tmp_path):
    """The member has the size of the (1024, 4) weight of a width-1024 model, but its .npy header
    declares (4096, 4): it is refused from the header alone. Its last byte is damaged, so reading
    its data would fail on the CRC instead (zip reads ahead 4 KiB, well short of the 16 KiB)."""
    _, _, members = fit_and_save(tmp_path / "model.npz", width=1024, max_epochs=0)
    declared = npy_header((4096, 4), "<f4") + np.zeros((1024, 4), np.float32).tobytes()
    path = write_archive(tmp_path / "wide.npz", {**members, FIRST_WEIGHT: declared})
    assert_reading_fails(damage_last_byte(path, FIRST_WEIGHT), FIRST_WEIGHT)
    with pytest.raises(ValueError, match="model file") as info:
        load_model(path)
    message = str(info.value)
    assert FIRST_WEIGHT in message and "(4096, 4)" in message and "(1024, 4)" in message, message


@pytest.mark.parametrize("kind", ["extra", "missing"])
def test_unknown_and_missing_members_are_named(saved, tmp_path, kind):
    _, _, members = saved
    members = dict(members)
    if kind == "extra":
        members["weight/extra.npy"] = npy(np.zeros(3, np.float32))
    else:
        del members["weight/input_scale.npy"]
    path = write_archive(tmp_path / "model.npz", members)
    with pytest.raises(ValueError, match="weight/extra.npy" if kind == "extra" else "weight/input_scale.npy"):
        load_model(path)


def test_a_member_bigger_than_its_array_is_refused_from_its_declared_size(saved, tmp_path):
    """A known member whose declared size exceeds what a (16, 4) float32 array needs (here a valid
    .npy of shape (4096, 4)) is refused before any of it is read (its data is damaged)."""
    _, _, members = saved
    wide = npy(np.zeros((4096, 4), np.float32))
    path = write_archive(tmp_path / "big.npz", {**members, FIRST_WEIGHT: wide})
    assert_reading_fails(damage_last_byte(path, FIRST_WEIGHT), FIRST_WEIGHT)
    with pytest.raises(ValueError, match=rf"{FIRST_WEIGHT}' holds \d+ bytes, more than"):
        load_model(path)


def test_a_large_declared_model_in_a_small_file_is_refused(saved, tmp_path):
    """A description declaring width 4096 and depth 3 (a 64 MiB hidden layer), with every member
    present and of the declared shape but zeros deflated about a thousandfold: refused on the
    inflation of the archive, whose members are not read (the hidden layer's data is damaged)."""
    _, _, members = saved
    metadata = json.loads(str(np.load(io.BytesIO(members["metadata.npy"]))))
    metadata["fitted"]["model_params_"].update(width=4096, depth=3)
    shapes = {"network.0.weight": (4096, 4), "network.0.bias": (4096,), "network.2.weight": (4096, 4096),
              "network.2.bias": (4096,), "network.4.weight": (4, 4096), "network.4.bias": (4,)}
    crafted = {name: data for name, data in members.items() if not name.startswith("weight/network.")}
    crafted.update({f"weight/{key}.npy": npy(np.zeros(shape, np.float32)) for key, shape in shapes.items()})
    crafted.update({f"weight/network.{i}.{part}.npy": members[f"weight/network.1.{part}.npy"]
                    for i in (1, 3) for part in ("numerator", "denominator")})  # the rational activations
    crafted["metadata.npy"] = npy(np.array(json.dumps(metadata)))
    path = write_archive(tmp_path / "large.npz", crafted, compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    damage_last_byte(path, "weight/network.2.weight.npy")
    with pytest.raises(ValueError, match="inflate"):
        load_model(path)


@pytest.mark.parametrize("width, depth", [(16, 2), (2048, 3)])
def test_a_recompressed_model_still_loads(tmp_path, width, depth):
    """Deflating a valid file is no reason to refuse it: an untrained network (whose last layer
    is zero) of 17 MiB, past the size where inflation is checked, loads as well as a small one."""
    estimator = HybridSolverRegressor(**{**SMALL, "width": width, "depth": depth, "max_epochs": 0}).fit(X)
    stored = tmp_path / "stored.npz"
    save_model(estimator, stored)
    with zipfile.ZipFile(stored) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    deflated = write_archive(tmp_path / "deflated.npz", members, compression=zipfile.ZIP_DEFLATED)
    assert deflated.stat().st_size < stored.stat().st_size
    loaded = load_model(deflated)
    np.testing.assert_array_equal(loaded.predict(X[:, 0], 3), estimator.predict(X[:, 0], 3))


def test_an_oversized_description_is_refused_unread(saved, tmp_path):
    _, _, members = saved
    huge = npy(np.array(" " * (4 * 2**20 + 1)))  # UCS-4: 16 MiB and 4 bytes of text
    path = write_archive(tmp_path / "huge.npz", {**members, "metadata.npy": huge})
    assert_reading_fails(damage_last_byte(path, "metadata.npy"), "metadata.npy")
    with pytest.raises(ValueError, match="metadata.npy' holds"):
        load_model(path)


def test_repeated_member_names_are_refused(saved, tmp_path):
    _, _, members = saved
    path = write_archive(tmp_path / "model.npz", members)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate name
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(FIRST_WEIGHT, npy(np.zeros((16, 4), np.float32)))
    with pytest.raises(ValueError, match="repeats"):
        load_model(path)


# --- what save_model cannot store ------------------------------------------------------------------


def test_a_random_state_instance_is_saved_as_none_with_a_warning(tmp_path):
    estimator = HybridSolverRegressor(**{**SMALL, "random_state": np.random.RandomState(0)}).fit(X)
    with pytest.warns(UserWarning, match=r"random_state is a RandomState instance.*saved as None"):
        save_model(estimator, tmp_path / "model.npz")
    assert load_model(tmp_path / "model.npz").random_state is None


@pytest.mark.parametrize("random_state", [None, 7, np.int64(7)])
def test_a_storable_random_state_is_saved_silently(tmp_path, random_state):
    estimator = HybridSolverRegressor(**{**SMALL, "random_state": random_state, "max_epochs": 0}).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        save_model(estimator, tmp_path / "model.npz")
    assert load_model(tmp_path / "model.npz").random_state == random_state
