"""The Local Stability Condition: targets, the measured report, and :func:`measure`.

The LSC (Herranz-Celotti & Rouat, "Stabilizing RNN Gradients through Pre-training";
docs/design.md A1.3-A1.5) holds when E_data[rho(J)] = target for every local Jacobian J
of the depth x time grid. Targets:

* a number rho* > 0 for the time, depth and encoder edges (1: classical stability;
  0.5: deep RNNs, where the C(dl + dt, dt) gradient paths of the grid otherwise add
  up to an exponential, docs/design.md A1.4);
* ``"unbalanced"``: depth (and encoder) L / (L + T), time T / (L + T), the mode of the
  binomial path weight (docs/design.md A1.5);
* ``"auto"``: 0.5 when the grid has both depth and time (L > 1 and T > 1), else 1;
* a ``{kind: value}`` mapping; only the kinds it names are checked.

The decoder edge is checked only when a mapping names it (the reference code gives it
target 1 and leaves it out of its stopping rule).
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from . import parts
from .checks import (
    NonFiniteError,
    check_count,
    check_number,
    check_positive,
    check_seed,
    generator_seed,
    unknown_name,
)
from .grid import (
    DEFAULT_TIME_POINTS,
    KINDS,
    Edge,
    Trajectory,
    check_kinds,
    edges,
    pick_time_points,
    prepare,
    trajectory,
)
from .jacobian import (
    DEFAULT_PROBES,
    DEFAULT_RTOL,
    DEFAULT_STEPS,
    METHODS,
    Estimator,
    LocalJacobian,
    check_choice,
    rows_within_budget,
)
from .models import Stack, as_stack

Target = float | str | Mapping[str, float]
DEFAULT_TOL = 0.05


def resolve_target(target: Target, num_layers: int, time_steps: int) -> dict[str, float]:
    """Per-kind targets for a grid of ``num_layers`` x ``time_steps`` (see module docstring)."""
    if isinstance(target, str):
        if target == "auto":
            target = 0.5 if num_layers > 1 and time_steps > 1 else 1.0
        elif target == "unbalanced":
            L, T = num_layers, time_steps
            return {"encoder": L / (L + T), "time": T / (L + T), "depth": L / (L + T)}
        else:
            raise ValueError(
                f"unknown target {target!r}: use a number > 0, 'auto', 'unbalanced' or a {{kind: value}} mapping"
            )
    if isinstance(target, Mapping):
        out = {}
        for kind, value in target.items():
            if kind not in KINDS:
                raise unknown_name("edge kind in target", kind, KINDS)
            out[kind] = check_positive(value, f"target for {kind} edges")
        if not out:
            raise ValueError("target mapping is empty; name at least one edge kind")
        return out
    if isinstance(target, bool) or not isinstance(target, (int, float)):
        raise ValueError(f"target must be a number > 0, 'auto', 'unbalanced' or a mapping, got {target!r}")
    v = check_positive(target, "target")
    return {"encoder": v, "time": v, "depth": v}


def check_tol(tol: object) -> None:
    """Raise a ValueError unless ``tol`` is a number >= 0 (inf too: everything is within it)."""
    if isinstance(tol, (bool, str, bytes)) or not isinstance(tol, numbers.Real) or not float(tol) >= 0:
        raise ValueError(f"tol must be >= 0 (a number; inf accepts any gap), got {tol!r}")


def parse_target(text: str) -> Target:
    """A target from its text form: ``0.5`` | ``auto`` | ``unbalanced`` |
    ``time=0.5,depth=0.5,decoder=1`` (values are checked by :func:`resolve_target`)."""
    text = str(text).strip()
    if text in ("auto", "unbalanced"):
        return text
    if "=" in text:
        out: dict[str, float] = {}
        for part in text.split(","):
            kind, _, value = part.partition("=")
            try:
                out[kind.strip()] = float(value)
            except ValueError:
                raise ValueError(f"bad target entry {part!r}: expected kind=number") from None
        return out
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"bad target {text!r}: use a number, auto, unbalanced or kind=value pairs") from None


@dataclass(frozen=True)
class EdgeStat:
    """Statistics of one edge's per-sample values over samples x time points."""

    kind: str
    layer: int
    mean: float
    std: float
    min: float
    max: float
    count: int = 0
    shape: tuple[int, int] = (0, 0)
    method: str = ""
    module: str = ""  # the recurrent part's qualified name in a larger model ("" for the model itself)

    @property
    def standard_error(self) -> float:
        """std / sqrt(count): the standard error of :attr:`mean` over its samples x time points."""
        return float(self.std / max(self.count, 1) ** 0.5)


