"""The torch steps of make_trajectories: the same data as the NumPy steps, to rounding.

Every check is against the NumPy steps (themselves checked against scipy's DOP853 and
exact solutions in the other dataset tests), against LAPACK for the unrolled solves, or
against the eager graph for the compile-time rewrite. ``torch.compile`` itself is slow to
run (10-60 s per system), so the tests of the decisions around it replace it with a stand-in;
the end-to-end compiled runs are marked slow.
"""

import time
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from helpers import identity_compile

import sklearn_attns._torch_stepping as torch_stepping
import sklearn_attns.datasets as datasets
from sklearn_attns._array import namespace
from sklearn_attns._torch_stepping import rewrite_for_columns, unrolled_solve
from sklearn_attns.datasets import load_klink_pendulum, make_trajectories
from sklearn_attns.systems import ElasticPendulum, KLinkPendulum, ODESystem


def lorenz96(u):
    """Lorenz's 40-variable model (F = 8), with operations both NumPy and torch have."""
    xp = namespace(u)
    return (xp.roll(u, -1, 1) - xp.roll(u, 2, 1)) * xp.roll(u, 1, 1) - u + 8.0


def duffing(t, u, p):
    xp = namespace(u)
    x, v = u[:, 0], u[:, 1]
    return xp.stack([v, -p[:, 0] * v - x - x**3 + p[:, 1] * xp.cos(1.2 * t)], 1)


def driven(t, u, p, w):
    """A damped pendulum with a torque input; cat(..., dim=-1) joins the columns."""
    xp = namespace(u)
    theta, omega = u[:, :1], u[:, 1:]
    return xp.concatenate([omega, -p[:, :1] * omega - xp.sin(theta) + w[:, :1] * xp.cos(t)[:, None]], -1)


def numpy_only(u):
    return np.asarray(u) * -1.0


def unit_box(n, rng):
    return rng.uniform(-1.0, 1.0, size=(n, 2))


def lorenz_start(n, rng):
    return 8.0 + rng.normal(scale=0.5, size=(n, 40))


RNG = np.random.RandomState(0)
SYSTEMS = {
    "elastic": (ElasticPendulum(), {}),
    "klink2": (KLinkPendulum(n_links=2), {}),
    "klink3": (KLinkPendulum(n_links=3), {}),
    "lorenz96": (ODESystem(rhs=lorenz96, n_state=40, initial_conditions=lorenz_start), {}),
    "duffing": (ODESystem(rhs=duffing, n_state=2, n_params=2, time_dependent=True,
                          initial_conditions=unit_box),
                dict(params=RNG.uniform(0.1, 0.5, (7, 2)), t0=np.linspace(-1.0, 1.0, 7))),
    "driven-linear": (ODESystem(rhs=driven, n_state=2, n_params=1, n_inputs=1, time_dependent=True,
                                initial_conditions=unit_box),
                      dict(params=RNG.uniform(0.1, 0.5, (7, 1)), inputs=RNG.normal(size=(7, 21, 1)))),
    "driven-hold": (ODESystem(rhs=driven, n_state=2, n_params=1, n_inputs=1, time_dependent=True,
                              input_interpolation="hold", initial_conditions=unit_box),
                    dict(params=RNG.uniform(0.1, 0.5, (7, 1)), inputs=RNG.normal(size=(7, 21, 1)))),
}
COMMON = dict(n_trajectories=7, t_end=2.0, dt=0.1, fine_dt=1e-2, random_state=0)


