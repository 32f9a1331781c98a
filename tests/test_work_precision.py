"""Work-precision comparisons: timing, interpolation, the classical baselines, cost-aware selection.

The expectations are independent of the code under test: a solver built to take k times
longer, a power law whose inverse is known in closed form, the convergence orders of the
integrators, and grid searches whose answer follows from how the candidates are built.
"""

import pickle
import time
import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from sklearn_attns import HybridSolverRegressor, make_trajectories
from sklearn_attns.integrators import get_integrator
from sklearn_attns.systems import ElasticPendulum, SpringMass
from sklearn_attns.work_precision import (
    PredictSeconds,
    WorkPrecision,
    cheapest_within,
    make_cost_aware_scoring,
    work_precision,
)

DT = 0.1


@pytest.fixture(scope="module")
def pendulum():
    """ElasticPendulum test trajectories, 12 of 11 states 0.1 apart, from DOP853 at step 0.005
    (its error, below 1e-20 in MSE, is far below anything compared here)."""
    system = ElasticPendulum()
    X = make_trajectories(system, 12, t_end=1.0, dt=DT, fine_dt=0.005, method="dop853", random_state=0)
    return system, X


class SleepySolver:
    """A controlled hybrid: each ``predict`` sleeps ``naps * nap`` seconds and returns the
    reference trajectories; it logs its calls."""

    integrator = "rk4"

    def __init__(self, X, dt, naps, nap=0.05, log=None):
        self.X, self.dt, self.naps, self.nap, self.log = X, dt, naps, nap, log

    def predict(self, X0, n_steps=100, save_every=1):
        if self.log is not None:
            self.log.append((self.naps, n_steps, save_every))
        time.sleep(self.naps * self.nap)
        return self.X[:, : n_steps // save_every + 1].copy()


# --- (a) timing: a method k times slower comes out k times slower ------------------------------

def test_a_method_four_times_slower_is_measured_four_times_slower(pendulum):
    system, X = pendulum
    solvers = {"one nap": SleepySolver(X, DT, 1), "four naps": SleepySolver(X, DT, 4)}
    result = work_precision(X, DT, solvers, system=system, classical={"euler": (1,)}, reference_tolerances=(),
                            repeats=3)
    seconds = {row["method"]: row["seconds"] for row in result.rows}
    assert seconds["four naps"] / seconds["one nap"] == pytest.approx(4.0, rel=0.15)
    assert seconds["one nap"] >= 0.05


def test_methods_are_timed_round_robin_each_round_calling_each_once(pendulum):
    system, X = pendulum
    log = []
    solvers = {f"{k} naps": SleepySolver(X, DT, k, nap=0.001, log=log) for k in (1, 2, 3)}
    work_precision(X, DT, solvers, system=system, classical={"euler": (1,)}, reference_tolerances=(),
                   repeats=4)
    calls = [naps for naps, _, _ in log]
    assert len(calls) == 3 * 5  # an untimed first call, then 4 rounds
    for start in range(0, len(calls), 3):
        assert sorted(calls[start : start + 3]) == [1, 2, 3]


def test_a_finer_solver_predicts_with_save_every(pendulum):
    system, X = pendulum
    log = []
    work_precision(X, DT, {"half step": SleepySolver(X, DT / 2, 0, log=log)}, system=system,
                   classical={"euler": (1,)}, reference_tolerances=(), repeats=1)
    assert set(log) == {(0, 2 * (X.shape[1] - 1), 2)}


# --- (b) the equal-accuracy speed-up on a known curve --------------------------------------------

def power_law_rows(C=1e-11, p=4.0, seconds=(0.01, 0.1, 1.0, 10.0), dt=0.1, method="rk4"):
    """Classical rows on error = C * seconds^-p (errors 1e-3 .. 1e-15 by default), step
    proportional to 1 / seconds."""
    return [dict(method=method, family="classical", step=dt * seconds[0] / t, seconds=t, error=C * t**-p)
            for t in seconds]


@pytest.mark.parametrize("error", [3e-5, 1e-7, 4.2e-10, 9.99e-4, 1e-11])
def test_speedup_inverts_a_power_law_exactly(error):
    C, p, t_hybrid = 1e-11, 4.0, 0.02
    rows = power_law_rows(C, p) + [dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=t_hybrid,
                                        error=error)]
    speedup = WorkPrecision(rows).speedup("h")
    expected_classical = (C / error) ** (1 / p)  # the curve's time at this error
    assert speedup.status == "ok"
    assert speedup.value == pytest.approx(expected_classical / t_hybrid, rel=1e-9)
    assert float(speedup) == speedup.value and speedup.against == "rk4"


