"""Systems: equations checked against independent derivations, physics, and object protocol.

The pendulum equations are compared with accelerations derived here from a Lagrangian
written in Cartesian coordinates (Euler-Lagrange by automatic differentiation); the chain
with the equations of motion written out spring by spring and with Hamilton's equations of
its energy. Energy conservation is checked along fine trajectories.
"""

import pickle

import numpy as np
import pytest
import torch
import torch.func as torch_func
from helpers import param_id
from sklearn.base import clone

from sklearn_attns.datasets import make_trajectories
from sklearn_attns.systems import (
    Burgers,
    ElasticPendulum,
    FitzHughNagumo,
    GravitationalNBody,
    GrayScott,
    KLinkPendulum,
    ODESystem,
    SpringMass,
    as_system,
)

# --- Euler-Lagrange by automatic differentiation ----------------------------------------------

def euler_lagrange(lagrangian, q, qdot):
    """Accelerations of ``L(q, qdot)`` (1-D float64 tensors): solve M qddot = dL/dq - C qdot
    with M = d2L/dqdot2 and C = d2L/(dqdot dq)."""
    # reverse over reverse (torch.func.hessian is forward over reverse, which works too but
    # makes torch script its forward-mode decompositions, with a DeprecationWarning)
    mass = torch_func.jacrev(torch_func.grad(lagrangian, argnums=1), argnums=1)(q, qdot)
    force = torch_func.grad(lagrangian, argnums=0)(q, qdot)
    mixed = torch_func.jacrev(torch_func.grad(lagrangian, argnums=1), argnums=0)(q, qdot)
    return torch.linalg.solve(mass, force - mixed @ qdot)


def lagrangian_energy(lagrangian, q, qdot):
    """E = qdot . dL/dqdot - L."""
    return qdot @ torch_func.grad(lagrangian, argnums=1)(q, qdot) - lagrangian(q, qdot)


def cartesian_lagrangian(positions, potential, masses):
    """L = sum m/2 |x_dot|^2 - V(q) where x(q) are the Cartesian positions of the masses and
    x_dot = (dx/dq) qdot comes from differentiating ``positions``."""

    def lagrangian(q, qdot):
        velocities = torch_func.jacrev(positions)(q) @ qdot
        return 0.5 * (masses * (velocities**2).sum(-1)).sum() - potential(q)

    return lagrangian


def elastic_lagrangian(system):
    def positions(q):  # q = (theta, r): one mass at x = r sin(theta), y = -r cos(theta)
        theta, r = q[0], q[1]
        return torch.stack([r * torch.sin(theta), -r * torch.cos(theta)])[None]

    def potential(q):
        y = positions(q)[0, 1]
        return 0.5 * system.k * (q[1] - system.l0) ** 2 + system.m * system.g * y

    return cartesian_lagrangian(positions, potential, torch.tensor([float(system.m)], dtype=torch.float64))


def klink_lagrangian(system):
    n = system.n_links

    def positions(q):  # unit rods hanging from the origin, angles from the downward vertical
        return torch.stack([torch.cumsum(torch.sin(q), 0), -torch.cumsum(torch.cos(q), 0)], 1)

    def potential(q):
        return system.g * positions(q)[:, 1].sum()  # unit masses

    return cartesian_lagrangian(positions, potential, torch.ones(n, dtype=torch.float64))


def random_pendulum_states(system, n, seed):
    rng = np.random.RandomState(seed)
    if isinstance(system, ElasticPendulum):
        theta, r = rng.uniform(-np.pi, np.pi, n), rng.uniform(3.0, 20.0, n)
        return np.column_stack([theta, r, rng.normal(0, 1, (n, 2))])
    k = system.n_links
    return np.column_stack([rng.uniform(-np.pi, np.pi, (n, k)), rng.normal(0, 2, (n, k))])


PENDULUMS = [
    pytest.param(system, make, id=repr(system))
    for system, make in [
        (ElasticPendulum(), elastic_lagrangian),
        (ElasticPendulum(k=7.0, m=2.5, l0=3.0, g=9.81), elastic_lagrangian),
        (KLinkPendulum(n_links=2), klink_lagrangian),
        (KLinkPendulum(n_links=3), klink_lagrangian),
        (KLinkPendulum(n_links=4, g=3.7), klink_lagrangian),
    ]
]