def relative_difference(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty cache of compiled steps, so a stand-in for torch.compile is used."""
    monkeypatch.setattr(torch_stepping, "_COMPILED", {})


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_torch_steps_agree_with_numpy_steps(name):
    system, conditioning = SYSTEMS[name]
    numpy_steps = make_trajectories(system, compile=False, **COMMON, **conditioning)
    torch_steps = make_trajectories(system, device="cpu", compile=False, **COMMON, **conditioning)
    # measured: at most 8e-16 (different libm for sin and cos; the same operations otherwise)
    assert relative_difference(torch_steps, numpy_steps) < 1e-12


def test_batches_are_padded_to_one_shape(monkeypatch):
    """7 trajectories in batches of 3 rows: 3, 3 and 1 padded to 3; the padding is dropped."""
    monkeypatch.setattr(datasets, "_TORCH_BATCH_VALUES", 3 * 4)
    system = ElasticPendulum()
    numpy_steps = make_trajectories(system, compile=False, **COMMON)
    torch_steps = make_trajectories(system, device="cpu", compile=False, **COMMON)
    assert relative_difference(torch_steps, numpy_steps) < 1e-12


@pytest.mark.parametrize("device", [None, "cpu"])
@pytest.mark.parametrize("name", ["elastic", "driven-linear"])
def test_results_do_not_depend_on_the_blocks_of_output_times(monkeypatch, name, device):
    system, conditioning = SYSTEMS[name]
    kwargs = dict(device=device, compile=False, **COMMON, **conditioning)
    monkeypatch.setattr(datasets, "_BLOCK_SECONDS", 0.0)  # blocks of one output time
    one_at_a_time = make_trajectories(system, **kwargs)
    monkeypatch.setattr(datasets, "_BLOCK_SECONDS", 1e9)  # blocks growing 8-fold: 1, 8, 11
    np.testing.assert_array_equal(make_trajectories(system, **kwargs), one_at_a_time)


def test_states_go_to_the_host_in_groups(monkeypatch):
    """Outputs staged on the device 3 at a time, in blocks of 1, 8 and 11 outputs."""
    system = ElasticPendulum()
    kwargs = dict(device="cpu", compile=False, **COMMON)
    monkeypatch.setattr(datasets, "_BLOCK_SECONDS", 1e9)
    at_once = make_trajectories(system, **kwargs)
    monkeypatch.setattr(torch_stepping, "_STAGED_BYTES", 3 * 8 * 4 * 7)
    np.testing.assert_array_equal(make_trajectories(system, **kwargs), at_once)


def test_progress_lines(monkeypatch, capsys):
    monkeypatch.setattr(datasets, "_BLOCK_SECONDS", 0.0)
    monkeypatch.setattr(datasets, "_PROGRESS_SECONDS", 0.0)
    make_trajectories(ElasticPendulum(), n_trajectories=3, t_end=0.4, dt=0.1, fine_dt=0.05, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # after outputs 1, 2 and 3 of 4, then the summary
    assert lines[0].startswith("make_trajectories: 1/4 output times (25%)")
    assert "trajectory-steps/s" in lines[0] and lines[0].endswith("s left")
    assert "3 trajectories" in lines[-1] and "NumPy steps" in lines[-1]


def test_memory_stays_that_of_the_output():
    """1,000 fine steps per output with an input signal: nothing is kept per fine step."""
    system = SYSTEMS["driven-linear"][0]
    n = 500
    tracemalloc.start()
    try:
        X = make_trajectories(system, t_end=0.2, dt=0.1, fine_dt=1e-4, initial_conditions=np.zeros((n, 2)),
                              params=np.ones((n, 1)), inputs=np.ones((n, 3, 1)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    fine_inputs_of_an_interval = n * 1_001 * 8  # 4 MB
    assert X.shape == (n, 3, 2)
    assert peak < fine_inputs_of_an_interval / 4, peak


# --- The unrolled solve and the graph rewrite ---------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("vector", [True, False])
def test_unrolled_solve_matches_lapack(k, vector):
    rng = np.random.RandomState(k)
    a = rng.normal(size=(50, k, k)) + 3 * np.eye(k)
    # rows that need pivoting: permutations with a zero where elimination would divide
    a[:10] = np.eye(k)[rng.permutation(k)] + 0.1 * rng.normal(size=(10, k, k)) * (rng.rand(10, k, k) > 0.5)
    a[:5, :, 0] = 0.0
    a[:5, k - 1, 0] = 1.0
    b = rng.normal(size=(50, k) if vector else (50, k, 3))
    expected = np.linalg.solve(a, b[..., None])[..., 0] if vector else np.linalg.solve(a, b)
    got = unrolled_solve(torch.from_numpy(a), torch.from_numpy(b), vector).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-12)


def test_unrolled_solve_of_a_singular_system_is_not_finite():
    a = torch.tensor([[[1.0, 2.0], [2.0, 4.0]]], dtype=torch.float64)
    assert not torch.isfinite(unrolled_solve(a, torch.ones(1, 2, dtype=torch.float64), True)).all()


def _rewritten(function, *args):
    """``function`` captured by dynamo, rewritten, run eagerly; and the graph's calls."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(rewrite_for_columns(gm))
        return gm.forward

    torch._dynamo.reset()
    out = torch.compile(function, backend=backend, dynamic=False)(*args)
    return out, [node.target for graph in graphs for node in graph.graph.nodes if node.op == "call_function"]


@pytest.mark.parametrize("name", ["elastic", "klink3", "lorenz96"])
def test_rewrite_keeps_the_values_and_lays_joins_out_by_columns(name):
    system = SYSTEMS[name][0]
    u = torch.from_numpy(system.sample_initial_conditions(9, random_state=0) + 0.1)
    expected = system.rhs(u)
    got, calls = _rewritten(system.rhs, u)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert torch.linalg.solve not in calls
    if name == "klink3":
        assert unrolled_solve in calls
    if name != "lorenz96":
        assert got.stride() == (1, 9)  # one column after the other


def test_rewrite_leaves_other_joins_and_solves_alone():
    def other(u):
        a = torch.eye(6, dtype=u.dtype).expand(len(u), 6, 6) * 2.0
        x = torch.linalg.solve(a, u[:, :6])  # 6 x 6: LAPACK
        return torch.cat([torch.stack([x, x], 0).sum(0), u[:, 6:]], dim=1)  # 3-D stack untouched

    u = torch.ones(4, 8, dtype=torch.float64)
    got, calls = _rewritten(other, u)
    torch.testing.assert_close(got, other(u))
    assert torch.linalg.solve in calls


# --- Choosing the steps, and falling back ----------------------------------------------------------

def _summary(capsys):
    return capsys.readouterr().out.splitlines()[-1]


def test_small_jobs_keep_the_numpy_steps(capsys):
    make_trajectories(ElasticPendulum(), n_trajectories=3, t_end=0.2, dt=0.1, fine_dt=0.05, verbose=1)
    assert _summary(capsys).endswith("NumPy steps)")


def test_large_jobs_compile_when_the_rhs_takes_tensors(monkeypatch, capsys, fresh_cache):
    monkeypatch.setattr(datasets, "_COMPILE_PAYS_AFTER_S", 0.0)
    monkeypatch.setattr(torch, "compile", identity_compile)
    make_trajectories(ElasticPendulum(), n_trajectories=3, t_end=0.2, dt=0.1, fine_dt=0.05, verbose=1)
    assert _summary(capsys).endswith("torch steps on cpu, compiled)")
    make_trajectories(ODESystem(rhs=numpy_only, n_state=2), t_end=0.2, dt=0.1, fine_dt=0.05, verbose=1,
                      initial_conditions=np.ones((3, 2)))
    assert _summary(capsys).endswith("NumPy steps)")


def test_a_failing_compiler_falls_back_to_eager_steps(monkeypatch, fresh_cache):
    def broken(function, **kwargs):
        raise RuntimeError("no C++ compiler\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    system = ElasticPendulum()
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no C\\+\\+ compiler$"):
        X = make_trajectories(system, compile=True, **COMMON)
    assert relative_difference(X, make_trajectories(system, compile=False, **COMMON)) < 1e-12


def test_compiled_steps_that_disagree_are_not_used(monkeypatch, fresh_cache):
    def wrong(function, **kwargs):
        def compiled(*args):
            return function(*args) * (1 + 1e-8)

        return compiled

    monkeypatch.setattr(torch, "compile", wrong)
    system = ElasticPendulum()
    with pytest.warns(RuntimeWarning, match="disagree"):
        X = make_trajectories(system, compile=True, **COMMON)
    assert relative_difference(X, make_trajectories(system, compile=False, **COMMON)) < 1e-12


def candidates_compile(slow, wrong=()):
    """A stand-in for torch.compile whose i-th call returns candidate i, tagged with ``i``:
    slowed down when ``i in slow``, off by 1e-8 when ``i in wrong``."""
    made = []

    def compile(function, **kwargs):
        index = len(made)
        made.append(index)

        def compiled(*args):
            if index in slow:
                time.sleep(0.01)
            out = function(*args)
            return out * (1 + 1e-8) if index in wrong else out

        compiled.index = index
        return compiled

    return compile


@pytest.mark.parametrize("slow, wrong, kept", [((0,), (), 1), ((1,), (), 0), ((0,), (1,), 0)],
                         ids=["first-slower", "second-slower", "faster-one-disagrees"])
def test_the_fastest_agreeing_compiled_candidate_is_kept(slow, wrong, kept, monkeypatch, fresh_cache):
    assert len(torch_stepping.INDUCTOR_VARIANTS) == 2
    monkeypatch.setattr(torch, "compile", candidates_compile(slow, wrong))
    system = ElasticPendulum()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a candidate that agrees is no fallback
        X = make_trajectories(system, compile=True, **COMMON)
    (checked,) = torch_stepping._COMPILED.values()
    assert checked.function.index == kept
    assert relative_difference(X, make_trajectories(system, compile=False, **COMMON)) < 1e-12


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(compile="yes"), "compile must be"),
        (dict(compile=1), "compile must be"),
        (dict(device="tpu"), "device must be"),
        (dict(compile=True, system=ODESystem(rhs=numpy_only, n_state=4)), "compile=True steps with torch"),
        (dict(device="cpu", system=ODESystem(rhs=numpy_only, n_state=4)), "device='cpu' steps with torch"),
    ],
    ids=["compile-str", "compile-int", "device-name", "compile-numpy-rhs", "device-numpy-rhs"],
)
def test_bad_device_or_compile_raises_naming_it(change, match):
    kwargs = dict(system=ElasticPendulum(), t_end=0.2, dt=0.1, fine_dt=0.05,
                  initial_conditions=ElasticPendulum().sample_initial_conditions(3, random_state=0))
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        make_trajectories(**kwargs)


