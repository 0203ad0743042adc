"""Reader for the NIST StRD nonlinear-regression files and their 27 models.

Each ``.dat`` file in ``tests/data/nist`` holds the data, two starting vectors and
the certified estimates of one problem. :func:`load` parses a file by the line
ranges its own "File Format" block declares; :data:`MODELS` maps every problem
name to its model function and the exact (analytic) Jacobian of that function
with respect to the parameters ``b``.

Residuals are ``f(b, x) - y``; for Nelson the response is ``log(y)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data" / "nist"

# NIST's order: lower, average, then higher level of difficulty.
NAMES = (
    "Misra1a", "Chwirut2", "Chwirut1", "Lanczos3", "Gauss1", "Gauss2", "DanWood",
    "Misra1b", "Kirby2", "Hahn1", "Nelson", "MGH17", "Lanczos1", "Lanczos2",
    "Gauss3", "Misra1c", "Misra1d", "Roszman1", "ENSO", "MGH09", "Thurber",
    "BoxBOD", "Rat42", "MGH10", "Eckerle4", "Rat43", "Bennett5",
)  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """One NIST StRD problem, with its data and certified results."""

    name: str
    level: str
    x: np.ndarray
    y: np.ndarray
    starts: tuple[np.ndarray, np.ndarray]
    certified: np.ndarray
    certified_stderr: np.ndarray
    rss: float
    residual_sd: float
    dof: int

    def residuals(self, b: np.ndarray) -> np.ndarray:
        """Model minus response at parameters ``b``."""
        model, _ = MODELS[self.name]
        return model(b, self.x) - self.y

    def jacobian(self, b: np.ndarray) -> np.ndarray:
        """Exact Jacobian of :meth:`residuals`, shape (n_observations, p)."""
        _, jac = MODELS[self.name]
        return jac(b, self.x)


def _floats(line: str) -> list[float]:
    return [float(tok) for tok in line.replace("=", " ").split()[1:]]


def _last_number(lines: list[str], label: str) -> str:
    for line in lines:
        if line.startswith(label):
            return line.split()[-1]
    raise ValueError(f"no line starting with {label!r}")


def load(name: str) -> Problem:
    """Parse ``tests/data/nist/<name>.dat``."""
    text = (DATA_DIR / f"{name}.dat").read_bytes().decode("ascii")
    lines = text.splitlines()

    # The header declares "(lines 41 to 40+p)" and "(lines 61 to 60+n)".
    ranges = {}
    for line in lines[:8]:
        match = re.search(r"(\w+ Values|Data)\s+\(lines\s+(\d+)\s+to\s+(\d+)\)", line)
        if match:
            ranges[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    first, last = ranges["Starting Values"]
    table = np.array([_floats(ln) for ln in lines[first - 1 : last]])
    first, last = ranges["Data"]
    data = np.array([[float(t) for t in ln.split()] for ln in lines[first - 1 : last]])

    level = lines[27].split()[0].lower()
    y, x = data[:, 0], data[:, 1:]
    if x.shape[1] == 1:
        x = x[:, 0]
    if name == "Nelson":
        y = np.log(y)
    return Problem(
        name=name,
        level=level,
        x=x,
        y=y,
        starts=(table[:, 0].copy(), table[:, 1].copy()),
        certified=table[:, 2].copy(),
        certified_stderr=table[:, 3].copy(),
        rss=float(_last_number(lines, "Residual Sum of Squares:")),
        residual_sd=float(_last_number(lines, "Residual Standard Deviation:")),
        # Rat43 prints 9 although n - p = 11; the printed value is kept.
        dof=int(_last_number(lines, "Degrees of Freedom:")),
    )


def lre(estimate: np.ndarray, certified: np.ndarray) -> float:
    """Log relative error: correct digits of the worst parameter, in [0, 11]."""
    rel = np.abs(np.asarray(estimate) - certified) / np.abs(certified)
    with np.errstate(divide="ignore"):
        digits = -np.log10(rel)
    if not np.all(np.isfinite(estimate)):
        return 0.0
    return float(np.clip(np.min(digits), 0.0, 11.0))


# ---------------------------------------------------------------- the models


def _exp1(b, x):
    e = np.exp(-b[1] * x)
    return b[0] * (1 - e), np.column_stack([1 - e, b[0] * x * e])


def _chwirut(b, x):
    e, d = np.exp(-b[0] * x), b[1] + b[2] * x
    return e / d, np.column_stack([-x * e / d, -e / d**2, -x * e / d**2])


def _lanczos(b, x):
    cols, f = [], 0.0
    for k in range(0, 6, 2):
        e = np.exp(-b[k + 1] * x)
        f = f + b[k] * e
        cols += [e, -b[k] * x * e]
    return f, np.column_stack(cols)


def _gauss(b, x):
    e0 = np.exp(-b[1] * x)
    f, cols = b[0] * e0, [e0, -b[0] * x * e0]
    for k in (2, 5):
        amp, mid, wid = b[k], b[k + 1], b[k + 2]
        g = np.exp(-((x - mid) ** 2) / wid**2)
        f = f + amp * g
        dmid = amp * g * 2 * (x - mid) / wid**2
        cols += [g, dmid, dmid * (x - mid) / wid]
    return f, np.column_stack(cols)


def _danwood(b, x):
    p = x ** b[1]
    return b[0] * p, np.column_stack([p, b[0] * p * np.log(x)])


def _misra1b(b, x):
    u = 1 + b[1] * x / 2
    return b[0] * (1 - u**-2), np.column_stack([1 - u**-2, b[0] * x * u**-3])


def _rational(n_num):
    def model(b, x):
        n_den = len(b) - n_num
        powers = np.column_stack([x**k for k in range(max(n_num, n_den + 1))])
        num = powers[:, :n_num] @ b[:n_num]
        den = 1 + powers[:, 1 : n_den + 1] @ b[n_num:]
        f = num / den
        d_num = powers[:, :n_num] / den[:, None]
        d_den = -powers[:, 1 : n_den + 1] * (f / den)[:, None]
        return f, np.column_stack([d_num, d_den])

    return model


def _nelson(b, x):
    x1, x2 = x[:, 0], x[:, 1]
    e = np.exp(-b[2] * x2)
    f = b[0] - b[1] * x1 * e
    return f, np.column_stack([np.ones_like(x1), -x1 * e, b[1] * x1 * x2 * e])


def _mgh17(b, x):
    e4, e5 = np.exp(-x * b[3]), np.exp(-x * b[4])
    f = b[0] + b[1] * e4 + b[2] * e5
    jac = [np.ones_like(x), e4, e5, -b[1] * x * e4, -b[2] * x * e5]
    return f, np.column_stack(jac)


def _misra1c(b, x):
    u = 1 + 2 * b[1] * x
    return b[0] * (1 - u**-0.5), np.column_stack([1 - u**-0.5, b[0] * x * u**-1.5])


def _misra1d(b, x):
    u = 1 + b[1] * x
    return b[0] * b[1] * x / u, np.column_stack([b[1] * x / u, b[0] * x / u**2])


def _roszman1(b, x):
    d = x - b[3]
    u = b[2] / d
    f = b[0] - b[1] * x - np.arctan(u) / math.pi
    da = 1 / (math.pi * (1 + u**2))
    return f, np.column_stack([np.ones_like(x), -x, -da / d, -da * b[2] / d**2])


def _enso(b, x):
    a = 2 * math.pi * x
    f = b[0] + b[1] * np.cos(a / 12) + b[2] * np.sin(a / 12)
    cols = [np.ones_like(x), np.cos(a / 12), np.sin(a / 12)]
    for k in (3, 6):
        c, s = np.cos(a / b[k]), np.sin(a / b[k])
        f = f + b[k + 1] * c + b[k + 2] * s
        cols += [(b[k + 1] * s - b[k + 2] * c) * a / b[k] ** 2, c, s]
    return f, np.column_stack(cols)


def _mgh09(b, x):
    num, den = x**2 + x * b[1], x**2 + x * b[2] + b[3]
    f = b[0] * num / den
    return f, np.column_stack([num / den, b[0] * x / den, -f * x / den, -f / den])


def _rat42(b, x):
    e = np.exp(b[1] - b[2] * x)
    q = b[0] * e / (1 + e) ** 2
    return b[0] / (1 + e), np.column_stack([1 / (1 + e), -q, q * x])


def _mgh10(b, x):
    d = x + b[2]
    e = np.exp(b[1] / d)
    return b[0] * e, np.column_stack([e, b[0] * e / d, -b[0] * e * b[1] / d**2])


def _eckerle4(b, x):
    z = (x - b[2]) / b[1]
    e = np.exp(-0.5 * z**2)
    f = b[0] / b[1] * e
    return f, np.column_stack([e / b[1], f * (z**2 - 1) / b[1], f * z / b[1]])


def _rat43(b, x):
    e = np.exp(b[1] - b[2] * x)
    u = 1 + e
    f = b[0] * u ** (-1 / b[3])
    g = f * e / (u * b[3])
    return f, np.column_stack([f / b[0], -g, g * x, f * np.log(u) / b[3] ** 2])


def _bennett5(b, x):
    u = b[1] + x
    f = b[0] * u ** (-1 / b[2])
    jac = [f / b[0], -f / (b[2] * u), f * np.log(u) / b[2] ** 2]
    return f, np.column_stack(jac)


def _split(fn):
    return (lambda b, x: fn(b, x)[0]), (lambda b, x: fn(b, x)[1])


_FUNCTIONS = {
    "Misra1a": _exp1, "BoxBOD": _exp1, "Chwirut1": _chwirut, "Chwirut2": _chwirut,
    "Lanczos1": _lanczos, "Lanczos2": _lanczos, "Lanczos3": _lanczos,
    "Gauss1": _gauss, "Gauss2": _gauss, "Gauss3": _gauss, "DanWood": _danwood,
    "Misra1b": _misra1b, "Kirby2": _rational(3), "Hahn1": _rational(4),
    "Thurber": _rational(4), "Nelson": _nelson, "MGH17": _mgh17,
    "Misra1c": _misra1c, "Misra1d": _misra1d, "Roszman1": _roszman1,
    "ENSO": _enso, "MGH09": _mgh09, "Rat42": _rat42, "MGH10": _mgh10,
    "Eckerle4": _eckerle4, "Rat43": _rat43, "Bennett5": _bennett5,
}  # fmt: skip

#: name -> (model(b, x), jacobian(b, x))
MODELS = {name: _split(fn) for name, fn in _FUNCTIONS.items()}
