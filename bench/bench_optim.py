"""Optimizer step benchmarks: gdcore vs the NumPy reference, textbook NumPy and torch.

Run ``pytest bench/ --benchmark-only --benchmark-json out.json`` and turn the JSON into
a table with ``python bench/report.py out.json``. Each group is one optimizer at one
size; it also holds the in-place bandwidth references, NumPy's serial ``a += b`` and
the same add on gdcore's threads, so that GB/s fractions can be derived from
``extra_info["bytes"]`` (bytes moved per call).

At 1e7 elements every round starts with the caches flushed (a buffer twice the size of
the last-level cache is written first), so each implementation streams its arrays from
memory. Without it the result depends on what fits in the cache: on the 2-core
development machine, whose virtual L3 is 480 MiB, the add's two 40 MB arrays stayed in
the cache between rounds (38 GB/s on one thread) while Adam's four did only in part, and
an add over 160 MB ran at 21 GB/s, so the add at the same n was no bandwidth yardstick.

Every implementation is checked against the NumPy reference after one step on the same
inputs before it is timed.
"""

import functools
import glob
import os

import numpy as np
import pytest

import gdcore
from gdcore import optim, reference

try:
    import torch
except ImportError:
    torch = None

# name -> (kwargs, arrays read + written per element by the fused update)
OPTIMIZERS = {
    "Adam": (dict(lr=1e-3), 7),
    "AdamW": (dict(lr=1e-3, weight_decay=1e-2), 7),
    "SGD": (dict(lr=1e-2, momentum=0.9), 5),
    "RMSprop": (dict(lr=1e-2), 5),
    "Adagrad": (dict(lr=1e-2), 5),
}
TORCH_FUSED = {"Adam", "AdamW", "SGD", "Adagrad"}
SIZES = {"1e3": 1_000, "1e5": 100_000, "1e7": 10_000_000}
CASES = [(name, size, np.float32) for name in OPTIMIZERS for size in SIZES]
CASES.append(("Adam", "1e7", np.float64))
IMPLS = ["a+=b", "a+=b-threads", "gdcore", "gdcore-1t", "reference", "textbook",
         "torch", "torch-foreach", "torch-fused"]


def _data(n, dtype, n_arrays=1, shapes=None):
    """Seeded params and grads, as `n_arrays` arrays of n elements, or one array of
    each shape in `shapes`."""
    rng = np.random.default_rng(0)
    shapes = [(n,)] * n_arrays if shapes is None else shapes
    params = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    grads = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    return params, grads


def _textbook_step(name, kwargs):
    """Textbook NumPy update (new arrays each step), as found in tutorials."""
    lr = kwargs["lr"]
    state = {}

    def adam(params, grads, decoupled):
        t = state["t"] = state.get("t", 0) + 1
        b1, b2, eps, wd = 0.9, 0.999, 1e-8, kwargs.get("weight_decay", 0.0)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m, v = state.get(("m", i), 0.0), state.get(("v", i), 0.0)
            if decoupled:
                p *= 1 - lr * wd
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            p -= lr * m_hat / (np.sqrt(v_hat) + eps)
            state["m", i], state["v", i] = m, v

    def sgd(params, grads):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            b = state.get(("b", i))
            b = g.copy() if b is None else 0.9 * b + g
            p -= lr * b
            state["b", i] = b

    def rmsprop(params, grads):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            sq = 0.99 * state.get(("sq", i), 0.0) + 0.01 * g**2
            p -= lr * g / (np.sqrt(sq) + 1e-8)
            state["sq", i] = sq

    def adagrad(params, grads):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = state.get(("s", i), 0.0) + g**2
            p -= lr * g / (np.sqrt(s) + 1e-10)
            state["s", i] = s

    steps = {"Adam": lambda p, g: adam(p, g, False),
             "AdamW": lambda p, g: adam(p, g, True),
             "SGD": sgd, "RMSprop": rmsprop, "Adagrad": adagrad}
    return steps[name]


