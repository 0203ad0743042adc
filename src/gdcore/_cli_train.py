"""``gdcore train``: train an MLP on a data set and report how it went."""

from __future__ import annotations

import argparse
import csv
import inspect
import math
import struct
import textwrap
import time
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OPTIMIZERS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
}

# Command-line option -> optimizer keyword, passed on only when given.
HYPERPARAMETERS = (
    "lr",
    "momentum",
    "dampening",
    "nesterov",
    "betas",
    "eps",
    "weight_decay",
    "amsgrad",
    "alpha",
    "centered",
    "lr_decay",
)

# Options (argparse dests) that Levenberg-Marquardt does not use: it takes
# whole-data steps of its own length, with no learning rate, batches or epoch
# engine, so giving one with --optimizer lm is an error.
NOT_FOR_LM = (*HYPERPARAMETERS, "batch_size", "sampling", "engine")


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an int >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def nonnegative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = float(text)
    if not (0.0 <= value < math.inf):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def noting(action_class):
    """``action_class``, also noting its option in the namespace's ``given``.

    argparse calls an action only for an option on the command line (defaults
    are set without it), so ``given`` maps the dest of each option given to
    the option string used, whatever its value.
    """

    class Noting(action_class):
        def __call__(self, parser, namespace, values, option_string=None):
            super().__call__(parser, namespace, values, option_string)
            namespace.given = {**namespace.given, self.dest: option_string}

    return Noting


def note_given(parser: argparse.ArgumentParser) -> None:
    """Make `parser` record the options typed on the command line.

    Every option added to `parser` afterwards with one of the actions that
    store a value notes itself in ``args.given`` (see :func:`noting`), which
    starts empty.
    """
    for name in (
        None,
        "store",
        "store_const",
        "store_true",
        "store_false",
        "append",
        "append_const",
        "extend",
        "count",
    ):
        parser.register("action", name, noting(parser._registry_get("action", name)))
    parser.set_defaults(given={})


class DataError(Exception):
    """A data file that is missing or malformed."""


@dataclass
class Dataset:
    """Train and test arrays with a name for the summary."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand to `subparsers`."""
    p = subparsers.add_parser(
        "train",
        help="train an MLP on a data set (default: scikit-learn's digits)",
        description=(
            "Train a feed-forward network with a gdcore optimizer. Without --data it "
            "uses the handwritten digits that scikit-learn ships, standardised, with a "
            "held-out test split."
        ),
    )
    note_given(p)
    add_data_arguments(p)
    add_network_arguments(p)
    opt = p.add_argument_group(
        "optimizer (defaults are the optimizer's own, but sgd's lr is 0.01)"
    )
    opt.add_argument(
        "--optimizer",
        choices=(*OPTIMIZERS, "lm"),
        default="adam",
        help="default adam; lm (Levenberg-Marquardt) needs --loss mse and takes "
        "none of the options below nor --batch-size, --sampling or --engine",
    )
    opt.add_argument("--lr", type=float)
    opt.add_argument("--momentum", type=float)
    opt.add_argument("--dampening", type=float)
    opt.add_argument("--nesterov", action="store_true", default=None)
    opt.add_argument("--betas", type=float, nargs=2, metavar=("BETA1", "BETA2"))
    opt.add_argument("--eps", type=float)
    opt.add_argument("--weight-decay", type=float)
    opt.add_argument("--amsgrad", action="store_true", default=None)
    opt.add_argument("--alpha", type=float)
    opt.add_argument("--centered", action="store_true", default=None)
    opt.add_argument("--lr-decay", type=float)
    run = add_batch_arguments(p)
    run.add_argument(
        "--tol", type=nonnegative_float, help="stop when the epoch loss settles"
    )
    run.add_argument("--seed", type=nonnegative_int, default=0, help="default 0")
    run.add_argument(
        "--threads", type=positive_int, help="threads of the compiled kernels"
    )
    run.add_argument("--engine", choices=("auto", "compiled", "python"), default="auto")
    run.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=run_train, parser=p)


def add_data_arguments(parser: argparse.ArgumentParser, title: str = "data") -> None:
    """Add the data options (file, label column, split, standardising)."""
    data = parser.add_argument_group(title)
    data.add_argument(
        "--data",
        type=Path,
        help="CSV file (UTF-8; one sample a row; the first row is a header when "
        "none of its cells is a number) or .npz with arrays X and y (and "
        "optionally X_test, y_test). For cross_entropy every distinct label "
        "value (as text in a CSV) is a class, numbered in sorted order; for mse the "
        "labels must be numbers",
    )
    data.add_argument(
        "--label-column",
        help="CSV label column: a header name or a 0-based index (default: last)",
    )
    data.add_argument(
        "--test-size", type=float, default=0.2, help="held-out fraction (default 0.2)"
    )
    data.add_argument(
        "--no-standardize",
        action="store_true",
        help="use the features as they are instead of standardising them",
    )


