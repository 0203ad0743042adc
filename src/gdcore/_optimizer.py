"""Shared Python layer of gdcore's optimizers.

Both backends (:mod:`gdcore.reference` in NumPy and :mod:`gdcore.optim` in C) subclass
the classes defined here: validation, state allocation, hyperparameter attributes and
``state_dict``/``load_state_dict`` live in one place; a backend only supplies the step.

State layout: one flat buffer per state kind (``exp_avg``, ``exp_avg_sq``, ...) holding
all params in order, and per-param views of it with the param's shape. The compiled
kernels work on the flat buffers directly.
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from gdcore._validation import real_scalar, shown

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# gd_optim_kind values of src/gdcore_c/optim_kernels.h.
_KIND_SGD, _KIND_ADAM, _KIND_RMSPROP, _KIND_ADAGRAD = 0, 1, 2, 3


def _describe(value: object) -> str:
    """Short text naming an argument's type, dtype and shape for error messages."""
    if isinstance(value, np.ndarray):
        return f"ndarray(dtype={value.dtype}, shape={value.shape})"
    return type(value).__name__


def _check_real(
    name: str,
    value: object,
    *,
    low: float = 0.0,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Return `value` as float after checking low <= value (< high), finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {_describe(value)}")
    given = value
    value = real_scalar(value, name)
    ok = low < value if low_open else low <= value
    if high is not None:
        ok = ok and value < high
    if not (ok and math.isfinite(value)):
        lower = f"{low} < {name}" if low_open else f"{low} <= {name}"
        upper = f" < {high}" if high is not None else ""
        raise ValueError(
            f"Invalid `{name}`: need {lower}{upper}, finite; got {shown(given)}"
        )
    return value


def _check_bool(name: str, value: object) -> bool:
    """Return `value` as bool after checking it is a bool (or numpy bool)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be a bool, got {_describe(value)}")
    return bool(value)


def _check_betas(value: object) -> tuple[float, float]:
    """Return betas as a tuple of two floats in [0, 1)."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise TypeError(f"`betas` must be a pair of floats, got {value!r:.80}")
    beta1 = _check_real("betas[0]", value[0], high=1.0)
    beta2 = _check_real("betas[1]", value[1], high=1.0)
    return beta1, beta2


def _check_params(params: object) -> tuple[np.ndarray, ...]:
    """Validate the arrays an optimizer updates; return them as a tuple."""
    if isinstance(params, np.ndarray) or not isinstance(params, Sequence):
        raise TypeError(
            "`params` must be a list of numpy arrays, got " + _describe(params)
        )
    params = tuple(params)
    if not params:
        raise ValueError("`params` is an empty list")
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray):
            raise TypeError(
                f"`params[{i}]` must be a numpy.ndarray, got {_describe(p)}"
            )
        if p.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"`params[{i}]` must have dtype float32 or float64 (native "
                f"byte order), got {p.dtype}"
            )
        if p.dtype != params[0].dtype:
            raise TypeError(
                f"`params[{i}]` has dtype {p.dtype}, but `params[0]` has "
                f"{params[0].dtype}: use one dtype per optimizer"
            )
        if not (p.flags.c_contiguous and p.flags.aligned):
            raise ValueError(f"`params[{i}]` must be C-contiguous and aligned")
        if not p.flags.writeable:
            raise ValueError(f"`params[{i}]` is read-only; params are updated in place")
    _check_no_overlap(params)
    return params


def _check_no_overlap(params: tuple[np.ndarray, ...]) -> None:
    """Raise ValueError if two params share memory (the update would run twice)."""
    spans = sorted((p.ctypes.data, p.nbytes, i) for i, p in enumerate(params) if p.size)
    for (start, size, i), (next_start, _, j) in zip(spans, spans[1:], strict=False):
        if next_start < start + size:
            raise ValueError(f"`params[{i}]` and `params[{j}]` share memory")


class _Layout(NamedTuple):
    """What a step checks its params and grads against, recorded once."""

    addresses: tuple[int, ...]
    shapes: tuple[tuple[int, ...], ...]
    span_lo: tuple[int, ...]  # sorted, merged byte ranges [lo, hi) of params and state
    span_hi: tuple[int, ...]