def _make_step(impl, name, kwargs, params, grads):
    """A zero-argument callable performing one step of `impl` on `params` in place."""
    if impl in ("gdcore", "gdcore-1t"):
        opt = getattr(optim, name)(params, **kwargs)
        return lambda: opt.step(grads)
    if impl == "reference":
        opt = getattr(reference, name)(params, **kwargs)
        return lambda: opt.step(grads)
    if impl == "textbook":
        step = _textbook_step(name, kwargs)
        return lambda: step(params, grads)
    if torch is None:
        pytest.skip("torch is not installed")
    flags = {"torch": dict(foreach=False), "torch-foreach": dict(foreach=True),
             "torch-fused": dict(fused=True)}[impl]
    if impl == "torch-fused" and name not in TORCH_FUSED:
        pytest.skip(f"torch.optim.{name} has no fused implementation")
    tensors = [torch.from_numpy(p) for p in params]  # shares memory with params
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.from_numpy(g)
    topt = getattr(torch.optim, name)(tensors, **kwargs, **flags)
    return topt.step


def _check_one_step(impl, name, kwargs, n, dtype, n_arrays=1, layout="separate",
                    shapes=None):
    """Compare one step of `impl` with the reference on fresh inputs."""
    params, grads = _layout(*_data(n, dtype, n_arrays, shapes), layout)
    expected = [p.copy() for p in params]
    getattr(reference, name)(expected, **kwargs).step(grads)
    with _no_grad():
        _make_step(impl, name, kwargs, params, grads)()
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    for p, e in zip(params, expected, strict=True):
        np.testing.assert_allclose(p, e, rtol=rtol, atol=rtol * 1e-2)


def _no_grad():
    """torch.no_grad() when torch is present, else a null context."""
    if torch is None:
        import contextlib
        return contextlib.nullcontext()
    return torch.no_grad()


def _layout(params, grads, layout):
    """Keep separate arrays, or copy them into views of one flat buffer each."""
    if layout == "separate":
        return params, grads
    out = []
    for arrays in (params, grads):
        flat = np.concatenate([a.ravel() for a in arrays])
        ends = np.cumsum([a.size for a in arrays])
        out.append([part.reshape(a.shape) for part, a in
                    zip(np.split(flat, ends[:-1]), arrays, strict=True)])
    return out


FLUSH_FROM = 10_000_000  # elements; smaller steps are timed with warm caches


