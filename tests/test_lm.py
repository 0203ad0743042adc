"""Tests of gdcore.lm: least_squares, curve_fit and the network trainer."""

import numpy as np
import pytest
import scipy.optimize

from gdcore._history import History
from gdcore.lm import (
    STATUS_MESSAGES,
    LevenbergMarquardt,
    _jac_2point,
    _jac_3point,
    curve_fit,
    fit_lm,
    least_squares,
)

T = np.linspace(0.0, 3.0, 40)


def _exp_model(b, t=T):
    return b[0] * np.exp(-b[1] * t) + b[2]


def _exp_jac(b, t=T):
    e = np.exp(-b[1] * t)
    return np.column_stack([e, -b[0] * t * e, np.ones_like(t)])


def _noisy_data(seed=0):
    rng = np.random.default_rng(seed)
    return _exp_model([2.5, 1.3, 0.5]) + 0.02 * rng.standard_normal(T.size)


def _rosenbrock(x):
    return np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def _rosenbrock_jac(x):
    return np.array([[-20 * x[0], 10.0], [-1.0, 0.0]])


@pytest.mark.parametrize("jac", [_rosenbrock_jac, None, "2-point", "3-point"])
def test_rosenbrock(jac):
    res = least_squares(_rosenbrock, [-1.2, 1.0], jac=jac)
    np.testing.assert_allclose(res.x, [1.0, 1.0], rtol=1e-7)
    assert res.success and res.status in (1, 2, 3, 4)
    assert res.message == STATUS_MESSAGES[res.status]
    assert res.cost < 1e-20


