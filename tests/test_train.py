"""Trainer semantics of gdcore.train.fit on both engines."""

import math

import numpy as np
import pytest

from gdcore import optim, reference
from gdcore.nn import MLP
from gdcore.train import fit


def _blobs(n=60, n_in=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    centers = rng.normal(scale=3.0, size=(k, n_in))
    X = centers[y] + rng.normal(size=(n, n_in))
    return X, y


class RecordingMLP(reference.MLP):
    """The reference MLP, recording the first feature of every batch it sees."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = []

    def _loss_and_grad(self, X, y, need_grad):
        self.batches.append(X[:, 0].astype(np.int64).tolist())
        return super()._loss_and_grad(X, y, need_grad)


def _indexed_data(n):
    """Data whose first feature is the sample's index."""
    X = np.column_stack([np.arange(n, dtype=np.float64), np.ones(n)])
    return X, np.arange(n) % 2


@pytest.mark.parametrize("batch_size", [1, 3, 7, 10, 25])
def test_without_replacement_uses_every_sample_once_per_epoch(batch_size):
    n = 10
    X, y = _indexed_data(n)
    model = RecordingMLP([2, 3, 2], seed=0)
    opt = reference.SGD(model.params, lr=0.01)
    history = fit(model, X, y, opt, epochs=3, batch_size=batch_size, seed=1)
    per_epoch = math.ceil(n / min(batch_size, n))
    assert history.iterations == 3 * per_epoch
    assert len(model.batches) == 3 * per_epoch
    for e in range(3):
        epoch = model.batches[e * per_epoch : (e + 1) * per_epoch]
        seen = sorted(i for batch in epoch for i in batch)
        assert seen == list(range(n))
        assert all(len(b) == min(batch_size, n) for b in epoch[:-1])


def test_shuffle_false_keeps_the_data_order():
    X, y = _indexed_data(7)
    model = RecordingMLP([2, 3, 2], seed=0)
    fit(
        model,
        X,
        y,
        reference.SGD(model.params, lr=0.01),
        epochs=2,
        batch_size=3,
        shuffle=False,
    )
    assert model.batches == [[0, 1, 2], [3, 4, 5], [6]] * 2


@pytest.mark.parametrize(
    "n, batch_size, per_epoch", [(10, 3, 4), (10, 4, 3), (9, 3, 3), (5, 1, 5)]
)
def test_with_replacement_iteration_count(n, batch_size, per_epoch):
    X, y = _indexed_data(n)
    model = RecordingMLP([2, 3, 2], seed=0)
    opt = reference.SGD(model.params, lr=0.01)
    history = fit(
        model,
        X,
        y,
        opt,
        epochs=4,
        batch_size=batch_size,
        sampling="with_replacement",
        seed=3,
    )
    assert history.iterations == 4 * per_epoch
    assert all(len(b) == batch_size for b in model.batches)
    drawn = [i for b in model.batches for i in b]
    assert len(set(drawn)) < len(drawn)  # with replacement repeats samples


def test_full_batch_is_gradient_descent():
    X, y = _blobs()
    model = MLP([4, 5, 3], seed=0)
    twin = MLP([4, 5, 3], seed=0)
    opt = optim.SGD(model.params, lr=0.1)
    history = fit(model, X, y, opt, epochs=5, batch_size=None)
    assert history.iterations == 5
    # The same five steps by hand, on all the data each time.
    expected = []
    for _ in range(5):
        loss, grads = twin.loss_and_grad(X, y)
        expected.append(loss)
        for p, g in zip(twin.params, grads, strict=True):
            p -= 0.1 * g
    np.testing.assert_allclose(history.loss, expected, rtol=1e-12)
    np.testing.assert_allclose(model.flat_params, twin.flat_params, rtol=1e-12)


def test_epoch_loss_is_weighted_by_batch_sizes():
    X, y = _blobs(n=11)
    model = reference.MLP([4, 5, 3], seed=0)
    opt = reference.SGD(model.params, lr=0.05)
    history = fit(model, X, y, opt, epochs=1, batch_size=4, seed=7)
    # The same epoch by hand: batches of 4, 4 and 3 of one seeded permutation.
    twin = reference.MLP([4, 5, 3], seed=0)
    twin_opt = reference.SGD(twin.params, lr=0.05)
    order = np.random.default_rng(7).permutation(11)
    total = 0.0
    for start in range(0, 11, 4):
        idx = order[start : start + 4]
        loss, grads = twin.loss_and_grad(X[idx], y[idx])
        total += loss * len(idx)
        twin_opt.step(grads)
    np.testing.assert_allclose(model.flat_params, twin.flat_params, rtol=1e-13)
    assert history.loss[0] == pytest.approx(total / 11, rel=1e-13)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.Adam(p, lr=0.01),
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
        lambda p: optim.RMSprop(p, lr=0.01, centered=True),
        lambda p: optim.Adagrad(p, lr=0.05),
        lambda p: optim.AdamW(p, lr=0.01, amsgrad=True),
    ],
)
@pytest.mark.parametrize("sampling", ["without_replacement", "with_replacement"])
def test_compiled_epochs_match_the_python_loop(make, dtype, rtol, sampling):
    X, y = _blobs(n=50)
    results = []
    for engine in ("compiled", "python"):
        model = MLP([4, 6, 5, 3], activation="tanh", dtype=dtype, seed=2)
        opt = make(model.params)
        h = fit(
            model,
            X,
            y,
            opt,
            epochs=3,
            batch_size=8,
            sampling=sampling,
            seed=5,
            engine=engine,
        )
        results.append((h, model.flat_params.copy(), opt.step_count))
    (h1, p1, s1), (h2, p2, s2) = results
    assert s1 == s2 == h1.iterations == h2.iterations
    np.testing.assert_allclose(h1.loss, h2.loss, rtol=rtol)
    np.testing.assert_allclose(p1, p2, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("engine", ["compiled", "python"])
def test_same_seed_same_result(engine):
    X, y = _blobs()
    runs = []
    for seed in (11, 11, 12):
        model = MLP([4, 8, 3], seed=0)
        h = fit(
            model,
            X,
            y,
            optim.Adam(model.params, lr=0.01),
            epochs=3,
            batch_size=5,
            seed=seed,
            engine=engine,
        )
        runs.append((h.loss, model.flat_params.copy()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]


def test_statuses_max_epochs_and_converged():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    model = MLP([3, 1], activation="identity", loss="mse", seed=0)
    h = fit(model, X, y, optim.SGD(model.params, lr=0.1), epochs=3, batch_size=None)
    assert (h.status, h.epochs) == ("max_epochs", 3)
    assert "3 epochs" in h.message
    h = fit(
        model,
        X,
        y,
        optim.SGD(model.params, lr=0.1),
        epochs=5000,
        batch_size=None,
        tol=1e-10,
    )
    assert h.status == "converged" and h.epochs < 5000
    np.testing.assert_allclose(model.params[0].ravel(), [1.0, -2.0, 0.5], atol=1e-4)


@pytest.mark.parametrize("engine", ["compiled", "python"])
def test_divergence_with_a_huge_learning_rate(engine):
    X, y = _blobs()
    X = X * 100
    model = MLP([4, 16, 3], seed=0)
    opt = optim.SGD(model.params, lr=1e8)
    h = fit(model, X, y, opt, epochs=50, batch_size=10, seed=0, engine=engine)
    assert h.status == "diverged"
    assert f"epoch {h.epochs}" in h.message and "iteration" in h.message
    assert np.isfinite(model.flat_params).all()
    assert all(math.isfinite(v) for v in h.loss)


def test_lr_too_large_for_mse_diverges_and_keeps_last_finite_params():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)) * 10
    y = X.sum(axis=1)
    model = MLP([3, 1], activation="identity", loss="mse", seed=0)
    h = fit(model, X, y, optim.SGD(model.params, lr=10.0), epochs=2000, batch_size=None)
    assert h.status == "diverged"
    assert np.isfinite(model.flat_params).all()