def test_a_gpu_compiles_one_candidate_and_the_cpu_each_variant():
    assert torch_stepping.inductor_variants(torch.device("cpu")) == torch_stepping.INDUCTOR_VARIANTS
    assert torch_stepping.inductor_variants(torch.device("cuda", 0)) == ({},)  # Inductor's default


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; the test above checks the rule")
def test_cuda_steps_compile_a_single_candidate(monkeypatch, fresh_cache):
    made = []
    real_compile = torch.compile

    def counting_compile(*args, **kwargs):
        made.append(kwargs.get("backend"))
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", counting_compile)
    on_gpu = make_trajectories(ElasticPendulum(), device="cuda", compile=True, **COMMON)
    assert len(made) == 1
    assert relative_difference(on_gpu, make_trajectories(ElasticPendulum(), compile=False, **COMMON)) < 1e-12


def test_the_linear_shortcut_on_a_device_takes_the_same_products(monkeypatch):
    # The device path run on the CPU, in batches of 3 rows and 2 staged outputs: each
    # output is the same product with the propagator, so the paths agree to rounding.
    from sklearn_attns.integrators import get_integrator
    from sklearn_attns.systems import SpringMass

    chain = SpringMass(n_masses=5)
    u0 = chain.sample_initial_conditions(7, random_state=0)
    monkeypatch.setattr("sklearn_attns.devices.rows_in_memory", lambda device, bytes_per_row: 3)
    monkeypatch.setattr(torch_stepping, "_STAGED_BYTES", 2 * 3 * chain.n_state * 8)
    on_numpy, how = datasets._integrate_linear(chain.linear_operator, get_integrator("rk4"), u0, 0.05, 4, 9)
    assert how == "linear shortcut"
    on_device = np.full_like(on_numpy, np.nan)
    on_device[:, 0] = u0
    datasets._propagate_on(torch.device("cpu"), np.linalg.matrix_power(
        get_integrator("rk4").stability_polynomial(0.05 * chain.linear_operator), 4).T, on_device)
    np.testing.assert_allclose(on_device, on_numpy, rtol=1e-13, atol=1e-13)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA GPU; the test above runs its products on the CPU")
