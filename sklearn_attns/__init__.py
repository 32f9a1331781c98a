"""sklearn-attns: AI-hybrid ODE solvers (AttNS, ICML 2024) as scikit-learn estimators."""

from .datasets import make_trajectories
from .estimator import (
    AttNSMultiplicativeSolver,
    AttNSSolver,
    CSMSolver,
    FSNetSolver,
    HybridSolverRegressor,
    NeurVecSolver,
)
from .integrators import get_integrator
from .metrics import mse_per_step, trajectory_mse
from .systems import ElasticPendulum, KLinkPendulum, ODESystem, SpringMass

__version__ = "0.1.0"

__all__ = [
    "AttNSMultiplicativeSolver",
    "AttNSSolver",
    "CSMSolver",
    "FSNetSolver",
    "HybridSolverRegressor",
    "NeurVecSolver",
    "ElasticPendulum",
    "KLinkPendulum",
    "ODESystem",
    "SpringMass",
    "get_integrator",
    "make_trajectories",
    "mse_per_step",
    "trajectory_mse",
]
