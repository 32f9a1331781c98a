"""
Limited data: AttNS against NeurVec
===================================

The paper's question (Huang et al., ICML 2024): how much does a hybrid solver lose when
only part of the fine-step training data is available? ``data_fraction=p`` trains on
``floor(p * n_trajectories)`` of the trajectories given to ``fit`` (a reproducible subset
drawn with ``random_state``), the paper's limited-data scenario with ``p`` in {1, 0.5}.

AttNS feeds the correction network with the integrator's own increment ``S``; NeurVec
feeds it with the state ``u``. Everything else here is the same: the base method (RK4 at
``dt = 0.2``), the network, the training budget and the seeds.

This is a small study (a 10-mass chain, 100 trajectories, a narrow network, 20 epochs,
three seeds) that finishes in seconds; the full-size comparison is in
:doc:`/results`.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sklearn_attns import AttNSSolver, HybridSolverRegressor, NeurVecSolver, make_trajectories
from sklearn_attns.systems import SpringMass

warnings.filterwarnings("ignore", category=ConvergenceWarning)

system = SpringMass(n_masses=10)
X_train = make_trajectories(system, n_trajectories=100, t_end=10.0, dt=0.2, fine_dt=1e-3, random_state=0)
X_test = make_trajectories(system, n_trajectories=200, t_end=10.0, dt=0.2, fine_dt=1e-3, random_state=1)
plain = HybridSolverRegressor(system=system, dt=0.2, correction="none").fit(X_train)
print(f"plain RK4 at dt=0.2, test MSE: {-plain.score(X_test):.3g}")

# %%
# The study
# ---------
fractions, seeds = [1.0, 0.5], [0, 1, 2]
solvers = {"AttNS": AttNSSolver, "NeurVec": NeurVecSolver}
mse = {}
for name, cls in solvers.items():
    for fraction in fractions:
        start = time.perf_counter()
        scores = []
        for seed in seeds:
            solver = cls(system=system, dt=0.2, integrator="rk4", data_fraction=fraction, width=256,
                         max_epochs=20, batch_size=256, device="cpu", random_state=seed).fit(X_train)
            scores.append(-solver.score(X_test))
        mse[name, fraction] = scores
        print(f"{name:>8}, data_fraction={fraction}: test MSE per seed "
              + ", ".join(f"{s:.3g}" for s in scores)
              + f" ({len(solver.train_indices_)} trajectories, {time.perf_counter() - start:.1f} s)")

# %%
# Test MSE (bars: mean over seeds; dots: each seed). Lower is better.
fig, ax = plt.subplots(figsize=(5, 3.5))
width = 0.35
for k, name in enumerate(solvers):
    x = np.arange(len(fractions)) + (k - 0.5) * width
    means = [np.mean(mse[name, p]) for p in fractions]
    ax.bar(x, means, width, label=name)
    for xi, p in zip(x, fractions):
        ax.plot([xi] * len(seeds), mse[name, p], "k.")
ax.set_xticks(np.arange(len(fractions)), [f"data_fraction={p}" for p in fractions])
ax.set_yscale("log")
ax.set_ylabel("test MSE")
ax.legend()
fig.tight_layout()
plt.show()
