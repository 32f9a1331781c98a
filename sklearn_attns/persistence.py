"""A safe file format for fitted solvers: weights and parameters, no code run on load.

``pickle`` and ``joblib.dump`` keep working (and keep a user's own ``rhs``), but loading
a pickle runs whatever code it names, so never load one from a stranger. A file written
by :func:`save_model` is a NumPy ``.npz`` archive of arrays plus a JSON description,
read back with ``allow_pickle=False``: loading it executes nothing from the file, and every
member is checked against the model the description declares before it is decompressed.
"""

import json
import math
import numbers
import os
import warnings
import zipfile

import numpy as np
import torch

from . import systems as _systems
from ._validation import check_count, check_positive, validate_params
from .corrections import HybridStep, get_correction
from .devices import resolve_device
from .estimator import HybridSolverRegressor, _build_network, _Config, _network_input_size, integrator_of
from .grids import GridLayout

__all__ = ["save_model", "load_model"]

FORMAT = "sklearn-attns-model"
# Version 2 stores the parameters that shaped the fitted model (``model_params_``); version 3
# adds ``substeps`` (a version-2 file is read as one substep), version 4 ``degree`` (an earlier
# file has no polynomial correction: its ``degree`` is the default).
VERSION = 4
_READABLE_VERSIONS = (2, 3, 4)
_FITTED_LISTS = ("loss_curve_", "validation_scores_")
_BUILTIN_SYSTEMS = ("SpringMass", "ParametricSpringMass", "ElasticPendulum", "KLinkPendulum", "Burgers",
                    "FitzHughNagumo", "GrayScott")


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

    Warns
    -----
    UserWarning
        If ``random_state`` is a ``RandomState`` instance: it cannot be stored, and is
        saved as None.

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
        warnings.warn(f"random_state is a {type(params['random_state']).__name__} instance, which cannot be "
                      "stored: it is saved as None.", UserWarning, stacklevel=2)
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
        raise TypeError(f"path must be a str, a path-like object or a file object, "
                        f"got {type(path).__name__}.")


def load_model(path, system=None, device=None):
    """Load a model written by :func:`save_model`, executing nothing from the file.

    Parameters
    ----------
    path : str or path-like
    system : ODESystem or callable, default=None
        Required when the model was fitted on a user's own system; for built-in systems
        the stored one is used unless this is given.
    device : str or torch.device, default=None
        Where the network goes: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (to fit on
        one machine and predict on another, a GPU say); the estimator's ``device``
        parameter is set to it as well. None: the device it was fitted on, or the CPU
        (with a warning) where that is CUDA and this machine has none.

    Raises
    ------
    ValueError
        If the file is not a complete sklearn-attns model file (corrupted, truncated,
        another format, arrays that are not those the stored parameters describe, members
        that would inflate far beyond the file's size) or the system is missing. The
        arrays are checked before they are decompressed.
    """
    if system is not None:
        system = _systems.as_system(system)
    resolved = None if device is None else resolve_device(device)
    _check_path(path, "read")
    metadata, weights, train_indices = _read_archive(path)
    if system is None and metadata["system"] is None:
        raise ValueError("this model was fitted on a user-defined system: pass it as "
                         "load_model(path, system=...).")
    try:
        estimator = _restore(metadata, weights, train_indices, system, resolved)
    except Exception as exc:  # whatever the stored values break is a fault of the file
        raise ValueError(f"{path!s} is not a valid sklearn-attns model file: {exc}") from exc
    return estimator if device is None else estimator.set_params(device=device)


# Limits on what a file may make this module decompress, each checked before decompressing.
# The description, read first: UCS-4 JSON, about 200 bytes per epoch of loss and validation curves.
_MAX_METADATA_BYTES = 16 * 2**20
# An .npy header (magic, version, length, dict) beyond its array's data; np.save pads it to 64 bytes.
_MAX_NPY_HEADER_BYTES = 4096
# Above this, the members together may inflate the archive at most _MAX_INFLATION times. A file
# written by save_model is stored uncompressed (ratio 1); recompressed, random weights barely
# shrink, and the zero last layer of an untrained network is no bigger than its first layer.
_FREE_INFLATION_BYTES = 16 * 2**20
_MAX_INFLATION = 16
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}


class _FileError(ValueError):
    """The file is not the model it claims to be; the message follows the file's name."""


def _invalid(reason):
    return _FileError(f"is not a valid sklearn-attns model file: {reason}")


