"""sklearn-attns: AI-hybrid ODE solvers (AttNS, ICML 2024) as scikit-learn estimators."""

import importlib

from .datasets import make_trajectories
from .integrators import get_integrator
from .metrics import mse_per_step, trajectory_mse
from .systems import ElasticPendulum, KLinkPendulum, ODESystem, SpringMass

__version__ = "0.1.0"

# The estimators need torch; they load on first use, so processes that only make data
# (joblib workers of make_trajectories) start quickly.
_ESTIMATORS = (
    "AttNSMultiplicativeSolver",
    "AttNSSolver",
    "CSMSolver",
    "FSNetSolver",
    "HybridSolverRegressor",
    "NeurVecSolver",
)

__all__ = [
    *_ESTIMATORS,
    "ElasticPendulum",
    "KLinkPendulum",
    "ODESystem",
    "SpringMass",
    "get_integrator",
    "make_trajectories",
    "mse_per_step",
    "trajectory_mse",
]


def __getattr__(name):
    if name in _ESTIMATORS:
        return getattr(importlib.import_module(".estimator", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
