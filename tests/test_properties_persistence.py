"""Property-based robustness of the safe model format (save_model / load_model).

* a round trip keeps the predictions exactly, for any small configuration;
* a damaged file (flipped bits, truncation, random bytes, metadata that is not what
  save_model writes, missing or extra keys, weights of the wrong shape or dtype) fails to load
  with a ValueError: never another exception, never a hang, never a different model;
* bad arguments are named.
"""

import io
import json
import warnings

import numpy as np
import pytest
from helpers import damping, interrupt_training_after, no_hang, raises_named
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_attns import HybridSolverRegressor, NeurVecSolver, make_trajectories
from sklearn_attns.persistence import load_model, save_model
from sklearn_attns.rollout import RolloutWarning
from sklearn_attns.systems import ODESystem, SpringMass

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")




SYSTEM = SpringMass(n_masses=2, random_state=3)  # not the default seed: a lost parameter shows
X = make_trajectories(SYSTEM, n_trajectories=6, t_end=0.4, dt=0.1, fine_dt=0.01, random_state=0)
SMALL = dict(system=SYSTEM, dt=0.1, width=8, max_epochs=1, batch_size=8, device="cpu", random_state=0)


def to_bytes(estimator):
    buffer = io.BytesIO()
    save_model(estimator, buffer)
    return buffer.getvalue()


def load_bytes(data, system=None):
    with no_hang():
        return load_model(io.BytesIO(data), system=system)


def predictions(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RolloutWarning)
        return estimator.predict(X[:, 0], 3)


@pytest.fixture(scope="module")
def model():
    estimator = HybridSolverRegressor(**SMALL).fit(X)
    return estimator, to_bytes(estimator), predictions(estimator)


def read_archive(data):
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return json.loads(str(arrays.pop("metadata"))), arrays


def write_archive(metadata, arrays):
    buffer = io.BytesIO()
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    np.savez(buffer, metadata=np.array(text), **arrays)
    return buffer.getvalue()


def loads_the_same_model_or_fails_cleanly(data, expected):
    """The damaged file raises ValueError, or it loads the very model that was saved."""
    try:
        loaded = load_bytes(data)
    except ValueError:
        return False
    np.testing.assert_array_equal(predictions(loaded), expected)
    return True


# --- round trips --------------------------------------------------------------------------------

configs = st.fixed_dictionaries({
    "correction": st.sampled_from(["attns", "attns-m", "neurvec", "csm", "fsnet", "none"]),
    "integrator": st.sampled_from(["euler", "heun", "rk3", "rk4"]),
    "substeps": st.integers(1, 3),
    "depth": st.integers(1, 3),
    "activation": st.sampled_from([None, "rational", "sine", "tanh"]),
    "skip_connection": st.booleans(),
    "module": st.sampled_from(["mlp", "mlp", "lstm", "transformer"]),
    "dtype": st.sampled_from(["float32", "float64"]),
    "dt": st.sampled_from([0.1, 0.2]),
    "max_epochs": st.integers(0, 1),
})


@settings(max_examples=15)
@given(config=configs, numpy_scalars=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_round_trip_keeps_predictions_and_parameters(config, numpy_scalars, seed):
    params = {**SMALL, **config, "data_dt": 0.1, "random_state": seed}
    if numpy_scalars:  # NumPy scalars are valid parameters, and must be stored as well
        params.update(depth=np.int32(config["depth"]), dt=np.float64(config["dt"]),
                      skip_connection=np.bool_(config["skip_connection"]), random_state=np.int64(seed),
                      width=np.int64(8))
    estimator = HybridSolverRegressor(**params).fit(X)
    loaded = load_bytes(to_bytes(estimator))
    np.testing.assert_array_equal(predictions(loaded), predictions(estimator))
    assert loaded.score(X) == estimator.score(X)
    original = estimator.get_params()
    for key, value in loaded.get_params().items():
        if key != "system" and not key.startswith("system__"):
            assert value == original[key], key
    assert loaded.system.get_params() == SYSTEM.get_params()


def test_a_file_of_format_version_2_loads_as_one_substep(model):
    """Version 2 predates ``substeps``: such a file is the same model with one substep."""
    estimator, saved, expected = model
    metadata, arrays = read_archive(saved)
    assert metadata["version"] == 4 and metadata["params"]["substeps"] == 1
    del metadata["params"]["substeps"], metadata["fitted"]["model_params_"]["substeps"]
    del metadata["params"]["degree"]
    loaded = load_bytes(write_archive(dict(metadata, version=2), arrays))
    assert loaded.substeps == 1 and loaded.model_params_ == estimator.model_params_
    np.testing.assert_array_equal(predictions(loaded), expected)
    with pytest.raises(ValueError, match="missing keys"):  # a version-4 file must have them
        load_bytes(write_archive(metadata, arrays))


def test_a_file_of_format_version_3_loads_with_the_default_degree(model):
    """Version 3 predates ``degree`` (and polynomial corrections): its estimator has the default."""
    estimator, saved, expected = model
    metadata, arrays = read_archive(saved)
    del metadata["params"]["degree"]
    loaded = load_bytes(write_archive(dict(metadata, version=3), arrays))
    assert loaded.degree == HybridSolverRegressor().degree and loaded.model_params_ == estimator.model_params_
    np.testing.assert_array_equal(predictions(loaded), expected)


def test_round_trip_of_a_user_system_needs_it_back(model):
    estimator = NeurVecSolver(**{**SMALL, "system": ODESystem(rhs=damping, n_state=4)}).fit(X)
    data = to_bytes(estimator)
    with raises_named("system"):
        load_bytes(data)
    with raises_named("system", "n_state"):
        load_bytes(data, system=ODESystem(rhs=damping, n_state=3))
    with raises_named("system"):
        load_bytes(data, system="damping")
    np.testing.assert_array_equal(predictions(load_bytes(data, system=damping)), predictions(estimator))


# --- damaged files --------------------------------------------------------------------------------


@settings(max_examples=60)
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), min_size=1, max_size=3))
def test_flipped_bits_fail_cleanly_or_change_nothing(model, flips):
    _, data, expected = model
    damaged = bytearray(data)
    for position, bit in flips:
        damaged[position % len(damaged)] ^= 1 << bit
    loads_the_same_model_or_fails_cleanly(bytes(damaged), expected)


