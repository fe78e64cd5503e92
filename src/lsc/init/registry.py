"""Named initialisations: :func:`apply`, :func:`available` (one mechanism for all of them).

An init is a rule per unit (:mod:`.units`); :func:`apply` runs it over a model's units.
A *layer* the rule does not know is an error; an encoder, decoder or a cell's inner dense
map it does not know is left as it is (``chrono`` sets LSTM biases and leaves a readout
alone). Nothing is written when anything fails: the model's state is restored.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import (
    NonFiniteError,
    check_number,
    check_seed,
    generator_seed,
    unknown_name,
)
from ..models.torch_layout import TorchLayoutCell
from . import chrono, classical, ssm
from .classical import NotApplicable
from .critical import CriticalInit, critical_units
from .units import Unit, gate_names, refresh, units


@dataclass(frozen=True)
class InitInfo:
    """One named init: what it does and where it comes from."""

    name: str
    summary: str
    source: str
    applies_to: str

    def __str__(self) -> str:
        return f"{self.name:<16} {self.summary} [{self.source}; {self.applies_to}]"


@dataclass(frozen=True)
class _Scheme:
    info: InitInfo
    rule: Callable[..., object]
    whole_model: bool = False  # the rule takes (units, generator, **options) at once


_SCHEMES: dict[str, _Scheme] = {}


def _register(
    name: str, summary: str, source: str, applies_to: str, rule: Callable[..., object], whole_model: bool = False
) -> None:
    _SCHEMES[name] = _Scheme(InitInfo(name, summary, source, applies_to), rule, whole_model)


_register(
    "glorot",
    "U(+-sqrt(6/(fan_in+fan_out))) per gate block, zero biases (distribution=normal|uniform, gain)",
    "Glorot & Bengio 2010",
    "dense, lstm, gru, elman, alif",
    classical.glorot,
)
_register(
    "he",
    "N(0, 2/fan_in) per gate block, zero biases (distribution, gain)",
    "He et al. 2015",
    "dense, lstm, gru, elman, alif",
    classical.he,
)
_register(
    "orthogonal",
    "gain x Haar (semi-)orthogonal per gate block, zero biases (gain)",
    "Saxe et al. 2014",
    "dense, lstm, gru, elman, alif",
    classical.orthogonal,
)
_register(
    "keras",
    "Keras defaults: Glorot-uniform stacked input kernel, orthogonal recurrent kernel, zero biases, "
    "LSTM forget bias 1 (forget_bias)",
    "Keras LSTM/GRU/SimpleRNN defaults (the reference code)",
    "dense, lstm, gru, elman, alif",
    classical.keras,
)
_register(
    "identity",
    "IRNN: W_hh = scale I, W_ih ~ N(0, input_std^2), zero biases (scale, input_std)",
    "Le, Jaitly & Hinton 2015",
    "elman, dense",
    classical.identity,
)
_register(
    "chrono",
    "forget/update-gate biases ln U[1, t_max - 1], input gate -b_f (t_max)",
    "Tallec & Ollivier 2018",
    "lstm, gru",
    chrono.chrono,
)
_register(
    "critical",
    "mean-field critical gates: xi_forget >= seq_len/kappa, m1 ~ 1 (seq_len, kappa, m1, q_x)",
    "Gilboa et al. 2019",
    "lstm, gru",
    critical_units,
    whole_model=True,
)
_register(
    "rescaled_glorot",
    "W_hh = c_n G/sqrt(n), spectral radius just below 1; LRU: its eigenvalues",
    "Bar et al. 2025",
    "elman, lru",
    ssm.rescaled_glorot,
)
_register(
    "lru_ring",
    "LRU eigenvalues on the ring r_min <= |lambda| <= r_max, phase <= max_phase",
    "Orvieto et al. 2023",
    "lru",
    ssm.lru_ring,
)


def available() -> dict[str, InitInfo]:
    """The named inits, with a one-line description, source paper and the layers they apply to."""
    return {name: s.info for name, s in sorted(_SCHEMES.items())}


def _scheme(name: object) -> _Scheme:
    if not isinstance(name, str) or name not in _SCHEMES:
        raise unknown_name("init", name, _SCHEMES)
    return _SCHEMES[name]


def options(name: str) -> list[str]:
    """The options the init called ``name`` takes."""
    params = inspect.signature(_scheme(name).rule).parameters
    return [p for p, spec in params.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY]


def _check_options(name: str, given: dict[str, object]) -> None:
    accepted = options(name)
    bad = sorted(set(given) - set(accepted))
    if bad:
        takes = f"it takes {accepted}" if accepted else "it takes no options"
        raise ValueError(f"init {name!r} does not take option(s) {bad}; {takes}")
    defaults = inspect.signature(_scheme(name).rule).parameters
    for key, value in given.items():  # an option whose default is a number takes a finite number
        default = defaults[key].default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            check_number(value, f"init {name!r} option {key}")


def _generator(seed: int | None) -> torch.Generator:
    seed = check_seed(seed)
    if seed is None:  # follow torch's global RNG, so torch.manual_seed makes it reproducible
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator().manual_seed(generator_seed(seed))


def _check_written(model: nn.Module, name: str, options: dict[str, object], saved: dict[str, torch.Tensor]) -> None:
    """After an init: NaN/inf it wrote is the options' fault; NaN/inf it left alone is the model's."""
    for param, p in model.named_parameters():
        if bool(torch.isfinite(p).all()):
            continue
        old = saved.get(param)
        if old is not None and torch.equal(old.isnan(), p.isnan()) and torch.equal(old.nan_to_num(), p.nan_to_num()):
            raise NonFiniteError(
                f"parameter {param!r} holds NaN or inf, and init {name!r} does not set it; initialise it "
                "too (e.g. apply glorot first) or load good weights"
            )
        given = f" with {options}" if options else ""
        raise NonFiniteError(
            f"init {name!r}{given} wrote NaN or inf into parameter {param!r}: its values overflow the "
            f"model's dtype ({p.dtype}); choose smaller option values"
        )


HORIZONS = ("seq_len", "t_max")
"""Options that name a sequence length (``critical``'s ``seq_len``, ``chrono``'s ``t_max``)."""


def run(
    model: nn.Module, name: str, *, seed: int | None = None, horizon: int | None = None, **given: object
) -> tuple[nn.Module, object]:
    """:func:`apply`, also returning what the rule returned (e.g. a :class:`CriticalInit`).
    ``horizon``: the sequence length an init that takes one (``seq_len``, ``t_max``) reads
    when its option is not given (``lsc train`` passes the task's length)."""
    scheme = _scheme(name)
    if horizon is not None:
        given = {**{h: horizon for h in HORIZONS if h in options(name)}, **given}
    _check_options(name, given)
    if any(p.is_meta for p in model.parameters()):
        raise ValueError(
            "the model's parameters are on the 'meta' device (no storage to write an init into); "
            "materialise them first with model.to_empty(device=...)"
        )
    found = units(model)
    gen = _generator(seed)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        if scheme.whole_model:
            out = scheme.rule(found, gen, **given)
        else:
            out, done = None, 0
            for u in found:
                try:
                    scheme.rule(u, gen, **given)
                    done += 1
                except NotApplicable as exc:
                    if u.role == "layer":
                        raise _not_applicable(name, u, exc) from None
            if not done:
                raise TypeError(f"init {name!r} found nothing to initialise in a {type(model).__name__}")
        _check_written(model, name, given, saved)
    except NotApplicable as exc:
        model.load_state_dict(saved)
        bad = getattr(exc, "unit", None) or next((u for u in found if u.role == "layer"), found[0])
        raise _not_applicable(name, bad, exc) from None
    except BaseException:
        model.load_state_dict(saved)
        raise
    refresh(model)
    return model, out


def _not_applicable(name: str, unit: Unit, exc: Exception) -> TypeError:
    fits = [n for n, s in _SCHEMES.items() if _fits(s, unit)]
    return TypeError(
        f"init {name!r} does not apply to {unit.name} (layer {unit.index}): {exc}. "
        f"Inits for it: {', '.join(fits) or 'none'}."
    )


def _fits(scheme: _Scheme, unit: Unit) -> bool:
    kind = unit.kind
    if kind == "gated" and isinstance(unit.module, TorchLayoutCell):
        names = gate_names(unit.module)
        kind = {("i", "f", "g", "o"): "lstm", ("r", "z", "n"): "gru", ("h",): "elman"}.get(names, kind)
    return kind in [k.strip() for k in scheme.info.applies_to.split(",")]


def apply(
    model: nn.Module, name: str, *, seed: int | None = None, horizon: int | None = None, **options: object
) -> nn.Module:
    """Initialise ``model`` in place with the init called ``name`` and return it.

    ``model``: an ``lsc.models.StackedRNN`` or ``FFN``, a ``torch.nn.LSTM/GRU/RNN`` (or
    cell), a ``torch.nn.Linear``, or any module :func:`lsc.models.as_stack` sees.
    ``seed``: draws are reproducible (``None`` follows ``torch.manual_seed``). Options are
    the init's own (see :func:`available`); unknown ones are an error. ``horizon``: as for
    :func:`run`.

    Example::

        lsc.init.apply(torch.nn.LSTM(8, 64, 2), "chrono", t_max=784, seed=0)
    """
    return run(model, name, seed=seed, horizon=horizon, **options)[0]


def critical(
    model: nn.Module, seq_len: int, *, seed: int | None = None, horizon: int | None = None, **options: object
) -> CriticalInit:
    """Choose the critical LSTM/GRU init for ``seq_len`` steps from the mean-field theory,
    write it into ``model`` and return the per-layer choice (see :mod:`lsc.init.critical`)."""
    out = run(model, "critical", seed=seed, horizon=horizon, seq_len=seq_len, **options)[1]
    assert isinstance(out, CriticalInit)
    return out