def test_k_is_the_step_ratio_at_equal_error():
    """error = C h^8 on the curve: a hybrid of step 0.1 at error e replaces 0.1 / (e / C)^(1/8) steps."""
    C, error = 1.0, 3e-12
    rows = [dict(method="rk4", family="classical", step=h, seconds=1e-3 / h, error=C * h**8)
            for h in (0.1, 0.05, 0.025, 0.0125)]
    rows.append(dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.05, error=error))
    model = WorkPrecision(rows).cost_model("h")
    assert model["k"] == pytest.approx(0.1 / (error / C) ** (1 / 8), rel=1e-9)
    assert model["c_net_over_c_step"] == pytest.approx(0.05 / 0.01 - 1)  # plain rk4 at 0.1 took 0.01 s
    assert model["bound"] == pytest.approx(model["k"] / 5)


@pytest.mark.parametrize("error, status", [(1e-20, "below range"), (1.0, "above range")])
def test_speedup_is_never_extrapolated(error, status):
    hybrid = dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.5, error=error)
    rows = power_law_rows() + [hybrid]
    speedup = WorkPrecision(rows).speedup("h")
    assert np.isnan(speedup.value) and speedup.status == status
    assert status.split()[0] in speedup.message
    # The bound the measured points do give: the most accurate point's time (at least),
    # or the cheapest point's time (at most).
    assert speedup.bound == pytest.approx((10.0 if status == "below range" else 0.01) / 0.5)
    assert np.isnan(WorkPrecision(rows).cost_model("h")["k"])


def test_a_nan_error_is_compared_with_nothing():
    rows = power_law_rows() + [dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.5,
                                    error=float("nan"))]
    for speedup in (WorkPrecision(rows).speedup("h"), WorkPrecision(rows).free_network_speedup("h")):
        assert speedup.status == "no curve" and np.isnan(speedup.value) and "NaN" in speedup.message


def test_dominated_points_do_not_bend_the_curve():
    """A point slower and less accurate than another (a noisy or unstable run) is off the
    lower envelope: adding it changes nothing."""
    hybrid = dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.02, error=1e-7)
    clean = WorkPrecision(power_law_rows() + [hybrid]).speedup("h").value
    noisy_row = dict(method="rk4", family="classical", step=0.001, seconds=5.0, error=1e-5)
    assert WorkPrecision(power_law_rows() + [noisy_row, hybrid]).speedup("h").value == pytest.approx(clean)


def test_best_is_the_fastest_curve_and_base_is_the_hybrids_own():
    rows = (power_law_rows(C=1e-11, method="rk4") + power_law_rows(C=1e-14, method="dop853")
            + [dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.01, error=1e-8)])
    result = WorkPrecision(rows)
    base, best = result.speedup("h", "base"), result.speedup("h", "best")
    assert base.against == "rk4" and best.against == "dop853"
    assert base.value == pytest.approx((1e-11 / 1e-8) ** 0.25 / 0.01)
    assert best.value == pytest.approx((1e-14 / 1e-8) ** 0.25 / 0.01)
    assert result.speedup("h", "dop853").value == pytest.approx(best.value)


def test_a_free_network_leaves_the_time_of_the_plain_base_steps():
    """rk4 at the hybrid's step 0.1 takes 0.01 s, dop853 (error = 1e-14 t^-4) reaches the
    hybrid's 1e-8 in 1e-1.5 s: however cheap its network, the hybrid is at most 3.16x faster.
    Against its own base, a free network's speed-up is k (here time is proportional to steps)."""
    rows = (power_law_rows(C=1e-11, method="rk4") + power_law_rows(C=1e-14, method="dop853")
            + [dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.05, error=1e-8)])
    result = WorkPrecision(rows)
    free = result.free_network_speedup("h")
    assert free.status == "ok" and free.against == "dop853" and "free network" in free.hybrid
    assert free.value == pytest.approx(10**-1.5 / 0.01)
    assert free.hybrid_seconds == pytest.approx(0.01)
    assert result.free_network_speedup("h", "base").value == pytest.approx((1e-11 / 1e-8) ** 0.25 / 0.01)
    assert "were the network free" in result.summary()
    off_grid = WorkPrecision(power_law_rows() + [dict(method="h", family="hybrid", step=0.07, base="rk4",
                                                      seconds=0.05, error=1e-8)])
    missing = off_grid.free_network_speedup("h")
    assert missing.status == "no curve" and np.isnan(missing.value) and "0.07" in missing.message