@settings(max_examples=40)
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files_fail_cleanly(model, fraction):
    _, data, _ = model
    with pytest.raises(ValueError, match="model file"):
        load_bytes(data[: int(fraction * len(data))])


@given(data=st.one_of(
    st.binary(max_size=4096),
    st.binary(max_size=2048).map(lambda b: b"PK\x03\x04" + b),  # a zip header, then noise
    st.binary(max_size=2048).map(lambda b: b"\x93NUMPY\x01\x00" + b),  # an .npy header, then noise
))
def test_random_bytes_fail_cleanly(data):
    with pytest.raises(ValueError, match="model file"):
        load_bytes(data)


def test_other_numpy_files_fail_cleanly(tmp_path):
    for content in (np.arange(5), np.array({"a": 1}, dtype=object)):
        buffer = io.BytesIO()
        np.save(buffer, content, allow_pickle=True)
        with pytest.raises(ValueError, match="model file"):
            load_bytes(buffer.getvalue())
    buffer = io.BytesIO()
    np.savez(buffer, a=np.arange(3))
    with pytest.raises(ValueError, match="model file"):
        load_bytes(buffer.getvalue())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (st.lists(children, max_size=3)
                      | st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _replace(value, path, new):
    if not path:
        return new
    value = json.loads(json.dumps(value))  # a deep copy
    target = value
    for key in path[:-1]:
        target = target[key]
    if new is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = new
    return value


_DELETE = object()


@settings(max_examples=40)
@given(data=st.data())
def test_metadata_with_a_missing_key_fails_cleanly(model, data):
    _, saved, _ = model
    metadata, arrays = read_archive(saved)
    keys = [path for path in _paths(metadata) if path and isinstance(path[-1], str)]
    path = data.draw(st.sampled_from(keys), label="path")
    with pytest.raises(ValueError):
        load_bytes(write_archive(_replace(metadata, path, _DELETE), arrays))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_metadata_with_any_value_replaced_fails_cleanly_or_loads_a_working_model(model, data):
    """A changed value may be a valid other parameter (dt=0.5 is a model too), so the file may
    load; but nothing may fail except with a ValueError, and a loaded model must work."""
    _, saved, expected = model
    metadata, arrays = read_archive(saved)
    path = data.draw(st.sampled_from(list(_paths(metadata))), label="path")
    new = data.draw(json_values, label="value")
    try:
        loaded = load_bytes(write_archive(_replace(metadata, path, new), arrays))
    except ValueError:
        return
    if loaded.compile:
        return  # a valid request for a compiled network: tens of seconds, nothing to learn
    with no_hang(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RolloutWarning)  # a valid but huge dt may blow up, with a warning
        paths = loaded.predict(X[:, 0], 3)
    assert paths.shape == expected.shape


@pytest.mark.parametrize("text", ["", "{", "null", "[]", "3", '"sklearn-attns-model"', "{}", '{"format": 1}',
                                  '{"format": "sklearn-attns-model", "version": 2}'])
def test_metadata_that_is_no_model_description_fails_cleanly(model, text):
    _, saved, _ = model
    _, arrays = read_archive(saved)
    with pytest.raises(ValueError, match="model file|version"):
        load_bytes(write_archive(text, arrays))


@given(text=st.text(max_size=50))
def test_metadata_that_is_not_json_fails_cleanly(model, text):
    _, saved, _ = model
    _, arrays = read_archive(saved)
    with pytest.raises(ValueError):
        load_bytes(write_archive(text, arrays))


@st.composite
def damaged_arrays(draw, arrays):
    """The stored arrays with one of them missing, added, reshaped or retyped."""
    arrays = dict(arrays)
    key = draw(st.sampled_from(sorted(arrays)))
    kind = draw(st.sampled_from(["drop", "extra", "reshape", "retype", "index"]))
    if kind == "drop":
        del arrays[key]
    elif kind == "extra":
        arrays[draw(st.sampled_from(["weight/network.9.weight", "weight/extra", "weight/input_mean2"]))] = (
            np.zeros(draw(st.integers(0, 4)), dtype=np.float32))
    elif kind == "reshape":
        key = draw(st.sampled_from(sorted(k for k in arrays if k.startswith("weight/"))))
        shape = draw(st.lists(st.integers(0, 9), max_size=3).map(tuple)
                     .filter(lambda s: s != arrays[key].shape))
        arrays[key] = np.zeros(shape, dtype=arrays[key].dtype)
    elif kind == "retype":
        key = draw(st.sampled_from(sorted(k for k in arrays if k.startswith("weight/"))))
        dtype = draw(st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.bool_, np.complex64])
                     .filter(lambda d: d != arrays[key].dtype))
        arrays[key] = arrays[key].astype(dtype)
    else:
        arrays["train_indices_"] = draw(st.sampled_from([
            np.arange(6.0), np.arange(6).reshape(2, 3), -np.arange(1, 7), np.array(["a"]), np.int64(3)]))
    return arrays