def _layout(
    params: tuple[np.ndarray, ...], state: Sequence[np.ndarray] = ()
) -> _Layout:
    """Record the addresses and shapes of checked params, and the byte ranges that
    grads must not overlap: the params' and those of the `state` arrays."""
    spans = sorted(
        (a.ctypes.data, a.ctypes.data + a.nbytes)
        for a in (*params, *state)
        if a.nbytes
    )
    merged: list[list[int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return _Layout(
        tuple(p.ctypes.data for p in params),
        tuple(p.shape for p in params),
        tuple(lo for lo, _ in merged),
        tuple(hi for _, hi in merged),
    )


def _overlaps_params(layout: _Layout, g: np.ndarray) -> bool:
    """Whether the memory of the contiguous array `g` overlaps a param or the state."""
    lo = g.ctypes.data
    k = bisect.bisect_right(layout.span_hi, lo)  # first range ending beyond lo
    hi = lo + g.nbytes
    return hi > lo and k < len(layout.span_lo) and layout.span_lo[k] < hi


def _check_grads(
    params: tuple[np.ndarray, ...], layout: _Layout, grads: object
) -> None:
    """Validate one step's grads (and that params are still usable) before any write."""
    if not isinstance(grads, list | tuple):
        raise TypeError(
            f"`grads` must be a list of numpy arrays, got {_describe(grads)}"
        )
    if len(grads) != len(params):
        raise ValueError(
            f"`grads` has {len(grads)} arrays, expected {len(params)} (one per param)"
        )
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        shape = layout.shapes[i]
        if p.shape != shape:
            raise ValueError(
                f"`params[{i}]` was reshaped to {p.shape} since the optimizer was "
                f"created with shape {shape}"
            )
        if not isinstance(g, np.ndarray):
            raise TypeError(f"`grads[{i}]` must be a numpy.ndarray, got {_describe(g)}")
        if g.dtype != p.dtype:
            raise TypeError(
                f"`grads[{i}]` must have dtype {p.dtype} (native byte "
                f"order) like the params, got {g.dtype}"
            )
        if g.shape != shape:
            raise ValueError(
                f"`grads[{i}]` has shape {g.shape}, expected {shape} "
                f"(the shape of `params[{i}]`)"
            )
        if not (g.flags.c_contiguous and g.flags.aligned):
            raise ValueError(f"`grads[{i}]` must be C-contiguous and aligned")
        if not p.flags.writeable:
            raise ValueError(f"`params[{i}]` has become read-only")
        if p.ctypes.data != layout.addresses[i]:
            raise ValueError(
                f"`params[{i}]` was reallocated since the optimizer was created"
            )
        if _overlaps_params(layout, g):
            raise ValueError(
                f"`grads[{i}]` shares memory with the params or the optimizer state; "
                "pass a copy (a step writes them while it reads the grads)"
            )


def _check_disjoint(named: Sequence[tuple[str, np.ndarray]]) -> None:
    """Check that no two of the arrays a step writes share memory."""
    spans = sorted(
        (a.ctypes.data, a.ctypes.data + a.nbytes, name) for name, a in named if a.nbytes
    )
    reach, reach_name = 0, ""
    for lo, hi, name in spans:
        if lo < reach:
            raise ValueError(f"`{name}` shares memory with `{reach_name}`")
        if hi > reach:
            reach, reach_name = hi, name


def _check_state_list(
    name: str, params: tuple[np.ndarray, ...], arrays: object
) -> list[np.ndarray]:
    """Validate a functional step's state list: one writeable array per param."""
    if not isinstance(arrays, list | tuple) or len(arrays) != len(params):
        raise ValueError(
            f"`{name}` must be a list of {len(params)} arrays (one per "
            f"param), got {_describe(arrays)}"
        )
    for i, (p, s) in enumerate(zip(params, arrays, strict=True)):
        if not isinstance(s, np.ndarray) or s.dtype != p.dtype:
            raise TypeError(
                f"`{name}[{i}]` must be a {p.dtype} array, got {_describe(s)}"
            )
        if s.shape != p.shape:
            raise ValueError(f"`{name}[{i}]` has shape {s.shape}, expected {p.shape}")
        if not (s.flags.c_contiguous and s.flags.aligned and s.flags.writeable):
            raise ValueError(f"`{name}[{i}]` must be C-contiguous and writeable")
    return list(arrays)


# Largest step count (a C long long holds it and the next). The bias corrections use
# it as a double, which is exact to 2**53; beta**t is 0 long before either matters.
MAX_STEP = 2**62


def _check_step_value(value: object) -> int:
    """Return a saved step count as int (torch stores it as a float)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not 0 <= value <= MAX_STEP
    ):
        raise ValueError(
            f"`step` must be an integer from 0 to 2**62, got {shown(value)}"
        )
    return int(value)


# Fields of the C struct gd_hyper that a kind does not set.
C_HYPER_DEFAULTS = dict(
    kind=0,
    lr=0.0,
    weight_decay=0.0,
    momentum=0.0,
    dampening=0.0,
    nesterov=0,
    beta1=0.0,
    beta2=0.0,
    eps=0.0,
    amsgrad=0,
    decoupled=0,
    alpha=0.0,
    centered=0,
    lr_decay=0.0,
    step=0,
)


# Limitation: one parameter group per optimizer (torch allows several with their own
# hyperparameters); the flat state and the single kernel call per step rely on one set
# of hyperparameters. Use one optimizer per group instead.
class _Optimizer:
    """Base of all optimizers: validation, flat state, hyperparameters, state_dict.

    Subclasses define `_validate_hyper` (kwargs -> normalized dict), `_state_slots`
    (the three state names the C kernel sees as s0, s1, s2), `_active_state`,
    `_initial_value` and `_c_fields`. Backends define `_setup` and `step`.
    """

    _state_slots: tuple[str | None, str | None, str | None] = (None, None, None)

    def __init__(self, params: Sequence[np.ndarray], **hyper: object) -> None:
        self._hyper = self._validate_hyper(**hyper)
        self._params = _check_params(params)
        self._dtype = self._params[0].dtype
        self._sizes = tuple(p.size for p in self._params)
        self._step_count = 0
        self._nonfinite = False
        self._allocate_state()
        self._setup()

    # Copies and pickles: the state buffers travel, what points into them is rebuilt.
    # copy.copy keeps the params (an optimizer is about them) but not the state.
    _REBUILT = ("_views", "_layout", "_fused")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._REBUILT}

    def __copy__(self) -> _Optimizer:
        """A new optimizer over the same params, with a copy of this one's state."""
        twin = object.__new__(type(self))
        state = self.__getstate__()
        state["_flat"] = {name: flat.copy() for name, flat in self._flat.items()}
        twin.__setstate__(state)
        return twin

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        attrs = self.__dict__
        attrs["_hyper"] = dict(self._hyper)  # a copy's lr is its own
        self._index_state()
        self._setup()

    def __setattr__(self, name: str, value: object) -> None:
        # On gdcore's own classes only `lr` (a property) may change after construction:
        # this catches a hyperparameter set on the wrong optimizer (`momentum` on an
        # Adam) or misspelt, which would otherwise do nothing. A user's subclass may add
        # attributes of its own; its read-only hyperparameter properties still refuse.
        if (
            not name.startswith("_")
            and type(self).__module__.startswith("gdcore.")
            and not isinstance(getattr(type(self), name, None), property)
        ):
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r} to set; "
                "only `lr` can be changed after construction"
            )
        object.__setattr__(self, name, value)

    # Hooks that the optimizer classes and backends override.
    def _validate_hyper(self, **hyper: object) -> dict:
        """Normalized hyperparameters, or raise."""
        raise NotImplementedError

    def _active_state(self) -> tuple[str, ...]:
        """Names of the state buffers the current options use."""
        raise NotImplementedError

    def _initial_value(self) -> float:
        """Value the state buffers start from."""
        return 0.0

    @classmethod
    def _c_fields(cls, h: dict) -> dict:
        """gd_hyper fields of the kind from validated hyperparameters `h`."""
        raise NotImplementedError

    def _setup(self) -> None:
        """Backend hook, called after the state is (re)allocated."""

    def _hyper_changed(self) -> None:
        """Backend hook, called after a hyperparameter changed."""

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Update every param in place from its gradient."""
        raise NotImplementedError

    # State.
    def _allocate_state(self) -> None:
        total = sum(self._sizes)
        names = self._active_state()
        self._flat = {
            name: np.full(total, self._initial_value(), dtype=self._dtype)
            for name in names
        }
        self._index_state()

    def _index_state(self) -> None:
        """Per-param views of the flat state, and the layout that steps check."""
        self._views = [{} for _ in self._params]
        offset = 0
        for i, p in enumerate(self._params):
            for name, flat in self._flat.items():
                self._views[i][name] = flat[offset : offset + p.size].reshape(p.shape)
            offset += p.size
        self._layout = _layout(self._params, tuple(self._flat.values()))

    def _flat_state(self) -> tuple[np.ndarray | None, ...]:
        """The flat state buffers (s0, s1, s2) of the C kernel, None where unused."""
        return tuple(
            self._flat.get(name) if name else None for name in self._state_slots
        )

    def _c_hyper(self) -> dict:
        """This optimizer as the fields of the C struct gd_hyper."""
        return dict(
            C_HYPER_DEFAULTS, step=self._step_count, **self._c_fields(self._hyper)
        )

    def _advance(self, k: int) -> None:
        """Record k steps performed on the flat state by C code."""
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
            raise ValueError(f"`k` must be a non-negative integer, got {k!r:.40}")
        self._step_count += int(k)

    # Hyperparameters.
    @property
    def lr(self) -> float:
        """Learning rate (settable; must be finite and >= 0).

        A step uses the value last set. For a schedule, set it between steps (e.g.
        from a ``fit`` callback); overriding this property in a subclass does not
        change what the steps use.
        """
        return self._hyper["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self._hyper["lr"] = _check_real("lr", value)
        self._hyper_changed()

    @property
    def step_count(self) -> int:
        """Number of steps taken."""
        return self._step_count

    @property
    def params(self) -> list[np.ndarray]:
        """The arrays updated in place."""
        return list(self._params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        return f"{type(self).__name__}({args})"

    # Save and restore.
    def state_dict(self) -> dict:
        """Return the optimizer state as a torch-like dict of copies.

        ``{"state": {i: {"step": int, name: ndarray, ...}}, "param_groups":
        [{hyperparameters..., "params": [0, 1, ...]}]}``.
        """
        state = {}
        for i, views in enumerate(self._views):
            entry = {"step": self._step_count}
            entry.update((name, view.copy()) for name, view in views.items())
            state[i] = entry
        group = dict(self._hyper)
        group["params"] = list(range(len(self._params)))
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state saved by `state_dict`; everything is checked before writing.

        Raises
        ------
        TypeError, ValueError
            If the dict does not match this optimizer's params (count, shapes, dtype),
            has missing or unknown keys, or holds invalid hyperparameters.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {
            "state",
            "param_groups",
        }:
            raise ValueError(
                "`state_dict` must be a dict with keys 'state' and 'param_groups'"
            )
        hyper = self._load_group(state_dict["param_groups"])
        old_hyper, self._hyper = self._hyper, hyper
        try:
            names = self._active_state()
            step, arrays = self._load_state(state_dict["state"], names)
        except BaseException:
            self._hyper = old_hyper
            raise
        if set(names) != set(self._flat):
            self._allocate_state()
        for flat in self._flat.values():
            flat.fill(self._initial_value())
        for i, entry in arrays.items():
            for name, array in entry.items():
                self._views[i][name][...] = array
        self._step_count = step
        self._nonfinite = False
        self._setup()

    def _load_group(self, groups: object) -> dict:
        """Validated hyperparameters of a saved param_groups list."""
        if (
            not isinstance(groups, list)
            or len(groups) != 1
            or not isinstance(groups[0], dict)
        ):
            raise ValueError("`param_groups` must be a list holding one dict")
        group = dict(groups[0])
        indices = group.pop("params", None)
        if indices != list(range(len(self._params))):
            raise ValueError(
                f"`param_groups[0]['params']` must be "
                f"{list(range(len(self._params)))}, got {indices!r:.80}"
            )
        if set(group) != set(self._hyper):
            raise ValueError(
                f"`param_groups[0]` has keys {sorted(group)}, expected "
                f"{sorted(self._hyper)}"
            )
        return self._validate_hyper(**group)

    def _load_state(self, state: object, names: tuple[str, ...]) -> tuple[int, dict]:
        """Validated (step, {param index: {name: array}}) of a saved state dict."""
        if not isinstance(state, dict):
            raise ValueError(f"`state` must be a dict, got {_describe(state)}")
        if not state:
            return 0, {}
        if set(state) != set(range(len(self._params))):
            raise ValueError(
                f"`state` has keys {sorted(state, key=str)!r:.80}, "
                f"expected 0..{len(self._params) - 1}"
            )
        steps, arrays = set(), {}
        for i, p in enumerate(self._params):
            entry = state[i]
            if not isinstance(entry, dict) or set(entry) != {"step", *names}:
                keys = sorted(entry) if isinstance(entry, dict) else entry
                raise ValueError(
                    f"`state[{i}]` has keys {keys!r:.80}, expected "
                    f"{sorted(['step', *names])}"
                )
            steps.add(_check_step_value(entry["step"]))
            for name in names:
                array = entry[name]
                if not isinstance(array, np.ndarray) or array.dtype != self._dtype:
                    raise TypeError(
                        f"`state[{i}][{name!r}]` must be a {self._dtype} "
                        f"array, got {_describe(array)}"
                    )
                if array.shape != p.shape:
                    raise ValueError(
                        f"`state[{i}][{name!r}]` has shape {array.shape}, "
                        f"expected {p.shape}"
                    )
            arrays[i] = {name: entry[name] for name in names}
        if len(steps) != 1:
            raise ValueError(
                f"`state` holds different steps {sorted(steps)}; gdcore "
                "keeps one step count for all params"
            )
        return steps.pop(), arrays


def _hyper_property(name: str, doc: str) -> property:
    """Read-only attribute exposing one hyperparameter."""
    return property(lambda self: self._hyper[name], doc=doc)


class _SGDBase(_Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    .. math::

        d_t = g_t + \lambda p_{t-1}, \quad
        b_t = \mu b_{t-1} + (1 - \tau) d_t \ (b_1 = d_1), \quad
        p_t = p_{t-1} - \gamma\,(d_t + \mu b_t \text{ if Nesterov else } b_t)

    Parameters
    ----------
    params : list of numpy.ndarray
        C-contiguous, writeable float32 or float64 arrays (one dtype), updated in place.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`, finite and >= 0.
    momentum : float, default 0
        Momentum factor :math:`\mu` >= 0.
    dampening : float, default 0
        Dampening :math:`\tau` of the momentum (finite).
    weight_decay : float, default 0
        L2 penalty :math:`\lambda` >= 0.
    nesterov : bool, default False
        Nesterov momentum; requires ``momentum > 0`` and ``dampening == 0``.

    Raises
    ------
    TypeError
        If `params` or a hyperparameter has the wrong type or dtype.
    ValueError
        If a hyperparameter is out of range, or `params` is empty, non-contiguous,
        read-only or overlapping.

    .. note::
       Differences from torch.optim: one parameter group; one step count shared by
       all params; state buffers exist from construction (``state_dict`` lists them
       before the first step); only ``lr`` can be changed after construction; ``eps``
       must be > 0; no ``maximize``, ``foreach``, ``fused`` or ``capturable`` flags.

    References
    ----------
    Sutskever et al., "On the importance of initialization and momentum in deep
    learning", ICML 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from gdcore.reference import SGD
    >>> w = np.array([1.0, 2.0])
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> opt.step([np.array([1.0, -1.0])])
    >>> w
    array([0.9, 2.1])
    """

    _state_slots = ("momentum_buffer", None, None)

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )

    def _validate_hyper(self, *, lr, momentum, dampening, weight_decay, nesterov):
        hyper = dict(
            lr=_check_real("lr", lr),
            momentum=_check_real("momentum", momentum),
            dampening=_check_real("dampening", dampening, low=-math.inf),
            weight_decay=_check_real("weight_decay", weight_decay),
            nesterov=_check_bool("nesterov", nesterov),
        )
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError(
                "`nesterov` requires `momentum` > 0 and `dampening` = 0, "
                f"got momentum={momentum}, dampening={dampening}"
            )
        return hyper

    def _active_state(self):
        return ("momentum_buffer",) if self._hyper["momentum"] != 0 else ()

    @classmethod
    def _c_fields(cls, h):
        return dict(
            kind=_KIND_SGD,
            lr=h["lr"],
            momentum=h["momentum"],
            dampening=h["dampening"],
            weight_decay=h["weight_decay"],
            nesterov=int(h["nesterov"]),
        )

    momentum = _hyper_property("momentum", "Momentum factor.")
    dampening = _hyper_property("dampening", "Dampening of the momentum.")
    weight_decay = _hyper_property("weight_decay", "L2 penalty added to the gradient.")
    nesterov = _hyper_property("nesterov", "Whether Nesterov momentum is used.")