@pytest.mark.parametrize("speedup", [1.5, 3.0, 30.0])
def test_error_for_speedup_inverts_the_best_curve(speedup):
    """dop853 on error = 1e-14 t^-4 beats rk4 (1e-11 t^-4) at every time: in s * 0.01 s
    (plain rk4 at the hybrid's step 0.1), it reaches 1e-14 (s * 0.01)^-4."""
    rows = (power_law_rows(C=1e-11, method="rk4") + power_law_rows(C=1e-14, method="dop853")
            + [dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.05, error=1e-8)])
    error, status, bound = WorkPrecision(rows).error_for_speedup("h", speedup)
    assert status == "ok" and np.isnan(bound)
    assert error == pytest.approx(1e-14 * (speedup * 0.01) ** -4, rel=1e-9)
    # And back: a free network at that error has exactly this speed-up.
    at_that_error = WorkPrecision(rows[:-1] + [dict(rows[-1], error=error)])
    assert at_that_error.free_network_speedup("h").value == pytest.approx(speedup, rel=1e-9)


def test_a_hybrid_faster_than_its_plain_steps_keeps_its_own_time_when_free():
    """A compiled hybrid (0.005 s) can beat the classical path's plain steps (0.01 s): free,
    it is no slower than it is."""
    rows = power_law_rows(C=1e-14, method="rk4") + [
        dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.005, error=1e-8)]
    result = WorkPrecision(rows)
    assert result.free_network_speedup("h").value == pytest.approx(result.speedup("h", "best").value)
    assert result.free_network_speedup("h").value == pytest.approx(10**-1.5 / 0.005)


def test_error_for_speedup_passes_over_a_curve_below_range_that_others_beat():
    """Euler's most accurate point (2.5e-6 in 0.2 s) fits in 30 x 0.01 s but is far less
    accurate than what dop853 reaches then (1e-14 0.3^-4): the answer is dop853's. Asked
    for 2000x (20 s), both curves are past their most accurate points: below dop853's 1e-18."""
    euler = [dict(method="euler", family="classical", step=0.1 / k, seconds=0.01 * k, error=1e-3 / k**2)
             for k in (1, 10, 20)]
    rows = euler + power_law_rows(C=1e-14, method="dop853", seconds=(0.01, 0.1, 1.0, 10.0)) + [
        dict(method="h", family="hybrid", step=0.1, base="euler", seconds=0.05, error=1e-8)]
    error, status, _ = WorkPrecision(rows).error_for_speedup("h", 30.0)
    assert status == "ok" and error == pytest.approx(1e-14 * 0.3**-4, rel=1e-9)
    error, status, bound = WorkPrecision(rows).error_for_speedup("h", 2000.0)
    assert status == "below range" and bound == pytest.approx(1e-18)


def test_error_for_speedup_is_never_extrapolated():
    rows = power_law_rows(seconds=(0.01, 0.1, 1.0)) + [
        dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.05, error=1e-8)]
    result = WorkPrecision(rows)
    # 1000 x 0.01 s is past the most accurate point (1 s, error 1e-11): below it, how far unknown.
    error, status, bound = result.error_for_speedup("h", 1000.0)
    assert status == "below range" and np.isnan(error) and bound == pytest.approx(1e-11)
    # Half the plain step's time: no classical step measured is that fast.
    assert result.error_for_speedup("h", 0.5)[1] == "above range"
    with pytest.raises(ValueError, match="speedup"):
        result.error_for_speedup("h", 0.0)
    off_grid = WorkPrecision(power_law_rows() + [dict(rows[-1], step=0.07)])
    assert off_grid.error_for_speedup("h", 3.0)[1] == "no curve"


