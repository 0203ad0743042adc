"""Tests of gdcore.analysis: Hessians, spectra, predicted and measured rates."""

import math

import numpy as np
import pytest

import gdcore.nn
import gdcore.reference
from gdcore import analysis
from gdcore._history import History
from gdcore.problems import Beale, Quadratic, Rosenbrock


def _gd(H, x0, lr, n_steps, momentum=0.0):
    """Plain NumPy heavy ball x+ = x - lr H x + momentum (x - x_prev), as a test oracle.

    Written independently of gdcore's optimizers: it is the textbook iteration
    whose rate the formulas predict.
    """
    xs = [np.array(x0, dtype=np.float64)]
    prev = xs[0]
    for _ in range(n_steps):
        x = xs[-1]
        xs.append(x - lr * (H @ x) + momentum * (x - prev))
        prev = x
    return np.array(xs)


@pytest.mark.parametrize(
    "problem", [Rosenbrock(), Rosenbrock(4), Beale()], ids=lambda p: f"{p.name}{p.dim}"
)
@pytest.mark.parametrize("kind, rtol", [("grad", 1e-7), ("value", 1e-5)])
def test_finite_difference_hessian_matches_exact(problem, kind, rtol):
    x = problem.x0 + 0.25
    exact = analysis.hessian(problem, x)
    np.testing.assert_array_equal(exact, problem.hessian(x))
    estimate = analysis.hessian(problem, x, kind=kind)
    np.testing.assert_array_equal(estimate, estimate.T)
    np.testing.assert_allclose(
        estimate, exact, rtol=rtol, atol=rtol * np.abs(exact).max()
    )


def test_hessian_of_a_plain_gradient_callable():
    A = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, -1.0], [0.0, -1.0, 2.0]])

    # f = x^T A x / 2 + cos(x_0): the Hessian is A - cos(x_0) e_0 e_0^T.
    def grad(x):
        return A @ x - np.array([np.sin(x[0]), 0.0, 0.0])

    H = analysis.hessian(grad, np.array([0.5, 1.0, -2.0]))
    expected = A.copy()
    expected[0, 0] -= np.cos(0.5)
    np.testing.assert_allclose(H, expected, rtol=0, atol=1e-8)
    Hf = analysis.hessian(lambda x: 0.5 * x @ A @ x, np.ones(3), kind="value")
    np.testing.assert_allclose(Hf, A, rtol=0, atol=1e-6)