class _AdamBase(_Optimizer):
    r"""Adam: adaptive moment estimation, optionally AMSGrad.

    .. math::

        d_t = g_t + \lambda p_{t-1}, \quad
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) d_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) d_t^2,

        p_t = p_{t-1} - \frac{\gamma}{1 - \beta_1^t}\,
        \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    with :math:`\hat v_t = v_t`, or :math:`\max(\hat v_{t-1}, v_t)` with AMSGrad.

    Parameters
    ----------
    params : list of numpy.ndarray
        C-contiguous, writeable float32 or float64 arrays (one dtype), updated in place.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`, finite and >= 0.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates :math:`(\beta_1, \beta_2)`, each in [0, 1).
    eps : float, default 1e-8
        Term :math:`\epsilon` > 0 added to the denominator.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda` >= 0 added to the gradient.
    amsgrad : bool, default False
        Use the maximum of past second moments (``max_exp_avg_sq``).

    Raises
    ------
    TypeError
        If `params` or a hyperparameter has the wrong type or dtype.
    ValueError
        If a hyperparameter is out of range, or `params` is empty, non-contiguous,
        read-only or overlapping.

    .. note::
       Differences from torch.optim: one parameter group; one step count shared by
       all params; state buffers exist from construction (``state_dict`` lists them
       before the first step); only ``lr`` can be changed after construction; ``eps``
       must be > 0; no ``maximize``, ``foreach``, ``fused`` or ``capturable`` flags,
       and no ``decoupled_weight_decay`` flag: use :class:`AdamW` for that.

    References
    ----------
    Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    Reddi et al., "On the Convergence of Adam and Beyond", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from gdcore.reference import Adam
    >>> w = np.array([1.0])
    >>> Adam([w], lr=0.1).step([np.array([0.5])])
    >>> w.round(6)
    array([0.9])
    """

    _state_slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
        )

    def _validate_hyper(self, *, lr, betas, eps, weight_decay, amsgrad):
        return dict(
            lr=_check_real("lr", lr),
            betas=_check_betas(betas),
            eps=_check_real("eps", eps, low_open=True),
            weight_decay=_check_real("weight_decay", weight_decay),
            amsgrad=_check_bool("amsgrad", amsgrad),
        )

    def _active_state(self):
        extra = ("max_exp_avg_sq",) if self._hyper["amsgrad"] else ()
        return ("exp_avg", "exp_avg_sq", *extra)

    @classmethod
    def _c_fields(cls, h):
        return dict(
            kind=_KIND_ADAM,
            lr=h["lr"],
            beta1=h["betas"][0],
            beta2=h["betas"][1],
            eps=h["eps"],
            weight_decay=h["weight_decay"],
            amsgrad=int(h["amsgrad"]),
            decoupled=int(cls._decoupled),
        )

    betas = _hyper_property("betas", "Decay rates of the moment estimates.")
    eps = _hyper_property("eps", "Term added to the denominator.")
    weight_decay = _hyper_property("weight_decay", "Weight decay coefficient.")
    amsgrad = _hyper_property("amsgrad", "Whether the AMSGrad variant is used.")