def test_bad_arguments_are_named_and_leave_the_model_alone():
    X, y = _blobs()
    model = MLP([4, 5, 3], seed=0)
    opt = optim.SGD(model.params, lr=0.1)
    before = model.flat_params.copy()
    with pytest.raises(ValueError, match="`epochs`"):
        fit(model, X, y, opt, epochs=0)
    with pytest.raises(TypeError, match="`model` must be a gdcore.nn.MLP"):
        fit("model", X, y, opt, epochs=1)
    with pytest.raises(TypeError, match="`epochs`"):
        fit(model, X, y, opt, epochs=2.5)
    with pytest.raises(ValueError, match="`batch_size`"):
        fit(model, X, y, opt, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="`sampling`"):
        fit(model, X, y, opt, epochs=1, sampling="bootstrap")
    with pytest.raises(ValueError, match="`tol`"):
        fit(model, X, y, opt, epochs=1, tol=-1.0)
    with pytest.raises(TypeError, match="`tol`"):
        fit(model, X, y, opt, epochs=1, tol=True)
    with pytest.raises(ValueError, match="`tol`"):
        fit(model, X, y, opt, epochs=1, tol=10**400)
    with pytest.raises(ValueError, match="`X` holds NaN"):
        fit(model, np.where(X > 2, np.nan, X), y, opt, epochs=1)
    with pytest.raises(ValueError, match="`engine`"):
        fit(model, X, y, opt, epochs=1, engine="gpu")
    with pytest.raises(ValueError, match="`seed` must be >= 0"):
        fit(model, X, y, opt, epochs=1, seed=-1)
    with pytest.raises(TypeError, match="`seed`"):
        fit(model, X, y, opt, epochs=1, seed=1.5)
    with pytest.raises(TypeError, match="`shuffle`"):
        fit(model, X, y, opt, epochs=1, shuffle="no")
    with pytest.raises(TypeError, match="`progress`"):
        fit(model, X, y, opt, epochs=1, progress="yes")
    other = MLP([4, 5, 3], seed=0)
    with pytest.raises(ValueError, match="`optimizer`"):
        fit(model, X, y, optim.SGD(other.params, lr=0.1), epochs=1)
    with pytest.raises(ValueError, match="compiled"):
        fit(
            model,
            X,
            y,
            reference.SGD(model.params, lr=0.1),
            epochs=1,
            engine="compiled",
        )
    np.testing.assert_array_equal(model.flat_params, before)


