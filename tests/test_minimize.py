"""Tests of gdcore.minimize: statuses, counts, dtypes, gradients, rates."""

import numpy as np
import pytest

import gdcore.optim
import gdcore.reference
from gdcore import analysis
from gdcore._minimize import DIVERGENCE_FACTOR, minimize
from gdcore.problems import Quadratic, Rosenbrock

SGD_CLASSES = [gdcore.optim.SGD, gdcore.reference.SGD]


@pytest.fixture(params=SGD_CLASSES, ids=lambda c: c.__module__ + "." + c.__name__)
def sgd(request):
    return request.param


def _quadratic(kappa=100.0, dim=4, seed=0):
    return Quadratic.with_condition_number(kappa, dim, seed=seed)


def test_converges_with_exact_gradient(sgd):
    p = _quadratic()
    r = analysis.gd_rates(p.H)
    res = minimize(
        p.value, p.x0, grad=p.grad, optimizer=sgd, lr=r.lr_best, max_iter=5000, tol=1e-9
    )
    assert res.status == "converged" and res.success
    assert np.linalg.norm(res.jac) <= 1e-9
    np.testing.assert_allclose(res.x, p.minimizer, atol=1e-8)
    assert res.fun == p.value(res.x)
    assert res.njev == res.nfev == res.nit + 1
    # Predicted: the error shrinks by r.rate per step, and |grad| <= lmax |e|.
    bound = analysis.steps_to_accuracy(r.rate, 1e-9 / (100.0 * np.linalg.norm(p.x0)))
    assert res.nit <= bound


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-8), (np.float32, 2e-2)])
def test_central_difference_gradient(sgd, dtype, rtol):
    p = Rosenbrock(3)
    x0 = np.array([-1.2, 1.0, 0.7], dtype=dtype)
    res = minimize(p.value, x0, optimizer=sgd, lr=1e-4, max_iter=0)
    assert res.jac.dtype == dtype
    np.testing.assert_allclose(res.jac, p.grad(x0.astype(np.float64)), rtol=rtol)
    assert res.nit == 0 and res.status == "max_iter"
    assert res.njev == 1 and res.nfev == 1 + 2 * 3


def test_estimated_gradient_converges(sgd):
    p = _quadratic(kappa=10.0, dim=3)
    res = minimize(
        p.value, p.x0, optimizer=sgd, lr=0.1, momentum=0.5, max_iter=2000, tol=1e-7
    )
    assert res.status == "converged"
    np.testing.assert_allclose(res.x, p.minimizer, atol=1e-6)
    assert res.nfev == (res.nit + 1) * (1 + 2 * 3) and res.njev == res.nit + 1


@pytest.mark.parametrize(
    "x0, dtype",
    [
        (np.ones(2, np.float32), np.float32),
        (np.ones(2, np.float64), np.float64),
        ([1, 1], np.float64),
        (np.ones(2, np.float16), np.float64),
    ],
)
def test_dtype_rule_and_x0_untouched(sgd, x0, dtype):
    p = _quadratic(kappa=4.0, dim=2)
    before = np.array(x0, copy=True)
    res = minimize(
        p.value,
        x0,
        grad=p.grad,
        optimizer=sgd,
        lr=0.1,
        max_iter=5,
        return_trajectory=True,
    )
    assert res.x.dtype == dtype and res.trajectory.dtype == dtype
    assert res.jac.dtype == dtype
    np.testing.assert_array_equal(np.asarray(x0), before)


def test_trajectory_and_losses(sgd):
    p = _quadratic(kappa=4.0, dim=3)
    res = minimize(
        p.value,
        p.x0,
        grad=p.grad,
        optimizer=sgd,
        lr=0.2,
        max_iter=7,
        tol=0.0,
        return_trajectory=True,
    )
    assert res.status == "max_iter" and res.nit == 7
    assert res.trajectory.shape == (8, 3) and res.losses.shape == (8,)
    np.testing.assert_array_equal(res.trajectory[0], p.x0)
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    np.testing.assert_allclose(res.losses, p.value(res.trajectory), rtol=1e-15)
    # One GD step recomputed by hand.
    np.testing.assert_allclose(res.trajectory[1], p.x0 - 0.2 * p.grad(p.x0))
    assert "trajectory" not in minimize(
        p.value, p.x0, grad=p.grad, optimizer=sgd, lr=0.2, max_iter=2
    )


