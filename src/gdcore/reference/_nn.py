"""Multilayer perceptron in plain NumPy, written for clarity.

Forward pass, layer ``l = 1..L``::

    z_l = a_{l-1} @ W_l + b_l,    a_l = f(z_l) (hidden),    a_0 = X

Output: ``softmax(z_L)`` for cross_entropy, ``z_L`` for mse. Backward pass with
``d_l = d loss / d z_l``::

    dW_l = a_{l-1}.T @ d_l,    db_l = sum_rows(d_l),    d_{l-1} = (d_l @ W_l.T) * f'

where ``f'`` is written in terms of ``a_{l-1}`` (relu: ``a > 0``, tanh: ``1 - a**2``,
sigmoid: ``a (1 - a)``).
"""

from __future__ import annotations

import numpy as np

from gdcore._mlp import MLPBase


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow for large ``|z|``."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def _activate(name: str, z: np.ndarray) -> np.ndarray:
    """Hidden activation ``f(z)``."""
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return _sigmoid(z)
    return z


def _activation_slope(name: str, a: np.ndarray) -> np.ndarray:
    """Derivative ``f'(z)`` written in terms of ``a = f(z)``."""
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "tanh":
        return 1 - a * a
    if name == "sigmoid":
        return a * (1 - a)
    return np.ones_like(a)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise ``z - logsumexp(z)``, shifted by the row maximum to avoid overflow."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class MLP(MLPBase):
    """Multilayer perceptron computed with NumPy.

    Same constructor, attributes and behaviour as :class:`gdcore.nn.MLP`; see
    :class:`gdcore._mlp.MLPBase` for the parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from gdcore.reference import MLP
    >>> model = MLP([2, 3, 2], seed=0)
    >>> model.forward(np.zeros((1, 2))).round(3)
    array([[0.5, 0.5]])
    """

    def _hidden_and_logits(self, X: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Layer inputs ``[a_0, ..., a_{L-1}]`` and the last pre-activation ``z_L``."""
        inputs = [X]
        for layer in range(self.n_layers - 1):
            weight, bias = self.params[2 * layer], self.params[2 * layer + 1]
            inputs.append(_activate(self.activation, inputs[-1] @ weight + bias))
        return inputs, inputs[-1] @ self.params[-2] + self.params[-1]

    def _output(self, z: np.ndarray) -> np.ndarray:
        """Network output from the last pre-activation."""
        if self.loss_name == "cross_entropy":
            return np.exp(_log_softmax(z))
        return z

    def _forward(self, X: np.ndarray) -> np.ndarray:
        return self._output(self._hidden_and_logits(X)[1])

    def _loss_and_output_delta(self, z: np.ndarray, y: np.ndarray):
        """Mean loss and ``d loss / d z_L``."""
        n = z.shape[0]
        if self.loss_name == "cross_entropy":
            log_p = _log_softmax(z)
            rows = np.arange(n)
            loss = -np.mean(log_p[rows, y], dtype=np.float64)
            delta = np.exp(log_p)
            delta[rows, y] -= 1
            return loss, delta / n
        residual = z - y
        loss = np.mean(residual.astype(np.float64) ** 2)
        return loss, 2 * residual / residual.size

    def _backward(self, inputs: list[np.ndarray], delta: np.ndarray, store) -> None:
        """Backpropagate the output delta; call ``store(layer, a_{l-1}, d_l)``.

        `store` turns each layer's input and delta into gradients (summed over the
        batch for the loss, one per row for the Jacobian).
        """
        for layer in reversed(range(self.n_layers)):
            a = inputs[layer]
            store(layer, a, delta)
            if layer > 0:
                delta = delta @ self.params[2 * layer].T
                delta = delta * _activation_slope(self.activation, a)

    def _loss_and_grad(self, X: np.ndarray, y: np.ndarray, need_grad: bool) -> float:
        inputs, z = self._hidden_and_logits(X)
        loss, delta = self._loss_and_output_delta(z, y)
        if need_grad:

            def store(layer, a, d):
                self.grads[2 * layer][...] = a.T @ d
                self.grads[2 * layer + 1][...] = d.sum(axis=0)

            self._backward(inputs, delta, store)
        return float(loss)

    def _jacobian(self, X: np.ndarray) -> np.ndarray:
        n, k = X.shape[0], self.n_outputs
        inputs, z = self._hidden_and_logits(X)
        out = self._output(z)
        jac = np.empty((n, k, self.n_params), dtype=self.dtype)
        offsets = np.cumsum([0] + [p.size for p in self.params])
        for unit in range(k):
            # d out[:, unit] / d z_L: a unit vector (mse) or the softmax derivative.
            delta = np.zeros_like(z)
            delta[:, unit] = 1
            if self.loss_name == "cross_entropy":
                delta = out[:, unit : unit + 1] * (delta - out)

            def store(layer, a, d, unit=unit):
                # One gradient per row: the outer product a[i] d[i] and d[i].
                w0, b0, b1 = offsets[2 * layer : 2 * layer + 3]
                jac[:, unit, w0:b0] = (a[:, :, None] * d[:, None, :]).reshape(n, -1)
                jac[:, unit, b0:b1] = d

            self._backward(inputs, delta, store)
        return jac.reshape(n * k, self.n_params)
