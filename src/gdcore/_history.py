"""The record of a training or minimisation run."""

from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("converged", "max_epochs", "diverged")


@dataclass
class History:
    """What happened during :func:`gdcore.train.fit`.

    Attributes
    ----------
    loss : list of float
        Mean training loss of each epoch, weighted by the samples of each batch.
    epochs : int
        Epochs run.
    iterations : int
        Parameter updates made (batches processed).
    status : str
        ``"converged"``, ``"max_epochs"`` or ``"diverged"``.
    message : str
        A sentence saying why the run stopped.
    time : float
        Wall-clock seconds spent in the run.
    """

    loss: list[float] = field(default_factory=list)
    epochs: int = 0
    iterations: int = 0
    status: str = "max_epochs"
    message: str = ""
    time: float = 0.0