def add_network_arguments(
    parser: argparse.ArgumentParser, title: str = "network"
) -> None:
    """Add the network options (hidden layers, activation, loss, dtype)."""
    net = parser.add_argument_group(title)
    net.add_argument(
        "--hidden",
        type=positive_int,
        nargs="*",
        default=[100],
        help="hidden layer sizes",
    )
    net.add_argument(
        "--activation", choices=("relu", "tanh", "sigmoid", "identity"), default="relu"
    )
    net.add_argument(
        "--loss",
        choices=("cross_entropy", "mse"),
        default="cross_entropy",
        help="cross_entropy classifies, mse regresses",
    )
    net.add_argument("--dtype", choices=("float32", "float64"), default="float64")


def add_batch_arguments(parser: argparse.ArgumentParser, title: str = "training"):
    """Add a group with --epochs, --batch-size and --sampling; return the group."""
    run = parser.add_argument_group(title)
    run.add_argument("--epochs", type=positive_int, default=30, help="default 30")
    run.add_argument(
        "--batch-size",
        default="32",
        help="samples per update, or 'full' for full-batch gradient descent",
    )
    run.add_argument(
        "--sampling",
        choices=("without_replacement", "with_replacement"),
        default="without_replacement",
    )
    return run


def run_train(args: argparse.Namespace) -> int:
    """Handle ``gdcore train``; return the exit code."""
    import gdcore
    from gdcore import _core, optim, train
    from gdcore.nn import MLP

    try:
        if args.optimizer == "lm":
            _check_lm(args)
        batch_size = parse_batch_size(args.batch_size)
        data = load_dataset(args)
    except (DataError, ValueError) as exc:
        args.parser.error(str(exc))
    if args.threads is not None:
        try:
            gdcore.set_num_threads(args.threads)
        except ValueError:
            high = _core._max_threads()
            args.parser.error(
                f"argument --threads: must be between 1 and {high}, got {args.threads}"
            )
    dtype = np.dtype(args.dtype)
    n_out = n_outputs(data, args.loss)
    sizes = [data.X_train.shape[1], *args.hidden, n_out]
    try:
        model = MLP(sizes, args.activation, args.loss, dtype=dtype, seed=args.seed)
        optimizer = _make_optimizer(optim, model, args)
    except (TypeError, ValueError) as exc:
        args.parser.error(str(exc))
    callback = None if args.quiet else _print_epoch(args.epochs)
    history = train.fit(
        model,
        data.X_train,
        data.y_train,
        optimizer,
        epochs=args.epochs,
        batch_size=batch_size,
        sampling=args.sampling,
        tol=args.tol,
        seed=args.seed,
        callback=callback,
        engine=args.engine,
    )
    _print_summary(args, data, sizes, model, optimizer, history)
    return 1 if history.status == "diverged" else 0


def parse_batch_size(text: str) -> int | None:
    """Parse --batch-size: a positive int, or 'full'."""
    if text == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        msg = f"--batch-size must be an int or 'full', got {text!r}"
        raise ValueError(msg) from None
    if value < 1:
        raise ValueError(f"--batch-size must be at least 1, got {value}")
    return value


def _make_optimizer(optim, model, args: argparse.Namespace):
    """Build the optimizer named by --optimizer with the hyperparameters given."""
    if args.optimizer == "lm":
        return "lm"  # its options were checked by _check_lm
    kwargs = {
        name: getattr(args, name)
        for name in HYPERPARAMETERS
        if getattr(args, name) is not None
    }
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    cls = getattr(optim, OPTIMIZERS[args.optimizer])
    unknown = set(kwargs) - set(inspect.signature(cls).parameters)
    if unknown:
        raise ValueError(f"--optimizer {args.optimizer} takes no {_options(unknown)}")
    if args.optimizer == "sgd":
        kwargs.setdefault("lr", 0.01)
    return cls(model.params, **kwargs)