def test_a_cheaper_and_more_accurate_curve_caps_the_best_speedup():
    """dop853's coarsest step (error 1e-12 in 0.02 s) beats the hybrid (1e-8 in 0.01 s) in
    accuracy and undercuts rk4's interpolated time: against the best, the speed-up is at
    most 0.02 / 0.01, however fast rk4 would be."""
    rows = power_law_rows(C=1e-11, method="rk4") + [
        dict(method="dop853", family="classical", step=0.1, seconds=0.02, error=1e-12),
        dict(method="dop853", family="classical", step=0.05, seconds=0.04, error=1e-15),
        dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.01, error=1e-8),
    ]
    best = WorkPrecision(rows).speedup("h", "best")
    assert best.against == "dop853" and best.status == "above range" and np.isnan(best.value)
    assert best.bound == pytest.approx(2.0)
    assert WorkPrecision(rows).speedup("h", "base").value == pytest.approx((1e-11 / 1e-8) ** 0.25 / 0.01)


def test_rows_are_checked_and_unknown_labels_named():
    with pytest.raises(ValueError, match="lacks"):
        WorkPrecision([dict(method="x", family="classical", step=0.1, seconds=1.0)])
    with pytest.raises(ValueError, match="family"):
        WorkPrecision([dict(method="x", family="neural", step=0.1, seconds=1.0, error=1.0)])
    with pytest.raises(ValueError, match="'nope'"):
        WorkPrecision(power_law_rows()).speedup("nope")


# --- (c) the classical baselines follow their convergence orders ---------------------------------

@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_classical_errors_fall_with_the_integrators_order(pendulum, backend):
    """Halving the step divides the error by 2^p, the MSE by 2^(2p): 256 for RK4, 16 for Heun."""
    system, X = pendulum
    result = work_precision(X, DT, system=system, classical={"rk4": (1, 2, 4), "heun": (2, 4, 8)},
                            reference_tolerances=(), repeats=1, backend=backend)
    for name, order in (("rk4", 4), ("heun", 2)):
        errors = [row["error"] for row in result.curves()[name]]
        ratios = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
        assert ratios == pytest.approx(2 * order, abs=0.5), (name, errors)


def test_several_backends_give_one_curve_each_and_base_takes_the_fastest(pendulum):
    system, X = pendulum
    log = []
    result = work_precision(X, DT, {"h": SleepySolver(X, DT / 2, 0, log=log)}, system=system,
                            classical={"rk4": (1, 2, 4)}, reference_tolerances=(), repeats=1,
                            backend=("numpy", "torch"))
    curves = result.curves()
    assert set(curves) == {"rk4 (numpy)", "rk4 (torch)"}
    np.testing.assert_allclose([r["error"] for r in curves["rk4 (numpy)"]],
                               [r["error"] for r in curves["rk4 (torch)"]], rtol=1e-8)
    plain = min(r["seconds"] for name in curves for r in curves[name] if r["step"] == DT / 2)
    hybrid = result.rows[0]["seconds"]
    assert result.cost_model("h")["c_net_over_c_step"] == pytest.approx(hybrid / plain - 1)
    # The controlled solver is exact: more accurate than every classical step measured.
    finest = min(curves[name][-1]["seconds"] for name in curves)
    speedup = result.speedup("h", "base")
    assert speedup.status == "below range" and speedup.bound == pytest.approx(finest / hybrid)


@pytest.mark.slow
def test_compiled_classical_steps_match_numpy(pendulum):
    """torch.compile of the classical step (about 20 s of compilation per method on a CPU)."""
    system, X = pendulum
    result = work_precision(X, DT, system=system, classical={"rk4": (1, 2)}, reference_tolerances=(),
                            repeats=1, backend=("numpy", "torch-compile"))
    curves = result.curves()
    np.testing.assert_allclose([r["error"] for r in curves["rk4 (numpy)"]],
                               [r["error"] for r in curves["rk4 (torch-compile)"]], rtol=1e-8)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)"))])
