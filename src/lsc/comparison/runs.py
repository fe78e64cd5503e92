"""``lsc.compare``: "does it help my model?", as paired pilot runs of several inits on the
user's own model, data and loss (docs/compare.md).

For each seed, every init starts from the same ``make_model(seed)`` and is then trained
with the same optimiser on the same batches in the same order: the model is built, the init
applied (timed: :mod:`.inits`), and training starts from a global torch seed and a
batch generator that depend on the seed alone, so two inits of one seed differ only by the
init (the paired design of docs/design.md section 18). The evaluation loss is taken every
``eval_every`` steps on fixed batches; the statistics are in :mod:`.result`.

With ``out=DIR`` each finished (init, seed) run is a JSON record in ``DIR/runs``, written
atomically while ``DIR`` is held (the lock of ``lsc train``); called again with the same
settings, the finished runs are read back and only the others run. A run is the unit: one
interrupted half-way is run again from its start, which gives the same numbers, since
everything in it is seeded. Ctrl-C returns the runs finished so far (``interrupted=True``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import parts as _parts
from ..files import write_atomic
from ..progress import progress_bar
from ..rundir import hold_directory
from . import inits as _inits
from .result import Comparison, RunRecord

BUDGETS = ("steps", "time")
EVAL_BATCHES = 4
"""Evaluation batches drawn from ``data`` when no ``eval_data`` is given."""
PRETRAIN_BATCHES = 8
"""Batches an init is given (pre-training's data, a callable init's ``items``)."""
CONFIG, RUNS = "compare.json", "runs"

Loss = Callable[[object, object], Tensor]


@dataclass(frozen=True)
class CompareConfig:
    """The settings of a comparison, each default and check in one place.

    Attributes:
        inits: the first is the reference; entries as in :mod:`lsc.comparison.inits`.
        steps: training steps per run.
        seeds: a count (0, 1, ...) or the seeds themselves.
        eval_every: steps between evaluations (``None``: ``steps // 10``); also at 0 and ``steps``.
        budget: ``"steps"`` (final = after ``steps``) or ``"time"`` (final = the last evaluation
            within the wall-clock the quickest init of the seed took, its init time included).
        input_key: which elements of an item the model is called with (an index or key, or a
            tuple of them: ``(0, 1)`` calls ``model(x, lengths)`` of ``(x, lengths, y)``; :func:`lsc.parts.caller`).
        batch_size: samples per batch when ``data`` is a tensor or a tuple of tensors.
        clip: gradient-norm clipping (``None``: none).
        pretrain_options: keyword arguments for :func:`lsc.pretrain` (e.g. ``kinds``, ``max_steps``).
        progress: a progress bar over the runs (``None``: when stderr is a terminal).
    """

    inits: Sequence[object] = ("default", 0.5, 1.0)
    steps: int = 300
    seeds: int | Sequence[int] = 3
    eval_every: int | None = None
    budget: str = "steps"
    input_key: _parts.InputKey = 0
    batch_size: int = 32
    clip: float | None = None
    pretrain_options: Mapping[str, object] = field(default_factory=dict)
    progress: bool | None = None

    def __post_init__(self) -> None:
        _count(self.steps, "steps")
        _count(self.batch_size, "batch_size")
        _seeds(self.seeds)
        if self.eval_every is not None:
            _count(self.eval_every, "eval_every")
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be 'steps' or 'time', got {self.budget!r}")
        if self.clip is not None and not (isinstance(self.clip, (int, float)) and self.clip > 0):
            raise ValueError(f"clip must be a positive number or None, got {self.clip!r}")

    @property
    def every(self) -> int:
        return self.eval_every if self.eval_every is not None else max(1, self.steps // 10)


def compare(
    make_model: Callable[[int], nn.Module],
    data: object,
    *,
    loss: Loss,
    eval_data: object = None,
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    forward: _inits.Forward | None = None,
    out: str | Path | None = None,
    config: CompareConfig | None = None,
    **overrides: object,
) -> Comparison:
    """Train ``make_model(seed)`` from each of ``inits`` for ``steps`` steps, over ``seeds``,
    and compare the final evaluation losses, paired per seed against the first init.

    Args:
        make_model: ``make_model(seed) -> nn.Module``, the user's own model (the global torch
            seed is also set to ``seed`` before it is called).
        data: a tensor or a tuple of tensors (samples along dim 0; random mini-batches of
            ``batch_size``), or a re-iterable of batches (a ``DataLoader``, a list), cycled.
        loss: ``loss(output, item) -> scalar tensor``, lower is better.
        eval_data: as ``data``; the whole of it is evaluated (default: ``EVAL_BATCHES`` fixed
            batches of ``data``, then the loss is not on held-out data).
        optimizer: ``optimizer(params) -> Optimizer`` (default Adam, lr 1e-3).
        forward: ``forward(model, item) -> output`` (default ``model(item[input_key])``).
        out: a directory: runs are recorded and resumed there (module docstring).
        config: the settings (:class:`CompareConfig`); ``overrides`` replace its fields by name
            (``inits=("default", 0.5)``, ``steps=100``, ``seeds=3``, ...).
    """
    cfg = _configured(config, overrides)
    specs = _inits.resolve(cfg.inits)
    seed_list = _seeds(cfg.seeds)
    for name, fn in (("make_model", make_model), ("loss", loss)):
        if not callable(fn):
            raise ValueError(f"{name} must be a callable, got {type(fn).__name__}")
    if forward is not None and not callable(forward):
        raise ValueError(f"forward must be a callable forward(model, item), got {type(forward).__name__}")
    source = _Source(data, "data", cfg.batch_size)
    held_out = _Source(eval_data, "eval_data", cfg.batch_size) if eval_data is not None else None
    settings = {
        "inits": [s.label for s in specs],
        "seeds": seed_list,
        "steps": cfg.steps,
        "eval_every": cfg.every,
        "batch_size": cfg.batch_size,
        "clip": cfg.clip,
        "input_key": cfg.input_key,
        "held_out": eval_data is not None,
        "make_model": _name(make_model),
        "loss": _name(loss),
        "forward": None if forward is None else _name(forward),
        "optimizer": "adam 1e-3" if optimizer is None else _name(optimizer),
        "pretrain_options": json.loads(json.dumps(dict(cfg.pretrain_options), default=str)),
    }
    job = _Job(
        cfg, source=source, held_out=held_out, loss=loss, optimizer=optimizer, forward=forward, make_model=make_model
    )
    folder = None if out is None else Path(out)
    with hold_directory(folder):
        done = _recorded(folder, settings) if folder is not None else {}
        interrupted = _run_all(job, specs, seed_list, done, folder, cfg.progress)
    runs = tuple(done[(s.label, seed)] for seed in seed_list for s in specs if (s.label, seed) in done)
    return Comparison(
        tuple(s.label for s in specs), tuple(seed_list), cfg.steps, cfg.budget, runs, interrupted, settings
    )


def _configured(config: CompareConfig | None, overrides: Mapping[str, object]) -> CompareConfig:
    """``config`` (default settings when ``None``) with ``overrides`` by field name."""
    names = {f.name for f in fields(CompareConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"lsc.compare has no setting {', '.join(unknown)}; its settings: {', '.join(sorted(names))}")
    return replace(config or CompareConfig(), **overrides)  # type: ignore[arg-type]


def _run_all(
    job: _Job,
    specs: Sequence[_inits.InitSpec],
    seed_list: Sequence[int],
    done: dict[tuple[str, int], RunRecord],
    folder: Path | None,
    progress: bool | None,
) -> bool:
    """Run every (init, seed) not in ``done`` (recording each in ``folder``); whether Ctrl-C stopped it."""
    bar = progress_bar(progress, len(specs) * len(seed_list), "compare", "run", leave=True)
    if bar is not None:
        bar.update(len(done))  # type: ignore[attr-defined]
    try:
        for seed in seed_list:
            for index, spec in enumerate(specs):
                if (spec.label, seed) in done:
                    continue
                record = job.run(spec, seed)
                done[(spec.label, seed)] = record
                if folder is not None:
                    write_atomic(folder / RUNS / _file(index, spec.label, seed), json.dumps(record.to_dict()) + "\n")
                if bar is not None:
                    bar.update(1)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        return True
    finally:
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]
    return False


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return list(range(_count(seeds, "seeds")))
    if (
        isinstance(seeds, Sequence)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        and len(set(seeds)) == len(seeds)
    ):
        return list(seeds)
    raise ValueError(f"seeds must be a count (3) or distinct non-negative integers ([0, 1, 2]), got {seeds!r}")


def _name(fn: object) -> str:
    return f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def _file(index: int, label: str, seed: int) -> str:
    return f"seed{seed}-{index}-{re.sub(r'[^A-Za-z0-9_.=,-]+', '_', label)}.json"


def _recorded(folder: Path, settings: Mapping[str, object]) -> dict[tuple[str, int], RunRecord]:
    """The finished runs recorded in ``folder`` (settings checked), after writing the settings."""
    config = folder / CONFIG
    saved_settings = json.loads(json.dumps(settings))
    if config.exists():
        try:
            old = json.loads(config.read_text())
        except (OSError, ValueError):
            raise ValueError(f"{config} is damaged; delete it (and {folder / RUNS}) to start afresh") from None
        changed = sorted(k for k in set(old) | set(saved_settings) if old.get(k) != saved_settings.get(k))
        if changed:
            raise ValueError(
                f"{folder} holds a comparison with other settings ({', '.join(changed)}); "
                "use another out directory, or delete this one to start afresh"
            )
    else:
        write_atomic(config, json.dumps(saved_settings, indent=2) + "\n")
    (folder / RUNS).mkdir(exist_ok=True)
    done = {}
    for path in sorted((folder / RUNS).glob("*.json")):
        try:
            record = RunRecord.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged record: that run is done again
        done[(record.init, record.seed)] = record
    return done


class _Source:
    """Batches of ``data``: random mini-batches of a tensor (tuple) from a seeded generator,
    or the items of a re-iterable, cycled, each pass shuffled from a seeded torch state."""

    def __init__(self, data: object, name: str, batch_size: int) -> None:
        self.name, self.batch_size = name, batch_size
        self.tensors: tuple[Tensor, ...] | None = None
        if isinstance(data, Tensor):
            self.tensors, self.single = (data,), True
        elif isinstance(data, tuple) and data and all(isinstance(t, Tensor) for t in data):
            self.tensors, self.single = tuple(data), False
        elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)) and iter(data) is not data:
            self.data = data
        else:
            raise ValueError(
                f"{name} must be a tensor, a tuple of tensors or a re-iterable of batches (a DataLoader, "
                f"a list), not {type(data).__name__}"
            )
        if self.tensors is not None:
            n = {t.shape[0] if t.dim() else 0 for t in self.tensors}
            if len(n) != 1 or 0 in n:
                raise ValueError(
                    f"{name}: the tensors need the same, non-zero number of samples along dim 0, got "
                    f"{[tuple(t.shape) for t in self.tensors]}"
                )
        elif next(iter(self.data), None) is None:
            raise ValueError(f"{name} yielded no batches; pass a non-empty DataLoader or list")

    def _take(self, index: Tensor) -> object:
        assert self.tensors is not None
        parts = tuple(t[index] for t in self.tensors)
        return parts[0] if self.single else parts

    def stream(self, seed: int) -> Iterable[object]:
        """Endless batches, the same for the same ``seed``."""
        if self.tensors is not None:
            gen = torch.Generator().manual_seed(seed)
            n = self.tensors[0].shape[0]
            while True:
                yield self._take(torch.randint(0, n, (min(self.batch_size, n),), generator=gen))
        epoch = 0
        while True:
            self._seed_pass(seed, epoch)
            yield from self.data
            epoch += 1

    def _seed_pass(self, seed: int, epoch: int) -> None:
        torch.manual_seed(1_000_003 * seed + epoch)  # a DataLoader's shuffle draws from the global state
        gen = getattr(self.data, "generator", None)
        if isinstance(gen, torch.Generator):
            gen.manual_seed(1_000_003 * seed + epoch)

    def whole(self) -> list[object]:
        """Every sample once, in order (tensors: chunks of ``batch_size``)."""
        if self.tensors is not None:
            n = self.tensors[0].shape[0]
            return [self._take(torch.arange(i, min(i + self.batch_size, n))) for i in range(0, n, self.batch_size)]
        self._seed_pass(0, 0)
        return list(self.data)


def _to(item: object, device: torch.device) -> object:
    if isinstance(item, Tensor):
        return item.to(device)
    if isinstance(item, Mapping):
        return {k: _to(v, device) for k, v in item.items()}
    if isinstance(item, (tuple, list)):
        return type(item)(_to(v, device) for v in item)
    return item


class _Job:
    """Everything one (init, seed) run needs, and :meth:`run`."""

    def __init__(
        self,
        config: CompareConfig,
        *,
        source: _Source,
        held_out: _Source | None,
        loss: Loss,
        optimizer: object,
        forward: _inits.Forward | None,
        make_model: Callable[[int], nn.Module],
    ) -> None:
        self.steps, self.every, self.clip = config.steps, config.every, config.clip
        self.input_key, self.pretrain_options = config.input_key, dict(config.pretrain_options)
        self.source, self.loss, self.optimizer = source, loss, optimizer
        self.forward, self.make_model = forward, make_model
        self.call = _parts.caller(config.input_key, forward)  # the one way lsc runs a model on an item
        if held_out is not None:
            self.eval_items = held_out.whole()
        else:
            stream = iter(source.stream(0x5EED))
            self.eval_items = [next(stream) for _ in range(EVAL_BATCHES)]

    def _output(self, model: nn.Module, item: object) -> object:
        return self.call(model, item)

    def _loss(self, model: nn.Module, item: object) -> Tensor:
        value = self.loss(self._output(model, item), item)
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise ValueError("loss(output, item) must return a scalar tensor (one number, lower is better)")
        return value.reshape(())

    def evaluate(self, model: nn.Module, device: torch.device) -> float:
        was = model.training
        model.eval()
        with torch.no_grad():
            total = sum(float(self._loss(model, _to(item, device))) for item in self.eval_items)
        model.train(was)
        return total / len(self.eval_items)

    def run(self, spec: _inits.InitSpec, seed: int) -> RunRecord:
        torch.manual_seed(seed)
        model = self.make_model(seed)
        if not isinstance(model, nn.Module):
            raise ValueError(f"make_model(seed) must return an nn.Module, got {type(model).__name__}")
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("make_model(seed) built a model with no trainable parameters")
        device = params[0].device
        stream = iter(self.source.stream(2 * seed + 1))
        items = [_to(next(stream), device) for _ in range(PRETRAIN_BATCHES)]
        torch.manual_seed(seed)
        applied = _inits.apply(
            spec,
            model,
            items,
            seed=seed,
            forward=self.forward,
            input_key=self.input_key,
            pretrain_options=self.pretrain_options,
        )
        torch.manual_seed(seed)  # the same dropout and data order whatever the init drew
        opt = torch.optim.Adam(params, lr=1e-3) if self.optimizer is None else self.optimizer(params)  # type: ignore[operator]
        batches = iter(self.source.stream(2 * seed))
        model.train()
        curve: list[tuple[int, float, float]] = [(0, 0.0, self.evaluate(model, device))]
        seconds, diverged, step = 0.0, False, 0
        while step < self.steps:
            start = time.perf_counter()
            value = self._loss(model, _to(next(batches), device))
            if not math.isfinite(float(value.detach())):
                diverged = True
                break
            opt.zero_grad()
            value.backward()
            if self.clip is not None:
                nn.utils.clip_grad_norm_(params, self.clip)
            opt.step()
            seconds += time.perf_counter() - start
            step += 1
            if step % self.every == 0 or step == self.steps:
                curve.append((step, seconds, self.evaluate(model, device)))
        return RunRecord(spec.label, seed, tuple(curve), applied.seconds, seconds, step, diverged, applied.message)
