r"""Compiled optimizers: one fused C kernel call per step.

The classes have torch.optim's names, signatures and defaults, and behave like their
NumPy twins in :mod:`gdcore.reference` (same IEEE operations in the same order).

Performance notes
-----------------
Each ``step`` validates the grads (type, dtype, shape, contiguity, no memory shared
with the params, params still writeable and in place) and then makes one compiled call
that runs without the GIL and updates every param and its state in one pass over
memory:

* **Fast path**: when the params are consecutive pieces of one contiguous buffer (as
  an MLP's ``params`` are views into ``flat_params``) and the grads are likewise
  consecutive (``flat_grads``), the kernel sees a single flat segment.
* Otherwise every param is its own segment; the segments are walked inside one OpenMP
  region, which adds a small cost per array.

Steps on fewer than ``gd_optim_parallel_threshold()`` elements run on the calling
thread; larger ones use :func:`gdcore.get_num_threads` threads. Results are bitwise
identical for any thread count.

Functional steps
----------------
:func:`sgd`, :func:`adam`, :func:`adamw`, :func:`rmsprop` and :func:`adagrad` are for
callers that keep the state themselves. They take lists of arrays (params, grads, then
the state lists, one array per param of its dtype and shape, updated in place like the
params), ``step`` (the number of this step, from 1) and the hyperparameters of the class
of the same name as keywords, all required. They validate every argument before the
first write, raising TypeError or ValueError, and then make one kernel call.

Examples
--------
>>> import numpy as np
>>> from gdcore.optim import SGD
>>> w = np.array([1.0, 2.0])
>>> opt = SGD([w], lr=0.1)
>>> opt.step([np.array([1.0, -1.0])])
>>> w
array([0.9, 2.1])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gdcore import _core
from gdcore._optimizer import (
    C_HYPER_DEFAULTS,
    _AdagradBase,
    _AdamBase,
    _AdamWBase,
    _check_disjoint,
    _check_grads,
    _check_params,
    _check_state_list,
    _check_step_value,
    _layout,
    _RMSpropBase,
    _SGDBase,
)

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
]


class _Fused:
    """Step of the compiled backend: one `_core._FusedStep` call per step."""

    def _setup(self) -> None:
        layout = self._layout
        self._fused = _core._FusedStep(
            self._params,
            self._flat_state(),
            self._dtype == np.float64,
            layout.span_lo,
            layout.span_hi,
        )
        self._fused.set_hyper(self._c_hyper())

    def _hyper_changed(self) -> None:
        self._fused.set_hyper(self._c_hyper())

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Update every param in place from its gradient (list aligned with params)."""
        attrs = self.__dict__  # skips the guarding __setattr__: ~0.3 us per step
        flag = self._fused.step(grads, attrs["_step_count"])
        if flag < 0:
            _check_grads(self._params, self._layout, grads)
            raise ValueError("`grads` was rejected by the compiled step")
        attrs["_step_count"] += 1
        attrs["_nonfinite"] = flag == 1


class SGD(_Fused, _SGDBase):
    __doc__ = _SGDBase.__doc__


class Adam(_Fused, _AdamBase):
    __doc__ = _AdamBase.__doc__


class AdamW(_Fused, _AdamWBase):
    __doc__ = _AdamWBase.__doc__


class RMSprop(_Fused, _RMSpropBase):
    __doc__ = _RMSpropBase.__doc__


class Adagrad(_Fused, _AdagradBase):
    __doc__ = _AdagradBase.__doc__


# Functional steps: one compiled call each, for callers that keep the state themselves.


def _functional(params, grads, states, step, fields):
    """Validate everything, then run one kernel call over the arrays."""
    params = _check_params(params)
    lists, written = [], [(f"params[{i}]", p) for i, p in enumerate(params)]
    for entry in states:  # (name, arrays) for a slot the options use, else None
        if entry is None:
            lists.append([])
            continue
        name, arrays = entry
        if arrays is None:
            raise ValueError(f"`{name}` is required by these options, got None")
        lists.append(_check_state_list(name, params, arrays))
        written += [(f"{name}[{i}]", a) for i, a in enumerate(lists[-1])]
    _check_disjoint(written)
    state = [a for arrays in lists for a in arrays]
    _check_grads(params, _layout(params, state), grads)
    step = _check_step_value(step)
    if step < 1:
        raise ValueError(f"`step` must be >= 1 (the number of this step), got {step}")
    lists += [[]] * (3 - len(lists))
    hyper = dict(C_HYPER_DEFAULTS, step=step - 1, **fields)
    return _core._fused_step_lists(hyper, list(params), list(grads), *lists)