def test_torch_backends_step_on_the_device_given(pendulum, device):
    """The torch steps on ``device`` give NumPy's errors; the rows and the result name the device."""
    system, X = pendulum
    result = work_precision(X, DT, system=system, classical={"rk4": (1, 2)}, reference_tolerances=(),
                            repeats=1, backend=("numpy", "torch"), device=device)
    curves = result.curves()
    np.testing.assert_allclose([r["error"] for r in curves["rk4 (numpy)"]],
                               [r["error"] for r in curves["rk4 (torch)"]], rtol=1e-8)
    assert {r.get("device") for r in curves["rk4 (torch)"]} == {str(torch.device(device))}
    assert all("device" not in r for r in curves["rk4 (numpy)"])
    assert result.backend == f"numpy, torch on {torch.device(device)}"


def test_the_reference_gains_accuracy_with_its_tolerance(pendulum):
    system, X = pendulum
    result = work_precision(X, DT, system=system, classical={"rk4": (1,)}, reference_tolerances=(1e-5, 1e-9),
                            n_reference=2, repeats=1)
    reference = [row for row in result.rows if row["family"] == "reference"]
    assert [row["tolerance"] for row in reference] == [1e-5, 1e-9]
    assert reference[1]["error"] < reference[0]["error"] / 100


def test_an_uncorrected_solver_is_its_base_integrator(pendulum):
    """correction="none" at step dt/2 is plain RK4 at dt/2: the same error, and k = 1."""
    system, X = pendulum
    solver = HybridSolverRegressor(system=system, dt=DT / 2, data_dt=DT / 2, correction="none", device="cpu")
    solver.fit(make_trajectories(system, 2, t_end=0.2, dt=DT / 2, fine_dt=DT / 2, random_state=0))
    result = work_precision(X, DT, {"plain": solver}, reference_tolerances=(), repeats=1)
    rk4 = {row["step"]: row["error"] for row in result.curves()["rk4"]}
    hybrid = result.rows[0]
    assert hybrid["error"] == pytest.approx(rk4[DT / 2], rel=1e-9)
    assert result.cost_model("plain")["k"] == pytest.approx(1.0, rel=1e-6)
    assert {"rk4", "dop853"} == set(result.curves())  # the default classical families


def test_an_uncorrected_solver_with_substeps_is_its_base_integrator_at_the_substep(pendulum):
    """correction="none" at step dt with 2 substeps is plain RK4 at dt/2: the plain row of the
    cost model is measured at dt/2, and one base step of the hybrid replaces k = 1 of RK4's."""
    system, X = pendulum
    solver = HybridSolverRegressor(system=system, dt=DT, substeps=2, correction="none", device="cpu")
    solver.fit(make_trajectories(system, 2, t_end=0.2, dt=DT, fine_dt=DT, random_state=0))
    result = work_precision(X, DT, {"plain": solver}, classical={"rk4": (1, 4)}, reference_tolerances=(),
                            repeats=1)
    rk4 = {row["step"]: row["error"] for row in result.curves()["rk4"]}
    assert set(rk4) == {DT, DT / 2, DT / 4}  # the substeps' plain step is added to the curve
    hybrid = result.rows[0]
    assert hybrid["substeps"] == 2 and hybrid["step"] == DT
    assert hybrid["error"] == pytest.approx(rk4[DT / 2], rel=1e-9)
    assert result.cost_model("plain")["k"] == pytest.approx(1.0, rel=1e-6)


def test_k_and_the_plain_time_of_a_hybrid_with_substeps_are_per_substep():
    """error = C h^8; a hybrid of step 0.1 in 4 substeps of 0.025 at error e: each substep
    replaces 0.025 / (e / C)^(1/8) base steps, and its plain steps are rk4's at 0.025."""
    C, error = 1.0, 3e-16
    rows = [dict(method="rk4", family="classical", step=h, seconds=1e-3 / h, error=C * h**8)
            for h in (0.1, 0.05, 0.025, 0.0125, 0.00625)]
    rows.append(dict(method="h", family="hybrid", step=0.1, base="rk4", substeps=4, seconds=0.05,
                     error=error))
    result = WorkPrecision(rows)
    model = result.cost_model("h")
    assert model["k"] == pytest.approx(0.025 / (error / C) ** (1 / 8), rel=1e-9)
    assert model["c_net_over_c_step"] == pytest.approx(0.05 / 0.04 - 1)  # plain rk4 at 0.025 took 0.04 s
    assert result.free_network_speedup("h", "base").hybrid_seconds == pytest.approx(0.04)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)"))])