@pytest.mark.parametrize("kappa", [10.0, 100.0, 1000.0])
def test_measured_rates_match_predictions(sgd, kappa):
    p = _quadratic(kappa=kappa, dim=6, seed=1)
    r = analysis.gd_rates(p.H)
    gd = minimize(
        p.value,
        p.x0,
        grad=p.grad,
        optimizer=sgd,
        lr=r.lr_best,
        max_iter=20000,
        tol=1e-12,
        return_trajectory=True,
    )
    measured = analysis.convergence_rate(gd, minimizer=p.minimizer)
    assert measured == pytest.approx(r.rate, rel=0.05)
    # SGD's momentum form is the heavy ball with the same lr and momentum; 5%
    # covers the (a + b k) r^k factor of its double root (see test_analysis).
    hb = minimize(
        p.value,
        p.x0,
        grad=p.grad,
        optimizer=sgd,
        lr=r.heavy_ball_lr,
        momentum=r.heavy_ball_momentum,
        max_iter=20000,
        tol=1e-12,
        return_trajectory=True,
    )
    assert analysis.convergence_rate(hb, minimizer=p.minimizer) == pytest.approx(
        r.heavy_ball_rate, rel=0.05
    )
    assert hb.nit < gd.nit


def test_lr_just_above_the_stability_limit_diverges(sgd):
    p = _quadratic(kappa=100.0, dim=4)
    r = analysis.gd_rates(p.H)
    res = minimize(
        p.value,
        p.x0,
        grad=p.grad,
        optimizer=sgd,
        lr=1.01 * r.lr_max,
        max_iter=5000,
        return_trajectory=True,
    )
    assert res.status == "diverged" and not res.success
    f0 = p.value(p.x0)
    assert abs(res.fun) > DIVERGENCE_FACTOR * (abs(f0) + 1)
    assert abs(res.losses[-2]) <= DIVERGENCE_FACTOR * (abs(f0) + 1)
    # The top eigen-component grows by |1 - lr lmax| = 1.02 per step, its share
    # 0.5 lmax c^2 of the loss by 1.02^2, until that share passes the threshold.
    lam, vecs = np.linalg.eigh(p.H)
    top = 0.5 * lam[-1] * (vecs[:, -1] @ p.x0) ** 2
    expected = np.log(DIVERGENCE_FACTOR * (f0 + 1) / top) / np.log(1.02**2)
    assert res.nit == pytest.approx(expected, abs=2)
    stable = minimize(
        p.value,
        p.x0,
        grad=p.grad,
        optimizer=sgd,
        lr=0.99 * r.lr_max,
        max_iter=5000,
        tol=1e-8,
    )
    assert stable.status == "converged"


def test_non_finite_value_is_divergence(sgd):
    def fun(x):
        return float(x[0]) if x[0] > 0 else float("nan")

    res = minimize(fun, [1.0], grad=np.ones_like, optimizer=sgd, lr=2.0, max_iter=10)
    assert res.status == "diverged" and res.nit == 1
    assert "nan" in res.message
    at_start = minimize(
        lambda x: np.nan, [1.0], grad=lambda x: x, optimizer=sgd, lr=0.1
    )
    assert at_start.status == "diverged" and at_start.nit == 0


def test_callback_sees_every_step_and_can_stop(sgd):
    p = _quadratic(kappa=4.0, dim=2)
    seen = []

    def callback(intermediate):
        seen.append((intermediate.nit, intermediate.x, intermediate.fun))
        if intermediate.nit == 5:
            raise StopIteration

    res = minimize(
        p.value,
        p.x0,
        grad=p.grad,
        optimizer=sgd,
        lr=0.1,
        callback=callback,
        return_trajectory=True,
    )
    assert res.status == "stopped" and res.nit == 5
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(np.array([s[1] for s in seen]), res.trajectory[1:])
    assert seen[-1][2] == res.fun


def test_already_converged_at_start(sgd):
    p = _quadratic(kappa=4.0, dim=2)
    res = minimize(p.value, p.minimizer, grad=p.grad, optimizer=sgd, lr=0.1)
    assert res.status == "converged" and res.nit == 0


