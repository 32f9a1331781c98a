"""Local (convolutional) against global (MLP) corrections on method-of-lines PDEs, with little data.

Prints measured figures (not a test). On viscous Burgers (64 points, dt = 0.05, T = 4),
FitzHugh-Nagumo (2 x 64 points, dt = 0.1, T = 5; ``fhn32``: initial fields of 32 modes, every
wavenumber of the grid, instead of 16) and Gray-Scott (2 x 64 points, dt = 0.5, T = 50), with
the systems' default parameters and otherwise default initial conditions, with at most 100 training
trajectories made with fine RK4 steps (1e-3; 1e-2 on Gray-Scott's slower time scale), it trains
and rolls out on held-out trajectories:

* plain RK4 at the coarse dt;
* AttNS with the paper's global network (``module="mlp"``, width 256, per-component scaling);
* AttNS, NeurVec and CSM with the local network (``module="conv"``, per-field scaling pooled
  over the grid), and AttNS whose local network sees the state beside the slope
  (``with_state``, ``extra_inputs=n_fields``).

Every network trains the same way (teacher-forced single steps, Adam with a cosine schedule,
the same epochs and batch size): the estimator's recipe, driven here from the library's pieces
(:class:`~sklearn_attns.corrections.HybridStep`, :class:`~sklearn_attns.training.TeacherForcedData`,
:func:`~sklearn_attns.training.train_epochs`). For Burgers it also rolls the 64-point local
networks out on a 128-point domain of the same spacing (twice as long), untrained there.

Targets: local AttNS >= 100x lower test MSE than plain RK4, and >= 10x lower than global AttNS.

Run: python benchmarks/bench_local_correction.py [--quick] [--systems burgers fhn fhn32 grayscott]
[--mlp-epochs 300] [--dt 0.25 --t-end 20 --burn-in 10]
"""

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch

from sklearn_attns import make_trajectories
from sklearn_attns.corrections import HybridStep, build_network, get_correction, with_state
from sklearn_attns.experiments.cells import PDE_SETTINGS
from sklearn_attns.grids import expand_fields, fit_field_scaling
from sklearn_attns.integrators import get_integrator
from sklearn_attns.metrics import trajectory_mse
from sklearn_attns.systems import Burgers, FitzHughNagumo
from sklearn_attns.training import EarlyStopping, TeacherForcedData, train_epochs
from sklearn_attns.trajectories import check_trajectory_set


def _setup(name, system=None, longer=None):
    """A system of the PDE experiment (its step, horizon and fine step: ``PDE_SETTINGS``), or
    ``system`` on the same setting, and the longer domain the 64-point networks roll out on."""
    pde = PDE_SETTINGS[name]
    return {"system": system or pde.system, "dt": pde.dt, "t_end": pde.t_end, "fine_dt": pde.fine_dt,
            "longer": longer}


SETUPS = {
    # The longer domain: the same spacing and the same wavenumbers (twice the modes on twice the length).
    "burgers": _setup("burgers", longer=Burgers(n_points=128, length=4 * np.pi, n_modes=6)),
    "fhn": _setup("fhn"),
    # Initial fields with every wavenumber the 64-point grid resolves (the default has 16).
    "fhn32": _setup("fhn", system=FitzHughNagumo(n_modes=32)),
    "grayscott": _setup("grayscott"),
}


def rollout(step, u0, n_steps):
    """States ``(n, n_steps + 1, n_state)``, float64, of the hybrid step from ``u0``."""
    u, path = torch.as_tensor(u0), [u0]
    with torch.no_grad():
        for _ in range(n_steps):
            u = step(u)
            path.append(u.numpy())
    return np.stack(path, 1)