class _AdamWBase(_AdamBase):
    r"""AdamW: Adam with decoupled weight decay.

    Before the Adam update (see `Adam`, without the L2 term),
    :math:`p_{t-1} \leftarrow p_{t-1}\,(1 - \gamma \lambda)`.

    Parameters
    ----------
    params : list of numpy.ndarray
        C-contiguous, writeable float32 or float64 arrays (one dtype), updated in place.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`, finite and >= 0.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates, each in [0, 1).
    eps : float, default 1e-8
        Term > 0 added to the denominator.
    weight_decay : float, default 1e-2
        Decoupled decay coefficient :math:`\lambda` >= 0.
    amsgrad : bool, default False
        Use the maximum of past second moments.

    Raises
    ------
    TypeError
        If `params` or a hyperparameter has the wrong type or dtype.
    ValueError
        If a hyperparameter is out of range, or `params` is empty, non-contiguous,
        read-only or overlapping.

    .. note::
       Differences from torch.optim: one parameter group; one step count shared by
       all params; state buffers exist from construction (``state_dict`` lists them
       before the first step); only ``lr`` can be changed after construction; ``eps``
       must be > 0; no ``maximize``, ``foreach``, ``fused`` or ``capturable`` flags.

    References
    ----------
    Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from gdcore.reference import AdamW
    >>> w = np.array([1.0])
    >>> AdamW([w], lr=0.1, weight_decay=0.1).step([np.array([0.5])])
    >>> w.round(6)
    array([0.89])
    """

    _decoupled = True

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
        )