def sgd(
    params,
    grads,
    momentum_buffers,
    *,
    step,
    lr,
    momentum,
    dampening,
    weight_decay,
    nesterov,
):
    """One compiled SGD step on lists of arrays (module notes: "Functional steps").

    Parameters
    ----------
    momentum_buffers : list of numpy.ndarray, or None when momentum is 0
        The momentum buffers; on step 1 they are overwritten, not read.
    step : int
        The number of this step, from 1.
    lr, momentum, dampening, weight_decay, nesterov
        As for :class:`SGD`.
    """
    h = _SGDBase._validate_hyper(
        None,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
    )
    states = [("momentum_buffers", momentum_buffers)] if h["momentum"] != 0 else []
    _functional(params, grads, states, step, _SGDBase._c_fields(h))


def adam(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    max_exp_avg_sqs,
    *,
    step,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    amsgrad,
    decoupled_weight_decay=False,
):
    """One compiled Adam step on lists of arrays (module notes: "Functional steps").

    Parameters
    ----------
    exp_avgs, exp_avg_sqs : list of numpy.ndarray
        First and second moment estimates.
    max_exp_avg_sqs : list of numpy.ndarray, or None unless amsgrad
        Running maxima of the second moments.
    step : int
        The number of this step, from 1 (it sets the bias corrections).
    lr, beta1, beta2, eps, weight_decay, amsgrad
        As for :class:`Adam` (``betas=(beta1, beta2)``).
    decoupled_weight_decay : bool, default False
        Apply the weight decay as AdamW does.
    """
    h = _AdamBase._validate_hyper(
        None,
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
    )
    states = [("exp_avgs", exp_avgs), ("exp_avg_sqs", exp_avg_sqs)]
    if h["amsgrad"]:
        states.append(("max_exp_avg_sqs", max_exp_avg_sqs))
    base = _AdamWBase if decoupled_weight_decay else _AdamBase
    _functional(params, grads, states, step, base._c_fields(h))


def adamw(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    max_exp_avg_sqs,
    *,
    step,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    amsgrad,
):
    """One compiled AdamW step on lists of arrays (module notes: "Functional steps").

    Parameters
    ----------
    exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step
        As for :func:`adam`.
    lr, beta1, beta2, eps, weight_decay, amsgrad
        As for :class:`AdamW` (``betas=(beta1, beta2)``).
    """
    adam(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        max_exp_avg_sqs,
        step=step,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        decoupled_weight_decay=True,
    )


def rmsprop(
    params,
    grads,
    square_avgs,
    momentum_buffers,
    grad_avgs,
    *,
    step,
    lr,
    alpha,
    eps,
    weight_decay,
    momentum,
    centered,
):
    """One compiled RMSprop step on lists of arrays (module notes: "Functional steps").

    Parameters
    ----------
    square_avgs : list of numpy.ndarray
        Running averages of the squared gradients.
    momentum_buffers : list of numpy.ndarray, or None when momentum is 0
    grad_avgs : list of numpy.ndarray, or None unless centered
    step : int
        The number of this step, from 1.
    lr, alpha, eps, weight_decay, momentum, centered
        As for :class:`RMSprop`.
    """
    h = _RMSpropBase._validate_hyper(
        None,
        lr=lr,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        centered=centered,
    )
    states = [
        ("square_avgs", square_avgs),
        ("momentum_buffers", momentum_buffers) if h["momentum"] != 0 else None,
        ("grad_avgs", grad_avgs) if h["centered"] else None,
    ]
    _functional(params, grads, states, step, _RMSpropBase._c_fields(h))


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, weight_decay, eps):
    """One compiled Adagrad step on lists of arrays (module notes: "Functional steps").

    Parameters
    ----------
    state_sums : list of numpy.ndarray
        Sums of the squared gradients.
    step : int
        The number of this step, from 1 (it sets the decayed lr).
    lr, lr_decay, weight_decay, eps
        As for :class:`Adagrad`.
    """
    h = _AdagradBase._validate_hyper(
        None,
        lr=lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        initial_accumulator_value=0.0,
        eps=eps,
    )
    states = [("state_sums", state_sums)]
    _functional(params, grads, states, step, _AdagradBase._c_fields(h))