@pytest.mark.parametrize("system, make_lagrangian", PENDULUMS)
def test_pendulum_rhs_matches_euler_lagrange(system, make_lagrangian):
    lagrangian = make_lagrangian(system)
    u = random_pendulum_states(system, 40, seed=0)
    half = system.n_state // 2
    state = torch.as_tensor(u)
    expected = torch_func.vmap(lambda s: euler_lagrange(lagrangian, s[:half], s[half:]))(state).numpy()
    got = system.rhs(u)
    np.testing.assert_allclose(got[:, :half], u[:, half:], rtol=0, atol=0)  # d(q)/dt = qdot exactly
    np.testing.assert_allclose(got[:, half:], expected, rtol=1e-10, atol=1e-10)


def test_euler_lagrange_check_has_teeth():
    """The paper's printed elastic-pendulum equation (theta' r' without the 2) fails the check."""
    system = ElasticPendulum()
    u = random_pendulum_states(system, 10, seed=1)
    lagrangian = elastic_lagrangian(system)
    expected = torch_func.vmap(lambda s: euler_lagrange(lagrangian, s[:2], s[2:]))(torch.as_tensor(u)).numpy()
    typo = (-system.g * np.sin(u[:, 0]) - u[:, 2] * u[:, 3]) / u[:, 1]
    assert np.abs(typo - expected[:, 0]).max() > 1e-3


@pytest.mark.parametrize("system, make_lagrangian", PENDULUMS)
def test_pendulum_energy_matches_lagrangian(system, make_lagrangian):
    lagrangian = make_lagrangian(system)
    u = random_pendulum_states(system, 40, seed=2)
    half = system.n_state // 2
    energy = torch_func.vmap(lambda s: lagrangian_energy(lagrangian, s[:half], s[half:]))
    expected = energy(torch.as_tensor(u))
    np.testing.assert_allclose(system.energy(u), expected.numpy(), rtol=1e-12, atol=1e-10)


# --- The spring chain -------------------------------------------------------------------------

def chain_rhs_by_hand(u, k, m):
    """dq_i/dt = p_i/m_i, dp_i/dt = k_i (q_{i-1} - q_i) + k_{i+1} (q_{i+1} - q_i), walls q_0 = q_{d+1} = 0."""
    d = len(m)
    out = np.empty_like(u)
    for i in range(d):
        q_left = u[:, i - 1] if i > 0 else 0.0
        q_right = u[:, i + 1] if i < d - 1 else 0.0
        out[:, i] = u[:, d + i] / m[i]
        out[:, d + i] = k[i] * (q_left - u[:, i]) + k[i + 1] * (q_right - u[:, i])
    return out


@pytest.mark.parametrize("n_masses", [1, 2, 20])
def test_spring_mass_rhs_matches_equations(n_masses):
    system = SpringMass(n_masses=n_masses, random_state=3)
    u = np.random.RandomState(0).normal(size=(7, 2 * n_masses))
    expected = chain_rhs_by_hand(u, system.k_, system.m_)
    np.testing.assert_allclose(system.rhs(u), expected, rtol=1e-13, atol=1e-13)


def test_spring_mass_explicit_parameters():
    k, m = np.array([1.0, 2.0, 3.0]), np.array([0.5, 4.0])
    system = SpringMass(n_masses=2, spring_constants=k, masses=m)
    u = np.random.RandomState(0).normal(size=(3, 4))
    np.testing.assert_allclose(system.rhs(u), chain_rhs_by_hand(u, k, m), rtol=1e-14)
    # energy = sum p^2 / 2m + sum k/2 (stretch)^2, by hand for one state
    q1, q2, p1, p2 = 0.3, -0.2, 1.0, -2.0
    expected = p1**2 / 1.0 + p2**2 / 8.0 + 0.5 * (1.0 * q1**2 + 2.0 * (q2 - q1) ** 2 + 3.0 * q2**2)
    np.testing.assert_allclose(system.energy(np.array([[q1, q2, p1, p2]])), [expected], rtol=1e-14)


@pytest.mark.parametrize("bad", [dict(spring_constants=[1.0, 2.0]), dict(masses=[1.0, -1.0]),
                                 dict(spring_constants=[1.0, 0.0, 1.0])])