@dataclass(frozen=True)
class StabilityReport:
    """Per-edge statistics of the local Jacobians of a model on given input.

    ``print(report)`` shows a table; :meth:`satisfies` checks the LSC; :meth:`to_dict`
    is JSON-ready (and exactly what ``lsc measure --json`` prints).
    """

    edges: list[EdgeStat]
    method: str
    quantity: str
    target: dict[str, float]
    num_layers: int
    time_steps: int
    time_points: tuple[int, ...]
    batch_size: int
    steps: int
    seed: int | None = None
    seconds: float = 0.0
    rtol: float = DEFAULT_RTOL
    probes: int = DEFAULT_PROBES

    @property
    def estimator(self) -> Estimator:
        """The estimator that made the report."""
        return Estimator(self.method, self.steps, self.rtol, self.probes)

    def targets_for(self, target: Target | None = None) -> dict[str, float]:
        """``target`` resolved for this grid (the report's own target when ``None``)."""
        return dict(self.target) if target is None else resolve_target(target, self.num_layers, self.time_steps)

    def gaps(self, target: Target | None = None) -> list[float | None]:
        """mean - target for every edge (``None`` where the target names no value for its kind)."""
        goal = self.targets_for(target)
        return [e.mean - goal[e.kind] if e.kind in goal else None for e in self.edges]

    def satisfies(self, target: Target | None = None, tol: float = DEFAULT_TOL) -> bool:
        """True when every edge whose kind has a target has |mean - target| <= tol."""
        check_tol(tol)
        checked = [g for g in self.gaps(target) if g is not None]
        if not checked:
            raise ValueError("the target names no edge kind that this report has")
        return all(abs(g) <= tol for g in checked)

    def edge(self, kind: str, layer: int) -> EdgeStat:
        """The statistics of one edge."""
        for e in self.edges:
            if e.kind == kind and e.layer == layer:
                return e
        raise KeyError(f"no {kind} edge at layer {layer}; edges: {[(e.kind, e.layer) for e in self.edges]}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        d = {
            "edges": [{**asdict(e), "shape": list(e.shape)} for e in self.edges],
            "method": self.method,
            "quantity": self.quantity,
            "target": dict(self.target),
            "num_layers": self.num_layers,
            "time_steps": self.time_steps,
            "time_points": list(self.time_points),
            "batch_size": self.batch_size,
            "steps": self.steps,
            "seed": self.seed,
            "seconds": self.seconds,
        }
        return d

    def table(self, target: Target | None = None, tol: float = DEFAULT_TOL) -> str:
        """The report as a text table with the gap to ``target`` (the report's own by default)."""
        check_tol(tol)
        goal = self.targets_for(target)
        label = {"radius": "spectral radius", "norm": "spectral norm", "rms": "rms singular value"}[self.quantity]
        width = max((len(e.module) for e in self.edges), default=0)
        width = max(width, len("part")) if width else 0

        def part(name: str) -> str:
            return f"{name:<{width}}  " if width else ""

        lines = [
            (
                f"{label} of local Jacobians: {self.batch_size} samples x {len(self.time_points)} time points "
                f"of T={self.time_steps}, method {self.method}, {self.seconds:.2f} s"
            ),
            f"{part('part')}{'kind':<8} {'layer':>5}  {'mean':>7} ± {'std':<6} {'min':>7} {'max':>7}  {'shape':>9} "
            f"{'target':>7} {'gap':>7}",
        ]
        for e, gap in zip(self.edges, self.gaps(target)):
            shape = f"{e.shape[0]}x{e.shape[1]}"
            tgt = f"{goal[e.kind]:7.3f}" if gap is not None else f"{'-':>7}"
            g = f"{gap:+7.3f}" if gap is not None else f"{'':>7}"
            flag = "" if gap is None or abs(gap) <= tol else "  *"
            lines.append(
                f"{part(e.module)}{e.kind:<8} {e.layer:>5}  {e.mean:7.3f} ± {e.std:<6.3f} {e.min:7.3f} {e.max:7.3f}  "
                f"{shape:>9} {tgt} {g}{flag}"
            )
        checked = [g for g in self.gaps(target) if g is not None]
        if checked:
            ok = sum(abs(g) <= tol for g in checked)
            verdict = "holds" if ok == len(checked) else "does not hold"
            lines.append(f"LSC {verdict}: {ok}/{len(checked)} edges within {tol} of target (* = outside)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def estimator_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """The generator for start vectors, probes and sub-matrices: seeded from ``seed`` but
    offset, so its stream never repeats the one ``torch.manual_seed(seed)`` gave the
    user's data or weights."""
    seed = check_seed(seed)
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(generator_seed(seed + 0x5EED_15C))


def _stat(kind: str, layer: int, values: Tensor, shape: tuple[int, int], method: str) -> EdgeStat:
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        raise NonFiniteError(
            f"the {kind} Jacobian of layer {layer} gave a non-finite value for {int(bad.sum())} of "
            f"{values.numel()} samples (its entries overflow): the model is numerically unstable there. "
            "Rescale its weights or input, or measure in float64."
        )
    v = values.double()
    return EdgeStat(
        kind=kind,
        layer=layer,
        mean=float(v.mean()),
        std=float(v.std(correction=0)),
        min=float(v.min()),
        max=float(v.max()),
        count=v.numel(),
        shape=shape,
        method=method,
    )


AUTO_SCHEDULE = (2, 4, 8)
"""``time_points="auto"``: measure at 2 evenly spaced steps, then 4, then 8, each edge until its
mean is known to ``precision`` (an edge known after a round is not measured again)."""
DEFAULT_PRECISION = 0.01
MEASURE_RTOL = 1e-2
"""The Arnoldi stop of :func:`measure` (the estimators' own default is 1e-3): enough for
edge means to well under ``precision`` (on a 4x256 LSTM, median 0.1 % and max 0.4 %
against dense on the same samples, in a third of the time of 1e-3; docs/design.md section 3)."""
MEASURE_ESTIMATOR = Estimator("auto", DEFAULT_STEPS, MEASURE_RTOL, DEFAULT_PROBES)
"""The estimator of :func:`measure` and ``lsc measure``: dense for small Jacobians, else
Arnoldi of at most 100 steps stopping at :data:`MEASURE_RTOL`."""
"""Deprecated keywords of :func:`measure` and the estimator field each sets."""


def as_estimator(value: object, default: Estimator) -> Estimator:
    """``value`` as an estimator: an :class:`~lsc.jacobian.Estimator` as it is, a method name
    as ``default`` with that method, ``None`` as ``default``."""
    if value is None:
        return default
    if isinstance(value, Estimator):
        return value
    if isinstance(value, str):
        if value not in METHODS:
            raise unknown_name("method", value, METHODS)
        return replace(default, method=value)
    raise TypeError(
        f"estimator must be an lsc.jacobian.Estimator or a method name ({', '.join(METHODS)}), "
        f"got {type(value).__name__}"
    )


def estimator_of(
    estimator: object,
    default: Estimator,
    deprecated: Mapping[str, object],
    legacy: Mapping[str, str],
    caller: str,
    counts: Sequence[str] = (),
) -> Estimator:
    """The estimator a call chose: ``estimator`` (:func:`as_estimator`), or ``default`` with
    the fields that the deprecated keywords in ``deprecated`` (``legacy``: keyword -> field)
    set; those named in ``counts`` are checked as counts first, under their own names. Any
    other keyword is refused."""
    for name in deprecated:
        if name not in legacy:
            raise TypeError(f"{caller} got an unexpected keyword argument {name!r}")
    if not deprecated:
        return as_estimator(estimator, default)
    warnings.warn(
        f"{caller.rstrip('()')}({', '.join(f'{k}=' for k in deprecated)}) is deprecated: pass "
        "estimator=lsc.jacobian.Estimator(...) or a method name",
        DeprecationWarning,
        stacklevel=3,
    )
    if estimator is not None:
        raise ValueError(f"give the estimator as estimator= or as {', '.join(deprecated)}, not both")
    for name in counts:
        if name in deprecated:
            check_count(deprecated[name], name)
    return replace(default, **{legacy[k]: v for k, v in deprecated.items()})  # type: ignore[arg-type]


def square_keys(seed: int | None, time_point: int, batch: int, size: int, device: torch.device) -> Tensor:
    """The uniform draws that choose the square sub-matrices of one time point's samples
    (:meth:`LocalJacobian.square`): seeded by (seed, time point) apart from the estimator's
    own generator, so every method, and every order of measuring, reads the same samples."""
    gen = (
        None
        if seed is None
        else torch.Generator().manual_seed(generator_seed(seed * 1_000_003 + 0x5A3B1E5 + time_point))
    )
    return torch.rand(batch, size, generator=gen).to(device)


def measure(
    model: nn.Module,
    x: object,
    *,
    kinds: Sequence[str] | None = None,
    target: Target = "auto",
    quantity: str = "radius",
    time_points: int | Sequence[int] | str = DEFAULT_TIME_POINTS,
    seed: int | None = 0,
    estimator: Estimator | str | None = None,
    precision: float = DEFAULT_PRECISION,
    lengths: Sequence[int] | Tensor | None = None,
    input_key: parts.InputKey = 0,
    forward: parts.Forward | None = None,
) -> StabilityReport:
    """Measure the local Jacobians of ``model`` on input ``x``.

    Args:
        model: an ``lsc.models.StackedRNN``, a ``torch.nn.LSTM/GRU/RNN`` (or cell), any
            module whose ``cells`` follow the step protocol, or any model with such parts
            inside: ``model(x)`` runs once and each recurrent part is measured on the input
            it receives, its edges named by the part (:mod:`lsc.parts`).
        x: input, (batch, time, features) floats (time first for ``batch_first=False``
            modules) or (batch, time) token ids for models that embed tokens; for a larger
            model, one item of its data (a tensor, or a tuple / dict its forward is
            called with: see ``input_key`` and ``forward``).
        kinds: edge kinds to measure (default: all the model has).
        target: the LSC target shown in the table and kept in the report (see module doc).
        quantity: ``radius`` (default) | ``norm`` | ``rms``.
        time_points: steps to measure at: ``"auto"`` (default: 2 evenly spaced steps, then
            4, then 8, each edge until the standard error of its mean is at most
            ``precision`` of it; an edge precise after a round is not measured again), a
            count (evenly spaced), ``"all"`` or a list of step indices.
            Statistics pool samples and time points.
        seed: seeds start vectors and square sub-matrices (``None``: global RNG). The
            samples (time points, sub-matrices) do not depend on the method, so two
            methods with one seed measure the same Jacobians.
        estimator: how each value is estimated (:class:`lsc.jacobian.Estimator`: the
            method ``auto`` | ``dense`` | ``arnoldi`` | ``power``, the most Krylov steps, the
            Arnoldi stop ``rtol`` and the Hutchinson probes of ``rms``), or a method name
            (that method with the other defaults); ``None``: :data:`MEASURE_ESTIMATOR`.
        precision: the relative standard error ``time_points="auto"`` stops at (1%).
        lengths: the true length of each sequence of a padded batch: a sample counts only
            at time points inside its length (its states there never saw the padding), and
            time points are chosen within the longest. A ``PackedSequence`` ``x`` gives
            its own lengths.
        input_key, forward: how a larger model is called on ``x`` (:func:`lsc.parts.caller`):
            ``input_key`` an index or key of the item (default 0: ``model(x[0])`` of an
            ``(inputs, targets)`` tuple, ``model(x)`` of a tensor), a tuple of them
            (``(0, 1)``: ``model(x[0], x[1])``, a ``forward(x, lengths)`` classifier fed
            ``(x, lengths, y)``), or any ``forward(model, x)``.
    """
    est = as_estimator(estimator, MEASURE_ESTIMATOR)
    settings = _Settings(kinds, target, quantity, time_points, seed, est, precision)
    call = parts.caller(input_key, forward)
    if parts.visible(model):
        key = parts.one_input(model, input_key, forward, "measured on its input tensor itself: pass that")
        inputs = parts.input_of(x, key)
        return _measure(model, inputs, settings, lengths)
    reports, names = [], []
    for p in parts.find(model, x, call):  # a larger model: each recurrent part on what it receives
        asked = p.kinds(kinds)
        if asked == ():
            continue  # none of the kinds asked is an edge of this part
        each = replace(settings, kinds=asked, layers=p.depth)
        reports.append(in_module(_measure(p.module, p.inputs, each, p.lengths if lengths is None else lengths), p))
        names.append(p.name)
    if not reports:
        raise ValueError(f"no recurrent part of the {type(model).__name__} has {', '.join(kinds or ())} edges")
    return joined(reports, names)


@dataclass(frozen=True)
class _Settings:
    """:func:`measure`'s settings, passed on to each part."""

    kinds: Sequence[str] | None
    target: Target
    quantity: str
    time_points: int | Sequence[int] | str
    seed: int | None
    est: Estimator
    precision: float
    layers: int | None = None  # the depth the target is resolved at (None: the stack's own)


def _measure(
    model: nn.Module, x: Tensor | PackedSequence, s: _Settings, lengths: Sequence[int] | Tensor | None
) -> StabilityReport:
    """:func:`measure` of a model lsc sees as one stack."""
    if isinstance(x, PackedSequence):
        if lengths is not None:
            raise ValueError("a PackedSequence carries its own lengths: pass lengths=None")
        x, lengths = pad_packed_sequence(x, batch_first=as_stack(model).batch_first)
    start = time.perf_counter()
    est, quantity = s.est, s.quantity
    check_choice(est.method, quantity)
    if check_number(s.precision, "precision") <= 0:
        raise ValueError(f"precision must be a number > 0, got {s.precision!r}")
    check_seed(s.seed)
    stack, xb = prepare(model, x)
    kinds = check_kinds(stack, s.kinds)
    B, T = xb.shape[0], xb.shape[1]
    goal = resolve_target(s.target, s.layers or stack.num_layers, T)
    valid = _lengths(lengths, B, T)
    span = T if valid is None else int(valid.max())  # time points inside the longest sequence
    auto = isinstance(s.time_points, str) and s.time_points == "auto"
    rounds = [pick_time_points(span, n) for n in AUTO_SCHEDULE] if auto else [pick_time_points(span, s.time_points)]
    sampler = _Sampler(
        stack=stack,
        xb=xb,
        schedule=sorted({t for picks in rounds for t in picks}),
        kinds=kinds,
        quantity=quantity,
        est=est,
        gen=estimator_generator(s.seed, stack.device),
        seed=s.seed,
        lengths=valid,
    )
    times: list[int] = []
    todo: list[int] | None = None  # every edge at first; then those not yet precise
    for picks in rounds:
        new = [t for t in picks if t not in times]
        sampler.add(new, todo)
        times += new
        todo = sampler.imprecise(s.precision)
        if not todo:
            break
    if any(sum(part.numel() for part in v) == 0 for v in sampler.values):
        raise ValueError(
            f"no sequence is long enough for the time points {sorted(times)} (lengths "
            f"{[] if valid is None else valid.tolist()}): choose time points inside the lengths"
        )
    stats = [
        _stat(e.kind, e.layer, torch.cat(v), J.shape, est.resolve(J, quantity))
        for e, J, v in zip(sampler.found, sampler.shapes, sampler.values)
    ]
    return StabilityReport(
        edges=stats,
        method=est.method,
        quantity=quantity,
        target=goal,
        num_layers=stack.num_layers,
        time_steps=T,
        time_points=tuple(sorted(times)),
        batch_size=B,
        steps=est.steps,
        seed=s.seed,
        seconds=time.perf_counter() - start,
        rtol=est.rtol,
        probes=est.probes,
    )


def in_module(report: StabilityReport, part: parts.Part) -> StabilityReport:
    """A part's report in its module's terms: a layer of a deep bidirectional module has
    its module's layer index, and its input edge is the module's depth edge
    (:attr:`lsc.parts.Part.below`; docs/design.md section 0)."""
    if part.depth is None:
        return report
    edges = [
        replace(e, kind="depth" if part.below and e.kind == "encoder" else e.kind, layer=e.layer + part.layer)
        for e in report.edges
    ]
    return replace(report, edges=edges, num_layers=part.depth)


def joined(reports: Sequence[StabilityReport], names: Sequence[str]) -> StabilityReport:
    """One report over several recurrent parts, each edge named by its part."""
    target = shared_target([r.target for r in reports])
    if target is None:
        raise ValueError(
            "the recurrent parts resolve the target differently ("
            + ", ".join(f"{n}: {dict(r.target)}" for n, r in zip(names, reports))
            + "); give a number or a mapping as target"
        )
    edges = [replace(e, module=n) for r, n in zip(reports, names) for e in r.edges]
    times = tuple(sorted({t for r in reports for t in r.time_points}))  # each part's own choice, joined
    first = reports[0]
    return replace(
        first,
        edges=edges,
        target=target,
        num_layers=max(r.num_layers for r in reports),
        time_steps=max(r.time_steps for r in reports),
        time_points=times,
        seconds=sum(r.seconds for r in reports),
    )


def shared_target(targets: Sequence[Mapping[str, float]]) -> dict[str, float] | None:
    """The targets of several parts as one mapping, or ``None`` when two give one kind
    different values (``auto`` is 1 for a one-layer part and 0.5 for a deep one)."""
    out: dict[str, float] = {}
    for target in targets:
        for kind, value in target.items():
            if out.setdefault(kind, value) != value:
                return None
    return out


def _lengths(lengths: Sequence[int] | Tensor | None, batch: int, time_steps: int) -> Tensor | None:
    """``lengths`` checked: one integer in 1..T per sample."""
    if lengths is None:
        return None
    try:
        valid = torch.as_tensor(lengths).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"lengths must be a sequence of integers, got {lengths!r}") from None
    if valid.dim() != 1 or valid.shape[0] != batch or valid.is_floating_point() or valid.dtype == torch.bool:
        raise ValueError(f"lengths must be {batch} integers (one per sample), got {tuple(valid.shape)} {valid.dtype}")
    if bool((valid < 1).any()) or bool((valid > time_steps).any()):
        raise ValueError(f"lengths must lie in 1..{time_steps} (the padded length), got {valid.tolist()}")
    return valid.long()


