"""
Your own ODE, end to end
========================

Define a right-hand side, wrap it in an :class:`~sklearn_attns.systems.ODESystem`, make
fine-step reference data with :func:`~sklearn_attns.datasets.make_trajectories`, fit an
:class:`~sklearn_attns.estimator.AttNSSolver` and compare it with the plain integrator it corrects.

The system is the Van der Pol oscillator ``x' = y``, ``y' = mu (1 - x^2) y - x``.
"""

# %%
# The right-hand side
# -------------------
# ``rhs(u)`` receives a batch of states of shape ``(n, n_state)``. Data generation calls
# it with NumPy arrays, the hybrid solver with torch tensors (for training and
# prediction), so write it to work on both: pick the array module from the input and
# use only operations both share. (A NumPy-only ``rhs`` still works for the default
# training, called through NumPy round trips with a warning, but it is slower, and
# ``rollout_steps > 1`` needs the torch version.) Define it with ``def`` at module
# level so that it pickles (a lambda or a nested function does not, and a pickle is
# needed to save the model or to send it to worker processes).
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_attns import AttNSSolver, HybridSolverRegressor, ODESystem, make_trajectories
from sklearn_attns.plotting import plot_error_over_time

MU = 1.0


def van_der_pol(u):
    xp = torch if isinstance(u, torch.Tensor) else np
    x, y = u[:, 0], u[:, 1]
    return xp.stack([y, MU * (1.0 - x**2) * y - x], 1)


def initial_conditions(n, rng):
    """``n`` states drawn uniformly from the square [-2.5, 2.5]^2."""
    return rng.uniform(-2.5, 2.5, size=(n, 2))


system = ODESystem(rhs=van_der_pol, n_state=2, initial_conditions=initial_conditions, name="Van der Pol")
print(system)

# %%
# Reference data
# --------------
# Trajectories integrated with RK4 at a fine step of 1e-3 and kept every ``dt = 0.25``:
# arrays of shape ``(n_trajectories, n_times, n_state)``.
dt = 0.25
start = time.perf_counter()
X_train = make_trajectories(system, n_trajectories=200, t_end=10.0, dt=dt, fine_dt=1e-3, random_state=0)
X_test = make_trajectories(system, n_trajectories=100, t_end=10.0, dt=dt, fine_dt=1e-3, random_state=1)
print(f"train {X_train.shape}, test {X_test.shape}, made in {time.perf_counter() - start:.1f} s")

# %%
# The plain integrator and the hybrid solver
# ------------------------------------------
# ``correction="none"`` is the base integrator alone, with the same API; it has nothing
# to train. The AttNS solver corrects every coarse Euler step with a small network fed
# with the Euler increment. The network here is far smaller than the paper's (width
# 1024) and trains for few epochs, so the run stays short; at this budget training stops
# at ``max_epochs`` before converging, which the estimator reports with a
# ``ConvergenceWarning`` that we silence.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

plain = HybridSolverRegressor(system=system, dt=dt, integrator="euler", correction="none").fit(X_train)
start = time.perf_counter()
hybrid = AttNSSolver(system=system, dt=dt, integrator="euler", width=128, max_epochs=30, batch_size=256,
                     device="cpu", random_state=0).fit(X_train)
print(f"AttNS fitted in {time.perf_counter() - start:.1f} s ({hybrid.n_iter_} epochs)")

# ``score`` is the negative trajectory MSE of rollouts from X[:, 0] against X.
print(f"test MSE, plain Euler at dt={dt}: {-plain.score(X_test):.3g}")
print(f"test MSE, AttNS + Euler at dt={dt}: {-hybrid.score(X_test):.3g}")

# %%
# The same with RK4 as the base method: a much better start, still improved.
plain_rk4 = HybridSolverRegressor(system=system, dt=dt, integrator="rk4", correction="none").fit(X_train)
hybrid_rk4 = AttNSSolver(system=system, dt=dt, integrator="rk4", width=128, max_epochs=30, batch_size=256,
                         device="cpu", random_state=0).fit(X_train)
print(f"test MSE, plain RK4 at dt={dt}: {-plain_rk4.score(X_test):.3g}")
print(f"test MSE, AttNS + RK4 at dt={dt}: {-hybrid_rk4.score(X_test):.3g}")

# %%
# Rollouts
# --------
# ``predict`` rolls the solver out from initial conditions, ``n_steps`` coarse steps.
n_steps = X_test.shape[1] - 1
paths_plain = plain.predict(X_test[:, 0], n_steps=n_steps)
paths_hybrid = hybrid.predict(X_test[:, 0], n_steps=n_steps)

fig, (ax_phase, ax_error) = plt.subplots(1, 2, figsize=(10, 4))
ax_phase.plot(*X_test[0].T, "k-", lw=2, label="reference (RK4, fine step)")
ax_phase.plot(*paths_plain[0].T, "o--", ms=3, label="plain Euler")
ax_phase.plot(*paths_hybrid[0].T, "s:", ms=3, label="AttNS + Euler")
ax_phase.set(xlabel="x", ylabel="y", title="one test trajectory")
ax_phase.legend(loc="center", fontsize="small")
# The MSE over the test trajectories at each step (time 0, the given initial state, is
# left out), on a log scale.
plot_error_over_time(X_test, {"plain Euler": paths_plain, "AttNS + Euler": paths_hybrid}, dt, ax=ax_error)
ax_error.set_title("error along the rollout")
fig.tight_layout()
plt.show()
