"""Benchmarks of the MLP forward+backward pass and of whole-epoch training.

Run with ``pytest bench/ --benchmark-only -k bench_nn`` (bench/conftest.py collects
the ``bench_*.py`` files; naming the file itself would collect it twice). The torch
columns appear when torch is installed. Every timed call is first checked
against the NumPy reference.

The torch cases are the last tests of this file on purpose: after a torch call, its
OpenMP workers keep spinning for a while and slow down every other BLAS call of the
process (a 784-256-128-10 pass went from 0.75 ms to 88 ms on a 2-core machine).
"""

import numpy as np
import pytest

from gdcore import _core, nn, reference

try:
    import torch
except ImportError:
    torch = None

CASES = {
    # name: (layer sizes, batch, dtype)
    "64-100-10_b32_f64": ([64, 100, 10], 32, np.float64),
    "784-256-128-10_b128_f32": ([784, 256, 128, 10], 128, np.float32),
}
RTOL = {np.float32: 1e-4, np.float64: 1e-10}


def make_problem(name):
    sizes, batch, dtype = CASES[name]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=batch)
    return sizes, dtype, X, y


def flops(sizes, batch):
    """Floating-point operations of the three matrix products per layer."""
    return sum(6 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("impl", ["gdcore", "reference"])
def test_forward_backward(benchmark, name, impl):
    sizes, dtype, X, y = make_problem(name)
    ref = reference.MLP(sizes, dtype=dtype, seed=0)
    expected = ref.loss_and_grad(X, y)[0]
    benchmark.group = f"fwd+bwd {name}"
    benchmark.extra_info.update(impl=impl, gflop=flops(sizes, len(X)) / 1e9)
    if impl == "gdcore":
        model = nn.MLP(sizes, dtype=dtype, seed=0)
        assert model.loss_and_grad(X, y)[0] == pytest.approx(expected, rel=RTOL[dtype])
        benchmark(model.loss_and_grad, X, y)
    else:
        benchmark(ref.loss_and_grad, X, y)


@pytest.mark.parametrize(
    "impl", ["compiled epoch", "compiled epoch, parallel loops", "python loop"]
)
def test_epoch(benchmark, impl):
    """One epoch of 16 batches; also run it with OMP_WAIT_POLICY=PASSIVE set.

    "parallel loops" lowers the nn element-wise threshold to 0 so that every fused
    loop starts an OpenMP region between the gemm calls.
    """
    optim = pytest.importorskip("gdcore.optim")
    sizes, batch, dtype = CASES["784-256-128-10_b128_f32"]
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2048, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=2048)
    order = rng.permutation(2048)
    model = nn.MLP(sizes, dtype=dtype, seed=0)
    opt = optim.SGD(model.params, lr=1e-3, momentum=0.9)
    X, y = model._prepare_data(X, y)
    benchmark.group = "epoch 784-256-128-10 b128 f32, 2048 rows, SGD momentum"
    benchmark.extra_info["impl"] = "gdcore" if impl == "compiled epoch" else impl

    def python_loop():
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            _, grads = model.loss_and_grad(X[idx], y[idx])
            opt.step(grads)

    if impl == "python loop":
        benchmark(python_loop)
        return
    threshold = _core._nn_parallel_threshold()
    if impl.endswith("parallel loops"):
        _core._set_nn_parallel_threshold(0)
    try:
        losses, done, code = model._train_epoch(X, y, order, batch, opt)
        assert code == 0 and done == 16 and np.isfinite(losses).all()
        benchmark(model._train_epoch, X, y, order, batch, opt)
    finally:
        _core._set_nn_parallel_threshold(threshold)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_backward_torch(benchmark, name):
    if torch is None:
        pytest.skip("torch is not installed")
    sizes, dtype, X, y = make_problem(name)
    ref = reference.MLP(sizes, dtype=dtype, seed=0)
    benchmark.group = f"fwd+bwd {name}"
    benchmark.extra_info["impl"] = "torch"
    step = torch_step(ref, X, y)
    assert step() == pytest.approx(ref.loss(X, y), rel=RTOL[dtype])
    benchmark(step)


def torch_step(ref, X, y):
    """A torch forward+backward with the weights of `ref`; returns the loss."""
    layers = []
    for weight, bias in zip(ref.params[0::2], ref.params[1::2], strict=True):
        linear = torch.nn.Linear(*weight.shape, dtype=torch.from_numpy(weight).dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))
        layers += [linear, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def step():
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(Xt), yt)
        loss.backward()
        return loss.item()

    return step