def _check_lm(args: argparse.Namespace) -> None:
    """ValueError unless the options suit ``--optimizer lm``.

    It needs ``--loss mse``, and none of :data:`NOT_FOR_LM` may be given on
    the command line (``args.given``), whatever its value.
    """
    if args.loss != "mse":
        raise ValueError("--optimizer lm needs --loss mse (least squares)")
    unused = sorted(flag for dest, flag in args.given.items() if dest in NOT_FOR_LM)
    if unused:
        raise ValueError(f"--optimizer lm takes no {', '.join(unused)}")


def _options(names) -> str:
    """Hyperparameter names as the command-line options that set them."""
    return ", ".join(sorted("--" + name.replace("_", "-") for name in names))


def n_outputs(data: Dataset, loss: str) -> int:
    """Output units: the number of classes, or of regression targets."""
    if loss == "cross_entropy":
        return int(max(data.y_train.max(), data.y_test.max(initial=0))) + 1
    return 1 if data.y_train.ndim == 1 else data.y_train.shape[1]


def _print_epoch(epochs: int):
    """Return a fit callback printing one line per epoch."""
    width = len(str(epochs))
    start = time.perf_counter()

    def callback(epoch: int, history) -> None:
        elapsed = time.perf_counter() - start
        print(
            f"epoch {epoch:>{width}}/{epochs}  loss {history.loss[-1]:.6f}  "
            f"{elapsed:7.2f} s",
            flush=True,
        )

    return callback


def _print_summary(args, data, sizes, model, optimizer, history) -> None:
    """Print the closing summary of a run."""
    name = "LevenbergMarquardt" if optimizer == "lm" else type(optimizer).__name__
    lr = "" if optimizer == "lm" else f" (lr={optimizer.lr:g})"
    final = f"{history.loss[-1]:.6f}" if history.loss else "n/a"
    rows = [
        ("optimizer", f"{name}{lr}"),
        ("network", f"{'-'.join(map(str, sizes))} {args.activation}, {args.loss}"),
        ("data", f"{data.name}: {len(data.X_train)} train / {len(data.X_test)} test"),
        ("status", history.status),
        ("epochs", str(history.epochs)),
        ("iterations", str(history.iterations)),
        ("train loss", final),
    ]
    if len(data.X_test):
        name, value = held_out_score(model, data, args.loss)
        rows.append((name, format_score(name, value)))
    rows.append(("time", f"{history.time:.2f} s"))
    print()
    for key, value in rows:
        print(f"{key:<16}{value}")
    if history.status != "max_epochs":
        print(history.message)


def held_out_score(model, data: Dataset, loss: str) -> tuple[str, float]:
    """The held-out accuracy (a fraction; classification) or mean squared error."""
    X_test = data.X_test.astype(model.dtype)
    if loss == "cross_entropy":
        return "test accuracy", float(np.mean(model.predict(X_test) == data.y_test))
    pred = model.forward(X_test).reshape(data.y_test.shape)
    return "test mse", float(np.mean((pred - data.y_test) ** 2))


def format_score(name: str, value: float) -> str:
    """A held-out score as text: accuracy in percent, mse to 6 digits."""
    if name == "test accuracy":
        return f"{100 * value:.2f} %"
    return f"{value:.6g}"


def load_dataset(args: argparse.Namespace) -> Dataset:
    """Load, split and standardise the data named by the arguments."""
    if not (0.0 <= args.test_size < 1.0):
        raise ValueError(f"--test-size must be in [0, 1), got {args.test_size}")
    is_csv = args.data is not None and args.data.suffix.lower() in (".csv", ".txt")
    if args.label_column is not None and not is_csv:
        raise DataError("--label-column applies to CSV data files only")
    if args.data is None:
        name, X, y, X_test, y_test = "digits", *_load_digits(), None, None
    else:
        name = args.data.name
        X, y, X_test, y_test = _read_file(args.data, args.label_column)
    classify = args.loss == "cross_entropy"
    if classify:
        y, y_test = _encode_labels(y, y_test)
    else:
        npz = args.data is not None and not is_csv
        y = _as_float(y, f"{name}: " + ("y" if npz else "the labels"))
        y_test = None if y_test is None else _as_float(y_test, f"{name}: y_test")
    if X_test is None:
        X, y, X_test, y_test = _split(X, y, args.test_size, args.seed)
    if not args.no_standardize:
        with np.errstate(over="ignore", invalid="ignore"):
            mean = X.mean(axis=0)
            scale = X.std(axis=0)
        if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
            raise DataError(
                "feature values too large to standardise (their variance overflows);"
                " rescale them or pass --no-standardize"
            )
        scale[scale == 0] = 1.0
        X = (X - mean) / scale
        X_test = (X_test - mean) / scale
    return Dataset(name, X, y, X_test, y_test)


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits (shipped with it, no download)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(
            "the default data set needs scikit-learn: pip install 'gdcore[datasets]' "
            "(or pass --data FILE)"
        ) from None
    digits = load_digits()
    return digits.data.astype(np.float64), digits.target


