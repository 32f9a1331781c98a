"""
Choosing dt and the integrator with a grid search
=================================================

The coarse step ``dt`` and the base ``integrator`` are ordinary hyperparameters, so
:class:`~sklearn.model_selection.GridSearchCV` can choose them. The training data is
sampled every ``data_dt``; each candidate ``dt`` must be a whole multiple of it, and the
solver trains on every pair of states ``dt`` apart.

Smaller steps and higher-order methods are always more accurate, so the "best score" is
not the interesting answer. What we want is the *cheapest* solver that is accurate
enough: ``refit`` accepts a callable that picks it from ``cv_results_``.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.integrators import get_integrator
from sklearn_attns.systems import SpringMass

warnings.filterwarnings("ignore", category=ConvergenceWarning)

# %%
# Data sampled every ``data_dt = 0.05``: 90 trajectories of a 5-mass spring chain,
# ``(90, 121, 10)``. Cross-validation splits along the first axis, whole trajectories.
data_dt = 0.05
system = SpringMass(n_masses=5)
X = make_trajectories(system, n_trajectories=90, t_end=6.0, dt=data_dt, fine_dt=1e-3, random_state=0)
print(X.shape)

# %%
# The search
# ----------
# ``data_dt`` is fixed on the estimator; ``dt`` and ``integrator`` vary. The score of a
# candidate is minus the MSE of its rollouts on the held-out trajectories, taken at its
# own coarse times (``X[:, ::dt/data_dt]``).
solver = AttNSSolver(system=system, data_dt=data_dt, width=128, max_epochs=10, batch_size=256,
                     device="cpu", random_state=0)
grid = {"dt": [0.1, 0.2, 0.3], "integrator": ["heun", "rk4"]}


def cheapest_accurate(cv_results, tolerance=1e-4):
    """Index of the candidate with the fewest rhs evaluations per unit time whose mean
    cross-validated MSE is below ``tolerance`` (the most accurate one if none is)."""
    mse = -np.asarray(cv_results["mean_test_score"])
    # One step costs one rhs evaluation per stage of the method (plus one network call,
    # the same for every candidate; add it if your network dominates the cost).
    cost = np.array([len(get_integrator(p["integrator"]).b) / p["dt"] for p in cv_results["params"]])
    accurate = np.flatnonzero(mse < tolerance)
    if len(accurate) == 0:
        return int(np.argmin(mse))
    return int(accurate[np.argmin(cost[accurate])])


start = time.perf_counter()
search = GridSearchCV(solver, grid, cv=3, refit=cheapest_accurate).fit(X)
print(f"{len(search.cv_results_['params'])} candidates x 3 folds in {time.perf_counter() - start:.1f} s")

results = search.cv_results_
print(f"{'dt':>5} {'integrator':>10} {'CV MSE':>10} {'rhs calls / unit time':>22}")
for params, score in zip(results["params"], results["mean_test_score"]):
    cost = len(get_integrator(params["integrator"]).b) / params["dt"]
    print(f"{params['dt']:>5} {params['integrator']:>10} {-score:>10.3g} {cost:>22.0f}")
print("chosen:", search.best_params_)

# %%
# The refitted solver is ready to use on new initial conditions.
paths = search.best_estimator_.predict(X[:3, 0], n_steps=20)
print(paths.shape)

# %%
# Accuracy against step size
# --------------------------
fig, ax = plt.subplots(figsize=(5, 3.5))
for method in grid["integrator"]:
    rows = [i for i, p in enumerate(results["params"]) if p["integrator"] == method]
    ax.loglog([results["params"][i]["dt"] for i in rows], [-results["mean_test_score"][i] for i in rows],
              "o-", label=f"AttNS + {method}")
ax.axhline(1e-4, color="gray", ls="--", label="tolerance")
ax.set_xticks(grid["dt"], [str(dt) for dt in grid["dt"]])
ax.set_xticks([], minor=True)
ax.set(xlabel="dt", ylabel="cross-validated MSE")
ax.legend()
fig.tight_layout()
plt.show()