def test_auto_engine_runs_a_compiled_model_with_a_reference_optimizer():
    X, y = _blobs()
    results = []
    for engine in ("auto", "python"):
        model = MLP([4, 5, 3], seed=0)
        fit(
            model,
            X,
            y,
            reference.Adam(model.params, lr=0.01),
            epochs=2,
            batch_size=8,
            seed=0,
            engine=engine,
        )
        results.append(model.flat_params.copy())
    np.testing.assert_array_equal(*results)


def test_non_finite_targets_are_rejected_before_training():
    model = MLP([2, 1], activation="identity", loss="mse", seed=0)
    before = model.flat_params.copy()
    with pytest.raises(ValueError, match="`y` holds NaN or infinite"):
        fit(
            model,
            np.ones((3, 2)),
            [1.0, np.inf, 0.0],
            optim.SGD(model.params, lr=0.1),
            epochs=1,
        )
    np.testing.assert_array_equal(model.flat_params, before)


class ClippedSGD(optim.SGD):
    """A compiled SGD whose step clips the gradient first."""

    def step(self, grads):
        super().step([np.clip(g, -1e-3, 1e-3) for g in grads])


class ScaledLossMLP(MLP):
    """A compiled MLP whose loss_and_grad halves the gradient."""

    def loss_and_grad(self, X, y):
        loss, grads = super().loss_and_grad(X, y)
        for g in grads:
            g *= 0.5
        return loss, grads


@pytest.mark.parametrize(
    ("model_cls", "opt_cls", "expected"),
    [(MLP, ClippedSGD, "clipped"), (ScaledLossMLP, optim.SGD, "halved")],
)
def test_overriding_subclasses_are_called_not_bypassed(model_cls, opt_cls, expected):
    X, y = _blobs()
    model = model_cls([4, 5, 3], seed=0)
    fit(model, X, y, opt_cls(model.params, lr=0.5), epochs=2, batch_size=8, seed=0)
    # The same updates written out with the plain classes and the Python loop.
    manual = MLP([4, 5, 3], seed=0)
    opt = optim.SGD(manual.params, lr=0.5)
    rng = np.random.default_rng(0)
    for _ in range(2):
        order = rng.permutation(len(X))
        for start in range(0, len(X), 8):
            idx = order[start : start + 8]
            _, grads = manual.loss_and_grad(X[idx], y[idx])
            if expected == "clipped":
                grads = [np.clip(g, -1e-3, 1e-3) for g in grads]
            else:
                grads = [0.5 * g for g in grads]
            opt.step(grads)
    np.testing.assert_array_equal(model.flat_params, manual.flat_params)
    plain = MLP([4, 5, 3], seed=0)
    fit(plain, X, y, optim.SGD(plain.params, lr=0.5), epochs=2, batch_size=8, seed=0)
    assert not np.array_equal(plain.flat_params, model.flat_params)
    with pytest.raises(ValueError, match="would bypass the overriding"):
        fit(model, X, y, opt_cls(model.params, lr=0.5), epochs=1, engine="compiled")


class PlainSGD(optim.SGD):
    """A user's subclass that changes nothing."""


def test_methods_set_on_the_instance_are_called():
    X, y = _blobs()
    calls = []
    for engine in ("auto", "python"):
        model = MLP([4, 5, 3], seed=0)
        opt = PlainSGD(model.params, lr=0.1)  # gdcore's own classes refuse new names
        step, grad = opt.step, model.loss_and_grad
        opt.step = lambda grads, f=step: (calls.append("step"), f(grads))
        model.loss_and_grad = lambda X, y, f=grad: (calls.append("grad"), f(X, y))[1]
        fit(model, X, y, opt, epochs=1, batch_size=30, seed=0, engine=engine)
        assert calls == ["grad", "step"] * 2
        calls.clear()