def _read_file(path: Path, label_column: str):
    """Read a CSV or .npz data file; raise DataError naming what is wrong."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    if path.suffix.lower() in (".csv", ".txt"):
        return (*_read_csv(path, label_column), None, None)
    raise DataError(f"unsupported data file {path.name}: use .csv or .npz")


def _read_npz(path: Path):
    """Arrays X, y (and optionally X_test, y_test) of an .npz file."""
    invalid = f"{path.name} is not a valid .npz archive (a zip of .npy arrays)"
    if not zipfile.is_zipfile(path):
        raise DataError(invalid)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: _read_member(npz, key, invalid) for key in npz.files}
    except zipfile.BadZipFile:
        raise DataError(invalid) from None
    except OSError as exc:
        raise DataError(f"cannot read {path.name} as .npz: {exc}") from None
    not_npy = sorted(key for key, a in arrays.items() if not isinstance(a, np.ndarray))
    if not_npy:
        raise DataError(f"{invalid}: {', '.join(not_npy)} not .npy")
    missing = [key for key in ("X", "y") if key not in arrays]
    if missing:
        raise DataError(
            f"{path.name} lacks array(s) {', '.join(missing)}; it has "
            f"{', '.join(sorted(arrays)) or 'none'}"
        )
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path.name} must hold both X_test and y_test, or neither")
    X = _as_features(arrays["X"], "X", path.name)
    y = _as_labels(arrays["y"], "y", path.name)
    _check_rows(X, y, "X", "y", path.name)
    if "X_test" not in arrays:
        return X, y, None, None
    X_test = _as_features(arrays["X_test"], "X_test", path.name)
    y_test = _as_labels(arrays["y_test"], "y_test", path.name)
    _check_rows(X_test, y_test, "X_test", "y_test", path.name)
    if X_test.shape[1] != X.shape[1]:
        raise DataError(
            f"{path.name}: X_test has {X_test.shape[1]} columns, X has {X.shape[1]}"
        )
    return X, y, X_test, y_test


# What reading a corrupt member can raise: NumPy's .npy reader parses the header
# with ast (and, for old format versions, tokenize), and the zip layer checks
# the compressed stream and its CRC.
_MEMBER_ERRORS = (
    ValueError,
    TypeError,
    SyntaxError,
    EOFError,
    OSError,
    struct.error,
    tokenize.TokenError,
    zipfile.BadZipFile,
    zlib.error,
)


def _read_member(npz, key: str, invalid: str):
    """Member ``key`` of an open .npz (an array, or bytes if it is not .npy).

    Raises
    ------
    DataError
        If the member cannot be read; NumPy's reason is kept when it gives one
        (a ValueError, e.g. an object array, which is not loaded).
    """
    try:
        return npz[key]
    except _MEMBER_ERRORS as exc:
        reason = ""
        if isinstance(exc, ValueError) and str(exc):
            reason = f" ({textwrap.shorten(str(exc), 100, placeholder=' ...')})"
        raise DataError(f"{invalid}: {key} is unreadable{reason}") from None


def _as_features(a: np.ndarray, key: str, name: str) -> np.ndarray:
    """A finite 2-D float array, or DataError."""
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{name}: {key} must be a non-empty 2-D array, got {a.shape}")
    if a.dtype.kind == "c":
        raise DataError(f"{name}: {key} holds complex numbers")
    try:
        a = a.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name}: {key} is not numeric (dtype {a.dtype})") from None
    if not np.isfinite(a).all():
        raise DataError(f"{name}: {key} holds NaN or infinite values")
    return a


def _as_labels(a: np.ndarray, key: str, name: str) -> np.ndarray:
    """Labels that are numbers (finite ones, if floats) or text, or DataError."""
    # b: bool, i/u: integers, f: floats, U/S: text; not complex, dates, objects
    # or structured records.
    if a.dtype.kind not in "biufUS":
        raise DataError(
            f"{name}: {key} must hold numbers or text labels, got dtype {a.dtype}"
        )
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise DataError(f"{name}: {key} holds NaN or infinite labels")
    return a


def _check_rows(X: np.ndarray, y: np.ndarray, xk: str, yk: str, name: str) -> None:
    """Check that the labels are 1-D or 2-D with one row per sample."""
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise DataError(
            f"{name}: {yk} has shape {y.shape}, expected {X.shape[0]} rows like {xk}"
        )


def _read_csv(path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of a CSV file with an optional header row.

    The file is read as UTF-8, a leading byte-order mark ignored; rows without
    any non-blank cell are skipped, and errors name the file's own line numbers.
    """
    rows, lines = _csv_rows(path)
    if not rows:
        raise DataError(f"{path.name} is empty")
    # A data row may have a text label but has numeric features, so only a row
    # without any number is taken for a header.
    header = None
    if not any(_is_number(c) for c in rows[0]):
        header = [c.strip() for c in rows.pop(0)]
        lines.pop(0)
    if not rows:
        raise DataError(f"{path.name} has a header but no data rows")
    width = len(rows[0])
    for line, row in zip(lines, rows, strict=True):
        if len(row) != width:
            raise DataError(
                f"{path.name}, line {line}: {len(row)} columns, expected {width}"
            )
    if width < 2:
        raise DataError(f"{path.name} needs at least one feature and a label column")
    col = _label_index(label_column, header, width, path.name)
    cells = np.array(rows, dtype=object)
    labels = np.array([c.strip() for c in cells[:, col]])
    empty = np.flatnonzero(labels == "")
    if empty.size:
        line = lines[empty[0]]
        raise DataError(f"{path.name}, line {line}: the label is empty")
    features = np.delete(cells, col, axis=1)
    try:
        X = features.astype(np.float64)
    except ValueError:
        i, j = next(
            (i, j)
            for i, row in enumerate(features)
            for j, c in enumerate(row)
            if not _is_number(c)
        )
        raise DataError(
            f"{path.name}, line {lines[i]}: feature {features[i, j]!r} is not a number"
        ) from None
    if not np.isfinite(X).all():
        raise DataError(f"{path.name} holds NaN or infinite feature values")
    return X, labels


