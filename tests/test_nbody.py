"""GravitationalNBody against Kepler's orbit, Newton's laws and the conservation laws."""

import numpy as np
import pytest
import torch

from sklearn_attns.datasets import make_trajectories
from sklearn_attns.systems import GravitationalNBody


def kepler_relative_position(t, a, e, mu):
    """Relative position at time t of the two-body orbit with pericentre on +x at t = 0,
    from Kepler's equation E - e sin E = n t solved by Newton's method."""
    mean_anomaly = np.sqrt(mu / a**3) * t
    E = mean_anomaly.copy()
    for _ in range(50):
        E -= (E - e * np.sin(E) - mean_anomaly) / (1 - e * np.cos(E))
    return np.stack([a * (np.cos(E) - e), a * np.sqrt(1 - e**2) * np.sin(E)], -1)


def rotation(dim):
    if dim == 2:
        return np.eye(2)
    # An orbital plane tilted about two axes, so that no coordinate stays zero.
    c1, s1, c2, s2 = np.cos(0.7), np.sin(0.7), np.cos(-0.4), np.sin(-0.4)
    return np.array([[1, 0, 0], [0, c1, -s1], [0, s1, c1]]) @ np.array([[c2, 0, s2], [0, 1, 0], [-s2, 0, c2]])


@pytest.mark.parametrize("dim", [2, 3])
def test_two_bodies_follow_keplers_orbit(dim):
    masses, G, a, e = np.array([1.0, 0.3]), 1.5, 1.0, 0.5
    mu = G * masses.sum()
    system = GravitationalNBody(n_bodies=2, dim=dim, softening=0.0, gravity=G, masses=masses)
    R = rotation(dim)
    r0 = R[:, :2] @ np.array([a * (1 - e), 0.0])
    v0 = R[:, :2] @ np.array([0.0, np.sqrt(mu * (1 + e) / (a * (1 - e)))])
    # Centre-of-mass frame: body 0 at -m1/M r, body 1 at m0/M r.
    weights = np.array([-masses[1], masses[0]]) / masses.sum()
    u0 = np.concatenate([np.outer(weights, r0).ravel(), np.outer(weights, v0).ravel()])[None]
    period = 2 * np.pi * np.sqrt(a**3 / mu)
    X = make_trajectories(system, initial_conditions=u0, t_end=5.0, dt=0.25, fine_dt=5e-3, method="dop853")
    times = 0.25 * np.arange(X.shape[1])
    assert times[-1] > period  # more than one revolution, through two pericentre passages
    q = X[0, :, : 2 * dim].reshape(-1, 2, dim)
    expected = kepler_relative_position(times, a, e, mu) @ R[:, :2].T
    np.testing.assert_allclose(q[:, 1] - q[:, 0], expected, atol=1e-10)
    np.testing.assert_allclose(masses @ q, 0.0, atol=1e-13)  # the centre of mass stays put


@pytest.mark.parametrize("dim", [2, 3])
def test_energy_momentum_and_angular_momentum_are_conserved(dim):
    system = GravitationalNBody(n_bodies=8, dim=dim)
    X = make_trajectories(system, 4, t_end=5.0, dt=0.5, fine_dt=0.01, method="dop853", random_state=0)
    states = X.reshape(-1, system.n_state)
    energy = system.energy(states).reshape(4, -1)
    angular = np.asarray(system.angular_momentum(states)).reshape(4, X.shape[1], -1)
    np.testing.assert_allclose(energy, np.broadcast_to(energy[:, :1], energy.shape), rtol=1e-11)
    np.testing.assert_allclose(angular, np.broadcast_to(angular[:, :1], angular.shape), rtol=0, atol=1e-12)
    np.testing.assert_allclose(system.momentum(states), 0.0, atol=1e-14)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("softening", [0.0, 0.1])