def test_fun_gets_a_read_only_view(sgd):
    def fun(x):
        x[0] = 0.0
        return 0.0

    with pytest.raises(ValueError, match="read-only"):
        minimize(fun, [1.0], grad=lambda x: x, optimizer=sgd, lr=0.1)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"fun": 3}, TypeError, "`fun` must be callable"),
        ({"grad": 3}, TypeError, "`grad` must be callable"),
        ({"callback": 3}, TypeError, "`callback`"),
        ({"x0": np.ones((2, 2))}, ValueError, "`x0` must be a non-empty 1-D"),
        ({"x0": []}, ValueError, "`x0` must be a non-empty 1-D"),
        ({"x0": [1.0, np.nan]}, ValueError, "`x0` must be finite"),
        ({"x0": [1j, 0]}, TypeError, "`x0` must hold real numbers"),
        ({"max_iter": -1}, ValueError, "`max_iter` must be >= 0"),
        ({"max_iter": 2.0}, TypeError, "`max_iter` must be an int"),
        ({"tol": np.nan}, ValueError, "`tol` must be >= 0"),
        ({"tol": "1"}, TypeError, "`tol`"),
        ({"optimizer": "lbfgs"}, ValueError, "`optimizer` must be one of"),
        ({"optimizer": 3}, TypeError, "`optimizer` must be a name"),
        ({"return_trajectory": 1}, TypeError, "`return_trajectory`"),
        ({"grad": lambda x: np.ones(3)}, ValueError, r"shape \(2,\)"),
        ({"fun": lambda x: x}, ValueError, "`fun` must return a scalar"),
        ({"lr": -1.0}, ValueError, "`lr`"),
        ({"momentum": -0.5}, ValueError, "`momentum`"),
        ({"betas": (0.9, 0.99)}, TypeError, "betas"),
    ],
)
def test_bad_input(sgd, kwargs, exc, match):
    p = _quadratic(kappa=4.0, dim=2)
    args = {"fun": p.value, "x0": p.x0, "grad": p.grad, "optimizer": sgd, "lr": 0.1}
    args.update(kwargs)
    fun, x0 = args.pop("fun"), args.pop("x0")
    with pytest.raises(exc, match=match):
        minimize(fun, x0, **args)


@pytest.mark.parametrize(
    "name, cls, kwargs",
    [
        ("sgd", "SGD", {"lr": 0.1, "momentum": 0.5}),
        ("adam", "Adam", {"lr": 0.05}),
        ("AdamW", "AdamW", {"lr": 0.05, "weight_decay": 0.0}),
        ("rmsprop", "RMSprop", {"lr": 0.01}),
        ("adagrad", "Adagrad", {"lr": 0.5}),
    ],
)
def test_names_resolve_to_the_compiled_classes(name, cls, kwargs):
    p = _quadratic(kappa=10.0, dim=3)
    by_name = minimize(
        p.value,
        p.x0,
        grad=p.grad,
        optimizer=name,
        max_iter=300,
        tol=1e-6,
        return_trajectory=True,
        **kwargs,
    )
    by_class = minimize(
        p.value,
        p.x0,
        grad=p.grad,
        optimizer=getattr(gdcore.optim, cls),
        max_iter=300,
        tol=1e-6,
        return_trajectory=True,
        **kwargs,
    )
    np.testing.assert_array_equal(by_name.trajectory, by_class.trajectory)
    reference = minimize(
        p.value,
        p.x0,
        grad=p.grad,
        optimizer=getattr(gdcore.reference, cls),
        max_iter=300,
        tol=1e-6,
        return_trajectory=True,
        **kwargs,
    )
    assert abs(reference.nit - by_name.nit) <= 1
    n = min(reference.nit, by_name.nit) + 1
    np.testing.assert_allclose(
        by_name.trajectory[:n], reference.trajectory[:n], rtol=1e-9, atol=1e-12
    )
    assert by_name.fun < 1e-2 * p.value(p.x0)


@pytest.mark.parametrize("cls", [gdcore.optim.Adam, gdcore.reference.Adam])
def test_float32_run_with_adam(cls):
    p = _quadratic(kappa=10.0, dim=3)
    res = minimize(
        p.value,
        p.x0.astype(np.float32),
        grad=p.grad,
        optimizer=cls,
        lr=0.05,
        max_iter=2000,
        tol=1e-4,
    )
    assert res.status == "converged" and res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, p.minimizer, atol=1e-4)


def test_unknown_hyperparameters_name_the_optimizer():
    with pytest.raises(TypeError, match="of SGD: got an unexpected keyword"):
        minimize(lambda x: float(x @ x), [1.0], grad=lambda x: 2 * x, betas=(0.9, 0.9))
    with pytest.raises(TypeError, match="of Adam: got an unexpected keyword"):
        minimize(lambda x: float(x @ x), [1.0], optimizer="adam", momentum=0.9)


def test_a_gradient_returning_x_itself_is_copied(sgd):
    # f = |x|^2 / 2 has gradient x; returning the (read-only) argument is natural.
    res = minimize(
        lambda x: 0.5 * float(x @ x), np.ones(3), grad=lambda x: x, optimizer=sgd,
        lr=0.25, max_iter=5, tol=0.0,
    )
    np.testing.assert_array_equal(res.x, np.full(3, 0.75**5))


def test_a_huge_integer_tol_is_infinite(sgd):
    res = minimize(lambda x: float(x @ x), [1.0], grad=lambda x: 2 * x, optimizer=sgd,
                   lr=0.1, tol=10**400)
    assert res.status == "converged" and res.nit == 0
