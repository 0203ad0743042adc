"""Tests of the multilayer perceptrons gdcore.nn.MLP and gdcore.reference.MLP."""

import numpy as np
import pytest

from gdcore import _core, nn, reference, set_num_threads
from gdcore._mlp import ACTIVATIONS

BACKENDS = {"compiled": nn.MLP, "reference": reference.MLP}
LOSS_SHAPES = [
    # (loss, layer sizes, targets as (n,) when True)
    ("cross_entropy", [4, 5, 3], False),
    ("cross_entropy", [3, 4, 4, 2], False),
    ("mse", [4, 5, 3], False),
    ("mse", [3, 4, 4, 2], False),
    ("mse", [3, 4, 1], True),
    ("mse", [3, 4, 1], False),
]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


def make_data(sizes, loss, n=6, flat_targets=False, seed=0):
    """Random inputs and matching labels or targets."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0]))
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], size=n)
    elif flat_targets:
        y = rng.standard_normal(n)
    else:
        y = rng.standard_normal((n, sizes[-1]))
    return X, y


def perturb(model, fn, eps):
    """Central differences of fn() with respect to every entry of flat_params."""
    columns = []
    for i in range(model.n_params):
        old = model.flat_params[i]
        model.flat_params[i] = old + eps
        up = np.asarray(fn(), dtype=np.float64)
        model.flat_params[i] = old - eps
        down = np.asarray(fn(), dtype=np.float64)
        model.flat_params[i] = old
        columns.append((up - down) / (2 * eps))
    return np.stack(columns, axis=-1)


def relative_error(actual, expected):
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(("loss", "sizes", "flat"), LOSS_SHAPES)
def test_gradient_matches_finite_differences(backend, activation, loss, sizes, flat):
    model = backend(sizes, activation=activation, loss=loss, seed=1)
    # Non-zero biases so that every parameter path is exercised.
    model.flat_params += 0.1 * np.random.default_rng(2).standard_normal(model.n_params)
    X, y = make_data(sizes, loss, flat_targets=flat)

    value, grads = model.loss_and_grad(X, y)
    expected = perturb(model, lambda: model.loss(X, y), 1e-6)

    assert grads is model.grads
    assert value == pytest.approx(model.loss(X, y), rel=1e-14)
    assert relative_error(model.flat_grads, expected) <= 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(("loss", "sizes", "flat"), LOSS_SHAPES)
def test_compiled_matches_reference(dtype, activation, loss, sizes, flat):
    kwargs = dict(activation=activation, loss=loss, dtype=dtype, seed=3)
    compiled, ref = nn.MLP(sizes, **kwargs), reference.MLP(sizes, **kwargs)
    shift = np.random.default_rng(4).standard_normal(compiled.n_params) * 0.1
    compiled.flat_params += shift.astype(dtype)
    ref.flat_params += shift.astype(dtype)
    X, y = make_data(sizes, loss, n=9, flat_targets=flat, seed=5)
    rtol = RTOL[dtype]

    out = compiled.forward(X)
    assert out.dtype == dtype and out.shape == (9, sizes[-1])
    np.testing.assert_allclose(out, ref.forward(X), rtol=rtol, atol=rtol)
    assert compiled.loss(X, y) == pytest.approx(ref.loss(X, y), rel=rtol)
    value, grads = compiled.loss_and_grad(X, y)
    ref_value, ref_grads = ref.loss_and_grad(X, y)
    assert value == pytest.approx(ref_value, rel=rtol)
    for g, expected in zip(grads, ref_grads, strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, expected, rtol=rtol, atol=rtol)
    jac = compiled.jacobian(X)
    assert jac.dtype == dtype
    np.testing.assert_allclose(jac, ref.jacobian(X), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(
    ("loss", "sizes"), [("mse", [3, 4, 2]), ("cross_entropy", [2, 3, 3])]
)
def test_jacobian_matches_finite_differences(backend, activation, loss, sizes):
    model = backend(sizes, activation=activation, loss=loss, seed=6)
    model.flat_params += 0.1 * np.random.default_rng(7).standard_normal(model.n_params)
    X, _ = make_data(sizes, loss, n=5)

    jac = model.jacobian(X)
    expected = perturb(model, lambda: model.forward(X).ravel(), 1e-6)

    assert jac.shape == (5 * sizes[-1], model.n_params)
    np.testing.assert_allclose(jac, expected, rtol=1e-6, atol=1e-8)


def test_mse_jacobian_gives_the_gradient(backend):
    # For mse, grad = 2 J^T (out - y) / (n k): an identity that ties the two together.
    model = backend([3, 5, 2], activation="tanh", loss="mse", seed=8)
    X, y = make_data([3, 5, 2], "mse", n=7)
    residual = (model.forward(X) - y).ravel()

    _, grads = model.loss_and_grad(X, y)

    expected = 2 * model.jacobian(X).T @ residual / residual.size
    np.testing.assert_allclose(model.flat_grads, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_seed_gives_same_weights(activation, dtype):
    sizes = [5, 7, 3]
    compiled = nn.MLP(sizes, activation=activation, dtype=dtype, seed=11)
    ref = reference.MLP(sizes, activation=activation, dtype=dtype, seed=11)
    other = nn.MLP(sizes, activation=activation, dtype=dtype, seed=12)

    # Recompute the documented initialisation independently.
    rng = np.random.default_rng(11)
    expected = []
    for fan_in, fan_out in [(5, 7), (7, 3)]:
        if activation == "relu":
            w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)
        else:
            r = np.sqrt(6 / (fan_in + fan_out))
            w = rng.uniform(-r, r, size=(fan_in, fan_out))
        expected += [w.astype(dtype), np.zeros(fan_out, dtype=dtype)]

    assert compiled.flat_params.dtype == dtype
    np.testing.assert_array_equal(compiled.flat_params, ref.flat_params)
    for p, e in zip(compiled.params, expected, strict=True):
        np.testing.assert_array_equal(p, e)
    assert not np.array_equal(compiled.flat_params, other.flat_params)


def test_params_and_grads_are_views_of_the_flat_buffers(backend):
    model = backend([3, 4, 2], seed=0)
    shapes = [p.shape for p in model.params]
    X, y = make_data([3, 4, 2], "cross_entropy")
    before = model.forward(X)

    model.params[2][1, 0] = 5.0
    model.flat_params[-1] = -2.0

    assert shapes == [(3, 4), (4,), (4, 2), (2,)]
    assert model.n_params == 3 * 4 + 4 + 4 * 2 + 2
    assert model.flat_params[3 * 4 + 4 + 1 * 2 + 0] == 5.0
    assert model.params[3][1] == -2.0
    assert not np.allclose(model.forward(X), before)
    _, grads = model.loss_and_grad(X, y)
    assert grads is model.grads
    for g, p in zip(grads, model.params, strict=True):
        assert g.shape == p.shape and np.shares_memory(g, model.flat_grads)
        assert np.shares_memory(p, model.flat_params)
    np.testing.assert_array_equal(
        np.concatenate([g.ravel() for g in grads]), model.flat_grads
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_for_large_logits(backend, dtype):
    # Identity network whose logits are the inputs, scaled to magnitude 1e3.
    model = backend([2, 2], activation="identity", dtype=dtype)
    model.params[0][...] = np.eye(2)
    model.params[1][...] = 0
    X = np.array([[1000.0, -1000.0], [-1000.0, 1000.0], [1000.0, 999.0]])
    y = np.array([1, 1, 0])

    out = model.forward(X)
    value = model.loss(X, y)

    # Row 3: softmax(1000, 999) = (1, e^-1) / (1 + e^-1).
    top = 1 / (1 + np.exp(-1.0))
    expected = np.array([[1, 0], [0, 1], [top, 1 - top]])
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype] * 10, atol=1e-30)
    # Losses: 2000, ~0, log(1 + e^-1); mean over three rows.
    assert value == pytest.approx((2000 + np.log1p(np.exp(-1.0))) / 3, rel=1e-6)
    _, grads = model.loss_and_grad(X, y)
    assert all(np.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_large_inputs(backend, dtype):
    model = backend([1, 2, 1], activation="sigmoid", loss="mse", dtype=dtype)
    model.params[0][...] = [[1.0, -1.0]]
    model.params[1][...] = 0
    model.params[2][...] = [[1.0], [2.0]]
    model.params[3][...] = 0
    X = np.array([[1000.0], [-1000.0], [0.0]])

    out = model.forward(X)

    # sigmoid(1e3) = 1, sigmoid(-1e3) = 0 (to within 1e-400), sigmoid(0) = 0.5.
    np.testing.assert_allclose(out.ravel(), [1.0, 2.0, 1.5], rtol=RTOL[dtype])
    _, grads = model.loss_and_grad(X, np.zeros(3))
    assert all(np.isfinite(g).all() for g in grads)


def test_nan_input_propagates(backend):
    model = backend([2, 3, 2], activation="tanh", seed=0)
    X = np.array([[np.nan, 0.0], [1.0, 1.0]])

    assert np.isnan(model.loss(X, [0, 1]))
    assert np.isnan(model.forward(X)[0]).all()


@pytest.mark.parametrize(("loss", "k"), [("cross_entropy", 3), ("mse", 1), ("mse", 2)])
def test_predict(backend, loss, k):
    model = backend([3, 4, k], loss=loss, seed=0)
    X, _ = make_data([3, 4, k], loss, n=5)
    out = model.forward(X)

    pred = model.predict(X)

    if loss == "cross_entropy":
        assert pred.dtype == np.int64
        np.testing.assert_array_equal(pred, np.argmax(out, axis=1))
    elif k == 1:
        np.testing.assert_array_equal(pred, out[:, 0])
    else:
        np.testing.assert_array_equal(pred, out)


def test_workspace_grows_and_is_reused():
    sizes = [3, 6, 2]
    compiled = nn.MLP(sizes, activation="tanh", seed=0)
    ref = reference.MLP(sizes, activation="tanh", seed=0)
    for n in (2, 9, 4, 9):
        X, y = make_data(sizes, "cross_entropy", n=n, seed=n)
        assert compiled.loss_and_grad(X, y)[0] == pytest.approx(
            ref.loss(X, y), rel=1e-12
        )
        ref.loss_and_grad(X, y)
        np.testing.assert_allclose(compiled.flat_grads, ref.flat_grads, rtol=1e-12)
    assert compiled._work_rows == 9


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_loops_give_the_serial_result(threads):
    sizes = [5, 8, 8, 3]
    X, y = make_data(sizes, "cross_entropy", n=40)
    model = nn.MLP(sizes, activation="sigmoid", seed=0)
    value, _ = model.loss_and_grad(X, y)
    serial = model.flat_grads.copy()
    jac = model.jacobian(X)
    threshold = _core._nn_parallel_threshold()
    try:
        set_num_threads(threads)
        _core._set_nn_parallel_threshold(0)
        parallel_value, _ = model.loss_and_grad(X, y)
        parallel_jac = model.jacobian(X)
    finally:
        _core._set_nn_parallel_threshold(threshold)
        set_num_threads(None)
    assert parallel_value == value
    np.testing.assert_array_equal(model.flat_grads, serial)
    np.testing.assert_array_equal(parallel_jac, jac)


def test_float32_model_converts_lists_and_other_dtypes(backend):
    model = backend([3, 4, 2], dtype=np.float32, seed=0)
    X, y = make_data([3, 4, 2], "cross_entropy")

    value, grads = model.loss_and_grad(X.tolist(), y.astype(np.int32))

    assert isinstance(value, float) and np.isfinite(value)
    assert all(g.dtype == np.float32 for g in grads)
    assert model.forward(X.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(layer_sizes=[3]), ValueError, "`layer_sizes`"),
        (dict(layer_sizes=[3, 0]), ValueError, "`layer_sizes`"),
        (dict(layer_sizes=[3, 2.5]), TypeError, "`layer_sizes`"),
        (dict(layer_sizes=3), TypeError, "`layer_sizes`"),
        (dict(layer_sizes=[3, 1]), ValueError, "`layer_sizes`.*cross_entropy"),
        (dict(layer_sizes=[3, 2], activation="softplus"), ValueError, "`activation`"),
        (dict(layer_sizes=[3, 2], activation=None), TypeError, "`activation`"),
        (dict(layer_sizes=[3, 2], loss="hinge"), ValueError, "`loss`"),
        (dict(layer_sizes=[3, 2], dtype=np.int32), TypeError, "`dtype`"),
        (dict(layer_sizes=[3, 2], dtype=np.float16), TypeError, "`dtype`"),
        (dict(layer_sizes=[3, 2], seed=-1), ValueError, "`seed`"),
        (dict(layer_sizes=[3, 2], seed=1.5), TypeError, "`seed`"),
    ],
)
def test_bad_constructor_arguments(backend, kwargs, error, match):
    with pytest.raises(error, match=match):
        backend(**kwargs)


@pytest.mark.parametrize(
    ("loss", "X", "y", "error", "match"),
    [
        ("cross_entropy", np.zeros((4, 2)), [0, 1, 0, 1], ValueError, r"`X`.*\(4, 2\)"),
        ("cross_entropy", np.zeros(3), [0], ValueError, "`X`"),
        ("cross_entropy", np.zeros((0, 3)), [], ValueError, "`X`"),
        ("cross_entropy", np.full((2, 3), "a"), [0, 1], TypeError, "`X`"),
        ("cross_entropy", np.zeros((2, 3)), [0, 2], ValueError, r"`y`.*\[0, 2\)"),
        ("cross_entropy", np.zeros((2, 3)), [0, -1], ValueError, "`y`"),
        ("cross_entropy", np.zeros((2, 3)), [0.0, 1.0], TypeError, "`y`"),
        ("cross_entropy", np.zeros((2, 3)), [0, 1, 1], ValueError, r"`y`.*\(3,\)"),
        ("mse", np.zeros((2, 3)), np.zeros(2), ValueError, r"`y`.*\(2, 2\)"),
        ("mse", np.zeros((2, 3)), np.zeros((2, 3)), ValueError, "`y`"),
        ("mse", np.zeros((2, 3)), np.array([["a", "b"]] * 2), TypeError, "`y`"),
    ],
)
def test_bad_inputs_name_the_argument(backend, loss, X, y, error, match):
    model = backend([3, 4, 2], loss=loss, seed=0)
    params, grads = model.flat_params.copy(), model.flat_grads.copy()

    with pytest.raises(error, match=match):
        model.loss_and_grad(X, y)

    np.testing.assert_array_equal(model.flat_params, params)
    np.testing.assert_array_equal(model.flat_grads, grads)


def test_jacobian_size_limit(backend):
    model = backend([2, 3, 2], seed=0)
    with pytest.raises(ValueError, match="`X`.*Jacobian"):
        model._check_jacobian_size(2**31)


EPOCH_OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=0.05, lr_decay=1e-3)),
]


def optim_module():
    return pytest.importorskip("gdcore.optim")


def python_epoch(model, X, y, order, batch_size, optimizer):
    """The step-by-step loop the compiled epoch must reproduce."""
    losses = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        loss, grads = model.loss_and_grad(X[idx], y[idx])
        losses.append(loss)
        optimizer.step(grads)
    return np.array(losses)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "kwargs"), EPOCH_OPTIMIZERS)
@pytest.mark.parametrize(("loss", "batch_size"), [("cross_entropy", 7), ("mse", 16)])
def test_train_epoch_matches_the_python_loop(dtype, name, kwargs, loss, batch_size):
    optim = optim_module()
    sizes = [4, 6, 5, 3]
    X, y = make_data(sizes, loss, n=30, seed=9)
    models = [
        nn.MLP(sizes, activation="tanh", loss=loss, dtype=dtype, seed=2) for _ in "ab"
    ]
    opts = [getattr(optim, name)(m.params, **kwargs) for m in models]
    X, y = models[0]._prepare_data(X, y)
    rng = np.random.default_rng(10)

    for _ in range(2):
        order = rng.permutation(30)
        losses, done, code = models[0]._train_epoch(X, y, order, batch_size, opts[0])
        expected = python_epoch(models[1], X, y, order, batch_size, opts[1])

        assert (done, code) == (len(expected), 0)
        # Same kernels on the same rows: equal to the last bit (float64 within 1e-12).
        np.testing.assert_allclose(losses, expected, rtol=RTOL[dtype] / 10, atol=0)
        np.testing.assert_allclose(
            models[0].flat_params, models[1].flat_params, rtol=RTOL[dtype] / 10, atol=0
        )
    assert opts[0].step_count == opts[1].step_count == 2 * len(expected)
    for s, t in zip(opts[0]._flat_state(), opts[1]._flat_state(), strict=True):
        assert (s is None) == (t is None)
        if s is not None:
            np.testing.assert_array_equal(s, t)


@pytest.mark.parametrize("batch_size", [1, 3, 10, 64])
def test_train_epoch_batch_sizes(batch_size):
    optim = optim_module()
    X, y = make_data([3, 5, 3], "cross_entropy", n=10, seed=4)
    a, b = nn.MLP([3, 5, 3], seed=0), nn.MLP([3, 5, 3], seed=0)
    opt_a, opt_b = optim.Adam(a.params, lr=0.01), optim.Adam(b.params, lr=0.01)
    X, y = a._prepare_data(X, y)
    order = np.random.default_rng(5).permutation(10)

    losses, done, code = a._train_epoch(X, y, order, batch_size, opt_a)

    expected = python_epoch(b, X, y, order, batch_size, opt_b)
    np.testing.assert_array_equal(losses, expected)
    assert (done, code) == (-(-10 // batch_size), 0)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)


def test_train_epoch_with_replacement_order():
    optim = optim_module()
    X, y = make_data([3, 4, 2], "cross_entropy", n=10)
    a, b = nn.MLP([3, 4, 2], seed=0), nn.MLP([3, 4, 2], seed=0)
    opt_a, opt_b = optim.SGD(a.params, lr=0.1), optim.SGD(b.params, lr=0.1)
    X, y = a._prepare_data(X, y)
    order = np.array([3, 3, 9, 0, 0, 0, 5, 1, 2], dtype=np.int64)

    losses, done, code = a._train_epoch(X, y, order, 4, opt_a)

    np.testing.assert_array_equal(losses, python_epoch(b, X, y, order, 4, opt_b))
    assert (done, code) == (3, 0)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)


def test_train_epoch_stops_on_a_non_finite_loss():
    optim = optim_module()
    X, y = make_data([3, 4, 2], "cross_entropy", n=12)
    X[7, 1] = np.nan
    model = nn.MLP([3, 4, 2], seed=0)
    opt = optim.SGD(model.params, lr=0.1)
    X, y = model._prepare_data(X, y)
    order = np.arange(12, dtype=np.int64)

    losses, done, code = model._train_epoch(X, y, order, 3, opt)

    # Batch 2 (rows 6..8) holds the NaN: batches 0 and 1 are applied, batch 2 is not.
    assert (done, code) == (2, 1)
    assert np.isfinite(losses[:2]).all() and np.isnan(losses[2])
    assert opt.step_count == 2
    twin = nn.MLP([3, 4, 2], seed=0)
    python_epoch(twin, X, y, order[:6], 3, optim.SGD(twin.params, lr=0.1))
    np.testing.assert_array_equal(model.flat_params, twin.flat_params)


def test_train_epoch_stops_on_non_finite_parameters():
    optim = optim_module()
    X, y = make_data([3, 4, 1], "mse", n=8)
    model = nn.MLP([3, 4, 1], loss="mse", seed=0)
    opt = optim.SGD(model.params, lr=1e308)
    X, y = model._prepare_data(X, 1e10 * y)

    losses, done, code = model._train_epoch(X, y, np.arange(8), 4, opt)

    assert (done, code) == (1, 2)
    assert np.isfinite(losses[0]) and not np.isfinite(model.flat_params).all()
    assert opt.step_count == 1


def test_train_epoch_rejects_bad_arguments():
    optim = optim_module()
    model, other = nn.MLP([3, 4, 2], seed=0), nn.MLP([3, 4, 2], seed=1)
    X, y = model._prepare_data(*make_data([3, 4, 2], "cross_entropy", n=5))
    opt = optim.SGD(model.params, lr=0.1)
    params = model.flat_params.copy()

    with pytest.raises(ValueError, match="`optimizer`"):
        model._train_epoch(X, y, np.arange(5), 2, optim.SGD(other.params, lr=0.1))
    with pytest.raises(ValueError, match="`optimizer` must be a gdcore.optim"):
        model._train_epoch(X, y, np.arange(5), 2, reference.SGD(model.params, lr=0.1))
    with pytest.raises(ValueError, match="`order`"):
        model._train_epoch(X, y, np.array([0, 5]), 2, opt)
    with pytest.raises(ValueError, match="`batch_size`"):
        model._train_epoch(X, y, np.arange(5), 0, opt)
    with pytest.raises(TypeError, match="`X`"):
        model._train_epoch(X.astype(np.float32), y, np.arange(5), 2, opt)
    with pytest.raises(TypeError, match="`y`"):
        model._train_epoch(X, y.astype(np.int32), np.arange(5), 2, opt)
    np.testing.assert_array_equal(model.flat_params, params)
    assert opt.step_count == 0


def test_read_only_and_strided_inputs():
    sizes = [3, 4, 2]
    X, y = make_data(sizes, "mse", n=8)
    ref = reference.MLP(sizes, loss="mse", seed=0)
    model = nn.MLP(sizes, loss="mse", seed=0)
    expected = ref.loss_and_grad(X, y)[0]
    fortran = np.asfortranarray(X)
    wide = np.zeros((8, 6))
    wide[:, ::2] = X
    X.setflags(write=False)
    y.setflags(write=False)

    for data in (X, fortran, wide[:, ::2]):
        assert model.loss_and_grad(data, y)[0] == pytest.approx(expected, rel=1e-12)
        np.testing.assert_allclose(model.flat_grads, ref.flat_grads, rtol=1e-12)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("how", ["deepcopy", "copy", "pickle"])
def test_copied_model_keeps_views_and_trains(backend, how):
    import copy
    import pickle

    cls = nn.MLP if backend == "compiled" else reference.MLP
    model = cls([3, 6, 3], activation="tanh", dtype=np.float32, seed=4)
    clone = {
        "deepcopy": copy.deepcopy,
        "copy": copy.copy,
        "pickle": lambda m: pickle.loads(pickle.dumps(m)),
    }[how](model)
    assert type(clone) is cls and clone.dtype == np.float32 and clone.seed == 4
    np.testing.assert_array_equal(clone.flat_params, model.flat_params)
    assert not np.shares_memory(clone.flat_params, model.flat_params)
    for p, g in zip(clone.params, clone.grads, strict=True):
        assert np.shares_memory(p, clone.flat_params)
        assert np.shares_memory(g, clone.flat_grads)
    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    y = np.arange(20) % 3
    before = model.flat_params.copy()
    loss, grads = clone.loss_and_grad(X, y)
    assert np.any(clone.flat_grads != 0)
    clone.flat_params -= 0.5 * clone.flat_grads
    assert clone.loss(X, y) < loss
    np.testing.assert_array_equal(model.flat_params, before)


def test_compiled_model_is_safe_to_share_between_threads():
    from concurrent.futures import ThreadPoolExecutor

    model = nn.MLP([16, 64, 4], seed=0)
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=(n, 16)) for n in (5, 300, 40, 1000) * 15]
    expected = [model.forward(X) for X in inputs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(model.forward, inputs))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


class PenalisedMLP(nn.MLP):
    """A subclass with a constructor argument of its own and an attribute."""

    def __init__(self, sizes, l2, **kwargs):
        super().__init__(sizes, **kwargs)
        self.l2 = l2
        self.notes = ["built"]


@pytest.mark.parametrize("how", ["deepcopy", "copy", "pickle"])
def test_copied_subclass_keeps_its_attributes(how):
    import copy
    import pickle

    model = PenalisedMLP([3, 4, 2], 0.5, seed=1)
    model.notes.append("trained")
    clone = {
        "deepcopy": copy.deepcopy,
        "copy": copy.copy,
        "pickle": lambda m: pickle.loads(pickle.dumps(m)),
    }[how](model)
    assert type(clone) is PenalisedMLP and clone.l2 == 0.5
    assert clone.notes == ["built", "trained"]
    np.testing.assert_array_equal(clone.flat_params, model.flat_params)
    assert not np.shares_memory(clone.flat_params, model.flat_params)
    assert np.shares_memory(clone.params[0], clone.flat_params)
    X = np.ones((2, 3))
    np.testing.assert_array_equal(clone.forward(X), model.forward(X))