def test_spring_mass_rejects_bad_parameters(bad):
    with pytest.raises(ValueError, match="spring_constants|masses"):
        SpringMass(n_masses=2, **bad).rhs(np.zeros((1, 4)))


def test_spring_mass_rhs_is_hamiltonian():
    """With H = energy(q, p): dq/dt = dH/dp and dp/dt = -dH/dq (autograd on the torch path)."""
    system = SpringMass(n_masses=20)
    u = torch.as_tensor(np.random.RandomState(0).normal(size=(8, 40)), dtype=torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(system.energy(u).sum(), u)
    expected = torch.cat([grad[:, 20:], -grad[:, :20]], 1)
    np.testing.assert_allclose(system.rhs(u.detach()).numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)


def test_spring_mass_parameter_distribution():
    """k = 5 max(N(1, 1/4), 0.2), m = max(N(1, 1/4), 0.2) (std 1/4, documented)."""
    system = SpringMass(n_masses=4000, random_state=0)
    k, m = system.k_, system.m_
    assert k.shape == (4001,) and m.shape == (4000,)
    assert k.min() >= 1.0 and m.min() >= 0.2
    for values in (k / 5.0, m):  # standard errors 0.004 (mean) and 0.003 (std)
        assert abs(values.mean() - 1.0) < 0.02
        assert abs(values.std() - 0.25) < 0.02
    np.testing.assert_array_equal(SpringMass(n_masses=4000, random_state=0).m_, m)
    assert not np.array_equal(SpringMass(n_masses=4000, random_state=1).m_, m)


# --- Energy conservation along fine trajectories ----------------------------------------------

@pytest.mark.parametrize(
    "system, t_end, dt, tolerance",
    [
        # Max relative drift |E(t) - E(0)| / |E(0)| with RK4 at fine_dt 1e-3, measured:
        # 3.8e-12 (T = 20, the benchmark's T)
        (SpringMass(n_masses=20), 20.0, 0.2, 1e-10),
        # 1.1e-13 (T = 10 of the benchmark's 50, for speed)
        (ElasticPendulum(), 10.0, 0.1, 1e-11),
        # 7.9e-15 (T = 10, the benchmark's T; 10,000 fine steps of a nonlinear rhs: slow)
        pytest.param(KLinkPendulum(n_links=2), 10.0, 0.1, 1e-12, marks=pytest.mark.slow,
                     id="KLinkPendulum()-10.0-0.1-1e-12"),
        # 3.3e-14 (T = 5)
        (KLinkPendulum(n_links=3), 5.0, 0.1, 1e-12),
    ],
    ids=param_id,
)
def test_energy_is_conserved_along_fine_trajectories(system, t_end, dt, tolerance):
    X = make_trajectories(system, 4, t_end=t_end, dt=dt, fine_dt=1e-3, random_state=0)
    energy = system.energy(X.reshape(-1, system.n_state)).reshape(X.shape[:2])
    drift = np.abs(energy - energy[:, :1]).max() / np.abs(energy[:, 0]).max()
    print(f"{system!r}: max relative energy drift {drift:.2g}")
    assert drift < tolerance


def elastic_rhs_as_printed(u):
    """The paper's printed theta'' (without the factor 2), for the test below."""
    theta, r, w, v = u.T
    system = ElasticPendulum()
    du = system.rhs(u)
    du[:, 2] = (-system.g * np.sin(theta) - w * v) / r
    return du


def test_energy_check_has_teeth():
    """The same check rejects the misprinted equation: its energy drifts by far more."""
    system = ElasticPendulum()
    u0 = system.sample_initial_conditions(4, random_state=0)
    X = make_trajectories(ODESystem(rhs=elastic_rhs_as_printed, n_state=4), t_end=10.0, dt=0.1,
                          fine_dt=1e-2, initial_conditions=u0)
    energy = system.energy(X.reshape(-1, 4)).reshape(X.shape[:2])
    drift = np.abs(energy - energy[:, :1]).max() / np.abs(energy[:, 0]).max()
    print(f"misprinted equation: relative energy drift {drift:.2g}")
    assert drift > 1e-6


# --- The object protocol: shapes, backends, pickling, cloning, parameters ---------------------

def decay(u):
    return -u


def double(u):
    return 2 * u


def two_state_sampler(n, rng):
    return rng.normal(size=(n, 2))


ALL_SYSTEMS = [
    SpringMass(n_masses=20),
    SpringMass(n_masses=3, random_state=5),
    ElasticPendulum(),
    KLinkPendulum(n_links=2),
    KLinkPendulum(n_links=3),
    ODESystem(rhs=decay, n_state=2, initial_conditions=two_state_sampler, name="decay"),
]


def test_n_state():
    assert SpringMass(n_masses=20).n_state == 40
    assert SpringMass(n_masses=7).n_state == 14
    assert ElasticPendulum().n_state == 4
    assert KLinkPendulum().n_state == 4
    assert KLinkPendulum(n_links=3).n_state == 6
    assert ODESystem(rhs=decay, n_state=5).n_state == 5


def sample_states(system, n=6, seed=0):
    u = system.sample_initial_conditions(n, random_state=seed)
    return u + 0.1 * np.random.RandomState(seed + 1).normal(size=u.shape)  # nonzero velocities too


@pytest.mark.parametrize("system", ALL_SYSTEMS, ids=param_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_in_torch_out(system, dtype):
    u = sample_states(system)
    expected = system.rhs(u)
    assert isinstance(expected, np.ndarray) and expected.shape == u.shape and expected.dtype == np.float64
    out = system.rhs(torch.as_tensor(u, dtype=dtype))
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == u.shape
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(out.numpy(), expected, rtol=tol, atol=tol * np.abs(expected).max())
    if hasattr(system, "energy"):
        energy = system.energy(torch.as_tensor(u, dtype=dtype))
        assert isinstance(energy, torch.Tensor) and energy.dtype == dtype and energy.shape == (len(u),)
        np.testing.assert_allclose(energy.numpy(), system.energy(u), rtol=tol, atol=tol)


@pytest.mark.parametrize("system", [*ALL_SYSTEMS, GravitationalNBody(n_bodies=3), Burgers(n_points=16),
                                    GrayScott(n_points=8), FitzHughNagumo(n_points=8)], ids=param_id)
def test_rhs_traces_as_one_graph_after_numpy_calls(system):
    """torch.compile captures the right-hand side whole (fullgraph: a graph break raises), its
    caches already holding NumPy entries, as in the library's compiled steps. A cache read
    through ``__dict__.setdefault``, or keyed by NumPy dtypes, broke the graph on torch 2.11,
    which then ran the compiled steps eagerly."""
    u = sample_states(system)
    system.rhs(u)
    system.rhs(torch.as_tensor(u))
    traced = torch.compile(system.rhs, fullgraph=True, backend="eager")
    np.testing.assert_allclose(traced(torch.as_tensor(u)).numpy(), system.rhs(u), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("system", ALL_SYSTEMS, ids=param_id)
def test_pickle_and_clone_round_trips(system):
    u = sample_states(system)
    system.rhs(u)  # fill the constant cache first: it must not leak into copies
    system.rhs(torch.as_tensor(u))
    for copy in (pickle.loads(pickle.dumps(system)), clone(system)):
        assert type(copy) is type(system)
        assert repr(copy) == repr(system)
        np.testing.assert_array_equal(copy.rhs(u), system.rhs(u))
        u_t = torch.as_tensor(u)
        np.testing.assert_array_equal(copy.rhs(u_t).numpy(), system.rhs(u_t).numpy())
        np.testing.assert_array_equal(copy.sample_initial_conditions(3, random_state=4),
                                      system.sample_initial_conditions(3, random_state=4))


@pytest.mark.parametrize(
    "system, change",
    [
        (SpringMass(n_masses=5), dict(random_state=1)),
        (SpringMass(n_masses=2), dict(masses=[3.0, 0.5])),
        (ElasticPendulum(), dict(k=5.0)),
        (ElasticPendulum(), dict(g=1.0)),
        (KLinkPendulum(n_links=2), dict(g=2.0)),
        (KLinkPendulum(n_links=2), dict(n_links=3)),
        (ODESystem(rhs=decay, n_state=2), dict(rhs=double)),
    ],
    ids=param_id,
)
def test_set_params_changes_rhs(system, change):
    system = clone(system)  # leave the shared parameter list as it was
    old_u = np.random.RandomState(0).normal(size=(4, system.n_state))
    before = system.rhs(old_u)
    system.rhs(torch.as_tensor(old_u))  # fill the caches of both backends
    system.set_params(**change)
    fresh = clone(system)  # built from the parameters alone
    u = np.random.RandomState(0).normal(size=(4, system.n_state))
    for backend in (np.asarray, torch.as_tensor):
        np.testing.assert_array_equal(np.asarray(system.rhs(backend(u))), np.asarray(fresh.rhs(backend(u))))
    if u.shape == old_u.shape:
        assert not np.allclose(system.rhs(u), before)


def test_lambda_rhs_does_not_pickle_and_says_why():
    system = ODESystem(rhs=lambda u: -u, n_state=1)
    with pytest.raises(pickle.PicklingError, match=r"`def`.*module"):
        pickle.dumps(system)


def test_nested_function_does_not_pickle_and_says_why():
    def nested(u):
        return -u

    with pytest.raises(pickle.PicklingError, match=r"`def`.*module"):
        pickle.dumps(ODESystem(rhs=decay, n_state=1, initial_conditions=nested))


def test_as_system():
    system = ElasticPendulum()
    assert as_system(system) is system
    wrapped = as_system(decay, n_state=3)
    assert isinstance(wrapped, ODESystem) and wrapped.n_state == 3 and wrapped.rhs is decay
    with pytest.raises(TypeError, match="system"):
        as_system(3)


# --- Initial conditions (paper's Table 4) -----------------------------------------------------

def test_spring_mass_initial_conditions_table4():
    u0 = SpringMass(n_masses=20).sample_initial_conditions(500, random_state=0)
    assert u0.shape == (500, 40) and u0.dtype == np.float64
    assert u0.min() >= -2.5 and u0.max() <= 2.5
    assert u0.min() < -2.45 and u0.max() > 2.45  # covers the range (500 x 40 uniform draws)
    assert abs(u0.mean()) < 0.05


@pytest.mark.parametrize(
    "system", [ElasticPendulum(), KLinkPendulum(n_links=2), KLinkPendulum(n_links=3)], ids=param_id
)
def test_pendulum_initial_conditions_table4(system):
    u0 = system.sample_initial_conditions(500, random_state=0)
    assert u0.shape == (500, system.n_state) and u0.dtype == np.float64
    angles = u0[:, [0]] if isinstance(system, ElasticPendulum) else u0[:, : system.n_links]
    assert angles.min() >= 0 and angles.max() <= np.pi / 8
    assert angles.min() < 0.01 and angles.max() > np.pi / 8 - 0.01
    if isinstance(system, ElasticPendulum):
        np.testing.assert_array_equal(u0[:, 1], 10.0)  # r0 = l0 = 10
        np.testing.assert_array_equal(u0[:, 2:], 0.0)
    else:
        np.testing.assert_array_equal(u0[:, system.n_links:], 0.0)


@pytest.mark.parametrize("system", ALL_SYSTEMS, ids=param_id)
def test_initial_conditions_reproducible(system):
    a = system.sample_initial_conditions(10, random_state=42)
    np.testing.assert_array_equal(a, system.sample_initial_conditions(10, random_state=42))
    rng = np.random.RandomState(42)
    np.testing.assert_array_equal(a, system.sample_initial_conditions(10, random_state=rng))
    assert not np.array_equal(a, system.sample_initial_conditions(10, random_state=43))
    assert a.shape == (10, system.n_state)


def test_ode_system_initial_conditions_errors():
    with pytest.raises(ValueError, match="initial_conditions"):
        ODESystem(rhs=decay, n_state=2).sample_initial_conditions(3)
    with pytest.raises(ValueError, match="initial_conditions"):
        ODESystem(rhs=decay, n_state=3, initial_conditions=two_state_sampler).sample_initial_conditions(3)
    with pytest.raises(ValueError, match="n"):
        ElasticPendulum().sample_initial_conditions(0)


@pytest.mark.parametrize("system", ALL_SYSTEMS[:-1], ids=param_id)  # a user's own rhs is not wrapped
def test_rhs_rejects_wrong_state_width(system):
    with pytest.raises(ValueError, match=str(system.n_state)):
        system.rhs(np.zeros((2, system.n_state + 1)))