def test_linear_systems_use_the_exact_propagator(device):
    system = SpringMass(n_masses=2)
    X = make_trajectories(system, 4, t_end=1.0, dt=DT, fine_dt=1e-3, random_state=0)
    fast = work_precision(X, DT, system=system, classical={"rk4": (1, 2)}, reference_tolerances=(), repeats=1,
                          device=device)
    stepped = work_precision(X, DT, system=system, classical={"rk4": (1, 2)}, reference_tolerances=(),
                             repeats=1, linear_shortcut=False)
    assert set(fast.curves()) == {"rk4 [propagator]"} and set(stepped.curves()) == {"rk4"}
    np.testing.assert_allclose([r["error"] for r in fast.curves()["rk4 [propagator]"]],
                               [r["error"] for r in stepped.curves()["rk4"]], rtol=1e-6)
    # The propagator's products run on a GPU device, with NumPy on the CPU.
    named = str(torch.device(device)) if device != "cpu" else None
    assert {r.get("device") for r in fast.curves()["rk4 [propagator]"]} == {named}
    assert fast.backend == "propagator" + (f" on {named}" if named else "")


def test_bad_arguments_are_named(pendulum):
    system, X = pendulum
    with pytest.raises(ValueError, match=r"solvers\['odd'\]\.dt"):
        work_precision(X, DT, {"odd": SleepySolver(X, 0.03, 0)}, system=system)
    for backend in ("jax", (), ("numpy", "cuda")):
        with pytest.raises(ValueError, match="backend"):
            work_precision(X, DT, system=system, backend=backend)
    with pytest.raises(ValueError, match="system is required"):
        work_precision(X, DT)
    with pytest.raises(TypeError, match="solvers"):
        work_precision(X, DT, [SleepySolver(X, DT, 0)], system=system)
    with pytest.raises(ValueError, match="classical"):
        work_precision(X, DT, system=system, classical={"rk5": (1,)})
    with pytest.raises(ValueError, match="device must be"):
        work_precision(X, DT, system=system, backend="torch", device="tpu")


def test_table_summary_and_plot(pendulum):
    pytest.importorskip("matplotlib", reason="plotting is the optional 'plot' extra")
    rows = power_law_rows() + [
        dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.02, error=1e-7),
        dict(method="solve_ivp DOP853", family="reference", step=float("nan"), tolerance=1e-8, seconds=3.0,
             error=1e-12),
    ]
    result = WorkPrecision(rows, system="test")
    table = result.table()
    assert table.count("\n") == 1 + len(rows) and "rtol 1e-08" in table
    assert "speed-up vs rk4 at finer steps" in result.summary()
    ax = result.plot()
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert {"rk4", "h", "solve_ivp DOP853 (adaptive)"} <= {line.get_label() for line in ax.get_lines()}


def test_plot_draws_errors_above_max_error_at_it(pendulum):
    pytest.importorskip("matplotlib", reason="plotting is the optional 'plot' extra")
    rows = power_law_rows() + [dict(method="rk4", family="classical", step=1.0, seconds=1e-4, error=1e30)]
    result = WorkPrecision(rows)
    lines = {line.get_label(): line for line in result.plot(max_error=1.0).get_lines()}
    errors = lines["rk4"].get_ydata()
    assert max(errors) == 1.0 and sorted(errors)[:-1] == sorted(r["error"] for r in power_law_rows())
    assert 1e30 in result.plot().get_lines()[0].get_ydata()  # without max_error: where it is
    with pytest.raises(ValueError, match="max_error"):
        result.plot(max_error=0)


def test_plot_draws_a_free_network_at_the_time_of_the_plain_steps():
    """Plain rk4 at the hybrid's step 0.1 took 0.01 s (power_law_rows): there the hollow marker."""
    pytest.importorskip("matplotlib", reason="plotting is the optional 'plot' extra")
    hybrid = dict(method="h", family="hybrid", step=0.1, base="rk4", seconds=0.05, error=1e-7)
    result = WorkPrecision(power_law_rows() + [hybrid])

    def hollow(ax):
        return [line for line in ax.get_lines() if line.get_markerfacecolor() == "none"]

    (free,) = hollow(result.plot(free_network=True))
    assert list(free.get_xdata()) == [0.01] and list(free.get_ydata()) == [1e-7]
    assert "network free" in free.get_label()
    assert not hollow(result.plot())


