"""Tasks: data splits, sizes, loss and metric, read from standard files or generated.

>>> task = lsc.tasks.get("slmnist")                 # 5k MNIST subset offline
>>> model = task.model("gru", layers=2, width=128)
>>> result = lsc.train(model, task, epochs=8)

``available()`` lists the names; ``options(name)`` the options of one. Data is read from
a ``path`` option, ``$LSC_DATA/<folder>`` or a system folder; when files are missing the
error says which files to put where. Nothing is downloaded.
"""

from .base import Batch, Split, StreamSplit, Task, TaskInputs, TensorSplit
from .idx import read_idx, write_idx
from .objectives import Tally, loss_and_tally
from .paths import ENV, DataError, MissingDataError
from .registry import TaskInfo, available, get, info, options, register

__all__ = [
    "ENV",
    "Batch",
    "DataError",
    "MissingDataError",
    "Split",
    "StreamSplit",
    "Tally",
    "Task",
    "TaskInfo",
    "TaskInputs",
    "TensorSplit",
    "available",
    "get",
    "info",
    "loss_and_tally",
    "options",
    "read_idx",
    "register",
    "write_idx",
]
