"""Method-of-lines PDE systems, checked against independent solutions.

* Burgers: the stencil against one written out point by point; the semi-discrete solution
  against the Cole-Hopf analytic solution, whose error must shrink at second order in the
  spacing; the mean conserved along fine trajectories.
* Reaction-diffusion: the stencils against point-by-point formulas, the uniform
  equilibria from their closed forms, fine trajectories against scipy's DOP853 on the
  same semi-discrete system, and the diffusion part against the exact solution of the
  discrete heat equation in Fourier space.
"""

import pickle

import numpy as np
import pytest
import torch
from helpers import param_id
from scipy.integrate import solve_ivp
from sklearn.base import clone

from sklearn_attns import make_trajectories
from sklearn_attns.grids import GridLayout
from sklearn_attns.systems import Burgers, ElasticPendulum, FitzHughNagumo, GrayScott, ODESystem, SpringMass


def as_ivp(system):
    """``fun(t, y)`` for scipy's ``solve_ivp``: one state of the autonomous system."""
    return lambda t, y: system.rhs(y[None])[0]


# --- Layouts -------------------------------------------------------------------------------------


def test_grid_systems_declare_their_layout():
    assert Burgers(n_points=32, length=4.0).layout == GridLayout(32, 1, "periodic", 0.125)
    assert FitzHughNagumo(n_points=16).layout == GridLayout(16, 2, "periodic", 2.0 / 16)
    assert GrayScott().layout == GridLayout(64, 2, "periodic", 1.0)
    assert Burgers(n_points=32).n_state == 32 and FitzHughNagumo(n_points=32).n_state == 64
    # The same spacing on a domain twice as long:
    assert Burgers(n_points=128, length=4 * np.pi).layout.spacing == Burgers().layout.spacing


def test_ordinary_systems_have_no_layout():
    assert SpringMass().layout is None and ElasticPendulum().layout is None
    assert ODESystem(rhs=np.negative, n_state=2).layout is None
    layout = GridLayout(n_points=3, n_fields=2)
    system = ODESystem(rhs=np.negative, n_state=6, layout=layout)
    assert system.layout is layout and clone(system).layout == layout


# --- Burgers -------------------------------------------------------------------------------------


def burgers_by_hand(u, nu, h):
    """du_i/dt = -(u_{i+1}^2/2 - u_{i-1}^2/2) / (2h) + nu (u_{i-1} - 2u_i + u_{i+1}) / h^2, periodic."""
    n = u.shape[1]
    out = np.empty_like(u)
    for i in range(n):
        left, right = u[:, (i - 1) % n], u[:, (i + 1) % n]
        out[:, i] = -(right**2 / 2 - left**2 / 2) / (2 * h) + nu * (left - 2 * u[:, i] + right) / h**2
    return out


def test_burgers_stencil_point_by_point():
    system = Burgers(n_points=9, viscosity=0.3, length=2.0)
    u = np.random.RandomState(0).normal(size=(5, 9))
    np.testing.assert_allclose(system.rhs(u), burgers_by_hand(u, 0.3, 2.0 / 9), rtol=1e-13, atol=1e-12)


def cole_hopf(x, t, nu):
    """u = -2 nu phi_x / phi with phi = 1.5 + cos x + 0.3 cos(2x + 1) at t = 0 solving phi_t = nu phi_xx
    (phi > 0.2 everywhere, so u is smooth): an exact solution of u_t + u u_x = nu u_xx on [0, 2 pi)."""
    e1, e2 = np.exp(-nu * t), np.exp(-4 * nu * t)
    phi = 1.5 + e1 * np.cos(x) + 0.3 * e2 * np.cos(2 * x + 1)
    phi_x = -e1 * np.sin(x) - 0.6 * e2 * np.sin(2 * x + 1)
    return -2 * nu * phi_x / phi