@pytest.mark.parametrize("jac", [_exp_jac, "2-point", "3-point"])
def test_matches_minpack_on_noisy_fit(jac):
    y = _noisy_data()

    def residuals(b):
        return _exp_model(b) - y

    scipy_jac = jac if callable(jac) else "2-point"
    ref = scipy.optimize.least_squares(
        residuals, [1.0, 1.0, 0.0], jac=scipy_jac, method="lm", ftol=1e-12,
        xtol=1e-12, gtol=1e-12,
    )  # fmt: skip
    res = least_squares(residuals, [1.0, 1.0, 0.0], jac=jac, ftol=1e-12,
                        xtol=1e-12, gtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-7)
    assert res.cost == pytest.approx(ref.cost, rel=1e-12)
    # Result fields at the solution, recomputed independently.
    np.testing.assert_allclose(res.fun, residuals(res.x), rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.jac, _exp_jac(res.x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.grad, res.jac.T @ res.fun, rtol=1e-12)
    assert res.optimality == pytest.approx(np.max(np.abs(res.grad)))


def test_counts_every_evaluation_including_finite_differences():
    calls = []

    def residuals(b):
        calls.append(b.copy())
        return _exp_model(b) - _noisy_data()

    res = least_squares(residuals, [1.0, 1.0, 0.0])
    assert res.nfev == len(calls)
    assert res.njev >= 1
    # Each forward-difference Jacobian costs n = 3 evaluations.
    assert res.nfev >= 3 * res.njev + 1


def test_counts_with_analytic_jacobian():
    calls = {"fun": 0, "jac": 0}

    def residuals(b):
        calls["fun"] += 1
        return _rosenbrock(b)

    def jac(b):
        calls["jac"] += 1
        return _rosenbrock_jac(b)

    res = least_squares(residuals, [-1.2, 1.0], jac=jac)
    assert (res.nfev, res.njev) == (calls["fun"], calls["jac"])
    assert res.nit >= 1


def test_finite_difference_steps_scale_with_parameters():
    # Parameters from 0 through 1e-12 to 1e8: each derivative needs its own step.
    x = np.array([0.0, 1e-12, 3e-7, 1.0, 1e8])

    def f(b):
        return np.array([np.sin(b[0]) + b[1] ** 2 * 1e12, np.exp(b[2] * 1e6),
                         b[3] ** 3 + np.log(b[4]), b[1] * b[4]])  # fmt: skip

    exact = np.array([
        [1.0, 2e12 * x[1], 0.0, 0.0, 0.0],
        [0.0, 0.0, 1e6 * np.exp(x[2] * 1e6), 0.0, 0.0],
        [0.0, 0.0, 0.0, 3 * x[3] ** 2, 1 / x[4]],
        [0.0, x[4], 0.0, 0.0, x[1]],
    ])  # fmt: skip
    forward = _jac_2point(f, x, f(x))
    central = _jac_3point(f, x, f(x))
    np.testing.assert_allclose(forward, exact, rtol=1e-6, atol=1e-6 * 1e8 * 1e-12)
    np.testing.assert_allclose(central, exact, rtol=1e-9, atol=1e-9 * 1e8 * 1e-12)


def test_forward_difference_goes_back_at_a_pole():
    # sqrt is not defined past 1 - x: the forward step lands outside.
    x = np.array([1.0])
    with np.errstate(invalid="ignore"):
        J = _jac_2point(lambda b: np.sqrt(1.0 - b**2 + 0.0 * b), x, np.zeros(1))
    assert np.isfinite(J).all() and J[0, 0] < -1e3


def test_rejects_non_finite_trial_steps():
    # sqrt(b) is undefined for b < 0, and the first Gauss-Newton step from
    # b = 100 lands near b = -80.
    c = np.array([1.0, 2.0, 3.0])
    seen_nan = []

    def residuals(b):
        with np.errstate(invalid="ignore"):
            r = np.sqrt(b[0]) * c - c
        seen_nan.append(not np.all(np.isfinite(r)))
        return r

    def jac(b):
        return (c / (2 * np.sqrt(b[0])))[:, None]

    res = least_squares(residuals, [100.0], jac=jac)
    assert seen_nan[1]
    assert res.success
    assert res.x[0] == pytest.approx(1.0, rel=1e-10)


def test_budget_status():
    res = least_squares(_rosenbrock, [-1.2, 1.0], jac=_rosenbrock_jac, max_nfev=3)
    assert res.status == 0 and not res.success
    assert res.nfev == 3
    assert "maximum number of function evaluations" in res.message


@pytest.mark.parametrize(("jac", "budget"), [(True, 200), (False, 600)])
def test_default_budget(jac, budget):
    # Residuals exp(b) tend to 0 without a minimiser; each Gauss-Newton step
    # lowers both by a factor e, so no tolerance test is ever met.
    def exact(b):
        return np.diag(np.exp(b))

    res = least_squares(np.exp, [0.0, 0.0], jac=exact if jac else None)
    assert res.status == 0
    # 100 n evaluations with a Jacobian, 100 n (n + 1) with forward differences;
    # a difference Jacobian overruns by at most n - 1, and the final one at the
    # solution costs n more.
    assert budget <= res.nfev <= budget + (0 if jac else 1 + 2)


@pytest.mark.parametrize("x_scale", ["jac", [1.0, 1.0, 1.0], [2.0, 1.0, 0.5], 3.0])
def test_x_scale(x_scale):
    y = _noisy_data(1)
    res = least_squares(lambda b: _exp_model(b) - y, [1.0, 1.0, 0.0], jac=_exp_jac,
                        x_scale=x_scale, ftol=1e-12, xtol=1e-12)  # fmt: skip
    ref = scipy.optimize.least_squares(lambda b: _exp_model(b) - y, [1.0, 1.0, 0.0],
                                       jac=_exp_jac, method="lm", ftol=1e-12,
                                       xtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-7)


def test_args_and_kwargs_are_passed():
    def residuals(b, t, *, shift):
        return b[0] * t + b[1] - (2 * t + shift)

    res = least_squares(residuals, [0.0, 0.0], args=(T,), kwargs={"shift": 3.0})
    np.testing.assert_allclose(res.x, [2.0, 3.0], rtol=1e-8)


def test_linear_covariance_matches_textbook():
    rng = np.random.default_rng(3)
    A = np.column_stack([np.ones(30), rng.standard_normal((30, 2))])
    y = A @ [1.0, -2.0, 0.5] + 0.1 * rng.standard_normal(30)
    res = least_squares(lambda b: A @ b - y, np.zeros(3), jac=lambda b: A)
    beta, rss, *_ = np.linalg.lstsq(A, y, rcond=None)
    np.testing.assert_allclose(res.x, beta, rtol=1e-10)
    expected = rss[0] / (30 - 3) * np.linalg.inv(A.T @ A)
    np.testing.assert_allclose(res.cov, expected, rtol=1e-10)
    np.testing.assert_allclose(res.stderr, np.sqrt(np.diag(expected)), rtol=1e-10)


def test_covariance_is_inf_when_undefined():
    res = least_squares(lambda b: b - [1.0, 2.0], [0.0, 0.0])
    assert np.all(np.isinf(res.cov))
    res = least_squares(lambda b: np.array([b[0] + b[1] - 1, b[0] + b[1] - 3, 0]),
                        [0.0, 0.0])  # fmt: skip
    assert np.all(np.isinf(res.stderr))
    assert res.x[0] + res.x[1] == pytest.approx(2.0)
    x = np.arange(4.0)
    with pytest.warns(scipy.optimize.OptimizeWarning, match="Covariance"):
        _, pcov = curve_fit(lambda x, a, b: (a + b) * x, x, 2 * x + 1, [0.0, 0.0])
    assert np.all(np.isinf(pcov))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x0": [[1.0, 2.0]]}, ValueError, "`x0`"),
        ({"x0": []}, ValueError, "`x0`"),
        ({"x0": [np.nan, 1.0]}, ValueError, "`x0`"),
        ({"x0": [1 + 1j, 0]}, TypeError, "`x0`"),
        ({"ftol": 0.0}, ValueError, "`ftol`"),
        ({"xtol": -1.0}, ValueError, "`xtol`"),
        ({"gtol": np.nan}, ValueError, "`gtol`"),
        ({"ftol": "1e-8"}, TypeError, "`ftol`"),
        ({"max_nfev": 0}, ValueError, "`max_nfev`"),
        ({"max_nfev": 2.5}, TypeError, "`max_nfev`"),
        ({"x_scale": "auto"}, ValueError, "`x_scale`"),
        ({"x_scale": [1.0, -1.0]}, ValueError, "`x_scale`"),
        ({"x_scale": [1.0, 1.0, 1.0]}, ValueError, "`x_scale`"),
        ({"jac": "forward"}, ValueError, "`jac`"),
        ({"jac": lambda b: np.ones((3, 3))}, ValueError, "`jac`"),
        ({"jac": lambda b: np.full((2, 2), np.inf)}, ValueError, "`jac`"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    x0 = np.array([-1.2, 1.0])
    kwargs = {"x0": x0, **kwargs}
    with pytest.raises(error, match=match):
        least_squares(_rosenbrock, **kwargs)
    np.testing.assert_array_equal(x0, [-1.2, 1.0])


def test_invalid_residuals():
    with pytest.raises(ValueError, match="`residuals`.*at least n=3"):
        least_squares(lambda b: b[:2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="`residuals`.*1-D"):
        least_squares(lambda b: np.ones((2, 2)), [1.0])
    with pytest.raises(ValueError, match="`residuals` are not finite"):
        least_squares(lambda b: np.array([np.inf, 1.0]), [1.0])
    with pytest.raises(TypeError, match="`residuals`"):
        least_squares("f", [1.0])


@pytest.mark.parametrize("absolute_sigma", [False, True])
@pytest.mark.parametrize("use_jac", [False, True])
def test_curve_fit_matches_scipy(absolute_sigma, use_jac):
    y = _noisy_data(2)
    sigma = 0.02 * (1 + T / 3)

    def f(t, a, b, c):
        return _exp_model([a, b, c], t)

    jac = (lambda t, a, b, c: _exp_jac([a, b, c], t)) if use_jac else None
    popt, pcov = curve_fit(f, T, y, [1.0, 1.0, 0.0], sigma=sigma, jac=jac,
                           absolute_sigma=absolute_sigma)  # fmt: skip
    ref_popt, ref_pcov = scipy.optimize.curve_fit(
        f, T, y, [1.0, 1.0, 0.0], sigma=sigma, absolute_sigma=absolute_sigma,
        jac=jac,
    )  # fmt: skip
    np.testing.assert_allclose(popt, ref_popt, rtol=1e-6)
    np.testing.assert_allclose(pcov, ref_pcov, rtol=1e-4)


def test_curve_fit_full_output_and_errors():
    x = np.arange(6.0)
    popt, pcov, res = curve_fit(lambda x, a, b: a * x + b, x, 2 * x + 1, [0, 0],
                                full_output=True)  # fmt: skip
    assert res.success and np.allclose(res.x, popt)
    with pytest.raises(RuntimeError, match="Optimal parameters not found"):
        curve_fit(lambda x, a, b: np.exp(a * x) + b, x, np.sin(x), [5.0, 0], max_nfev=2)
    with pytest.raises(ValueError, match="`sigma`"):
        curve_fit(lambda x, a: a * x, x, x, [1.0], sigma=np.zeros(6))
    with pytest.raises(ValueError, match="`ydata`"):
        curve_fit(lambda x, a: a * x, x, [np.nan] * 6, [1.0])
    with pytest.raises(ValueError, match="`kwargs`"):
        curve_fit(lambda x, a: a * x, x, x, [1.0], method="trf")


# ------------------------------------------------------------------ training


class _PolynomialNet:
    """A model with the network interface: y = sum_k w_k * tanh(a_k x + c_k)."""

    def __init__(self, units, seed):
        rng = np.random.default_rng(seed)
        self.flat_params = rng.standard_normal(3 * units)
        self.units = units

    def forward(self, X):
        a, c, w = np.split(self.flat_params, 3)
        return np.tanh(X @ a[None, :] + c) @ w[:, None]

    def jacobian(self, X):
        a, c, w = np.split(self.flat_params, 3)
        h = np.tanh(X @ a[None, :] + c)
        dh = (1 - h**2) * w
        return np.hstack([dh * X, dh, h])


def test_trainer_with_a_model_of_the_network_interface():
    X = np.linspace(-3, 3, 60)[:, None]
    y = np.sin(X[:, 0])
    model = _PolynomialNet(6, seed=0)
    start_loss = np.mean((model.forward(X)[:, 0] - y) ** 2)
    seen = []
    history = fit_lm(model, X, y, epochs=40, callback=lambda e, h: seen.append(e))
    assert isinstance(history, History)
    assert history.epochs == len(history.loss) == history.iterations == len(seen)
    assert history.status in ("converged", "max_epochs")
    # Loss is the mse at the final parameters, and it never increases.
    final = np.mean((model.forward(X)[:, 0] - y) ** 2)
    assert history.loss[-1] == pytest.approx(final, rel=1e-12)
    assert np.all(np.diff(history.loss) <= 0)
    assert final < 1e-3 * start_loss


def test_trainer_tolerance_and_errors():
    X = np.linspace(-1, 1, 20)[:, None]
    model = _PolynomialNet(2, seed=1)
    history = fit_lm(model, X, np.tanh(2 * X[:, 0]), epochs=500, tol=1e-3)
    assert history.status == "converged" and history.epochs < 500
    with pytest.raises(ValueError, match="`y`"):
        fit_lm(model, X, np.ones(5))
    with pytest.raises(ValueError, match="`epochs`"):
        fit_lm(model, X, np.ones(20), epochs=0)
    with pytest.raises(ValueError, match="`max_jacobian_elements`"):
        fit_lm(model, X, np.ones(20), max_jacobian_elements=10)
    with pytest.raises(TypeError, match="`model`"):
        LevenbergMarquardt(object())
    model.flat_params[0] = np.nan
    history = fit_lm(model, X, np.ones(20))
    assert history.status == "diverged" and history.epochs == 0


def _adam_full_batch(model, X, y, epochs, lr):
    optim = pytest.importorskip("gdcore.optim")
    opt = optim.Adam(model.params, lr=lr)
    for _ in range(epochs):
        _, grads = model.loss_and_grad(X, y)
        opt.step(grads)
    return model.loss(X, y)


def _lm_against_adam(sizes, X, y, seed, lm_epochs, adam_epochs):
    nn = pytest.importorskip("gdcore.nn")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    # Small dense problems: BLAS threads only add contention.
    with threadpoolctl.threadpool_limits(1):
        model = nn.MLP(sizes, activation="tanh", loss="mse", seed=seed)
        history = fit_lm(model, X, y, epochs=lm_epochs)
        lm_loss = model.loss(X, y)
        # lr = 1e-2 was the best of 1e-3, 1e-2 and 3e-2 for Adam on both problems.
        other = nn.MLP(sizes, activation="tanh", loss="mse", seed=seed)
        adam_loss = _adam_full_batch(other, X, y, adam_epochs, lr=1e-2)
    assert history.epochs == lm_epochs and history.status == "max_epochs"
    assert history.loss[-1] == pytest.approx(lm_loss, rel=1e-6)
    return lm_loss, adam_loss


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lm_beats_adam_on_sine(seed):
    X = np.linspace(-3.0, 3.0, 200)[:, None]
    y = np.sin(X[:, 0])
    lm_loss, adam_loss = _lm_against_adam([1, 20, 1], X, y, seed, 50, 2000)
    assert lm_loss < adam_loss
    assert lm_loss < 2e-5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lm_beats_adam_on_diabetes(seed):
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_diabetes(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (y - y.mean()) / y.std()
    lm_loss, adam_loss = _lm_against_adam([10, 10, 1], X, y, seed, 200, 2000)
    assert lm_loss < adam_loss
    assert lm_loss < 0.21


def test_train_fit_dispatches_to_lm():
    nn = pytest.importorskip("gdcore.nn")
    from gdcore.train import fit

    X = np.linspace(-2.0, 2.0, 50)[:, None]
    y = np.tanh(1.5 * X[:, 0]) + 0.1 * X[:, 0] ** 2
    direct = nn.MLP([1, 5, 1], activation="tanh", loss="mse", seed=4)
    via_fit = nn.MLP([1, 5, 1], activation="tanh", loss="mse", seed=4)
    expected = fit_lm(direct, X, y, epochs=15)
    history = fit(via_fit, X, y, "lm", epochs=15)
    assert history.loss == expected.loss
    assert history.epochs == expected.epochs == 15
    np.testing.assert_array_equal(via_fit.flat_params, direct.flat_params)


def test_complex_or_changing_residuals_are_rejected():
    with pytest.raises(TypeError, match="`residuals` must return real numbers"):
        least_squares(lambda b: b + 1j, [1.0])
    calls = []

    def shrinking(b):
        calls.append(1)
        return np.ones(3 if len(calls) == 1 else 2) * b[0]

    with pytest.raises(ValueError, match=r"`residuals` returned shape \(2,\)"):
        least_squares(shrinking, [1.0])