@settings(max_examples=50)
@given(data=st.data())
def test_weights_of_the_wrong_shape_or_dtype_or_missing_fail_cleanly(model, data):
    _, saved, _ = model
    metadata, arrays = read_archive(saved)
    with pytest.raises(ValueError, match="model file"):
        load_bytes(write_archive(metadata, data.draw(damaged_arrays(arrays))))


@pytest.mark.parametrize("path, value", [
    # would allocate terabytes before the weights are compared
    (("fitted", "model_params_", "width"), 10**12),
    (("fitted", "model_params_", "depth"), 10**7),  # would build ten million layers
    (("fitted", "n_features_in_"), 10**12),
    (("system", "params", "n_masses"), 10**9),
    (("system", "class"), "ElasticPendulum"),
    (("system", "class"), "__builtins__"),
    (("class", ), "RolloutWarning"),
    (("class", ), "__class__"),
    (("device",), "gpu:0"),
    (("fitted", "stride_"), 3),
    (("fitted", "predict"), 1),  # no attribute of the estimator may be set from the file
    (("params", "shell"), "rm -rf /"),
])
def test_crafted_metadata_is_refused_quickly(model, path, value):
    _, saved, _ = model
    metadata, arrays = read_archive(saved)
    with no_hang(10), pytest.raises(ValueError):
        load_bytes(write_archive(_replace(metadata, path, value), arrays))


# --- bad arguments ----------------------------------------------------------------------------


@given(path=st.one_of(st.none(), st.integers(), st.floats(), st.just([b"model.npz"]), st.just({"path": 1})))
def test_bad_paths_are_named(model, path):
    estimator, _, _ = model
    with raises_named("path"):
        save_model(estimator, path)
    with raises_named("path"):
        load_model(path)


@given(estimator=st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just(SpringMass())))
def test_save_model_names_a_bad_estimator(estimator, tmp_path_factory):
    with raises_named("estimator"):
        save_model(estimator, tmp_path_factory.mktemp("bad") / "m.npz")


def test_unfitted_estimators_are_refused(tmp_path):
    with pytest.raises(ValueError, match="fitted"):
        save_model(HybridSolverRegressor(**SMALL), tmp_path / "m.npz")


def test_missing_files_are_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="model file"):
        load_model(tmp_path / "nothing-here.npz")


@settings(max_examples=10)
@given(k=st.integers(0, 8))
def test_an_interrupted_fit_saves_and_loads(k):
    """An interrupted fit may leave unusual attribute values (an infinite best loss); the file
    still round-trips."""
    estimator = HybridSolverRegressor(**{**SMALL, "max_epochs": 2, "batch_size": 4})
    with interrupt_training_after(k), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            estimator.fit(X)
        except KeyboardInterrupt:
            pass  # the estimator keeps the best weights so far
    loaded = load_bytes(to_bytes(estimator))
    np.testing.assert_array_equal(predictions(loaded), predictions(estimator))
