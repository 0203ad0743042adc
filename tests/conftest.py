"""Shared pytest configuration: a header with the compiled core's threading setup."""

import gdcore
from gdcore import _core


def pytest_report_header(config):
    """Show OpenMP, gdcore's thread count and the BLAS libraries in use."""
    openmp = "on" if _core._have_openmp() else "off"
    lines = [f"gdcore {gdcore.__version__}: OpenMP {openmp}, "
             f"threads {gdcore.get_num_threads()}"]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines.append("BLAS: threadpoolctl not installed")
    else:
        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                lines.append(f"BLAS: {pool.get('internal_api')} {pool.get('version')} "
                             f"({pool.get('threading_layer')}, "
                             f"{pool.get('num_threads')} threads)")
    return lines
