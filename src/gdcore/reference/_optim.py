"""NumPy reference optimizers: functional steps written for clarity, and their classes.

Each functional step takes lists of arrays (params, grads, state) and keyword-only
hyperparameters, and updates the arrays in place with one equation per line, in the
order torch.optim documents. ``step`` is the number of the step being taken (1 for the
first). Scalars are Python floats, so float32 arrays stay float32 (NumPy >= 2 scalar
promotion; NumPy 1.25 follows the same rule for Python scalars).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from gdcore._optimizer import (
    _AdagradBase,
    _AdamBase,
    _AdamWBase,
    _check_grads,
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


def sgd(
    params: list[np.ndarray],
    grads: list[np.ndarray],
    momentum_buffers: list[np.ndarray | None],
    *,
    step: int,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
) -> None:
    """One SGD step; ``momentum_buffers`` holds None entries when momentum is 0."""
    for p, g, b in zip(params, grads, momentum_buffers, strict=True):
        d = g
        if weight_decay != 0:
            d = d + weight_decay * p
        if momentum != 0:
            if step == 1:
                b[...] = d
            else:
                b[...] = momentum * b + (1 - dampening) * d
            d = d + momentum * b if nesterov else b
        p -= lr * d


def adam(
    params: list[np.ndarray],
    grads: list[np.ndarray],
    exp_avgs: list[np.ndarray],
    exp_avg_sqs: list[np.ndarray],
    max_exp_avg_sqs: list[np.ndarray | None],
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    decoupled_weight_decay: bool = False,
) -> None:
    """One Adam step (AdamW when ``decoupled_weight_decay``)."""
    bias_correction1 = 1 - beta1**step
    # A multiplication by the reciprocal where torch divides, as gdcore.optim does (one
    # division per element less; the denominators differ by at most an ulp).
    inv_bias_correction2_sqrt = 1 / math.sqrt(1 - beta2**step)  # sqrt, not ** 0.5
    step_size = lr / bias_correction1
    for p, g, m, v, v_max in zip(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, strict=True
    ):
        d = g
        if weight_decay != 0 and decoupled_weight_decay:
            p *= 1 - lr * weight_decay
        elif weight_decay != 0:
            d = d + weight_decay * p
        m[...] = beta1 * m + (1 - beta1) * d
        v[...] = beta2 * v + (1 - beta2) * d * d
        if amsgrad:
            np.maximum(v_max, v, out=v_max)
            v = v_max
        denom = np.sqrt(v) * inv_bias_correction2_sqrt + eps
        p -= step_size * m / denom


def adamw(
    params: list[np.ndarray],
    grads: list[np.ndarray],
    exp_avgs: list[np.ndarray],
    exp_avg_sqs: list[np.ndarray],
    max_exp_avg_sqs: list[np.ndarray | None],
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
) -> None:
    """One AdamW step: Adam after the decay p <- p (1 - lr weight_decay)."""
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
    params: list[np.ndarray],
    grads: list[np.ndarray],
    square_avgs: list[np.ndarray],
    momentum_buffers: list[np.ndarray | None],
    grad_avgs: list[np.ndarray | None],
    *,
    step: int,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
) -> None:
    """One RMSprop step (``step`` is unused by the rule; kept for a uniform call)."""
    for p, g, sq, b, ga in zip(
        params, grads, square_avgs, momentum_buffers, grad_avgs, strict=True
    ):
        d = g
        if weight_decay != 0:
            d = d + weight_decay * p
        sq[...] = alpha * sq + (1 - alpha) * d * d
        var = sq
        if centered:
            ga[...] = alpha * ga + (1 - alpha) * d
            var = sq - ga * ga
        avg = np.sqrt(var) + eps
        if momentum > 0:
            b[...] = momentum * b + d / avg
            p -= lr * b
        else:
            p -= lr * d / avg


def adagrad(
    params: list[np.ndarray],
    grads: list[np.ndarray],
    state_sums: list[np.ndarray],
    *,
    step: int,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
) -> None:
    """One Adagrad step."""
    clr = lr / (1 + (step - 1) * lr_decay)
    for p, g, s in zip(params, grads, state_sums, strict=True):
        d = g
        if weight_decay != 0:
            d = d + weight_decay * p
        s += d * d
        std = np.sqrt(s) + eps
        p -= clr * d / std


class _Reference:
    """Step of the NumPy backend: validate, call the functional step, count."""

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Update every param in place from its gradient (list aligned with params)."""
        _check_grads(self._params, self._layout, grads)
        self._update(list(grads), self._step_count + 1)
        self._step_count += 1
        self._nonfinite = not all(np.isfinite(p).all() for p in self._params)

    def _state_list(self, name: str) -> list[np.ndarray | None]:
        """Per-param views of one state buffer (None entries when unused)."""
        return [views.get(name) for views in self._views]


class SGD(_Reference, _SGDBase):
    __doc__ = _SGDBase.__doc__

    def _update(self, grads, step):
        sgd(
            list(self._params),
            grads,
            self._state_list("momentum_buffer"),
            step=step,
            **self._hyper,
        )


class Adam(_Reference, _AdamBase):
    __doc__ = _AdamBase.__doc__

    def _update(self, grads, step):
        h = self._hyper
        adam(
            list(self._params),
            grads,
            self._state_list("exp_avg"),
            self._state_list("exp_avg_sq"),
            self._state_list("max_exp_avg_sq"),
            step=step,
            lr=h["lr"],
            beta1=h["betas"][0],
            beta2=h["betas"][1],
            eps=h["eps"],
            weight_decay=h["weight_decay"],
            amsgrad=h["amsgrad"],
            decoupled_weight_decay=self._decoupled,
        )


class AdamW(Adam, _AdamWBase):
    __doc__ = _AdamWBase.__doc__


class RMSprop(_Reference, _RMSpropBase):
    __doc__ = _RMSpropBase.__doc__

    def _update(self, grads, step):
        rmsprop(
            list(self._params),
            grads,
            self._state_list("square_avg"),
            self._state_list("momentum_buffer"),
            self._state_list("grad_avg"),
            step=step,
            **self._hyper,
        )


class Adagrad(_Reference, _AdagradBase):
    __doc__ = _AdagradBase.__doc__

    def _update(self, grads, step):
        h = self._hyper
        adagrad(
            list(self._params),
            grads,
            self._state_list("sum"),
            step=step,
            lr=h["lr"],
            lr_decay=h["lr_decay"],
            weight_decay=h["weight_decay"],
            eps=h["eps"],
        )