class _RMSpropBase(_Optimizer):
    r"""RMSprop, optionally centered and with momentum.

    .. math::

        d_t = g_t + \lambda p_{t-1}, \quad
        s_t = \alpha s_{t-1} + (1 - \alpha) d_t^2, \quad
        a_t = \sqrt{s_t - \bar g_t^2} + \epsilon,

        b_t = \mu b_{t-1} + d_t / a_t, \quad p_t = p_{t-1} - \gamma b_t
        \quad (\mu = 0: \ p_t = p_{t-1} - \gamma d_t / a_t)

    with :math:`\bar g_t = \alpha \bar g_{t-1} + (1 - \alpha) d_t` when centered, else
    :math:`\bar g_t = 0`.

    Parameters
    ----------
    params : list of numpy.ndarray
        C-contiguous, writeable float32 or float64 arrays (one dtype), updated in place.
    lr : float, default 1e-2
        Learning rate :math:`\gamma`, finite and >= 0.
    alpha : float, default 0.99
        Smoothing constant :math:`\alpha` >= 0.
    eps : float, default 1e-8
        Term :math:`\epsilon` > 0 added to the denominator.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda` >= 0.
    momentum : float, default 0
        Momentum factor :math:`\mu` >= 0.
    centered : bool, default False
        Normalize by an estimate of the gradient's variance.

    Raises
    ------
    TypeError
        If `params` or a hyperparameter has the wrong type or dtype.
    ValueError
        If a hyperparameter is out of range, or `params` is empty, non-contiguous,
        read-only or overlapping.

    .. note::
       Differences from torch.optim: one parameter group; one step count shared by
       all params; state buffers exist from construction (``state_dict`` lists them
       before the first step); only ``lr`` can be changed after construction; ``eps``
       must be > 0; no ``maximize``, ``foreach``, ``fused`` or ``capturable`` flags.

    References
    ----------
    Hinton, "Neural Networks for Machine Learning", lecture 6e, 2012.
    Graves, "Generating Sequences With Recurrent Neural Networks", 2013 (centered).

    Examples
    --------
    >>> import numpy as np
    >>> from gdcore.reference import RMSprop
    >>> w = np.array([1.0])
    >>> RMSprop([w], lr=0.01).step([np.array([0.5])])
    >>> w.round(6)
    array([0.9])
    """

    _state_slots = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )

    def _validate_hyper(self, *, lr, alpha, eps, weight_decay, momentum, centered):
        return dict(
            lr=_check_real("lr", lr),
            alpha=_check_real("alpha", alpha),
            eps=_check_real("eps", eps, low_open=True),
            weight_decay=_check_real("weight_decay", weight_decay),
            momentum=_check_real("momentum", momentum),
            centered=_check_bool("centered", centered),
        )

    def _active_state(self):
        h = self._hyper
        return (
            "square_avg",
            *(("momentum_buffer",) if h["momentum"] > 0 else ()),
            *(("grad_avg",) if h["centered"] else ()),
        )

    @classmethod
    def _c_fields(cls, h):
        return dict(
            kind=_KIND_RMSPROP,
            lr=h["lr"],
            alpha=h["alpha"],
            eps=h["eps"],
            weight_decay=h["weight_decay"],
            momentum=h["momentum"],
            centered=int(h["centered"]),
        )

    alpha = _hyper_property("alpha", "Smoothing constant of the squared average.")
    eps = _hyper_property("eps", "Term added to the denominator.")
    weight_decay = _hyper_property("weight_decay", "L2 penalty added to the gradient.")
    momentum = _hyper_property("momentum", "Momentum factor.")
    centered = _hyper_property("centered", "Whether the gradient variance is used.")