def train(system, X, dt, correction, module, args, seed):
    """A trained HybridStep, for the local network its per-field scaling (to rebuild it on another
    grid), the training time and the last epoch's loss (the scaled one-step MSE; 1 for no correction)."""
    torch.manual_seed(seed)
    step = HybridStep(system.rhs, get_integrator("rk4"), dt, correction)
    data = TeacherForcedData(check_trajectory_set(X, system), 1, step, "cpu", args.batch_size)
    layout = system.layout
    if module == "conv":
        per_field = fit_field_scaling(correction, data.u, data.slope, data.residual, dt, layout.n_fields)
        scaling = [expand_fields(value, layout.n_points) for value in per_field]
        extra = layout.n_fields if correction.name.endswith("+u") else 0
        network = build_network(system.n_state, depth=args.conv_depth, width=args.conv_width, module="conv",
                                layout=layout, kernel_size=args.kernel_size, extra_inputs=extra)
        loss_scale = scaling[2] if correction.name.startswith("attns") else expand_fields(
            fit_field_scaling(get_correction("attns"), data.u, data.slope, data.residual, dt,
                              layout.n_fields)[2], layout.n_points)
    else:
        per_field = None
        scaling = list(data.fit_scaling(step))
        network = build_network(system.n_state, depth=args.mlp_depth, width=args.mlp_width)
        loss_scale = data.loss_scale
    step = step.with_network(network.float(), *scaling)
    epochs = args.epochs if module == "conv" else args.mlp_epochs or args.epochs
    start, losses = time.perf_counter(), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        train_epochs(step, data, loss_scale=loss_scale, max_epochs=epochs, batch_size=args.batch_size,
                     learning_rate=args.learning_rate, input_noise=0.0,
                     generator=torch.Generator().manual_seed(seed), stopper=EarlyStopping(0.0, epochs + 1),
                     log=lambda epoch, loss, score: losses.append(loss))
    step.network.eval()
    return step, per_field, time.perf_counter() - start, losses[-1]


def on_grid(step, system, per_field):
    """The trained local correction on another system of the same spacing and boundary."""
    n_points = system.layout.n_points
    base = HybridStep(system.rhs, step.integrator, step.dt, step.correction)
    return base.with_network(step.network, *(expand_fields(value, n_points) for value in per_field))


def make_data(system, n, t_end, dt, seed, fine_dt=1e-3, burn_in=0.0):
    """``n`` trajectories over ``[burn_in, burn_in + t_end]`` (the first ``burn_in`` time units dropped)."""
    skip = round(burn_in / dt)
    X = make_trajectories(system, n, t_end=t_end + skip * dt, dt=dt, fine_dt=fine_dt, random_state=seed)
    return np.ascontiguousarray(X[:, skip:])


def test_mse(step, X):
    paths = rollout(step, X[:, 0], X.shape[1] - 1)
    return trajectory_mse(X, np.nan_to_num(paths, nan=np.inf))


RUNS = [("AttNS", "attns", "mlp"), ("AttNS", "attns", "conv"), ("NeurVec", "neurvec", "conv"),
        ("CSM", "csm", "conv"), ("AttNS + state", "attns+u", "conv")]


def run(name, args):
    setup = SETUPS[name]
    system, longer = setup["system"], setup["longer"]
    dt, t_end = args.dt or setup["dt"], args.t_end or setup["t_end"]
    burn_in, fine_dt = args.burn_in or 0.0, setup["fine_dt"]
    t_end = t_end / 2 if args.quick else t_end
    start = time.perf_counter()
    X = make_data(system, args.n_train, t_end, dt, args.seed, fine_dt, burn_in)
    X_test = make_data(system, args.n_test, t_end, dt, args.seed + 1, fine_dt, burn_in)
    X_long = None if longer is None else make_data(longer, args.n_test, t_end, dt, args.seed + 2, fine_dt,
                                                   burn_in)
    print(f"\n{system!r}: dt={dt}, t from {burn_in} to {burn_in + t_end} ({X.shape[1] - 1} steps), "
          f"{args.n_train} training and {args.n_test} test trajectories at fine step {fine_dt} "
          f"(made in {time.perf_counter() - start:.0f} s); "
          f"RMS of the test states {np.sqrt(np.mean(X_test**2)):.3g}")

    def plain_mse(system, X):
        return test_mse(HybridStep(system.rhs, get_integrator("rk4"), dt, get_correction("none")), X)

    mse_rk4 = plain_mse(system, X_test)
    long_rk4 = None if X_long is None else plain_mse(longer, X_long)
    rows = [("plain RK4", "-", mse_rk4, 0.0, long_rk4)]
    for label, correction_name, module in RUNS:
        if (args.only and correction_name not in args.only) or module not in args.modules:
            continue
        correction = get_correction(correction_name.removesuffix("+u"))
        if correction_name.endswith("+u"):
            correction = with_state(correction)
        mses, longs, times = [], [], []
        for seed in range(args.seeds):
            step, per_field, seconds, loss = train(system, X, dt, correction, module, args, seed)
            mses.append(test_mse(step, X_test))
            times.append(seconds)
            line = f"  {label:14s} {module:4s} seed {seed}: test MSE {mses[-1]:.3g} "
            line += f"({mse_rk4 / mses[-1]:.3g}x below RK4)"
            if X_long is not None and module == "conv":
                longs.append(test_mse(on_grid(step, longer, per_field), X_long))
                line += f", on {longer.n_points} points {longs[-1]:.3g} ({long_rk4 / longs[-1]:.3g}x)"
            print(f"{line}; training {seconds:.0f} s, last training loss {loss:.3g}", flush=True)
        rows.append((label, module, float(np.mean(mses)), float(np.mean(times)),
                     float(np.mean(longs)) if longs else None))
    report(name, rows, args.seeds, longer if X_long is not None else None)


