"""Critical initialisation of LSTM and GRU layers from their mean-field theory (Gilboa et al.
2019; init_theories.md A.7). The recipe, for a task of ``seq_len`` steps:

1. Memory: the forget gate (GRU: update gate z) gets small weight variances
   (sigma_f^2 = rho_f^2 = ``gate_var``, default 0.1, nu_f = 0) and the smallest bias mu_f
   whose time scale xi_forget = -1/ln E[sigma(u^f)^2] is at least seq_len / ``kappa``
   (default 6: the trainability depth of Schoenholz et al. 2017, ~6 xi). mu_f is found
   by bisection with the largest pre-activation variance the gate can see (|h| <= 1, so
   Sigma^f <= sigma_f^2 + rho_f^2 q_x): the bound holds whatever the rest of the layer does.
2. Isometry: the other gates' recurrent variance s (sigma_i^2 = sigma_g^2 = sigma_o^2 = s;
   GRU: sigma_r^2 = sigma_n^2 = s; input variances rho^2 = 1, biases 0) is chosen by
   bisection in [0, ``max_scale``] so that the partial Jacobian's mean squared singular
   value m1 is as close as it gets to ``m1`` (default 1: criticality). m1 is a mean over
   the spectrum; the LSC's radius is its edge, so a critical layer's measured time-edge
   radius sits a little above 1 (1.05 for a width-128 LSTM at seq_len 784, 1.01 at
   m1 = 0.993; docs/design.md). With a long memory
   the leak diagonal alone gives m1 ~ 1 - 1/xi, so s is small or, for the GRU whose write
   path is scaled by (1 - z), pinned at the bound with m1 = E[z^2] just below 1.
3. Depth: layer l > 0 sees layer l - 1's output, whose second moment is that layer's Q^h,
   so the theory runs layer by layer with q_x of layer l = Q^h of layer l - 1.
4. Weights: per gate, W_hh block = sigma_k x Haar orthogonal (entries of variance
   sigma_k^2 / n; ``recurrent="gaussian"`` draws N(0, sigma_k^2 / n) instead), W_ih block
   ~ N(0, rho_k^2 / m), bias_ih block ~ N(mu_k, nu_k^2), bias_hh = 0.

The theory is the wide-network limit with weights redrawn every step (Chen et al. 2018;
Gilboa et al. 2019). A real network reuses its weights, which makes its trajectory
correlated in time: measured at width 1024, m1 stays within 1% of the theory, but with a
strong forget gate the cell variance is well above the theory's (see docs/design.md).
Check the result with :func:`lsc.init.check_lsc` or pre-train it with :func:`lsc.pretrain`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..models.torch_layout import TorchLayoutCell
from . import draws
from .classical import NotApplicable
from .meanfield import GateInit, MeanField, expectation, gru, lstm, sigmoid
from .units import Unit, gate_names, gate_rows


@dataclass(frozen=True)
class LayerChoice:
    """What :func:`choose` picked for one layer and what the theory predicts for it."""

    layer: int
    cell: str
    q_x: float
    gates: dict[str, GateInit]
    theory: MeanField


@dataclass(frozen=True)
class CriticalInit:
    """The critical init of a model: per-layer gate hyperparameters and their theory."""

    seq_len: int
    kappa: float
    layers: list[LayerChoice]

    def __str__(self) -> str:
        lines = [f"critical init for seq_len={self.seq_len} (xi_forget >= {self.seq_len / self.kappa:.1f})"]
        lines.append(
            f"{'layer':>5} {'cell':<5} {'q_x':>7} {'mu_keep':>8} {'scale':>6} "
            f"{'xi_forget':>10} {'m1':>7} {'spread':>8} {'Q_h':>7}"
        )
        for c in self.layers:
            keep = "f" if c.cell == "lstm" else "z"
            write = "g" if c.cell == "lstm" else "n"
            t = c.theory
            lines.append(
                f"{c.layer:>5} {c.cell:<5} {c.q_x:7.3f} {c.gates[keep].mu:8.3f} {c.gates[write].sigma2:6.3f} "
                f"{t.xi_forget:10.1f} {t.m1:7.4f} {t.spread:8.5f} {t.q_h:7.4f}"
            )
        return "\n".join(lines)


def _keep_bias(xi: float, variance: float) -> float:
    """Smallest mu with -1/ln E[sigma(mu + sqrt(variance) Z)^2] >= xi (bisection)."""
    goal = math.exp(-1.0 / xi)
    lo, hi = -10.0, 40.0
    if expectation(lambda u: sigmoid(u) ** 2, hi, variance) < goal:
        raise ValueError(f"no forget-gate bias reaches a time scale of {xi:.0f} steps; lower seq_len or raise kappa")
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if expectation(lambda u: sigmoid(u) ** 2, mid, variance) >= goal:
            hi = mid
        else:
            lo = mid
    return hi


def choose(
    cell: str,
    seq_len: int,
    *,
    q_x: float = 1.0,
    kappa: float = 6.0,
    m1: float = 1.0,
    gate_var: float = 0.1,
    max_scale: float = 4.0,
    layer: int = 0,
) -> LayerChoice:
    """Critical gate hyperparameters of one LSTM or GRU layer (see module docstring)."""
    if cell not in ("lstm", "gru"):
        raise ValueError(f"the critical init is for lstm and gru layers, got {cell!r}")
    keep, others = ("f", ("i", "g", "o")) if cell == "lstm" else ("z", ("r", "n"))
    theory = lstm if cell == "lstm" else gru
    mu = _keep_bias(seq_len / kappa, gate_var * (1.0 + q_x))

    def gates(s: float) -> dict[str, GateInit]:
        out = {k: GateInit(sigma2=s, rho2=1.0) for k in others}
        out[keep] = GateInit(sigma2=gate_var, rho2=gate_var, mu=mu)
        return out

    lo, hi = 0.0, max_scale
    best = theory(gates(hi), q_x=q_x)
    if best.m1 > m1:
        low = theory(gates(lo), q_x=q_x)
        if low.m1 >= m1:
            hi, best = lo, low
        else:
            for _ in range(40):
                mid = 0.5 * (lo + hi)
                t = theory(gates(mid), q_x=q_x)
                if t.m1 > m1:
                    hi = mid
                else:
                    lo = mid
            best = theory(gates(hi), q_x=q_x)
    return LayerChoice(layer, cell, q_x, gates(hi), best)


def _cell_kind(unit: Unit) -> str:
    m = unit.module
    names = gate_names(m) if unit.kind == "gated" and isinstance(m, TorchLayoutCell) else ()
    if names == ("i", "f", "g", "o"):
        return "lstm"
    if names == ("r", "z", "n"):
        return "gru"
    raise NotApplicable("the critical init is derived for LSTM and GRU cells")


def write_gates(cell: TorchLayoutCell, gates: dict[str, GateInit], gen: torch.Generator, recurrent: str) -> None:
    """Write per-gate hyperparameters into a PyTorch-layout cell (step 4 of the recipe)."""
    n, m = cell.weight_hh.shape[1], cell.weight_ih.shape[1]
    bias = torch.zeros(cell.weight_ih.shape[0], dtype=torch.float64)
    for name in gate_names(cell):
        g, rows = gates[name], gate_rows(cell, name)
        if recurrent == "orthogonal":
            draws.orthogonal(cell.weight_hh[rows], math.sqrt(g.sigma2), gen)
        else:
            draws.normal(cell.weight_hh[rows], math.sqrt(g.sigma2 / n), gen)
        draws.normal(cell.weight_ih[rows], math.sqrt(g.rho2 / m), gen)
        bias[rows] = g.mu + math.sqrt(g.nu2) * torch.randn(rows.stop - rows.start, generator=gen, dtype=torch.float64)
    if cell.bias_ih is not None and cell.bias_hh is not None:  # cell.bias, spelled out for the type checker
        draws.put(cell.bias_ih, bias)
        draws.constant(cell.bias_hh, 0.0)
    elif any(g.mu != 0 or g.nu2 != 0 for g in gates.values()):
        raise NotApplicable("the critical init sets gate biases, and this layer was built with bias=False")


def critical_units(
    units: list[Unit],
    gen: torch.Generator,
    *,
    seq_len: int | None = None,
    q_x: float = 1.0,
    kappa: float = 6.0,
    m1: float = 1.0,
    gate_var: float = 0.1,
    max_scale: float = 4.0,
    recurrent: str = "orthogonal",
) -> CriticalInit:
    """Choose and write the critical init of every recurrent layer of a model."""
    if seq_len is None:
        raise ValueError("the critical init needs seq_len=: the number of steps the memory must cover")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be an integer >= 1, got {seq_len!r}")
    for name, v in (("kappa", kappa), ("m1", m1), ("gate_var", gate_var), ("max_scale", max_scale)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if recurrent not in ("orthogonal", "gaussian"):
        raise ValueError(f"recurrent must be 'orthogonal' or 'gaussian', got {recurrent!r}")
    layers = [u for u in units if u.role == "layer"]
    kinds = []
    for u in layers:  # every check before anything is written
        try:
            kinds.append(_cell_kind(u))
            m = u.module
            assert isinstance(m, TorchLayoutCell)  # _cell_kind passed: a gated unit
            if m.weight_hh.shape[0] // m.gates != m.weight_hh.shape[1]:
                raise NotApplicable("the critical init needs a square recurrent matrix per gate (no proj_size)")
        except NotApplicable as exc:
            exc.unit = u
            raise
    choices = []
    for i, (u, kind) in enumerate(zip(layers, kinds)):
        c = choose(kind, seq_len, q_x=q_x, kappa=kappa, m1=m1, gate_var=gate_var, max_scale=max_scale, layer=i)
        assert isinstance(u.module, TorchLayoutCell)  # checked in the loop above
        write_gates(u.module, c.gates, gen, recurrent)
        choices.append(c)
        q_x = c.theory.q_h
    return CriticalInit(seq_len, kappa, choices)