def _csv_rows(path: Path) -> tuple[list[list[str]], list[int]]:
    """The non-blank rows of a CSV file and the line on which each starts."""
    rows, lines = [], []
    end = 0  # the last line read so far
    try:
        # utf-8-sig drops a byte-order mark that would otherwise begin the first
        # cell.
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                for row in reader:
                    if any(c.strip() for c in row):
                        rows.append(row)
                        lines.append(end + 1)
                    end = reader.line_num
            except csv.Error as exc:
                raise DataError(f"{path.name}, line {end + 1}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path.name}: {exc}") from None
    return rows, lines


def _is_number(text: str) -> bool:
    """Whether a CSV cell parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _label_index(label_column: str | None, header, width: int, name: str) -> int:
    """Resolve --label-column (None: the last column) to a column index."""
    if label_column is None:
        return width - 1
    try:
        index = int(label_column)
    except ValueError:
        if header is None or label_column not in header:
            raise DataError(
                f"{name}: no column named {label_column!r}"
                + ("" if header is None else f" (columns: {', '.join(header)})")
            ) from None
        return header.index(label_column)
    if not -width <= index < width:
        raise DataError(f"{name}: --label-column {index} is out of range ({width})")
    return index % width


def _encode_labels(y: np.ndarray, y_test: np.ndarray | None):
    """Map class labels of any type to 0..k-1 (train and test alike)."""
    if y.ndim != 1:
        raise DataError(f"class labels must be 1-D, got shape {y.shape}")
    both = y if y_test is None else np.concatenate([y, y_test])
    classes, codes = np.unique(both, return_inverse=True)
    if len(classes) < 2:
        raise DataError("classification needs at least two classes in the labels")
    codes = codes.astype(np.int64)
    return codes[: len(y)], (None if y_test is None else codes[len(y) :])


def _as_float(y: np.ndarray, what: str) -> np.ndarray:
    """Regression targets as finite floats, or DataError."""
    try:
        out = np.asarray(y, dtype=np.float64)
    except ValueError:
        raise DataError(f"{what} must be numbers for --loss mse") from None
    if not np.isfinite(out).all():
        raise DataError(f"{what} must be finite numbers (not NaN or infinite)")
    return out


def _split(X, y, test_size: float, seed: int):
    """A seeded random train/test split."""
    n_test = math.floor(len(X) * test_size)
    if len(X) - n_test < 1:
        raise DataError(f"too few samples ({len(X)}) for --test-size {test_size}")
    order = np.random.default_rng(seed).permutation(len(X))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]
