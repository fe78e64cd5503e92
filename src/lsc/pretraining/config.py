"""The settings of pre-training as one frozen value: :class:`PretrainConfig`.

Every default, choice list and help line of pre-training is written here once;
:func:`lsc.pretrain` takes a config and/or settings by name, ``lsc pretrain`` and the
``--pretrain-*`` options of ``lsc train`` are built from these fields, and a checkpoint
records :meth:`PretrainConfig.record` to refuse a resume with other settings.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import torch

from ..checks import check_count, check_number, check_positive, check_seed, unknown_name
from ..condition import Target, as_estimator, resolve_target
from ..grid import kind_names
from ..jacobian import METHODS, Estimator
from ..optimizers import OPTIMIZERS
from ..settings import overridden, setting
from .step import OBJECTIVES, PRETRAINING_ESTIMATOR, TIME_KRYLOV_STEPS

MAX_SIZE = 2**31 - 1
"""The largest batch size or sequence length pre-training takes (torch sizes are int64; a
batch of noise beyond this could not be allocated anyway)."""
RESCALE = ("auto", True, False)
KEYWORDS = ("checkpoint", "progress", "callback", "distributed", "part", "input_key", "forward", "extra")
"""The keywords of :func:`lsc.pretrain` that are no settings (where and how a run is kept)."""
BUDGETS = ("max_steps", "max_seconds", "checkpoint_every")
"""The settings a resumed run may change (a finished run continues with a larger budget)."""
LEGACY = {"method": "method", "krylov_steps": "steps", "rtol": "rtol"}
"""Deprecated keywords of :func:`lsc.pretrain` and the :class:`~lsc.jacobian.Estimator`
field each sets (the estimator is one setting, ``estimator``)."""


@dataclass(frozen=True)
class PretrainConfig:
    """How :func:`lsc.pretrain` pre-trains (docs/design.md, section 9). Frozen; every value
    is checked when the config is made, a bad one is a ValueError naming its field.

    Attributes (each field's help line says the rest):
        target: 1, 0.5, any number, ``"auto"`` (0.5 for deep RNNs, 1 otherwise),
            ``"unbalanced"`` or a {kind: value} mapping (:func:`lsc.resolve_target`).
        kinds: edge kinds that take part (``None``: time, depth, encoder for a stack
            passed itself, time and depth for a part found in a larger model or a
            bidirectional module, whose encoder edge costs the most steps; the
            decoder when ``target`` names it; add ``"decoder"`` to include it, with
            ``decoder_target``). The decoder is in the loss, not in the stopping rule,
            as in the reference code.
        tol, patience, smoothing: converged when every edge's running mean (weight
            ``smoothing`` on the past; 0: this step's batch only) is within ``tol`` of its
            target for ``patience`` consecutive steps, and a fresh measurement agrees.
        max_steps, max_seconds, checkpoint_every: budgets for the whole run, per part of a
            larger model (a resumed run
            counts what it did before; a finished run continues when given a larger
            budget) and the checkpoint period; the only settings a resume may change.
        optimizer, lr: a name of :data:`lsc.optimizers.OPTIMIZERS` (``adabelief``,
            ``adabelief-lookahead``: the reference's, the ``optimizers`` extra; ``none``: no
            gradient step, with ``rescale=True`` the reference's heuristic method for LRU
            stacks) or a callable ``(params, lr=...) -> Optimizer``.
        plateau: when the rms gap has not improved by 1% for this many steps (twice as
            many after each restart), go back to the best weights and go on with half the
            learning rate (``None``: never).
        batch_size, time_steps: random mini-batches of a tensor, or Gaussian input of
            (batch_size, time_steps, features) when there is no data.
        estimator, time_krylov_steps: the radius estimator (:class:`lsc.jacobian.Estimator`,
            or a method name: that method with the default's budget). Arnoldi is exact for
            Jacobians of at most ``steps`` rows and much cheaper than ``dense`` above that.
            The time edges take ``time_krylov_steps`` Krylov steps
            (:data:`lsc.pretraining.step.TIME_KRYLOV_STEPS`; ``None``: the estimator's).
        seed: seeds batches, time points, sub-matrices and Krylov start vectors.
        rescale, shuffle: the reference code's weight rescaling towards target after each
            step (``"auto"``: on the layers whose units recur on their own, LRU and ALIF,
            whose decay parameters Adam moves by about lr a step; ``True``: every layer) and
            weight shuffling, its probability per step (:mod:`lsc.pretraining.heuristics`).
            Both leave frozen parameters alone.
        objective: ``"mean"``: each edge's batch-mean radius to target plus a spread term
            that does not pull the mean; ``"samples"``: the reference code's mean of
            per-sample squared gaps (:func:`lsc.pretraining.step.edge_loss`).
        spectrum: how many eigenvalues each edge's loss pushes down where the radius is
            above target (``"auto"``: 16 on the time edges of LRU and ALIF cells, else 1).
        first_move: before the first gradient step, at most this many measurements of the
            first batch without a graph, with a secant move of every edge's weight
            multiplier between them (a layer's recurrence for its time edge, its input for
            its depth / encoder edge; :class:`lsc.pretraining.heuristics.Secant`), until
            every edge is within tol / 2; the best round's weights stay (0: no first move).
    """

    target: Target = setting(  # noqa: RUF009  (setting() is a field, as field() is)
        "auto", "a number, auto (0.5 for deep RNNs, else 1), unbalanced, or kind=value,..."
    )
    kinds: tuple[str, ...] | None = setting(
        None,
        "edge kinds to pre-train, e.g. time,depth (none: a stack passed itself encoder,time,depth; a part found in a "
        "larger model or a bidirectional module time,depth; the decoder when the target names it)",
    )
    decoder_target: float = setting(1.0, "the decoder edges' target when the target names none")
    tol: float = setting(0.02, "converged when every edge's running mean is this close to its target")
    patience: int = setting(5, "converged after this many consecutive steps within tol")
    max_steps: int = setting(1000, "step budget")
    max_seconds: float | None = setting(None, "time budget in seconds")
    optimizer: str | Callable[..., torch.optim.Optimizer] = setting(  # noqa: RUF009
        "adam", "optimiser", choices=tuple(OPTIMIZERS)
    )
    lr: float = setting(1e-2, "learning rate")
    plateau: int | None = setting(10, "steps without a 1% better rms gap before a restart from the best weights")
    smoothing: float = setting(0.5, "weight of the past in the running mean of every edge's radius")
    batch_size: int = setting(32, "batch size")
    time_steps: int = setting(50, "sequence length of Gaussian input")
    time_points: int = setting(1, "random time points per step")
    edges_per_step: int | None = setting(None, "train on this many random edges per step (none: all)")
    estimator: Estimator | str = setting(PRETRAINING_ESTIMATOR, "radius estimator", choices=METHODS)  # noqa: RUF009
    time_krylov_steps: int | None = setting(TIME_KRYLOV_STEPS, "Krylov steps on the time edges (none: the estimator's)")
    seed: int | None = setting(0, "seed of batches, time points, sub-matrices and start vectors")
    rescale: bool | str = setting(
        "auto",
        "the reference code's weight rescaling towards target: auto (on LRU/ALIF layers), on, off",
        choices=RESCALE,
    )
    shuffle: float = setting(0.0, "probability per step of the reference code's weight shuffling")
    objective: str = setting("mean", "the loss of an edge", choices=OBJECTIVES)
    spectrum: int | str = setting("auto", "eigenvalues pushed down per edge (auto: 16 on LRU/ALIF time edges, else 1)")
    checkpoint_every: int = setting(25, "steps between checkpoints")
    # opt-in: fewer steps on average at target 0.5, but a 5x8 GRU to radius 1 then missed 400
    # steps on 3 seeds of 5 (docs/design.md section 9)
    first_move: int = setting(
        0, "measurements of the first move, per-edge multipliers solved for the target before the first step (0: none)"
    )

    def __post_init__(self) -> None:
        resolve_target(self.target, 2, 2)  # its form (the grid's values come later)
        object.__setattr__(self, "kinds", _kinds(self.kinds))
        check_positive(self.decoder_target, "decoder_target")
        for name in ("max_steps", "patience", "time_points", "batch_size", "time_steps", "checkpoint_every"):
            check_count(getattr(self, name), name)
        for name in ("plateau", "edges_per_step", "time_krylov_steps"):
            if getattr(self, name) is not None:
                check_count(getattr(self, name), name)
        for name in ("batch_size", "time_steps"):
            if getattr(self, name) > MAX_SIZE:
                raise ValueError(f"{name} must be at most {MAX_SIZE}, got {getattr(self, name)}")
        if check_number(self.tol, "tol") < 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if not 0.0 <= check_number(self.smoothing, "smoothing") < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if not 0.0 <= check_number(self.shuffle, "shuffle") <= 1.0:
            raise ValueError(f"shuffle is a probability per step, got {self.shuffle}")
        check_positive(self.lr, "lr")
        if self.max_seconds is not None:
            check_positive(self.max_seconds, "max_seconds")
        check_count(self.first_move, "first_move", minimum=0)
        check_seed(self.seed)
        self._check_choices()
        object.__setattr__(self, "estimator", as_estimator(self.estimator, PRETRAINING_ESTIMATOR))

    def _check_choices(self) -> None:
        if isinstance(self.optimizer, str):
            if self.optimizer not in OPTIMIZERS:
                raise unknown_name("optimizer", self.optimizer, OPTIMIZERS)
        elif not callable(self.optimizer):
            raise ValueError(
                f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or a callable (params, lr=...) -> "
                f"Optimizer, got {self.optimizer!r}"
            )
        if not (isinstance(self.rescale, bool) or self.rescale == "auto"):
            raise ValueError(f"rescale must be True, False or 'auto', got {self.rescale!r}")
        if self.optimizer == "none" and self.rescale is not True and not self.shuffle:
            raise ValueError(
                "optimizer='none' takes no gradient step: the heuristics are the whole method, so pass "
                "rescale=True (the reference's LRU method) and/or shuffle > 0"
            )
        if self.objective not in OBJECTIVES:
            raise unknown_name("objective", self.objective, OBJECTIVES)
        if not (isinstance(self.spectrum, str) and self.spectrum == "auto"):
            check_count(self.spectrum, "spectrum (a number of eigenvalues, or 'auto')")

    @property
    def edge_estimator(self) -> Estimator:
        """The estimator of every edge but the time edges."""
        assert isinstance(self.estimator, Estimator)  # made one in __post_init__
        return self.estimator

    @property
    def time_estimator(self) -> Estimator:
        """The estimator of the time edges (:attr:`time_krylov_steps` Krylov steps)."""
        est = self.edge_estimator
        return est if self.time_krylov_steps is None else replace(est, steps=self.time_krylov_steps)

    def optimizer_name(self) -> str:
        """The optimiser's name (a callable's ``__name__``)."""
        opt = self.optimizer
        return opt if isinstance(opt, str) else getattr(opt, "__name__", repr(opt))

    def record(self, goal: Mapping[str, float], kinds: Iterable[str]) -> dict[str, object]:
        """The settings a checkpoint keeps, to refuse a resume with others: all but the
        budgets, with the target resolved to ``goal`` (the decoder's included) on ``kinds``
        and the estimators spelled out."""
        est, time_est = self.edge_estimator, self.time_estimator
        # first_move acts before step 0 only, which a resumed run has behind it: checkpoints
        # from before it existed resume
        skip = {
            *BUDGETS,
            "target",
            "kinds",
            "decoder_target",
            "optimizer",
            "estimator",
            "time_krylov_steps",
            "first_move",
        }
        out: dict[str, object] = {
            "target": dict(goal),
            "kinds": list(kinds),
            "optimizer": self.optimizer_name(),
            "method": est.method,
            "krylov_steps": est.steps,
            "time_krylov_steps": time_est.steps,
            "rtol": est.rtol,
        }
        out.update({name: getattr(self, name) for name in self.__dataclass_fields__ if name not in skip})
        return out


def _kinds(kinds: object) -> tuple[str, ...] | None:
    """``kinds`` as a tuple of edge kind names (a single name too), or ``None``."""
    return None if kinds is None else kind_names(kinds)


def configure(config: PretrainConfig | None, overrides: Mapping[str, object]) -> PretrainConfig:
    """``config`` (default: the defaults) with the settings in ``overrides``; the
    deprecated ``method``, ``krylov_steps``, ``rtol`` become the ``estimator`` here."""
    if config is None:
        config = PretrainConfig()
    elif not isinstance(config, PretrainConfig):
        raise TypeError(
            f"config must be an lsc.PretrainConfig, got {type(config).__name__} (entries to record with "
            "the checkpoint's settings go in extra=)"
        )
    given = {k: v for k, v in overrides.items() if k not in LEGACY}
    legacy = {k: v for k, v in overrides.items() if k in LEGACY}
    if legacy:
        given.update(_from_legacy(config, legacy, "estimator" in given))
    return overridden(config, given, "pretrain()", KEYWORDS)


def _from_legacy(config: PretrainConfig, legacy: Mapping[str, object], with_estimator: bool) -> dict[str, object]:
    """The settings the deprecated estimator keywords stand for: the estimator with those
    fields (and ``krylov_steps=n``: n on every edge, the time edges too)."""
    warnings.warn(
        f"pretrain({', '.join(f'{k}=' for k in legacy)}) is deprecated: pass estimator=lsc.jacobian.Estimator(...) "
        "or a method name",
        DeprecationWarning,
        stacklevel=4,
    )
    if with_estimator:
        raise ValueError(f"give the estimator as estimator= or as {', '.join(legacy)}, not both")
    steps = legacy.get("krylov_steps")
    changes = {LEGACY[k]: v for k, v in legacy.items() if not (k == "krylov_steps" and v is None)}
    out: dict[str, object] = {"estimator": replace(config.edge_estimator, **changes)}  # type: ignore[arg-type]
    if steps is not None:
        out["time_krylov_steps"] = None
    return out
