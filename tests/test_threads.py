"""Library-wide thread count and the OpenMP wait policy."""

import os
import subprocess
import sys

import numpy as np
import pytest

import gdcore
from gdcore import optim


def test_set_and_get_num_threads():
    try:
        gdcore.set_num_threads(1)
        assert gdcore.get_num_threads() == 1
        gdcore.set_num_threads(3)
        assert gdcore.get_num_threads() == 3
    finally:
        gdcore.set_num_threads(None)
    assert gdcore.get_num_threads() >= 1


@pytest.mark.parametrize(
    "bad, error",
    [
        (0, ValueError),
        (-2, ValueError),
        (10**6, ValueError),
        (2**31, ValueError),
        (True, TypeError),
        (1.5, TypeError),
        ("2", TypeError),
    ],
)
def test_set_num_threads_rejects_bad_counts(bad, error):
    with pytest.raises(error, match="`n`"):
        gdcore.set_num_threads(bad)


def test_count_applies_to_other_python_threads():
    import threading

    seen = []
    try:
        gdcore.set_num_threads(1)
        worker = threading.Thread(target=lambda: seen.append(gdcore.get_num_threads()))
        worker.start()
        worker.join()
    finally:
        gdcore.set_num_threads(None)
    assert seen == [1]


def _policy_after_import(env):
    code = "import os, gdcore; print(os.environ['OMP_WAIT_POLICY'])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()[-1]


def test_import_makes_idle_openmp_workers_sleep_unless_told_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_after_import(env) == "PASSIVE"
    assert _policy_after_import({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_threadpoolctl_sees_and_limits_the_openmp_pool():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    p = np.zeros(10)
    optim.SGD([p], lr=0.1).step([np.ones(10)])
    apis = {info["user_api"] for info in threadpoolctl.threadpool_info()}
    assert "openmp" in apis
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert gdcore.get_num_threads() == 1


def test_runtime_thread_counts_are_capped():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    limit = 4 * (os.cpu_count() or 1)
    with threadpoolctl.threadpool_limits(limits=100000, user_api="openmp"):
        assert gdcore.get_num_threads() <= limit
        p = np.zeros(1 << 20)
        optim.SGD([p], lr=1.0).step([np.ones_like(p)])
    assert (p == -1.0).all()