def _read_archive(path):
    """The metadata, weights (by state-dict key) and training indices of a model file.

    The archive is opened here rather than by ``np.load``, which decompresses a member as soon as
    it is asked for: the member names and declared sizes, then each ``.npy`` header's shape and
    dtype, are checked against the model the metadata describes before any array data is
    decompressed, so a small file cannot inflate into a large allocation.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members(archive)
            metadata = _read_metadata(archive, members)
            if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
                raise _FileError("is not an sklearn-attns model file.")
            version = metadata.get("version")
            if version not in _READABLE_VERSIONS:
                raise _FileError(f"has format version {version}; this library reads "
                                 f"{list(_READABLE_VERSIONS)}.")
            _upgrade(metadata)
            try:
                expected = _expected_arrays(metadata, len(members))
            except Exception as exc:  # parameters that describe no model: TypeError, ValueError, torch's
                raise _invalid(exc) from exc
            _check_members(archive, members, expected)
            arrays = {name: _read_npy(archive, members[name], *expected[name]) for name in expected}
    except _FileError as exc:
        raise ValueError(f"{path!s} {exc}") from exc.__cause__
    except Exception as exc:  # a damaged archive fails in zipfile, zlib, numpy or json, in many ways
        raise ValueError(f"{path!s} is not a readable sklearn-attns model file: "
                         f"{type(exc).__name__}: {exc}") from exc
    train_indices = arrays.pop("train_indices_.npy")
    weights = {name[len("weight/"):-len(".npy")]: array for name, array in arrays.items()}
    return metadata, weights, train_indices


def _upgrade(metadata):
    """Bring an earlier file's metadata to the current version: version 2 predates
    ``substeps`` (one substep), versions 2 and 3 predate ``degree`` (the default; only a
    polynomial's ``model_params_`` holds it)."""
    version = metadata["version"]
    if version == 2:
        for params in (metadata.get("params"), (metadata.get("fitted") or {}).get("model_params_")):
            if isinstance(params, dict):
                params.setdefault("substeps", 1)
    if version in (2, 3) and isinstance(metadata.get("params"), dict):
        metadata["params"].setdefault("degree", HybridSolverRegressor().degree)
    metadata["version"] = VERSION


def _members(archive):
    """``{name: ZipInfo}`` of the archive's members, refusing repeated names."""
    infos = archive.infolist()
    members = {info.filename: info for info in infos}
    if len(members) != len(infos):
        raise _invalid("it repeats member names.")
    return members


def _read_metadata(archive, members):
    info = members.get("metadata.npy")
    if info is None:
        raise _FileError("is not an sklearn-attns model file.")
    if info.file_size > _MAX_METADATA_BYTES:
        raise _invalid(f"member 'metadata.npy' holds {info.file_size} bytes, more than "
                       f"{_MAX_METADATA_BYTES}.")
    return json.loads(str(_read_npy(archive, info, (), "U")[()]))


def _expected_arrays(metadata, n_members):
    """``{member name: (shape, dtype)}`` of the arrays stored for the model that ``metadata``
    describes (``train_indices_`` has any length and an integer dtype: ``(None,)`` and ``"iu"``).
    The network is built on the meta device: shapes without memory, whatever the parameters say."""
    _check_keys(metadata, _METADATA_KEYS, "the metadata")
    cls = _estimator_class(metadata["class"])
    _check_keys(metadata["params"], set(cls().get_params(deep=False)) - {"system"}, "params")
    _check_keys(metadata["fitted"], cls._FITTED_VALUES, "fitted")
    n_features = check_count(metadata["fitted"]["n_features_in_"], "n_features_in_")
    model_params = metadata["fitted"]["model_params_"]
    correction = _check_model_params(model_params, cls)
    expected = {"train_indices_.npy": ((None,), "iu")}
    if not correction.uses_network:
        return expected
    # Building a layer takes time even on the meta device: a depth no stored layers fill is refused first.
    if model_params.get("depth", 1) > n_members:
        raise ValueError(f"depth={model_params['depth']} does not fit the {n_members} stored arrays.")
    with torch.device("meta"):
        scaling = torch.empty(_network_input_size(n_features, model_params), dtype=torch.float64)
        step = HybridStep(None, None, None, correction, _build_network(n_features, model_params),
                          scaling, scaling, scaling[:n_features])
    for key, tensor in step.state_dict().items():
        dtype = torch.empty((), dtype=tensor.dtype).numpy().dtype
        expected[f"weight/{key}.npy"] = (tuple(tensor.shape), dtype)
    return expected


def _check_members(archive, members, expected):
    """Refuse, from the sizes the archive declares (which ``zipfile`` enforces), members that are
    not the arrays of ``expected``, any bigger than its array, or that together inflate far
    beyond the archive's own size."""
    stored = set(members) - {"metadata.npy"}
    missing, unknown = sorted(set(expected) - stored), sorted(stored - set(expected))
    if missing or unknown:
        raise _invalid(f"it has missing members {missing} and unknown members {unknown}.")
    for name, (shape, dtype) in expected.items():
        size = members[name].file_size
        if None not in shape and size > math.prod(shape) * dtype.itemsize + _MAX_NPY_HEADER_BYTES:
            raise _invalid(f"member {name!r} holds {size} bytes, more than an array of shape {shape} "
                           f"and dtype {dtype} needs.")
    archive_bytes = archive.fp.seek(0, os.SEEK_END)
    inflated = sum(info.file_size for info in members.values())
    if inflated > max(_FREE_INFLATION_BYTES, _MAX_INFLATION * archive_bytes):
        largest = max(members.values(), key=lambda info: info.file_size)
        raise _invalid(f"its members inflate {archive_bytes} bytes to {inflated}, more than {_MAX_INFLATION} "
                       f"times (the largest, {largest.filename!r}, to {largest.file_size}).")


_DTYPE_KINDS = {"U": "a str dtype", "iu": "an integer dtype"}


def _read_npy(archive, info, shape, dtype):
    """The array of one ``.npy`` member, once its header has declared ``shape`` (None: any
    length) and ``dtype`` (or a dtype of the kinds in a string, such as ``"iu"``) and exactly
    the member's declared size. Before these checks only the header is decompressed (with
    ``zipfile``'s read-ahead of a few KiB)."""
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in _NPY_HEADER_READERS:
            raise _invalid(f"member {info.filename!r} is an .npy file of version {version}, "
                           "expected 1.0 or 2.0.")
        header_shape, _, header_dtype = _NPY_HEADER_READERS[version](stream)
        fits_dtype = header_dtype.kind in dtype if isinstance(dtype, str) else header_dtype == dtype
        if not (fits_dtype and len(header_shape) == len(shape)
                and all(n is None or n == m for n, m in zip(shape, header_shape, strict=True))):
            needed = _DTYPE_KINDS[dtype] if isinstance(dtype, str) else f"dtype {dtype}"
            raise _invalid(f"member {info.filename!r} declares an array of shape {header_shape} and dtype "
                           f"{header_dtype}; the model needs shape {shape} and {needed}.")
        size = stream.tell() + math.prod(header_shape) * header_dtype.itemsize
        if size != info.file_size:
            raise _invalid(f"member {info.filename!r} holds {info.file_size} bytes, but its header "
                           f"declares {size}.")
    with archive.open(info) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


_METADATA_KEYS = {"format", "version", "class", "params", "system", "fitted", "device"}


def _check_keys(mapping, expected, what):
    if not isinstance(mapping, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(mapping).__name__}.")
    if set(mapping) != set(expected):
        missing, unknown = sorted(set(expected) - set(mapping)), sorted(set(mapping) - set(expected))
        raise ValueError(f"{what} has missing keys {missing} and unknown keys {unknown}.")


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _restore(metadata, weights, train_indices, system, device=None):
    """Build the estimator from checked metadata, its network on ``device`` (None: the stored
    one); every inconsistency raises."""
    cls = _estimator_class(metadata["class"])
    spec = metadata["system"]
    if spec is not None:
        _check_keys(spec, {"class", "params"}, "system")
        if spec["class"] not in _BUILTIN_SYSTEMS:
            raise ValueError(f"unknown system class {spec['class']!r}.")
        # Every parameter, as written: a missing one would silently take its default.
        _check_keys(spec["params"], getattr(_systems, spec["class"])().get_params(), "system params")
    fitted = metadata["fitted"]
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
    stored_device = metadata["device"]
    if not isinstance(stored_device, str) or torch.device(stored_device).type not in ("cpu", "cuda"):
        raise ValueError(f"device must name a CPU or CUDA device, got {stored_device!r}.")

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
        raise ValueError(f"the model was fitted on {n_features} state components, "
                         f"but the system has {n_state}.")
    if stored_system:
        # Built-in systems check their parameters when used: use this one once.
        system.rhs(system.sample_initial_conditions(1, random_state=0))
    # The arrays' names, shapes and dtypes were checked against model_params_ as they were read.
    if (train_indices < 0).any():
        raise ValueError("train_indices_ must be non-negative.")

    arrays = {f"weight/{key}": array.copy() for key, array in weights.items()}
    estimator._restore_fitted(fitted, {**arrays, "train_indices_": train_indices},
                              stored_device if device is None else device)
    return estimator


def _estimator_class(name):
    import sklearn_attns.estimator as _estimator

    cls = getattr(_estimator, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, HybridSolverRegressor)):
        raise ValueError(f"unknown estimator class {name!r}.")
    return cls


def _check_model_params(params, cls):
    """Check ``model_params_`` against what ``cls`` writes for them (the keys its correction
    and module use, each value allowed by its parameter constraints); return the correction."""
    base = {"integrator", "substeps", "dt", "correction", "n_conditioning", "n_fields", "boundary", "spacing"}
    required = {"integrator", "dt", "correction", "n_conditioning"}
    if not isinstance(params, dict) or not required <= set(params):
        raise ValueError(f"model_params_ must be an object with the keys {sorted(required)}, got {params!r}.")
    check_count(params["n_conditioning"], "n_conditioning", minimum=0)
    validate_params(cls._parameter_constraints, params)
    correction = get_correction(params["correction"], params.get("attention_input", "S"))
    layout = None
    if params.get("module") == "conv":
        check_count(params.get("n_fields"), "n_fields")
        layout = GridLayout(params["n_fields"], params["n_fields"], params.get("boundary"))
    config = _Config(_systems.ODESystem(layout=layout), params["dt"], None, integrator_of(params), correction)
    network = {k: v for k, v in params.items() if k not in base}
    _check_keys(params, cls(**network)._model_params(config, params["n_conditioning"]), "model_params_")
    return correction
