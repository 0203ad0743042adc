"""Shared part of the two multilayer perceptrons: arguments, parameters, inputs.

:class:`gdcore.nn.MLP` (compiled) and :class:`gdcore.reference.MLP` (NumPy) both
derive from :class:`MLPBase`. It validates the constructor arguments, owns one flat
parameter buffer and one flat gradient buffer with per-layer views, initialises the
weights, converts and checks ``X`` and ``y``, and implements :meth:`MLPBase.predict`.
The subclasses supply the forward pass, the loss with its gradient and the Jacobian.
"""

from __future__ import annotations

import numbers

import numpy as np

ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")
LOSSES = ("cross_entropy", "mse")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# BLAS takes 32-bit dimensions.
_INT32_MAX = 2**31 - 1


def _check_layer_sizes(layer_sizes) -> tuple[int, ...]:
    """Validate `layer_sizes` and return it as a tuple of Python ints."""
    try:
        sizes = list(layer_sizes)
    except TypeError:
        raise TypeError(
            f"`layer_sizes` must be a sequence of ints, got {layer_sizes!r}"
        ) from None
    if len(sizes) < 2:
        raise ValueError(
            f"`layer_sizes` needs at least 2 entries (inputs, outputs), got {sizes!r}"
        )
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"`layer_sizes` must hold ints, got {sizes!r}")
        if not (1 <= size <= _INT32_MAX):
            raise ValueError(f"`layer_sizes` entries must be >= 1, got {sizes!r}")
    return tuple(int(size) for size in sizes)


def _check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    """Return `value` if it is one of `choices`, else raise naming `name`."""
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a str, got {value!r}")
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}")
    return value


def _check_dtype(dtype) -> np.dtype:
    """Return `dtype` as float32 or float64, else raise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"`dtype` must be float32 or float64, got {dtype!r}") from None
    if dt not in DTYPES:
        raise TypeError(f"`dtype` must be float32 or float64, got {dtype!r}")
    return dt


def _check_seed(seed):
    """Validate `seed` (None, a non-negative int or a numpy Generator)."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be None, an int or a Generator, got {seed!r}")
    if seed < 0:
        raise ValueError(f"`seed` must be non-negative, got {seed!r}")
    return int(seed)


