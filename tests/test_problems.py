"""Tests of gdcore.problems: values by hand, derivatives by central differences."""

import numpy as np
import pytest

from gdcore.problems import Beale, LinearRegression, Quadratic, Rosenbrock


def _linear_regression(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 4))
    return LinearRegression(X, X @ np.arange(1.0, 5.0) + 0.1 * rng.standard_normal(30))


PROBLEMS = {
    "quadratic": lambda: Quadratic.with_condition_number(50.0, 5, seed=1),
    "quadratic_b": lambda: Quadratic([[3.0, 1.0], [1.0, 2.0]], [1.0, -1.0]),
    "rosenbrock2": lambda: Rosenbrock(),
    "rosenbrock5": lambda: Rosenbrock(5),
    "beale": lambda: Beale(),
    "linear_regression": _linear_regression,
}


def _central_grad(f, x, h=1e-6):
    e = np.eye(x.size)
    return np.array(
        [(f(x + h * e[j]) - f(x - h * e[j])) / (2 * h) for j in range(x.size)]
    )


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_grad_matches_central_differences(name):
    p = PROBLEMS[name]()
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = p.x0 + 0.5 * rng.standard_normal(p.dim)
        expected = _central_grad(p.value, x)
        np.testing.assert_allclose(
            p.grad(x), expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max()
        )


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_hessian_matches_differences_of_grad(name):
    p = PROBLEMS[name]()
    x = p.x0 + 0.3
    expected = np.column_stack(
        [_central_grad(lambda z, j=j: p.grad(z)[j], x) for j in range(p.dim)]
    ).T
    H = p.hessian(x)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12 * np.abs(H).max())
    np.testing.assert_allclose(
        H, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max()
    )


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_minimizer_is_stationary_with_the_stated_minimum(name):
    p = PROBLEMS[name]()
    assert p.minimizer.shape == (p.dim,) and p.x0.shape == (p.dim,)
    assert np.linalg.norm(p.grad(p.minimizer)) < 1e-10
    assert p.value(p.minimizer) == pytest.approx(p.minimum, abs=1e-12)
    assert np.all(np.linalg.eigvalsh(p.hessian(p.minimizer)) > 0)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_value_accepts_a_batch_of_points(name):
    p = PROBLEMS[name]()
    pts = p.x0 + np.random.default_rng(0).standard_normal((3, 4, p.dim))
    batch = p.value(pts)
    assert batch.shape == (3, 4)
    expected = np.array([[p.value(pts[i, j]) for j in range(4)] for i in range(3)])
    np.testing.assert_allclose(batch, expected, rtol=1e-14)


def test_rosenbrock_by_hand():
    p = Rosenbrock()
    assert p.value([0.0, 0.0]) == 1.0
    assert p.value([-1.2, 1.0]) == pytest.approx(24.2)
    np.testing.assert_array_equal(p.grad([0.0, 0.0]), [-2.0, 0.0])
    np.testing.assert_array_equal(p.hessian([1.0, 1.0]), [[802, -400], [-400, 200]])
    assert Rosenbrock(4).value([1.0, 1.0, 1.0, 1.0]) == 0.0
    assert Rosenbrock(3).value([0.0, 0.0, 0.0]) == 2.0
    np.testing.assert_array_equal(Rosenbrock(3).x0, [-1.2, 1.0, -1.2])


def test_beale_by_hand():
    p = Beale()
    assert p.value([0.0, 0.0]) == pytest.approx(1.5**2 + 2.25**2 + 2.625**2)
    np.testing.assert_array_equal(p.minimizer, [3.0, 0.5])
    # At (1, 1) every residual is c_i: grad = 2 sum c_i (y^i - 1, i x y^(i-1)).
    np.testing.assert_allclose(p.grad([1.0, 1.0]), [0.0, 2 * (1.5 + 4.5 + 7.875)])


def test_quadratic_by_hand():
    p = Quadratic([[2.0, 0.0], [0.0, 4.0]], [2.0, 4.0])
    np.testing.assert_allclose(p.minimizer, [1.0, 1.0])
    assert p.minimum == pytest.approx(-3.0)
    assert p.value([0.0, 0.0]) == 0.0
    np.testing.assert_allclose(p.x0, [2.0, 2.0])


def test_with_condition_number_spectrum_and_seed():
    p = Quadratic.with_condition_number(1000.0, 6, seed=7)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(p.H), np.linspace(1, 1000, 6), rtol=1e-12
    )
    q = Quadratic.with_condition_number(1000.0, 6, seed=7)
    np.testing.assert_array_equal(p.H, q.H)
    r = Quadratic.with_condition_number(100.0, 4, seed=0, spacing="log")
    np.testing.assert_allclose(
        np.linalg.eigvalsh(r.H), np.geomspace(1, 100, 4), rtol=1e-12
    )
    np.testing.assert_array_equal(p.minimizer, np.zeros(6))
    assert p.minimum == 0.0


def test_indefinite_quadratic_has_no_minimizer():
    p = Quadratic([[1.0, 0.0], [0.0, -1.0]])
    assert p.minimizer is None and p.minimum is None
    np.testing.assert_array_equal(p.x0, [1.0, 1.0])


def test_linear_regression_matches_normal_equations():
    p = _linear_regression()
    expected = np.linalg.solve(p.X.T @ p.X, p.X.T @ p.y)
    np.testing.assert_allclose(p.minimizer, expected, rtol=1e-10)
    residual = p.X @ expected - p.y
    assert p.minimum == pytest.approx(0.5 * residual @ residual / 30, rel=1e-12)


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: Quadratic([[1.0, 2.0], [0.0, 1.0]]), ValueError, "`H` must be symm"),
        (lambda: Quadratic(np.ones((2, 3))), ValueError, "`H` must be a non-empty"),
        (lambda: Quadratic(np.eye(2), [1.0]), ValueError, "`b` must be finite"),
        (lambda: Quadratic([[np.nan]]), ValueError, "`H` must be finite"),
        (lambda: Quadratic([["a"]]), TypeError, "`H` must hold real"),
        (lambda: Quadratic(np.eye(2), x0=[1.0]), ValueError, "`x0` must have"),
        (lambda: Quadratic.with_condition_number(0.5, 3), ValueError, "`kappa`"),
        (lambda: Quadratic.with_condition_number(10.0, 1), ValueError, "`dim`"),
        (lambda: Quadratic.with_condition_number(10.0, 2.0), TypeError, "`dim`"),
        (
            lambda: Quadratic.with_condition_number(10, 2, spacing="x"),
            ValueError,
            "`spacing`",
        ),
        (lambda: Rosenbrock(1), ValueError, "`n` must be >= 2"),
        (lambda: Rosenbrock(2.5), TypeError, "`n` must be an int"),
        (lambda: LinearRegression(np.ones((3, 2)), np.ones(4)), ValueError, "`y`"),
        (lambda: LinearRegression(np.ones(3), np.ones(3)), ValueError, "`X`"),
        (lambda: Rosenbrock().value([1.0, 2.0, 3.0]), ValueError, r"\(\.\.\., 2\)"),
        (lambda: Rosenbrock().grad(np.ones((2, 2))), ValueError, "`x` must have"),
        (lambda: Beale().hessian([1.0 + 1j, 0.0]), TypeError, "`x` must hold real"),
    ],
)
def test_bad_input(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