# --- (d) cost-aware model selection in GridSearchCV ----------------------------------------------

@pytest.fixture(scope="module")
def swinging():
    """ElasticPendulum, 40 steps of 0.05: plain Euler's MSE is about 2, RK4's about 1e-7."""
    system = ElasticPendulum()
    return system, make_trajectories(system, 16, t_end=2.0, dt=0.05, fine_dt=1e-3, random_state=0)


@pytest.fixture(scope="module")
def chain():
    """SpringMass(2), 40 steps of 0.05."""
    system = SpringMass(n_masses=2)
    return system, make_trajectories(system, 16, t_end=2.0, dt=0.05, fine_dt=1e-3, random_state=0)


class ControlledCostSolver(HybridSolverRegressor):
    """``predict`` first sleeps in proportion to the network's width and the integrator's
    stages: a cost known in advance and far above the timing noise of these tiny problems
    (predicting 8 trajectories takes well under a millisecond, so their own costs differ by
    less than a shared machine's jitter)."""

    def predict(self, X, *args, **kwargs):
        time.sleep(2e-5 * self.width + 5e-3 * len(get_integrator(self.integrator).b))
        return super().predict(X, *args, **kwargs)


def _search(system, X, grid, tolerance, **params):
    solver = ControlledCostSolver(system=system, dt=0.05, device="cpu", **params)
    search = GridSearchCV(solver, grid, cv=2, scoring=make_cost_aware_scoring(repeats=3),
                          refit=cheapest_within(tolerance))
    return search.fit(X)


@pytest.mark.parametrize("tolerance, expected", [(1e3, "euler"), (1e-4, "rk4")])
def test_grid_search_picks_the_cheapest_accurate_enough_integrator(swinging, tolerance, expected):
    """Euler takes one right-hand side per step, RK4 four (here 5 and 20 ms of controlled
    cost): Euler is the cheaper whenever it is accurate enough, and only RK4 is within 1e-4.
    (A nonlinear system: on a linear one every method's slope is one matrix product,
    whatever its stages.)"""
    system, X = swinging
    search = _search(system, X, {"integrator": ["euler", "rk4"]}, tolerance, correction="none")
    assert search.best_params_ == {"integrator": expected}
    mse = dict(zip(search.cv_results_["param_integrator"], -search.cv_results_["mean_test_mse"]))
    assert mse["euler"] > 1e-2 > 1e-4 > mse["rk4"]


def test_grid_search_picks_the_narrow_network_when_accuracy_ties(chain):
    """Untrained networks output zero (their last layer starts at zero): both widths are
    exactly as accurate, and a width-2048 network costs more than a width-8 one (41 ms of
    controlled cost against 0.2 ms)."""
    system, X = chain
    search = _search(system, X, {"width": [2048, 8]}, 1e3, max_epochs=0)
    results = search.cv_results_
    assert results["mean_test_mse"][0] == results["mean_test_mse"][1]
    assert search.best_params_ == {"width": 8}


def test_no_candidate_within_tolerance_warns_and_refits_the_most_accurate(swinging):
    system, X = swinging
    with pytest.warns(UserWarning, match="no candidate reaches"):
        search = _search(system, X, {"integrator": ["euler", "rk4"]}, 1e-30, correction="none")
    assert search.best_params_ == {"integrator": "rk4"}


def test_selection_pieces_pickle_and_check_their_arguments():
    refit = pickle.loads(pickle.dumps(cheapest_within(1e-6)))
    assert refit({"mean_test_mse": [-1e-5, -1e-7], "mean_test_seconds": [-1.0, -2.0]}) == 1
    assert pickle.loads(pickle.dumps(PredictSeconds(2))).repeats == 2
    with pytest.raises(ValueError, match="tolerance"):
        cheapest_within(-1.0)
    with pytest.raises(ValueError, match="repeats"):
        PredictSeconds(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cheapest_within(1.0)({"mean_test_mse": [-0.5], "mean_test_seconds": [-1.0]}) == 0