def report(name, rows, seeds, longer):
    """The Markdown table and the targets."""
    mse_rk4, long_rk4 = rows[0][2], rows[0][4]
    extra = f" {longer.n_points} points, same spacing: MSE (x below RK4) |" if longer is not None else ""
    print(f"\n| {name} | module | test MSE (mean of {seeds} seed(s)) | x below plain RK4 | training s |"
          + extra)
    print("|---|---|---|---|---|" + ("---|" if longer is not None else ""))
    for label, module, mse, seconds, long in rows:
        cell = ""
        if longer is not None:
            cell = " - |" if long is None else f" {long:.3g} ({long_rk4 / long:.3g}x) |"
        print(f"| {label} | {module} | {mse:.3g} | {mse_rk4 / mse:.3g} | {seconds:.0f} |{cell}")
    local = [mse for label, module, mse, *_ in rows if label.startswith("AttNS") and module == "conv"]
    global_ = [mse for label, module, mse, *_ in rows if label == "AttNS" and module == "mlp"]
    if local:
        best = min(local)
        line = f"targets: best local AttNS {mse_rk4 / best:.3g}x below plain RK4 (target >= 100)"
        if global_:
            line += f", {global_[0] / best:.3g}x below global AttNS (target >= 10)"
        print(line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", default=["burgers", "fhn", "fhn32", "grayscott"],
                        choices=sorted(SETUPS))
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 20 trajectories, half the horizon, 5 epochs")
    parser.add_argument("--dt", type=float, default=None, help="coarse step (default: the system's setup)")
    parser.add_argument("--t-end", type=float, default=None,
                        help="horizon after the burn-in (default: the system's setup)")
    parser.add_argument("--burn-in", type=float, default=None,
                        help="time dropped from the start of every trajectory (default: none)")
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--mlp-epochs", type=int, default=None,
                        help="epochs of the global network (default: --epochs; an epoch of it costs less)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--mlp-width", type=int, default=256)
    parser.add_argument("--mlp-depth", type=int, default=2)
    parser.add_argument("--conv-width", type=int, default=32)
    parser.add_argument("--conv-depth", type=int, default=4)
    parser.add_argument("--kernel-size", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per network")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data")
    parser.add_argument("--only", nargs="+", help="corrections to run (attns, neurvec, csm, attns+u)")
    parser.add_argument("--modules", nargs="+", default=["mlp", "conv"], choices=["mlp", "conv"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.epochs = 20, 10, 5
    torch.set_num_threads(args.threads)
    receptive_field = args.conv_depth * (args.kernel_size - 1) + 1
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), CPU")
    print(f"training: {args.epochs} epochs (global network: {args.mlp_epochs or args.epochs}), batch "
          f"{args.batch_size}, Adam lr {args.learning_rate} (cosine); global: MLP depth {args.mlp_depth} "
          f"width {args.mlp_width}; local: conv depth {args.conv_depth} width {args.conv_width} kernel "
          f"{args.kernel_size} (receptive field {receptive_field} points); networks in float32, states in "
          "float64")
    for name in args.systems:
        run(name, args)


if __name__ == "__main__":
    main()