class _Sampler:
    """Per-edge values of the chosen quantity, added time point by time point (of a padded
    batch, only the samples whose length covers the time point). The model runs once, at
    every time point of the ``schedule``; each round reads its time points from that run."""

    def __init__(
        self,
        stack: Stack,
        xb: Tensor,
        schedule: Sequence[int],
        kinds: Sequence[str],
        quantity: str,
        est: Estimator,
        gen: torch.Generator | None,
        seed: int | None,
        lengths: Tensor | None = None,
    ) -> None:
        self.stack, self.xb, self.kinds, self.quantity, self.est = stack, xb, kinds, quantity, est
        self.gen, self.seed, self.lengths = gen, seed, lengths
        self.schedule = tuple(schedule)
        self.run: Trajectory | None = None  # the model's run at every time point of the schedule
        size = max([c.state_size for c in stack.cells] + [stack.input_size or 0])
        element = xb.element_size() if xb.is_floating_point() else 4
        self.per_call = max(1, rows_within_budget(size, est.steps, element) // xb.shape[0])
        self.found: list[Edge] = []
        self.shapes: list[LocalJacobian] = []
        self.values: list[list[Tensor]] = []

    @torch.no_grad()
    def add(self, times: Sequence[int], only: Sequence[int] | None = None) -> None:
        """Measure at ``times`` every edge, or only the edges indexed by ``only``."""
        if not times:
            return
        if self.run is None:
            self.run = trajectory(self.stack, self.xb, self.schedule)
        traj = self.run.at(times)
        for i in range(0, len(traj.times), self.per_call):  # bounded memory: a few time points per call
            part = edges(self.stack, traj.part(i, i + self.per_call), self.kinds)
            which = range(len(part)) if only is None else only
            ops = [self._square(part[j].jacobian, traj.times[i : i + self.per_call]) for j in which]
            vals = self.est.estimate_all(ops, self.quantity, self.gen)
            if self.lengths is not None:  # samples at time points beyond their length are padding
                keep = torch.cat([self.lengths > t for t in traj.times[i : i + self.per_call]]).to(vals[0].device)
                vals = [v[keep] for v in vals]
            if not self.found:
                self.found, self.shapes = part, ops
                self.values = [[v] for v in vals]
            else:
                for j, v in zip(which, vals):
                    self.values[j].append(v)

    def _square(self, J: LocalJacobian, times: Sequence[int]) -> LocalJacobian:
        if self.quantity != "radius" or J.shape[0] == J.shape[1]:
            return J
        B, big = self.xb.shape[0], max(J.shape)
        keys = torch.cat([square_keys(self.seed, t, B, big, J.point.device) for t in times])
        return J.square(keys=keys)

    def imprecise(self, precision: float) -> list[int]:
        """The indices of the edges whose mean has a standard error above ``precision`` of it."""
        out = []
        for i, chunks in enumerate(self.values):
            v = torch.cat(chunks).double()
            se = float(v.std()) / v.numel() ** 0.5 if v.numel() > 1 else math.inf
            if not se <= precision * abs(float(v.mean())):
                out.append(i)
        return out
