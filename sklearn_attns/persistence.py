"""A safe file format for fitted solvers: weights and parameters, no code run on load.

``pickle`` and ``joblib.dump`` keep working (and keep a user's own ``rhs``), but loading
a pickle runs whatever code it names, so never load one from a stranger. A file written
by :func:`save_model` is a NumPy ``.npz`` archive of arrays plus a JSON description,
read back with ``allow_pickle=False``: loading it executes nothing from the file.
"""

import json
import numbers
import os

import numpy as np
import torch

from . import systems as _systems
from ._validation import check_count, check_positive, validate_parameter
from .corrections import CORRECTIONS
from .estimator import HybridSolverRegressor

__all__ = ["save_model", "load_model"]

FORMAT = "sklearn-attns-model"
# Version 2 stores the fitted network's parameters (``network_params_``); version 1 files
# take them from the estimator's parameters.
VERSION = 2
_READABLE_VERSIONS = (1, 2)
_FITTED_LISTS = ("loss_curve_", "validation_scores_")
_SCALING_BUFFERS = ("input_mean", "input_scale", "output_scale")
_BUILTIN_SYSTEMS = ("SpringMass", "ElasticPendulum", "KLinkPendulum")


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):  # NumPy ints, floats and bools
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    return value


def save_model(estimator, path):
    """Write a fitted :class:`HybridSolverRegressor` to ``path`` in the safe format.

    The built-in systems are stored by name and parameters. A user's own system is not
    stored (it is code): pass it again to :func:`load_model`.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_attns import AttNSSolver, make_trajectories
    >>> from sklearn_attns.persistence import save_model, load_model
    >>> from sklearn_attns.systems import SpringMass
    >>> X = make_trajectories(SpringMass(n_masses=2), n_trajectories=8, t_end=2.0, random_state=0)
    >>> solver = AttNSSolver(system=SpringMass(n_masses=2), width=16, max_epochs=1, device="cpu").fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "solver.npz")
    >>> save_model(solver, path)
    >>> bool((load_model(path).predict(X[:, 0], 5) == solver.predict(X[:, 0], 5)).all())
    True
    """
    if not isinstance(estimator, HybridSolverRegressor):
        raise TypeError(f"estimator must be a HybridSolverRegressor, got {type(estimator).__name__}.")
    if not hasattr(estimator, "model_"):
        raise ValueError("save_model needs a fitted estimator; call fit first.")
    _check_path(path, "write")
    params = {k: _jsonable(v) for k, v in estimator.get_params(deep=False).items()}
    system = params.pop("system")
    if type(system).__name__ in _BUILTIN_SYSTEMS and type(system).__module__ == _systems.__name__:
        system_spec = {"class": type(system).__name__,
                       "params": {k: _jsonable(v) for k, v in system.get_params().items()}}
    else:
        system_spec = None
    params["device"] = _jsonable(params["device"])
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None
    fitted, arrays, device = estimator._export_fitted()
    metadata = {
        "format": FORMAT, "version": VERSION, "class": type(estimator).__name__,
        "params": params, "system": system_spec, "fitted": fitted, "device": device,
    }
    try:
        text = json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the estimator's parameters cannot be stored as JSON: {exc}") from exc
    if hasattr(path, "write"):
        np.savez(path, metadata=np.array(text), **arrays)
        return
    with open(path, "wb") as file:
        np.savez(file, metadata=np.array(text), **arrays)


def _check_path(path, mode):
    method = "write" if mode == "write" else "read"
    if not isinstance(path, (str, bytes, os.PathLike)) and not hasattr(path, method):
        raise TypeError(f"path must be a str, a path-like object or a file object, got {type(path).__name__}.")


def load_model(path, system=None):
    """Load a model written by :func:`save_model`, executing nothing from the file.

    Parameters
    ----------
    path : str or path-like
    system : ODESystem or callable, default=None
        Required when the model was fitted on a user's own system; for built-in systems
        the stored one is used unless this is given.

    Raises
    ------
    ValueError
        If the file is not a complete sklearn-attns model file (corrupted, truncated,
        another format) or the system is missing.
    """
    if system is not None:
        system = _systems.as_system(system)
    _check_path(path, "read")
    try:
        with np.load(path, allow_pickle=False) as archive:
            metadata = json.loads(str(archive["metadata"][()]))
            weights = {k[len("weight/"):]: archive[k] for k in archive.files if k.startswith("weight/")}
            train_indices = archive["train_indices_"]
    except Exception as exc:  # a damaged archive fails in zipfile, zlib, numpy or json, in many ways
        raise ValueError(f"{path!s} is not a readable sklearn-attns model file: {type(exc).__name__}: {exc}") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path!s} is not an sklearn-attns model file.")
    if metadata.get("version") not in _READABLE_VERSIONS:
        raise ValueError(f"{path!s} has format version {metadata.get('version')}; this library reads "
                         f"{_READABLE_VERSIONS}.")
    if system is None and "system" in metadata and metadata["system"] is None:
        raise ValueError("this model was fitted on a user-defined system: pass it as load_model(path, system=...).")
    try:
        return _restore(metadata, weights, train_indices, system)
    except Exception as exc:  # whatever the stored values break is a fault of the file
        raise ValueError(f"{path!s} is not a valid sklearn-attns model file: {exc}") from exc