def test_cuda_linear_shortcut_agrees_with_numpy(capsys):
    from sklearn_attns.systems import SpringMass

    chain = SpringMass(n_masses=20)
    on_gpu = make_trajectories(chain, device="cuda", verbose=1, **COMMON)
    assert "linear shortcut on cuda" in capsys.readouterr().out
    assert relative_difference(on_gpu, make_trajectories(chain, **COMMON)) < 1e-12


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where CUDA is absent")
def test_cuda_without_cuda_says_so():
    with pytest.raises(ValueError, match="CUDA is not available"):
        make_trajectories(ElasticPendulum(), n_trajectories=2, t_end=0.2, dt=0.1, device="cuda")


def test_loader_on_a_device_gives_the_same_data(tmp_path):
    fast = dict(scale=0.0005, fine_dt=1e-2, reference_fine_dt=1e-2)
    on_numpy = load_klink_pendulum(data_home=tmp_path / "numpy", **fast)
    on_torch = load_klink_pendulum(data_home=tmp_path / "torch", device="cpu", **fast)
    for split in ("train", "validation", "test"):
        assert relative_difference(on_torch[split], on_numpy[split]) < 1e-12
    with pytest.raises(ValueError, match="device"):
        load_klink_pendulum(data_home=tmp_path / "bad", device="tpu", **fast)


