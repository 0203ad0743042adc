"""pytest-benchmark setup for gdcore's benchmarks (run: pytest bench/ --benchmark-only).

Benchmark files are named ``bench_*.py`` so that the test run never collects them;
this conftest collects them when pytest is pointed at ``bench/``.
"""

import os

import pytest

import gdcore
from gdcore import _core


def pytest_collect_file(file_path, parent):
    """Collect bench_*.py files as test modules."""
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):  # pytest collects those
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_addoption(parser):
    parser.addoption("--threads", type=int, default=None,
                     help="thread count for gdcore, torch and the BLAS libraries "
                          "(default: their own)")


@pytest.fixture(scope="session", autouse=True)
def _thread_count(request):
    """Apply --threads to gdcore, torch and BLAS for the whole run.

    gdcore's matrix products run in SciPy's OpenBLAS and NumPy's in its own; both are
    limited too, so that gdcore, NumPy, scikit-learn and torch all use the same count.
    """
    threads = request.config.getoption("--threads")
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    blas_limit = threadpool_limits(threads, user_api="blas")
    gdcore.set_num_threads(threads)
    try:
        import torch
    except ImportError:
        torch = None
    old = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    yield
    gdcore.set_num_threads(None)
    blas_limit.restore_original_limits()
    if torch is not None:
        torch.set_num_threads(old)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the timings depend on: load, OpenMP, threads, torch threads."""
    machine_info["loadavg_start"] = os.getloadavg()
    machine_info["gdcore_openmp"] = bool(_core._have_openmp())
    threads = config.getoption("--threads")
    machine_info["gdcore_threads"] = threads or gdcore.get_num_threads()
    machine_info["gdcore_parallel_threshold"] = _core._optim_parallel_threshold()
    machine_info["blas_threads"] = threads or "default"
    try:
        import torch
    except ImportError:
        machine_info["torch"] = None
    else:
        machine_info["torch"] = torch.__version__
        machine_info["torch_threads"] = threads or torch.get_num_threads()


def pytest_report_header(config):
    """Show the thread setup the timings were taken with."""
    openmp = "on" if _core._have_openmp() else "off"
    return [f"gdcore bench: OpenMP {openmp}, threads {gdcore.get_num_threads()}, "
            f"load average {os.getloadavg()[0]:.2f}"]