_METADATA_KEYS = {"format", "version", "class", "params", "system", "fitted", "device"}


def _check_keys(mapping, expected, what):
    if not isinstance(mapping, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(mapping).__name__}.")
    if set(mapping) != set(expected):
        missing, unknown = sorted(set(expected) - set(mapping)), sorted(set(mapping) - set(expected))
        raise ValueError(f"{what} has missing keys {missing} and unknown keys {unknown}.")


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _restore(metadata, weights, train_indices, system):
    """Build the estimator from checked metadata; every inconsistency raises."""
    import sklearn_attns.estimator as _estimator

    _check_keys(metadata, _METADATA_KEYS, "the metadata")
    name = metadata["class"]
    cls = getattr(_estimator, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, HybridSolverRegressor)):
        raise ValueError(f"unknown estimator class {name!r}.")
    _check_keys(metadata["params"], set(cls().get_params(deep=False)) - {"system"}, "params")
    spec = metadata["system"]
    if spec is not None:
        _check_keys(spec, {"class", "params"}, "system")
        if spec["class"] not in _BUILTIN_SYSTEMS:
            raise ValueError(f"unknown system class {spec['class']!r}.")
        # Every parameter, as written: a missing one would silently take its default.
        _check_keys(spec["params"], getattr(_systems, spec["class"])().get_params(), "system params")
    fitted = metadata["fitted"]
    expected_fitted = set(cls._FITTED_VALUES) - ({"network_params_"} if metadata["version"] == 1 else set())
    _check_keys(fitted, expected_fitted, "fitted")
    n_features = check_count(fitted["n_features_in_"], "n_features_in_")
    stride = check_count(fitted["stride_"], "stride_")
    data_dt = check_positive(fitted["data_dt_"], "data_dt_")
    check_count(fitted["n_iter_"], "n_iter_", minimum=0)
    for key in ("best_loss_", "best_validation_score_"):
        if fitted[key] is not None and not _is_real(fitted[key]):
            raise ValueError(f"{key} must be a number or null, got {fitted[key]!r}.")
    for key in _FITTED_LISTS:
        values = fitted[key]
        if not (isinstance(values, list) and all(_is_real(v) for v in values)) and not (
                key == "validation_scores_" and values is None):
            raise ValueError(f"{key} must be a list of numbers, got {values!r}.")
    device = metadata["device"]
    if not isinstance(device, str) or torch.device(device).type not in ("cpu", "cuda"):
        raise ValueError(f"device must name a CPU or CUDA device, got {device!r}.")

    stored_system = system is None
    if stored_system:
        system = getattr(_systems, spec["class"])(**spec["params"])
    estimator = cls(system=system, **metadata["params"])
    config = estimator._check_params()
    if stride != config.stride or not np.isclose(data_dt * stride, config.dt, rtol=1e-6, atol=0):
        raise ValueError(f"data_dt_={data_dt} and stride_={stride} do not fit dt={config.dt} and "
                         f"data_dt={estimator.data_dt}.")
    n_state = _systems.as_system(system).n_state
    if n_state is not None and n_state != n_features:
        raise ValueError(f"the model was fitted on {n_features} state components, but the system has {n_state}.")
    if stored_system:
        # Built-in systems check their parameters when used: use this one once.
        system.rhs(system.sample_initial_conditions(1, random_state=0))
    network = fitted.get("network_params_") or estimator._network_params(config.correction)
    _check_network_params(network, cls)

    # The stored parameters size the network that is built before the weights are checked
    # against it: parameters that no stored weights could fill would allocate without bound.
    for key, array in weights.items():
        # The scaling buffers are float64 whatever the network's dtype.
        expected = np.float64 if key in _SCALING_BUFFERS else np.dtype(network.get("dtype"))
        if array.dtype != expected:
            raise ValueError(f"weight {key!r} has dtype {array.dtype}, expected {np.dtype(expected)}.")
    n_values = sum(array.size for array in weights.values())
    if network["correction"] != "none":
        if max(n_features, network["width"]) > n_values:
            raise ValueError(f"n_features_in_={n_features} and width={network['width']} do not fit the "
                             f"{n_values} stored weights.")
        if network.get("depth", 1) > len(weights):
            raise ValueError(f"depth={network['depth']} does not fit the {len(weights)} stored weight arrays.")
    if train_indices.ndim != 1 or train_indices.dtype.kind not in "iu" or (train_indices < 0).any():
        raise ValueError("train_indices_ must be a 1-D array of non-negative integers.")

    arrays = {f"weight/{key}": array.copy() for key, array in weights.items()}
    estimator._restore_fitted({**fitted, "network_params_": network}, {**arrays, "train_indices_": train_indices},
                              device)
    return estimator


def _check_network_params(network, cls):
    """``network_params_`` as the estimator writes them: the keys its correction and module
    use, each value allowed by the estimator's parameter constraints."""
    if not isinstance(network, dict) or network.get("correction") not in CORRECTIONS:
        raise ValueError(f"network_params_ must be an object naming a correction, got {network!r}.")
    for key, value in network.items():
        if key != "correction":
            validate_parameter(cls._parameter_constraints, key, value)
    probe = cls(**{k: v for k, v in network.items() if k != "correction"}, correction=network["correction"])
    _check_keys(network, probe._network_params(CORRECTIONS[network["correction"]]()), "network_params_")