# --- Slow: compiled end to end, worker processes, CUDA ---------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["klink3", "driven-linear"])
def test_compiled_steps_agree_with_numpy_steps(name):
    """Inductor end to end: the 3-link pendulum (concatenate, a 3 x 3 solve) and a system
    with time, a parameter and an input signal (10-60 s of compiling each)."""
    system, conditioning = SYSTEMS[name]
    numpy_steps = make_trajectories(system, compile=False, **COMMON, **conditioning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager steps fails the test
        compiled = make_trajectories(system, compile=True, **COMMON, **conditioning)
    # measured: at most 6e-16
    assert relative_difference(compiled, numpy_steps) < 1e-12


@pytest.mark.slow
def test_torch_steps_in_worker_processes():
    system, conditioning = SYSTEMS["driven-linear"]
    kwargs = dict(device="cpu", compile=False, **COMMON, **conditioning)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets, "_TORCH_BATCH_VALUES", 2 * 2)  # 4 batches of 2 rows
        np.testing.assert_array_equal(make_trajectories(system, n_jobs=2, **kwargs),
                                      make_trajectories(system, n_jobs=1, **kwargs))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; the CPU tests above run the "
                    "same torch code path with device='cpu'")
@pytest.mark.parametrize("compile", [False, True])
@pytest.mark.parametrize("name", ["elastic", "klink2", "driven-linear"])
def test_cuda_steps_agree_with_numpy_steps(name, compile):
    system, conditioning = SYSTEMS[name]
    numpy_steps = make_trajectories(system, compile=False, **COMMON, **conditioning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        on_gpu = make_trajectories(system, device="cuda", compile=compile, **COMMON, **conditioning)
    assert relative_difference(on_gpu, numpy_steps) < 1e-12