def _last_level_cache_bytes():
    """Largest cache size that Linux reports for CPU 0; 512 MiB if unknown."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes, default=512 << 20)


@functools.cache
def _cache_flusher():
    """A callable that evicts the caches by writing twice the last-level cache size."""
    size = min(2 * _last_level_cache_bytes(), 4 << 30)
    buf = np.zeros(size // 8)

    def flush():
        np.add(buf, 1.0, out=buf)

    return flush


def _run(benchmark, step, n_total):
    """Time `step`; few rounds for the large sizes to keep the run short, and from
    flushed caches at the largest size (see the module docstring)."""
    with _no_grad():
        if n_total >= FLUSH_FROM:
            benchmark.pedantic(step, setup=_cache_flusher(), rounds=10, iterations=1,
                               warmup_rounds=1)
        elif n_total >= 1_000_000:
            benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
        else:
            benchmark(step)


def _info(benchmark, impl, name, n_total, dtype, arrays_moved):
    benchmark.extra_info.update(
        impl=impl, optimizer=name, n=n_total, dtype=np.dtype(dtype).name,
        bytes=arrays_moved * n_total * np.dtype(dtype).itemsize,
        threads=gdcore.get_num_threads(), loadavg=os.getloadavg()[0])


def _inplace_add(benchmark, name, n, dtype):
    """a += b with NumPy: reads 2 arrays and writes 1, the in-place bandwidth bound."""
    (a,), (b,) = _data(n, dtype)
    _info(benchmark, "a+=b", name, n, dtype, 3)
    benchmark.extra_info["threads"] = 1
    _run(benchmark, lambda: np.add(a, b, out=a), n)


def _inplace_add_threads(benchmark, name, n, dtype, run_size=None):
    """a += b on gdcore's threads: NumPy's is serial, so the in-place bound at the
    thread count of the "gdcore" row comes from gdcore's own plain-SGD kernel,
    p -= 1 * (-b), which reads 2 arrays and writes 1 like a += b. `run_size` is the
    size `_run` times it as (default n), to match the rows it is compared with."""
    (a,), (b,) = _data(n, dtype)
    minus_b = -b
    opt = optim.SGD([a], lr=1.0)
    _info(benchmark, "a+=b-threads", name, n, dtype, 3)
    _run(benchmark, lambda: opt.step([minus_b]), n if run_size is None else run_size)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("name", "size", "dtype"), CASES,
                         ids=[f"{n}-{s}-{np.dtype(d).name}" for n, s, d in CASES])
def test_step(benchmark, impl, name, size, dtype):
    n = SIZES[size]
    kwargs, arrays_moved = OPTIMIZERS[name]
    benchmark.group = f"{name}-{size}-{np.dtype(dtype).name}"
    if impl == "a+=b":  # timed next to the optimizers, as the load drifts over a run
        _inplace_add(benchmark, name, n, dtype)
        return
    if impl == "a+=b-threads":
        _inplace_add_threads(benchmark, name, n, dtype)
        return
    if impl == "reference" and n >= 10_000_000 and name != "Adam":
        pytest.skip("the NumPy reference at 1e7 is timed for Adam only (textbook NumPy "
                    "for all), to keep the run short")
    _check_one_step(impl, name, kwargs, min(n, 100_000), dtype)
    params, grads = _data(n, dtype)
    step = _make_step(impl, name, kwargs, params, grads)
    _info(benchmark, impl, name, n, dtype, arrays_moved)
    if impl != "gdcore-1t":
        _run(benchmark, step, n)
        return
    # One thread, as NumPy's a += b: the like-for-like bandwidth comparison.
    threads = gdcore.get_num_threads()
    gdcore.set_num_threads(1)
    try:
        benchmark.extra_info["threads"] = 1
        _run(benchmark, step, n)
    finally:
        gdcore.set_num_threads(threads)


MULTI_IMPLS = ["a+=b-threads", "gdcore-flat", "gdcore-separate", "reference",
               "numpy-loop", "torch", "torch-foreach", "torch-fused"]
# A model's parameter shapes: 100 arrays of 10k, and the weights and biases of a
# 784-512-256-10 MLP (535,818 parameters), as gdcore.nn.MLP lays them out.
MODELS = {
    "100x10k": [(10_000,)] * 100,
    "MLP-784-512-256-10": [(784, 512), (512,), (512, 256), (256,), (256, 10), (10,)],
}


@pytest.mark.parametrize("impl", MULTI_IMPLS)
@pytest.mark.parametrize("model", list(MODELS))
def test_adam_many_arrays(benchmark, impl, model):
    """Adam over a whole model's float32 arrays: one buffer ("gdcore-flat", views of
    one buffer as gdcore.nn.MLP holds them) or separate arrays, against torch.

    These sizes live in the caches, so the bandwidth reference is an add over the same
    footprint: two arrays of twice the parameter count hold as many bytes as Adam's
    p, g, m and v."""
    kwargs, arrays_moved = OPTIMIZERS["Adam"]
    shapes = MODELS[model]
    n_total = sum(int(np.prod(shape)) for shape in shapes)
    benchmark.group = f"Adam-{model}-float32"
    if impl == "a+=b-threads":
        _inplace_add_threads(benchmark, "Adam", 2 * n_total, np.float32, run_size=0)
        return
    layout = "flat" if impl == "gdcore-flat" else "separate"
    base = {"gdcore-flat": "gdcore", "gdcore-separate": "gdcore",
            "numpy-loop": "textbook"}.get(impl, impl)
    _check_one_step(base, "Adam", kwargs, 0, np.float32, layout=layout, shapes=shapes)
    params, grads = _layout(*_data(0, np.float32, shapes=shapes), layout)
    step = _make_step(base, "Adam", kwargs, params, grads)
    _info(benchmark, impl, "Adam", n_total, np.float32, arrays_moved)
    _run(benchmark, step, 0)