class _AdagradBase(_Optimizer):
    r"""Adagrad with learning-rate decay.

    .. math::

        d_t = g_t + \lambda p_{t-1}, \quad
        s_t = s_{t-1} + d_t^2 \ (s_0 = \text{initial\_accumulator\_value}), \quad
        p_t = p_{t-1} - \frac{\gamma}{1 + (t - 1)\eta}\,
        \frac{d_t}{\sqrt{s_t} + \epsilon}

    Parameters
    ----------
    params : list of numpy.ndarray
        C-contiguous, writeable float32 or float64 arrays (one dtype), updated in place.
    lr : float, default 1e-2
        Learning rate :math:`\gamma`, finite and >= 0.
    lr_decay : float, default 0
        Learning-rate decay :math:`\eta` >= 0.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda` >= 0.
    initial_accumulator_value : float, default 0
        Starting value >= 0 of the sum of squared gradients.
    eps : float, default 1e-10
        Term :math:`\epsilon` > 0 added to the denominator.

    Raises
    ------
    TypeError
        If `params` or a hyperparameter has the wrong type or dtype.
    ValueError
        If a hyperparameter is out of range, or `params` is empty, non-contiguous,
        read-only or overlapping.

    .. note::
       Differences from torch.optim: one parameter group; one step count shared by
       all params; state buffers exist from construction (``state_dict`` lists them
       before the first step); only ``lr`` can be changed after construction; ``eps``
       must be > 0; no ``maximize``, ``foreach``, ``fused`` or ``capturable`` flags.

    References
    ----------
    Duchi, Hazan and Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from gdcore.reference import Adagrad
    >>> w = np.array([1.0])
    >>> Adagrad([w], lr=0.1).step([np.array([0.5])])
    >>> w.round(6)
    array([0.9])
    """

    _state_slots = ("sum", None, None)

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )

    def _validate_hyper(
        self, *, lr, lr_decay, weight_decay, initial_accumulator_value, eps
    ):
        return dict(
            lr=_check_real("lr", lr),
            lr_decay=_check_real("lr_decay", lr_decay),
            weight_decay=_check_real("weight_decay", weight_decay),
            initial_accumulator_value=_check_real(
                "initial_accumulator_value", initial_accumulator_value
            ),
            eps=_check_real("eps", eps, low_open=True),
        )

    def _active_state(self):
        return ("sum",)

    def _initial_value(self):
        return self._hyper["initial_accumulator_value"]

    @classmethod
    def _c_fields(cls, h):
        return dict(
            kind=_KIND_ADAGRAD,
            lr=h["lr"],
            lr_decay=h["lr_decay"],
            weight_decay=h["weight_decay"],
            eps=h["eps"],
        )

    lr_decay = _hyper_property("lr_decay", "Learning-rate decay per step.")
    weight_decay = _hyper_property("weight_decay", "L2 penalty added to the gradient.")
    initial_accumulator_value = _hyper_property(
        "initial_accumulator_value", "Starting value of the squared-gradient sum."
    )
    eps = _hyper_property("eps", "Term added to the denominator.")
