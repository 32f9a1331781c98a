"""A safe file format for fitted solvers: weights and parameters, no code run on load.

``pickle`` and ``joblib.dump`` keep working (and keep a user's own ``rhs``), but loading
a pickle runs whatever code it names, so never load one from a stranger. A file written
by :func:`save_model` is a NumPy ``.npz`` archive of arrays plus a JSON description,
read back with ``allow_pickle=False``: loading it executes nothing from the file.
"""

import json
import zipfile

import numpy as np
import torch

from . import systems as _systems
from .estimator import HybridSolverRegressor

__all__ = ["save_model", "load_model"]

FORMAT = "sklearn-attns-model"
VERSION = 1
_FITTED_SCALARS = ("n_features_in_", "data_dt_", "stride_", "n_iter_", "best_loss_", "best_validation_score_")
_FITTED_LISTS = ("loss_curve_", "validation_scores_")
_BUILTIN_SYSTEMS = ("SpringMass", "ElasticPendulum", "KLinkPendulum")


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
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
    if not hasattr(estimator, "model_"):
        raise ValueError("save_model needs a fitted estimator; call fit first.")
    params = estimator.get_params(deep=False)
    system = params.pop("system")
    if type(system).__name__ in _BUILTIN_SYSTEMS and type(system).__module__ == _systems.__name__:
        system_spec = {"class": type(system).__name__,
                       "params": {k: _jsonable(v) for k, v in system.get_params().items()}}
    else:
        system_spec = None
    params["device"] = _jsonable(params["device"])
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None
    metadata = {
        "format": FORMAT, "version": VERSION, "class": type(estimator).__name__,
        "params": params, "system": system_spec,
        "fitted": {name: _jsonable(getattr(estimator, name)) for name in _FITTED_SCALARS + _FITTED_LISTS},
        "device": str(estimator.device_),
    }
    arrays = {f"weight/{k}": v.detach().cpu().numpy() for k, v in estimator.model_.state_dict().items()}
    arrays["train_indices_"] = np.asarray(estimator.train_indices_)
    with open(path, "wb") as file:
        np.savez(file, metadata=np.array(json.dumps(metadata)), **arrays)


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
    try:
        with np.load(path, allow_pickle=False) as archive:
            metadata = json.loads(str(archive["metadata"]))
            weights = {k[len("weight/"):]: torch.from_numpy(archive[k].copy())
                       for k in archive.files if k.startswith("weight/")}
            train_indices = archive["train_indices_"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ValueError(f"{path!s} is not a readable sklearn-attns model file: {exc}") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path!s} is not an sklearn-attns model file.")
    if metadata.get("version") != VERSION:
        raise ValueError(f"{path!s} has format version {metadata.get('version')}; this library reads {VERSION}.")
    if system is None:
        spec = metadata["system"]
        if spec is None:
            raise ValueError("this model was fitted on a user-defined system: pass it as load_model(path, system=...).")
        if spec["class"] not in _BUILTIN_SYSTEMS:
            raise ValueError(f"unknown system class {spec['class']!r} in {path!s}.")
        system = getattr(_systems, spec["class"])(**spec["params"])
    import sklearn_attns.estimator as _estimator

    cls = getattr(_estimator, metadata["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, HybridSolverRegressor)):
        raise ValueError(f"unknown estimator class {metadata['class']!r} in {path!s}.")
    estimator = cls(system=system, **metadata["params"])
    for name, value in metadata["fitted"].items():
        setattr(estimator, name, value)
    estimator.train_indices_ = train_indices
    try:
        estimator.__setstate__({**estimator.__dict__, "device_": metadata["device"], "_model_weights": weights})
    except RuntimeError as exc:
        raise ValueError(f"{path!s}: the stored weights do not fit the stored parameters: {exc}") from exc
    return estimator