def test_accelerations_are_minus_the_potentials_gradient_over_the_mass(dim, softening):
    """m_i q_i'' = -dV/dq_i, with V the energy at rest differentiated by torch's autograd,
    and the forces sum to zero (Newton's third law)."""
    system = GravitationalNBody(n_bodies=5, dim=dim, softening=softening, gravity=2.0,
                                masses=[1.0, 0.5, 0.2, 0.3, 0.05])
    u = torch.as_tensor(system.sample_initial_conditions(6, random_state=1))
    half = system.n_state // 2
    at_rest = torch.cat([u[:, :half], torch.zeros_like(u[:, half:])], 1).requires_grad_(True)
    (gradient,) = torch.autograd.grad(system.energy(at_rest).sum(), at_rest)
    masses = torch.tensor(system.masses, dtype=torch.float64).repeat_interleave(dim)
    acc = system.rhs(u)[:, half:]
    torch.testing.assert_close(masses * acc, -gradient[:, :half], rtol=1e-12, atol=1e-12)
    total_force = (masses * acc).reshape(6, 5, dim).sum(1)
    torch.testing.assert_close(total_force, torch.zeros(6, dim, dtype=torch.float64), rtol=0, atol=1e-13)


def kepler_apocentre(r, v, mu):
    """Largest distance on the two-body ellipse through relative position r and velocity v (2-D)."""
    energy = 0.5 * (v**2).sum(-1) - mu / np.linalg.norm(r, axis=-1)
    a = -mu / (2 * energy)
    h = r[..., 0] * v[..., 1] - r[..., 1] * v[..., 0]
    return a * (1 + np.sqrt(1 + 2 * energy * h**2 / mu**2))


@pytest.mark.parametrize("masses, slack", [([1.0] + [1e-9] * 5, 1.03), (None, 1.5)])
def test_sampled_orbits_stay_near_their_kepler_ellipses(masses, slack):
    """With negligible satellite masses each satellite follows its two-body ellipse about
    body 0 (apocentre from its initial energy and angular momentum; the softening bends it
    by about 2%). With the default masses (1e-3) encounters between satellites perturb the
    ellipses by up to some tens of percent over 20 time units: the orbits stay bounded."""
    system = GravitationalNBody(n_bodies=6, radii=(1.0, 2.0), masses=masses)
    u0 = system.sample_initial_conditions(32, random_state=0)
    np.testing.assert_allclose(system.momentum(u0), 0.0, atol=1e-15)
    assert np.all(system.energy(u0) < 0)
    X = make_trajectories(system, initial_conditions=u0, t_end=20.0, dt=1.0, fine_dt=0.02, method="rk4")
    q, v = X[..., :12].reshape(32, -1, 6, 2), X[..., 12:].reshape(32, -1, 6, 2)
    r, w = q[:, :, 1:] - q[:, :, :1], v[:, :, 1:] - v[:, :, :1]
    satellite_mass = 1e-3 if masses is None else masses[1]
    apocentre = kepler_apocentre(r[:, 0], w[:, 0], mu=1.0 + satellite_mass)
    assert np.all(np.isfinite(apocentre)) and apocentre.max() < 2.5 * 2.0  # every ellipse is bound
    assert np.all(np.linalg.norm(r, axis=-1).max(1) < slack * apocentre)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_matches_numpy_and_keeps_its_dtype(dtype):
    system = GravitationalNBody(n_bodies=5, dim=3)
    u = system.sample_initial_conditions(4, random_state=2)
    out = system.rhs(torch.as_tensor(u, dtype=dtype))
    assert out.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(out.numpy(), system.rhs(u), rtol=tol, atol=tol)


@pytest.mark.parametrize("params, message", [
    (dict(dim=4), "dim must be 2 or 3"),
    (dict(n_bodies=1), "n_bodies"),
    (dict(softening=-0.1), "softening"),
    (dict(gravity=0.0), "gravity"),
    (dict(masses=[1.0, 2.0]), r"masses must have shape \(8,\)"),
    (dict(masses=[1.0] * 7 + [-1.0]), "masses must be positive"),
    (dict(radii=(2.0, 1.0)), "radii"),
])
def test_bad_parameters_are_named(params, message):
    system = GravitationalNBody(**params)
    with pytest.raises(ValueError, match=message):
        system.rhs(np.zeros((1, 2 * 8 * 2)))
    with pytest.raises(ValueError, match=message):
        system.sample_initial_conditions(1)
