"""Pre-training to the Local Stability Condition (Herranz-Celotti & Rouat; docs/design.md, section 9).

:func:`pretrain` is the front, :class:`PretrainConfig` its settings; the pieces, each one idea:

* :mod:`.config` -- the settings as one frozen value, each default written once;
* :mod:`.loop` -- the loop: budgets, resuming, checkpoints, the final measurement;
* :mod:`.step` -- one step, ``Pretrainer.step(state, batch) -> (state, record)``;
* :mod:`.stopping` -- the stopping rule as pure functions of the measured radii;
* :mod:`.checkpoint` -- a checkpoint is the saved state;
* :mod:`.sources` -- where the input batches come from (a tensor, a re-iterable, noise);
* :mod:`.heuristics` -- the reference code's weight rescaling and shuffling (opt-in).
"""

from .config import PretrainConfig
from .loop import (
    CHECKPOINT,
    DEFAULT_KINDS,
    NotConvergedWarning,
    PretrainResult,
    history_jsonl,
    part_directories,
    pretrain,
)
from .sources import InputSource, copy_task_inputs
from .step import Pretrainer, State, StepRecord
from .stopping import Progress, Rule, Verdict, advance, judge

__all__ = [
    "CHECKPOINT",
    "DEFAULT_KINDS",
    "InputSource",
    "NotConvergedWarning",
    "PretrainConfig",
    "PretrainResult",
    "Pretrainer",
    "Progress",
    "Rule",
    "State",
    "StepRecord",
    "Verdict",
    "advance",
    "copy_task_inputs",
    "history_jsonl",
    "judge",
    "part_directories",
    "pretrain",
]