class MLPBase:
    """Fully connected feed-forward network; base of the two implementations.

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths ``(n_in, h_1, ..., n_out)``, at least two entries, each >= 1. With
        ``loss="cross_entropy"`` the output width is the number of classes (>= 2).
    activation : {"relu", "tanh", "sigmoid", "identity"}, default "relu"
        Activation of every hidden layer.
    loss : {"cross_entropy", "mse"}, default "cross_entropy"
        ``"cross_entropy"``: softmax output and mean negative log-likelihood of
        integer labels. ``"mse"``: identity output and the mean over all elements of
        the squared error, as ``torch.nn.MSELoss``.
    dtype : {numpy.float32, numpy.float64}, default numpy.float64
        Floating-point type of the parameters, the gradients and the computation.
    seed : int, numpy.random.Generator or None, default None
        Seed of ``numpy.random.default_rng`` used for the initial weights.

    Attributes
    ----------
    layer_sizes : tuple of int
    activation : str
    loss_name : str
        The `loss` argument (``loss`` itself is the method).
    dtype : numpy.dtype
    flat_params, flat_grads : ndarray of shape (n_params,)
        Contiguous buffers holding all parameters and all gradients.
    params, grads : list of ndarray
        ``[W1, b1, W2, b2, ...]``, views into `flat_params` / `flat_grads`;
        ``W_l`` has shape ``(fan_in, fan_out)`` and ``b_l`` shape ``(fan_out,)``.
    n_params : int

    Notes
    -----
    Layer ``l`` computes ``a_l = f(a_{l-1} @ W_l + b_l)``; the last layer has no
    hidden activation. Initial weights are drawn in float64 from
    ``numpy.random.default_rng(seed)``, layer by layer, then cast to `dtype`:
    He normal, ``N(0, 2 / fan_in)``, for ``relu``; Glorot uniform,
    ``U(-r, r)`` with ``r = sqrt(6 / (fan_in + fan_out))``, for the other
    activations. Biases start at zero. Both implementations share this code, so the
    same seed gives the same weights.
    """

    def __init__(
        self,
        layer_sizes,
        activation: str = "relu",
        loss: str = "cross_entropy",
        dtype=np.float64,
        seed=None,
    ) -> None:
        sizes = _check_layer_sizes(layer_sizes)
        self.activation = _check_choice("activation", activation, ACTIVATIONS)
        self.loss_name = _check_choice("loss", loss, LOSSES)
        if self.loss_name == "cross_entropy" and sizes[-1] < 2:
            raise ValueError(
                "`layer_sizes` must end with >= 2 classes for cross_entropy, "
                f"got {list(sizes)!r}"
            )
        self.dtype = _check_dtype(dtype)
        self.seed = _check_seed(seed)
        self.layer_sizes = sizes
        self._allocate()
        self._initialise(np.random.default_rng(self.seed))

    # ------------------------------------------------------------------ parameters
    @property
    def n_layers(self) -> int:
        """Number of weight layers."""
        return len(self.layer_sizes) - 1

    @property
    def n_outputs(self) -> int:
        """Width of the output layer."""
        return self.layer_sizes[-1]

    def _allocate(self) -> None:
        """Create the flat buffers and the per-layer views."""
        shapes = []
        for layer in range(self.n_layers):
            fan_in, fan_out = self.layer_sizes[layer : layer + 2]
            shapes += [(fan_in, fan_out), (fan_out,)]
        self.n_params = sum(int(np.prod(shape)) for shape in shapes)
        self.flat_params = np.zeros(self.n_params, dtype=self.dtype)
        self.flat_grads = np.zeros(self.n_params, dtype=self.dtype)
        self._index_buffers()

    def _index_buffers(self) -> None:
        """`params` and `grads`: per-layer views of the flat buffers."""
        self.params, self.grads = [], []
        start = 0
        for layer in range(self.n_layers):
            fan_in, fan_out = self.layer_sizes[layer : layer + 2]
            for shape in ((fan_in, fan_out), (fan_out,)):
                stop = start + int(np.prod(shape))
                self.params.append(self.flat_params[start:stop].reshape(shape))
                self.grads.append(self.flat_grads[start:stop].reshape(shape))
                start = stop

    def _initialise(self, rng: np.random.Generator) -> None:
        """Draw the weights as documented in the class Notes; zero the biases."""
        for weight, bias in zip(self.params[0::2], self.params[1::2], strict=True):
            fan_in, fan_out = weight.shape
            if self.activation == "relu":
                values = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                values = rng.uniform(-limit, limit, size=(fan_in, fan_out))
            weight[...] = values
            bias[...] = 0.0

    # ------------------------------------------------------------------ inputs
    def _check_X(self, X) -> np.ndarray:
        """Return `X` as a C-contiguous (n, n_in) array of the model dtype."""
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"`X` must hold real numbers, got dtype {X.dtype}")
        n_in = self.layer_sizes[0]
        if X.ndim != 2 or X.shape[1] != n_in or X.shape[0] < 1:
            raise ValueError(
                f"`X` must have shape (n, {n_in}) with n >= 1, got shape {X.shape}"
            )
        if X.shape[0] > _INT32_MAX:
            raise ValueError(f"`X` has too many rows for BLAS: {X.shape[0]}")
        return np.ascontiguousarray(X, dtype=self.dtype)

    def _check_y(self, y, n: int) -> np.ndarray:
        """Return `y` as int64 labels (n,) or targets (n, k) of the model dtype."""
        y = np.asarray(y)
        k = self.n_outputs
        if self.loss_name == "cross_entropy":
            if y.dtype.kind not in "iu":
                raise TypeError(
                    f"`y` must hold integer class labels, got dtype {y.dtype}"
                )
            if y.shape != (n,):
                raise ValueError(f"`y` must have shape ({n},), got shape {y.shape}")
            if y.size and (y.min() < 0 or y.max() >= k):
                raise ValueError(
                    f"`y` labels must lie in [0, {k}), got range [{y.min()}, {y.max()}]"
                )
            return np.ascontiguousarray(y, dtype=np.int64)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"`y` must hold real numbers, got dtype {y.dtype}")
        if y.shape == (n,) and k == 1:
            y = y.reshape(n, 1)
        if y.shape != (n, k):
            expected = f"({n},) or ({n}, 1)" if k == 1 else f"({n}, {k})"
            raise ValueError(f"`y` must have shape {expected}, got shape {y.shape}")
        return np.ascontiguousarray(y, dtype=self.dtype)

    def _prepare_data(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Checked and converted ``(X, y)`` for training, converted once per fit."""
        X = self._check_X(X)
        return X, self._check_y(y, X.shape[0])

    # ------------------------------------------------------------------ public API
    def forward(self, X) -> np.ndarray:
        """Outputs of the network for the rows of `X`.

        Parameters
        ----------
        X : array_like of shape (n, n_in)

        Returns
        -------
        ndarray of shape (n, n_out)
            Class probabilities (cross_entropy) or predictions (mse).
        """
        return self._forward(self._check_X(X))

    def loss(self, X, y) -> float:
        """Mean loss over the rows of `X`.

        Parameters
        ----------
        X : array_like of shape (n, n_in)
        y : array_like
            Integer labels of shape (n,) in ``[0, n_out)`` for cross_entropy; real
            targets of shape (n, n_out), or (n,) when n_out is 1, for mse.

        Returns
        -------
        float
        """
        X = self._check_X(X)
        return self._loss_and_grad(X, self._check_y(y, X.shape[0]), False)

    def loss_and_grad(self, X, y) -> tuple[float, list[np.ndarray]]:
        """Mean loss and its gradient with respect to every parameter.

        Parameters
        ----------
        X, y : see :meth:`loss`

        Returns
        -------
        loss : float
        grads : list of ndarray
            ``model.grads``: the model's own buffers, overwritten by the next call.
        """
        X = self._check_X(X)
        loss = self._loss_and_grad(X, self._check_y(y, X.shape[0]), True)
        return loss, self.grads

    def predict(self, X) -> np.ndarray:
        """Class labels (cross_entropy) or predictions (mse) for the rows of `X`.

        Returns
        -------
        ndarray
            int64 labels of shape (n,) for cross_entropy; outputs of shape
            (n, n_out) for mse, or (n,) when n_out is 1.
        """
        out = self.forward(X)
        if self.loss_name == "cross_entropy":
            return np.argmax(out, axis=1).astype(np.int64, copy=False)
        return out[:, 0].copy() if self.n_outputs == 1 else out

    def jacobian(self, X) -> np.ndarray:
        """Jacobian of the outputs with respect to `flat_params`.

        Row ``i * n_out + j`` holds ``d forward(X)[i, j] / d flat_params``. It takes
        one backward pass per output unit over the whole batch.

        Parameters
        ----------
        X : array_like of shape (n, n_in)

        Returns
        -------
        ndarray of shape (n * n_out, n_params)

        Raises
        ------
        ValueError
            If the result would exceed 2**31 - 1 elements.

        Notes
        -----
        The result takes ``n * n_out * n_params`` elements of `dtype` (e.g. 1000
        rows, 1 output and 10 000 parameters: 80 MB in float64), so it suits the
        small networks trained by Levenberg-Marquardt.
        """
        X = self._check_X(X)
        self._check_jacobian_size(X.shape[0])
        return self._jacobian(X)

    def _check_jacobian_size(self, n: int) -> None:
        """Raise if the Jacobian of `n` rows exceeds the documented limit."""
        # Limitation: at most 2**31 - 1 elements (16 GiB in float64); Levenberg-
        # Marquardt needs J^T J anyway, which is only practical far below that.
        size = n * self.n_outputs * self.n_params
        if size > _INT32_MAX:
            raise ValueError(
                f"`X` with {n} rows gives a Jacobian of {size} elements, "
                f"more than the limit {_INT32_MAX}"
            )

    # Pickles and copies keep every attribute (a subclass's too); the views into the
    # flat buffers are rebuilt, and copy.copy gets buffers of its own as well.
    _NOT_SAVED = ("params", "grads")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._NOT_SAVED}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._index_buffers()

    def __copy__(self):
        twin = object.__new__(type(self))
        state = self.__getstate__()
        state.update(flat_params=self.flat_params.copy(),
                     flat_grads=self.flat_grads.copy())  # fmt: skip
        twin.__setstate__(state)
        return twin

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({list(self.layer_sizes)!r}, "
            f"activation={self.activation!r}, loss={self.loss_name!r}, "
            f"dtype=numpy.{self.dtype.name}, seed={self.seed!r})"
        )

    # ------------------------------------------------------------------ subclasses
    def _forward(self, X: np.ndarray) -> np.ndarray:
        """Outputs for a checked `X`."""
        raise NotImplementedError

    def _loss_and_grad(self, X: np.ndarray, y: np.ndarray, need_grad: bool) -> float:
        """Mean loss for checked inputs; fills `flat_grads` when `need_grad`."""
        raise NotImplementedError

    def _jacobian(self, X: np.ndarray) -> np.ndarray:
        """Jacobian for a checked `X`."""
        raise NotImplementedError