class _LinearModel:
    """An MLP-shaped least-squares model: mean 0.5 (X w + c - y)^2, params [w, c]."""

    def __init__(self, n_features, dtype=np.float64):
        self.flat_params = np.linspace(-1.0, 1.0, n_features + 1).astype(dtype)
        self.flat_grads = np.zeros_like(self.flat_params)
        self.params = [self.flat_params[:-1], self.flat_params[-1:]]
        self.grads = [self.flat_grads[:-1], self.flat_grads[-1:]]

    def loss_and_grad(self, X, y):
        r = X @ self.params[0] + self.params[1][0] - y
        self.grads[0][:] = X.T @ r / len(y)
        self.grads[1][:] = r.mean()
        return float(0.5 * np.mean(r**2)), self.grads


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-7), (np.float32, 2e-2)])
def test_hessian_mlp_on_a_linear_model(dtype, rtol):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5)).astype(dtype)
    y = rng.standard_normal(40).astype(dtype)
    model = _LinearModel(5, dtype)
    before = model.flat_params.copy()
    H = analysis.hessian_mlp(model, X, y)
    Xa = np.column_stack([X.astype(np.float64), np.ones(40)])
    expected = Xa.T @ Xa / 40
    np.testing.assert_allclose(H, expected, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(model.flat_params, before)
    assert H.dtype == np.float64 and H.shape == (6, 6)


def _torch_mlp_hessian(model, X, y, loss):
    """Hessian of a tanh MLP's mean loss by torch's autograd, as an oracle."""
    torch = pytest.importorskip("torch")
    shapes = [p.shape for p in model.params]
    Xt = torch.as_tensor(X)

    def mean_loss(w):
        arrays, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            arrays.append(w[start : start + size].reshape(shape))
            start += size
        h = Xt
        for i in range(0, len(arrays), 2):
            h = h @ arrays[i] + arrays[i + 1]
            if i + 2 < len(arrays):
                h = torch.tanh(h)
        if loss == "mse":
            return torch.mean((h - torch.as_tensor(y)) ** 2)
        return torch.nn.functional.cross_entropy(h, torch.as_tensor(y))

    w = torch.as_tensor(model.flat_params.copy())
    return torch.autograd.functional.hessian(mean_loss, w).numpy()


@pytest.mark.parametrize(
    "module", [gdcore.nn, gdcore.reference], ids=["compiled", "reference"]
)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_hessian_mlp_matches_autograd(module, loss):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((25, 3))
    y = rng.standard_normal((25, 2)) if loss == "mse" else rng.integers(0, 3, 25)
    k = 2 if loss == "mse" else 3
    model = module.MLP([3, 4, k], activation="tanh", loss=loss, seed=0)
    before = model.flat_params.copy()
    H = analysis.hessian_mlp(model, X, y)
    expected = _torch_mlp_hessian(model, X, y, loss)
    assert H.shape == (model.n_params, model.n_params)
    np.testing.assert_allclose(
        H, expected, rtol=1e-6, atol=1e-7 * np.abs(expected).max()
    )
    np.testing.assert_array_equal(model.flat_params, before)


def test_hessian_mlp_rejects_a_non_model():
    with pytest.raises(TypeError, match="flat_params"):
        analysis.hessian_mlp(object(), np.ones((2, 2)), np.ones(2))


@pytest.mark.parametrize(
    "H, lmin, lmax, kappa, pd, words",
    [
        ([[2.0, 0.0], [0.0, 8.0]], 2.0, 8.0, 4.0, True, "strict local minimum"),
        ([[1.0, 1.0], [1.0, 1.0]], 0.0, 2.0, math.inf, False, "flat direction"),
        ([[1.0, 0.0], [0.0, -3.0]], -3.0, 1.0, math.inf, False, "saddle"),
        ([[-1.0, 0.0], [0.0, -3.0]], -3.0, -1.0, math.inf, False, "maximum"),
        ([[5.0, 3.0], [3.0, 5.0]], 2.0, 8.0, 4.0, True, "kappa = 4"),
    ],
)
def test_spectrum_by_hand(H, lmin, lmax, kappa, pd, words):
    s = analysis.spectrum(H)
    assert s.lambda_min == pytest.approx(lmin, abs=1e-14)
    assert s.lambda_max == pytest.approx(lmax)
    assert s.condition_number == pytest.approx(kappa) and s.kappa == s.condition_number
    assert s.positive_definite is pd
    assert words in s.description
    assert np.all(np.diff(s.eigenvalues) >= 0)


def test_spectrum_of_rosenbrock_at_its_minimum():
    # Eigenvalues of [[802, -400], [-400, 200]]: 501 +- sqrt(301^2 + 400^2).
    s = analysis.spectrum(Rosenbrock().hessian([1.0, 1.0]))
    root = math.sqrt(301.0**2 + 400.0**2)
    np.testing.assert_allclose(s.eigenvalues, [501 - root, 501 + root], rtol=1e-12)
    assert s.condition_number == pytest.approx((501 + root) / (501 - root))


@pytest.mark.parametrize(
    "H, exc, match",
    [
        ([[1.0, 2.0], [0.0, 1.0]], ValueError, "symmetric"),
        (np.ones(3), ValueError, "square"),
        ([[np.inf]], ValueError, "finite"),
        (np.array([["a"]]), TypeError, "real numbers"),
    ],
)
def test_spectrum_bad_input(H, exc, match):
    with pytest.raises(exc, match=match):
        analysis.spectrum(H)


def test_gd_rates_by_hand():
    # lambda in {1, 9}: kappa 9, sqrt(kappa) 3.
    r = analysis.gd_rates(np.diag([1.0, 9.0]))
    assert r.lr_max == pytest.approx(2 / 9)
    assert r.lr_best == pytest.approx(0.2)
    assert r.rate == pytest.approx(0.8)
    assert r.heavy_ball_lr == pytest.approx(4 / 16)
    assert r.heavy_ball_momentum == pytest.approx(0.25)
    assert r.heavy_ball_rate == pytest.approx(0.5)
    assert r.rate_at(0.1) == pytest.approx(0.9)
    assert r.rate_at(0.25) == pytest.approx(1.25)
    assert analysis.gd_rates(analysis.spectrum(np.diag([1.0, 9.0]))) == r


def test_gd_rates_need_positive_definite():
    with pytest.raises(ValueError, match="positive definite.*saddle"):
        analysis.gd_rates([[1.0, 0.0], [0.0, -1.0]])


@pytest.mark.parametrize(
    "rate, eps, expected",
    [
        (0.5, 1e-3, 10),
        (0.9, 0.1, 22),
        (0.1, 2e-6, 6),
        (0.0, 0.5, 1),
        (1.0, 0.5, math.inf),
        (1.5, 0.5, math.inf),
    ],
)
def test_steps_to_accuracy_by_hand(rate, eps, expected):
    assert analysis.steps_to_accuracy(rate, eps) == expected


@pytest.mark.parametrize(
    "rate, eps", [(-0.1, 0.1), (0.5, 0.0), (0.5, 1.0), (float("nan"), 0.1)]
)
def test_steps_to_accuracy_bad_input(rate, eps):
    with pytest.raises(ValueError):
        analysis.steps_to_accuracy(rate, eps)


def test_convergence_rate_of_exact_geometric_sequences():
    k = np.arange(60)
    iterates = np.outer(0.7**k, [3.0, -4.0]) + [1.0, 2.0]
    assert analysis.convergence_rate(iterates, minimizer=[1.0, 2.0]) == pytest.approx(
        0.7, rel=1e-8
    )
    # Near the floor the gap keeps the rounding of f = 5 + gap: rel 1e-5 covers it.
    losses = 5.0 + 2.0 * 0.49**k
    assert analysis.convergence_rate(losses, minimum=5.0) == pytest.approx(
        0.7, rel=1e-5
    )
    history = History(loss=list(losses))
    assert analysis.convergence_rate(history, minimum=5.0) == pytest.approx(
        0.7, rel=1e-5
    )


def test_convergence_rate_stops_at_the_rounding_floor():
    losses = np.concatenate([0.25 ** np.arange(20), np.full(50, 1e-300)])
    assert analysis.convergence_rate(losses, minimum=0.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 3"):
        analysis.convergence_rate([1.0, 0.5], minimum=0.0)
    with pytest.raises(ValueError, match="minimum"):
        analysis.convergence_rate([1.0, 0.5, 0.25])


@pytest.mark.parametrize("kappa", [10.0, 100.0, 1000.0])
def test_gd_at_best_lr_matches_predicted_rate(kappa):
    p = Quadratic.with_condition_number(kappa, 8, seed=int(kappa))
    r = analysis.gd_rates(p.H)
    xs = _gd(p.H, p.x0, r.lr_best, n_steps=min(6000, int(40 * kappa)))
    measured = analysis.convergence_rate(xs, minimizer=p.minimizer)
    assert measured == pytest.approx(r.rate, rel=0.05)
    losses = p.value(xs)
    assert analysis.convergence_rate(losses, minimum=0.0) == pytest.approx(
        r.rate, rel=0.05
    )


@pytest.mark.parametrize("kappa", [10.0, 100.0, 1000.0])
def test_heavy_ball_at_optimal_parameters_matches_predicted_rate(kappa):
    # At the optimal pair the extreme eigenvalues give a double root of modulus
    # r, so their error is (a + b k) r^k: log-slope log r + 1/k. Fitted over the
    # second half of K steps that adds about 1/K (2% at K = 50 for kappa 10,
    # less for larger K): 5% covers it.
    p = Quadratic.with_condition_number(kappa, 8, seed=int(kappa))
    r = analysis.gd_rates(p.H)
    n_steps = int(25 * math.sqrt(kappa)) + 40
    xs = _gd(p.H, p.x0, r.heavy_ball_lr, n_steps, momentum=r.heavy_ball_momentum)
    measured = analysis.convergence_rate(xs, minimizer=p.minimizer)
    assert measured == pytest.approx(r.heavy_ball_rate, rel=0.05)
    assert measured < r.rate


@pytest.mark.parametrize("factor", [1.01, 1.2])
def test_gd_just_above_max_stable_lr_grows_at_the_predicted_rate(factor):
    p = Quadratic.with_condition_number(100.0, 4, seed=0)
    r = analysis.gd_rates(p.H)
    lr = factor * r.lr_max
    xs = _gd(p.H, p.x0, lr, n_steps=400)
    measured = analysis.convergence_rate(xs, minimizer=p.minimizer)
    assert measured > 1.0
    assert measured == pytest.approx(r.rate_at(lr), rel=1e-3)