def test_burgers_converges_to_cole_hopf_at_second_order():
    nu, t_end, errors = 0.1, 1.0, []
    for n in (32, 64, 128):
        system = Burgers(n_points=n, viscosity=nu)
        x = system.layout.coordinates()
        sol = solve_ivp(as_ivp(system), (0, t_end), cole_hopf(x, 0.0, nu), method="DOP853", rtol=1e-10,
                        atol=1e-12)
        errors.append(np.abs(sol.y[:, -1] - cole_hopf(x, t_end, nu)).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    print(f"max errors {errors}, observed orders {orders}")
    assert errors[-1] < 1e-2
    np.testing.assert_allclose(orders, 2.0, atol=0.15)


def test_burgers_conserves_the_mean_along_trajectories():
    system = Burgers()
    X = make_trajectories(system, 4, t_end=2.0, dt=0.05, fine_dt=1e-3, random_state=0)
    total = X.sum(-1)
    drift = np.abs(total - total[:, :1]).max()
    print(f"largest change of sum(u): {drift:.2g} (sum |u| about {np.abs(X).sum(-1).max():.3g})")
    assert drift < 1e-11
    assert np.abs(X[:, 0].sum(-1)).max() < 1e-12  # the default fields have zero mean


def test_burgers_default_initial_conditions():
    system = Burgers()
    u0 = system.sample_initial_conditions(200, random_state=0)
    assert u0.shape == (200, 64) and u0.dtype == np.float64
    np.testing.assert_allclose(np.abs(u0).max(1), 2.0)  # scaled to the amplitude
    # Smooth: n_modes=3 Fourier modes, nothing above.
    spectrum = np.abs(np.fft.rfft(u0, axis=1))
    assert spectrum[:, 4:].max() < 1e-12 and spectrum[:, 1:4].max() > 1.0


# --- Reaction-diffusion -------------------------------------------------------------------------


def fitzhugh_nagumo_by_hand(state, system):
    n, h = system.n_points, system.length / system.n_points
    u, v = state[:, :n], state[:, n:]
    du, dv = np.empty_like(u), np.empty_like(v)
    for i in range(n):
        lap_u = (u[:, (i - 1) % n] - 2 * u[:, i] + u[:, (i + 1) % n]) / h**2
        lap_v = (v[:, (i - 1) % n] - 2 * v[:, i] + v[:, (i + 1) % n]) / h**2
        du[:, i] = system.diffusion_u * lap_u + u[:, i] - u[:, i] ** 3 - system.k - v[:, i]
        dv[:, i] = system.diffusion_v * lap_v + u[:, i] - v[:, i]
    return np.concatenate([du, dv], 1)


def gray_scott_by_hand(state, system):
    n, h = system.n_points, system.length / system.n_points
    u, v = state[:, :n], state[:, n:]
    du, dv = np.empty_like(u), np.empty_like(v)
    f, k = system.feed, system.kill
    for i in range(n):
        lap_u = (u[:, (i - 1) % n] - 2 * u[:, i] + u[:, (i + 1) % n]) / h**2
        lap_v = (v[:, (i - 1) % n] - 2 * v[:, i] + v[:, (i + 1) % n]) / h**2
        du[:, i] = system.diffusion_u * lap_u - u[:, i] * v[:, i] ** 2 + f * (1 - u[:, i])
        dv[:, i] = system.diffusion_v * lap_v + u[:, i] * v[:, i] ** 2 - (f + k) * v[:, i]
    return np.concatenate([du, dv], 1)


@pytest.mark.parametrize("system, by_hand", [
    (FitzHughNagumo(n_points=7, diffusion_u=0.02, diffusion_v=0.07, k=0.1, length=3.0),
     fitzhugh_nagumo_by_hand),
    (GrayScott(n_points=7, diffusion_u=0.8, diffusion_v=0.3, feed=0.05, kill=0.07, length=5.0),
     gray_scott_by_hand),
], ids=param_id)
def test_reaction_diffusion_stencil_point_by_point(system, by_hand):
    u = np.random.RandomState(0).uniform(0, 1, size=(5, 14))
    np.testing.assert_allclose(system.rhs(u), by_hand(u, system), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(system.diffusion(u) + system.reaction(u), system.rhs(u), rtol=1e-15,
                               atol=1e-15)


def uniform(n_points, u, v):
    return np.concatenate([np.full(n_points, u), np.full(n_points, v)])[None]


def test_uniform_equilibria_are_steady():
    fhn = FitzHughNagumo(n_points=8, k=0.03)
    root = -np.cbrt(0.03)  # u = v and -u^3 - k = 0
    assert np.abs(fhn.rhs(uniform(8, root, root))).max() < 1e-15
    assert np.abs(fhn.rhs(uniform(8, 0.0, 0.0))).max() > 1e-3
    feed, kill = 0.05, 0.05  # F > 4 (F + k)^2: two non-trivial uniform states besides (1, 0)
    gs = GrayScott(n_points=8, feed=feed, kill=kill)
    root = np.sqrt(1 - 4 * (feed + kill) ** 2 / feed)
    for sign in (1, -1):
        v = feed * (1 + sign * root) / (2 * (feed + kill))
        assert np.abs(gs.rhs(uniform(8, (feed + kill) / v, v))).max() < 1e-15
    assert np.abs(gs.rhs(uniform(8, 1.0, 0.0))).max() == 0


@pytest.mark.parametrize("system, t_end, dt, fine_dt, tolerance", [
    # Measured largest differences: 7.9e-11 and 1.9e-7 (RK4's own error at fine_dt=1e-2 on
    # Gray-Scott's slow time scale; 1e-2 keeps the test fast).
    (FitzHughNagumo(n_points=32), 2.0, 0.1, 1e-3, 1e-9),
    (GrayScott(n_points=32, length=32.0), 40.0, 2.0, 1e-2, 1e-6),
], ids=param_id)
def test_reaction_diffusion_trajectories_match_dop853(system, t_end, dt, fine_dt, tolerance):
    """RK4 fine steps (make_trajectories) against scipy's DOP853 on the same semi-discrete system."""
    X = make_trajectories(system, 3, t_end=t_end, dt=dt, fine_dt=fine_dt, random_state=0)
    times = np.arange(X.shape[1]) * dt
    for trajectory in X:
        sol = solve_ivp(as_ivp(system), (0, t_end), trajectory[0], t_eval=times, method="DOP853", rtol=1e-10,
                        atol=1e-12)
        difference = np.abs(sol.y.T - trajectory).max()
        assert difference < tolerance, difference


@pytest.mark.parametrize("system", [FitzHughNagumo(n_points=24), GrayScott(n_points=24, length=20.0)],
                         ids=param_id)
def test_diffusion_part_matches_the_discrete_fourier_solution(system):
    """d/dt of the discrete Laplacian's Fourier mode m is -4 D sin^2(pi m / n) / h^2 times itself,
    so the diffusion part alone has the closed-form solution exp(-4 D sin^2(pi m / n) t / h^2) per mode."""
    n, h, t_end = system.n_points, system.layout.spacing, 2.0
    noise = np.random.RandomState(1).normal(0, 0.1, (2, 2 * n))
    u0 = system.sample_initial_conditions(2, random_state=0) + noise
    X = make_trajectories(ODESystem(rhs=system.diffusion, n_state=2 * n), t_end=t_end, dt=t_end, fine_dt=1e-3,
                          initial_conditions=u0)
    symbol = 4 * np.sin(np.pi * np.fft.fftfreq(n, 1.0 / n) / n) ** 2 / h**2
    for field, diffusivity in ((0, system.diffusion_u), (1, system.diffusion_v)):
        part = slice(field * n, (field + 1) * n)
        exact = np.fft.ifft(np.fft.fft(u0[:, part]) * np.exp(-diffusivity * symbol * t_end)).real
        np.testing.assert_allclose(X[:, -1, part], exact, rtol=0, atol=1e-11)
    assert np.abs(X[:, -1] - u0).max() > 1e-2  # something did diffuse


def test_default_fitzhugh_nagumo_forms_patterns():
    system = FitzHughNagumo()
    u0 = system.sample_initial_conditions(3, random_state=0)
    sol = [solve_ivp(as_ivp(system), (0, 10.0), y0, method="DOP853", rtol=1e-6).y[:, -1] for y0 in u0]
    for state in sol:
        u = state[: system.n_points]
        crossings = (np.sign(u) != np.sign(np.roll(u, 1))).sum()
        # Not uniform: an activator pattern of one or more wavelengths, of order-one amplitude.
        assert crossings >= 2 and u.max() - u.min() > 0.8, (crossings, u.max() - u.min())


def test_default_gray_scott_pulses_replicate():
    system = GrayScott()
    u0 = system.sample_initial_conditions(4, random_state=0)

    def pulses(state):
        v = state[system.n_points :]
        return int(((v > 0.1) & (np.roll(v, 1) <= 0.1)).sum())

    counts = []
    for y0 in u0:
        end = solve_ivp(as_ivp(system), (0, 600.0), y0, method="DOP853", rtol=1e-6).y[:, -1]
        counts.append((pulses(y0), pulses(end)))
    print(f"pulses (start, t = 600): {counts}")
    assert all(end >= 1 for _, end in counts)  # the pattern survives
    assert any(end > start for start, end in counts)  # and some pulses split


# --- Object protocol ---------------------------------------------------------------------------

GRID_SYSTEMS = [Burgers(n_points=16), FitzHughNagumo(n_points=16), GrayScott(n_points=16, length=16.0)]


@pytest.mark.parametrize("system", GRID_SYSTEMS, ids=param_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grid_systems_on_torch(system, dtype):
    u = system.sample_initial_conditions(4, random_state=0)
    expected = system.rhs(u)
    assert isinstance(expected, np.ndarray) and expected.dtype == np.float64
    tensor = torch.as_tensor(u, dtype=dtype).requires_grad_()
    out = system.rhs(tensor)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == u.shape
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=tol, atol=tol * np.abs(expected).max())
    (grad,) = torch.autograd.grad(out.sum(), tensor)  # differentiable, for unrolled training
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("system", GRID_SYSTEMS, ids=param_id)
def test_grid_rhs_is_translation_equivariant(system):
    u = system.sample_initial_conditions(3, random_state=1)
    layout = system.layout
    shifted = layout.from_grid(np.roll(layout.to_grid(u), 5, -1))
    expected = layout.from_grid(np.roll(layout.to_grid(system.rhs(u)), 5, -1))
    np.testing.assert_allclose(system.rhs(shifted), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("system", GRID_SYSTEMS, ids=param_id)
def test_grid_systems_pickle_clone_and_reseed(system):
    u = system.sample_initial_conditions(3, random_state=4)
    system.rhs(u)
    for copy in (pickle.loads(pickle.dumps(system)), clone(system)):
        assert repr(copy) == repr(system) and copy.layout == system.layout
        np.testing.assert_array_equal(copy.rhs(u), system.rhs(u))
        np.testing.assert_array_equal(copy.sample_initial_conditions(3, random_state=4), u)
    assert not np.array_equal(system.sample_initial_conditions(3, random_state=5), u)


@pytest.mark.parametrize("system, change", [(Burgers(n_points=16), dict(viscosity=0.2)),
                                            (FitzHughNagumo(n_points=16), dict(k=0.1)),
                                            (GrayScott(n_points=16), dict(feed=0.03)),
                                            (Burgers(n_points=16), dict(length=3.0))], ids=param_id)
def test_set_params_changes_rhs(system, change):
    system = clone(system)
    u = system.sample_initial_conditions(3, random_state=0)
    before = system.rhs(u)
    system.set_params(**change)
    np.testing.assert_array_equal(system.rhs(u), clone(system).rhs(u))
    assert not np.allclose(system.rhs(u), before)


@pytest.mark.parametrize("system, bad, name", [
    (Burgers, dict(n_points=2), "n_points"), (Burgers, dict(viscosity=-1.0), "viscosity"),
    (Burgers, dict(length=0.0), "length"), (FitzHughNagumo, dict(diffusion_v=-1.0), "diffusion_v"),
    (FitzHughNagumo, dict(k="a"), "k"), (GrayScott, dict(feed=-0.1), "feed"),
    (GrayScott, dict(kill=float("nan")), "kill"),
], ids=param_id)
def test_bad_parameters_are_named(system, bad, name):
    with pytest.raises((ValueError, TypeError), match=name):
        instance = system(**bad)
        instance.rhs(np.zeros((1, instance.n_state)))


def test_make_trajectories_on_grid_systems():
    for system, dt in ((Burgers(n_points=32), 0.05), (FitzHughNagumo(n_points=16), 0.1)):
        X = make_trajectories(system, 3, t_end=0.5, dt=dt, fine_dt=1e-2, random_state=0)
        assert X.shape == (3, 11 if dt == 0.05 else 6, system.n_state) and X.dtype == np.float64
        assert np.isfinite(X).all()
