"""Mean-field theory of signal propagation in LSTMs and GRUs (Gilboa et al. 2019,
"Dynamical Isometry and a Mean Field Theory of LSTMs and GRUs"; init_theories.md A.4-A.6).

Wide random network, width n -> infinity. Gate k has recurrent weights with entries of
variance sigma_k^2 / n, input weights of variance rho_k^2 / m, a bias with mean mu_k and
variance nu_k^2; inputs are i.i.d. over time with per-coordinate second moment q_x. Each
pre-activation is Gaussian across units:

    u^k ~ N(mu_k, Sigma^k),   Sigma^k = sigma_k^2 Q^h + rho_k^2 q_x + nu_k^2.

LSTM (state c; the cell is closed as c ~ N(0, Q^c)):

    Q^c' = F Q^c + I G,   Q^h = O E[tanh(c)^2],    F = E sigma(u^f)^2, I = E sigma(u^i)^2,
                                                   G = E tanh(u^g)^2,  O = E sigma(u^o)^2

GRU (PyTorch form h' = (1 - z) n + z h, n = tanh(a + r v), v = U_n h):

    Q' = E[z^2] Q + E[(1 - z)^2] E[n^2].

Every expectation is a Gauss-Hermite quadrature. At the fixed point:

* the partial state-to-state Jacobian is J = D0 + S G Dh (G Ginibre with variance 1/n;
  LSTM: c -> c with o held; GRU: h -> h, Dh = I), whose mean squared singular value is
  m1 = <d0^2> + <s^2><dh^2> and second moment
  m2 = <d0^4> + 2<d0^2 s^2><dh^2> + 2<s^2><d0^2><dh^2> + <s^4><dh^2>^2 + <s^2>^2<dh^4>;
* chi is the slope of the covariance map of two copies that differ in their past and then
  see the same inputs, linearised at the fixed point with Price's theorem
  (dE[phi(u_a)psi(u_b)]/dSigma^ab = E[phi' psi']); xi = -1/ln chi is the memory time scale
  (infinite when chi >= 1). For the LSTM the map has two coordinates (C^c, C^h), the second
  through the output gate, and chi is the spectral radius of its 2 x 2 slope; with
  sigma_o = 0 it equals m1.
* xi_forget = -1/ln E[sigma(u^f)^2] (GRU: E[z^2]) is the leading, forget-gate-only term.

Approximations (the mean-field ones): unit-wise independence of a step's gates from the
previous state, biases redrawn per step ("annealed"), and the Gaussian closure of c.
They are tested against a width-1024 simulation in ``tests/test_init.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

LSTM_GATES = ("i", "f", "g", "o")
GRU_GATES = ("r", "z", "n")


def sigmoid(u: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise (via tanh: no overflow)."""
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def _dsig(u: np.ndarray) -> np.ndarray:
    s = sigmoid(u)
    return s * (1 - s)


def _dtanh(u: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(u) ** 2


def gauss(dims: int, points: int = 48) -> tuple[list[np.ndarray], np.ndarray]:
    """Nodes and weights of a ``dims``-dimensional standard-normal Gauss-Hermite rule with
    ``points`` nodes per axis: E[f(Z_1..Z_d)] = sum w f(z) for independent Z_i ~ N(0, 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    weights = weights / math.sqrt(2 * math.pi)
    grids = np.meshgrid(*([nodes] * dims), indexing="ij")
    w = weights
    for _ in range(dims - 1):
        w = np.multiply.outer(w, weights)
    return [g.ravel() for g in grids], w.ravel()


_Z1, _W1 = gauss(1)
_Z2, _W2 = gauss(2)


def expectation(fn, mean: float, var: float) -> float:
    """E[fn(u)] for u ~ N(mean, var)."""
    return float(np.dot(_W1, fn(mean + math.sqrt(max(var, 0.0)) * _Z1[0])))


@dataclass(frozen=True)
class GateInit:
    """Init hyperparameters of one gate: recurrent weight variance sigma2 (x 1/n), input
    weight variance rho2 (x 1/m), bias mean mu and bias variance nu2."""

    sigma2: float = 1.0
    rho2: float = 1.0
    mu: float = 0.0
    nu2: float = 0.0

    def __post_init__(self) -> None:
        for name in ("sigma2", "rho2", "nu2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not (isinstance(self.mu, (int, float)) and math.isfinite(self.mu)):
            raise ValueError(f"mu must be a finite number, got {self.mu!r}")

    def variance(self, q_h: float, q_x: float) -> float:
        """Sigma^k = sigma_k^2 Q^h + rho_k^2 q_x + nu_k^2."""
        return self.sigma2 * q_h + self.rho2 * q_x + self.nu2


@dataclass(frozen=True)
class MeanField:
    """Fixed point and Jacobian statistics of a wide random LSTM or GRU.

    ``q_state``: fixed-point second moment of the recurrent state (LSTM: c, GRU: h);
    ``q_h``: of the output h; ``m1``, ``m2``: first two moments of the squared singular
    values of the partial state-to-state Jacobian; ``spread`` = m2 - m1^2 (0 is isometry);
    ``chi`` and ``xi``: slope of the covariance map and memory time scale -1/ln chi;
    ``xi_forget``: the forget-gate (GRU: update-gate) time scale alone; ``iterations``:
    evaluations of the variance map the fixed point took.
    """

    cell: str
    q_state: float
    q_h: float
    m1: float
    m2: float
    chi: float
    xi: float
    xi_forget: float
    iterations: int
    gates: dict[str, GateInit] = field(default_factory=dict)
    q_x: float = 1.0

    @property
    def spread(self) -> float:
        return self.m2 - self.m1**2

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["spread"] = self.spread
        return d


def _time_scale(chi: float) -> float:
    return math.inf if chi >= 1.0 else (0.0 if chi <= 0.0 else -1.0 / math.log(chi))


def _gates(names: tuple[str, ...], given: dict[str, GateInit | dict | None]) -> dict[str, GateInit]:
    bad = sorted(set(given) - set(names))
    if bad:
        raise ValueError(f"unknown gate(s) {bad}; this cell's gates are {list(names)}")
    out = {}
    for k in names:
        g = given.get(k)
        out[k] = g if isinstance(g, GateInit) else GateInit(**(g or {}))
    return out


def _check_qx(q_x: float) -> float:
    if not (isinstance(q_x, (int, float)) and math.isfinite(q_x) and q_x >= 0):
        raise ValueError(f"q_x (input second moment) must be a finite number >= 0, got {q_x!r}")
    return float(q_x)


def _fixed_point(step, tol: float, max_iter: int) -> tuple[float, int]:
    """The fixed point q* = step(q*) >= 0 of a forward variance map, by bisection on
    step(q) - q (positive at 0, negative far out: the map's slope is below 1 there).
    Bisection, not iteration: with a forget gate near 1 iteration needs ~1/(1 - F) steps."""
    lo, g_lo = 0.0, step(0.0)
    if g_lo <= 0.0:
        return 0.0, 1
    hi, calls = 1.0, 1
    while step(hi) - hi > 0:
        lo, hi, calls = hi, 2 * hi, calls + 1
        if hi > 1e12 or calls > max_iter:
            raise ValueError("the mean-field variance map diverges; reduce the weight variances or the forget bias")
    while hi - lo > tol * max(1.0, hi) and calls < max_iter:
        mid = 0.5 * (lo + hi)
        if step(mid) - mid > 0:
            lo = mid
        else:
            hi = mid
        calls += 1
    return 0.5 * (lo + hi), calls


def lstm(
    gates: Mapping[str, GateInit | dict | None] | None = None,
    *,
    q_x: float = 1.0,
    tol: float = 1e-12,
    max_iter: int = 400,
    **per_gate: float,
) -> MeanField:
    """Mean-field fixed point, Jacobian moments and time scales of a wide random LSTM.

    Gates are named i, f, g, o (PyTorch's order); give them as ``gates={"f": GateInit(mu=5)}``
    or as flat keywords ``mu_f=5, sigma2_f=0.5, rho2_g=1, nu2_i=0`` (unnamed values take the
    :class:`GateInit` defaults: sigma2 = rho2 = 1, mu = nu2 = 0).
    """
    g = _gates(LSTM_GATES, _merge(LSTM_GATES, gates, per_gate))
    q_x = _check_qx(q_x)
    gi, gf, gg, go = (g[k] for k in LSTM_GATES)

    def q_h_of(q_c: float) -> float:  # h depends on c at the same step: iterate on c alone
        t2 = expectation(lambda u: np.tanh(u) ** 2, 0.0, q_c)
        q_h = 0.0
        for _ in range(200):  # Q^h = O(Sigma^o(Q^h)) t2: a contraction (O <= 1, dO/dQ small)
            new = expectation(lambda u: sigmoid(u) ** 2, go.mu, go.variance(q_h, q_x)) * t2
            if abs(new - q_h) < 1e-14:
                break
            q_h = new
        return new

    def step(q_c: float) -> float:
        q_h = q_h_of(q_c)
        F = expectation(lambda u: sigmoid(u) ** 2, gf.mu, gf.variance(q_h, q_x))
        I = expectation(lambda u: sigmoid(u) ** 2, gi.mu, gi.variance(q_h, q_x))
        G = expectation(lambda u: np.tanh(u) ** 2, gg.mu, gg.variance(q_h, q_x))
        return F * q_c + I * G

    q_c, iters = _fixed_point(step, tol, max_iter)
    q_h = q_h_of(q_c)
    sf, si, sg, so = (k.variance(q_h, q_x) for k in (gf, gi, gg, go))
    F = expectation(lambda u: sigmoid(u) ** 2, gf.mu, sf)
    F4 = expectation(lambda u: sigmoid(u) ** 4, gf.mu, sf)
    I = expectation(lambda u: sigmoid(u) ** 2, gi.mu, si)
    G = expectation(lambda u: np.tanh(u) ** 2, gg.mu, sg)
    O = expectation(lambda u: sigmoid(u) ** 2, go.mu, so)
    dF2 = expectation(lambda u: _dsig(u) ** 2, gf.mu, sf)
    dI2 = expectation(lambda u: _dsig(u) ** 2, gi.mu, si)
    dG2 = expectation(lambda u: _dtanh(u) ** 2, gg.mu, sg)
    dO2 = expectation(lambda u: _dsig(u) ** 2, go.mu, so)
    T2 = expectation(lambda u: np.tanh(u) ** 2, 0.0, q_c)
    dT2 = expectation(lambda u: _dtanh(u) ** 2, 0.0, q_c)
    # rows of J: d0 = sigma(f); s^2 = sf2 c^2 sigma'(f)^2 + si2 tanh(g)^2 sigma'(i)^2 + sg2 sigma(i)^2 tanh'(g)^2
    # columns: dh = sigma(o_prev) tanh'(c)
    dh2 = O * dT2
    dh4 = expectation(lambda u: sigmoid(u) ** 4, go.mu, so) * expectation(lambda u: _dtanh(u) ** 4, 0.0, q_c)
    s2 = gf.sigma2 * q_c * dF2 + gi.sigma2 * G * dI2 + gg.sigma2 * I * dG2
    # <s^4> and <d0^2 s^2>: c, f, (i, g) are independent per unit; expand the square
    c4 = 3 * q_c**2  # Gaussian closure
    a_f = gf.sigma2 * expectation(lambda u: _dsig(u) ** 4, gf.mu, sf) * c4
    zi, zg = _Z2
    ui = gi.mu + math.sqrt(si) * zi
    ug = gg.mu + math.sqrt(sg) * zg
    b = gi.sigma2 * np.tanh(ug) ** 2 * _dsig(ui) ** 2 + gg.sigma2 * sigmoid(ui) ** 2 * _dtanh(ug) ** 2
    b1, b2 = float(np.dot(_W2, b)), float(np.dot(_W2, b**2))
    s4 = gf.sigma2 * a_f + 2 * gf.sigma2 * q_c * dF2 * b1 + b2
    d0s2 = gf.sigma2 * q_c * expectation(lambda u: sigmoid(u) ** 2 * _dsig(u) ** 2, gf.mu, sf) + F * b1
    m1 = F + s2 * dh2
    m2 = F4 + 2 * d0s2 * dh2 + 2 * s2 * F * dh2 + s4 * dh2**2 + s2**2 * dh4
    # slope of the covariance map in (C^c, C^h), Price's theorem at the fixed point
    K = gf.sigma2 * q_c * dF2 + gi.sigma2 * G * dI2 + I * gg.sigma2 * dG2
    M = np.array([[F, K], [O * dT2 * F, go.sigma2 * dO2 * T2 + O * dT2 * K]])
    chi = float(max(abs(np.linalg.eigvals(M))))
    return MeanField("lstm", q_c, q_h, m1, m2, chi, _time_scale(chi), _time_scale(F), iters, g, q_x)


def gru(
    gates: Mapping[str, GateInit | dict | None] | None = None,
    *,
    q_x: float = 1.0,
    tol: float = 1e-12,
    max_iter: int = 400,
    **per_gate: float,
) -> MeanField:
    """Mean-field fixed point, Jacobian moments and time scales of a wide random GRU
    (PyTorch's reset-after form; the n-gate bias sits outside r, as :func:`lsc.init.apply`
    with ``"critical"`` writes it). Gates are named r, z, n; keywords as in :func:`lstm`."""
    g = _gates(GRU_GATES, _merge(GRU_GATES, gates, per_gate))
    q_x = _check_qx(q_x)
    gr, gz, gn = (g[k] for k in GRU_GATES)
    z3 = gauss(3, 32)  # (u^r, v, a) for the candidate n = tanh(a + r v)

    def candidate(q: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        zr, zv, za = z3[0]
        r = sigmoid(gr.mu + math.sqrt(gr.variance(q, q_x)) * zr)
        v = math.sqrt(gn.sigma2 * q) * zv
        u = gn.mu + math.sqrt(gn.rho2 * q_x + gn.nu2) * za + r * v
        return r, v, u, z3[1]

    def step(q: float) -> float:
        sz = gz.variance(q, q_x)
        Z2 = expectation(lambda u: sigmoid(u) ** 2, gz.mu, sz)
        Y2 = expectation(lambda u: (1 - sigmoid(u)) ** 2, gz.mu, sz)
        # given r, a + r v ~ N(mu_n, rho_n^2 q_x + nu_n^2 + r^2 sigma_n^2 q): a 2-D rule suffices
        zr, zw = _Z2
        r = sigmoid(gr.mu + math.sqrt(gr.variance(q, q_x)) * zr)
        u = gn.mu + np.sqrt(gn.rho2 * q_x + gn.nu2 + r**2 * gn.sigma2 * q) * zw
        return Z2 * q + Y2 * float(np.dot(_W2, np.tanh(u) ** 2))

    q, iters = _fixed_point(step, tol, max_iter)
    sz = gz.variance(q, q_x)
    r, v, u, w = candidate(q)
    N2 = float(np.dot(w, np.tanh(u) ** 2))
    Z2 = expectation(lambda u: sigmoid(u) ** 2, gz.mu, sz)
    # rows of J (Dh = I): d0 = z; s^2 = sz2 (h - n)^2 sigma'(z)^2 + (1 - z)^2 tanh'(u)^2 (sn2 r^2 + sr2 v^2 sigma'(r)^2)
    dr = _dsig(gr.mu + math.sqrt(gr.variance(q, q_x)) * z3[0][0])
    cand = _dtanh(u) ** 2 * (gn.sigma2 * r**2 + gr.sigma2 * v**2 * dr**2)  # over (r, v, a)
    c1, c2 = float(np.dot(w, cand)), float(np.dot(w, cand**2))
    hn2 = q + N2  # E (h - n)^2, h and n independent, mean zero
    hn4 = 3 * q**2 + 6 * q * N2 + float(np.dot(w, np.tanh(u) ** 4))  # E (h - n)^4
    uz = gz.mu + math.sqrt(sz) * _Z1[0]
    zv, dz = sigmoid(uz), _dsig(uz)

    def E2(f: np.ndarray) -> float:  # over u^z
        return float(np.dot(_W1, f))

    s2 = gz.sigma2 * hn2 * E2(dz**2) + E2((1 - zv) ** 2) * c1
    s4 = (
        gz.sigma2**2 * hn4 * E2(dz**4)
        + 2 * gz.sigma2 * E2(dz**2 * (1 - zv) ** 2) * (q * c1 + float(np.dot(w, np.tanh(u) ** 2 * cand)))
        + E2((1 - zv) ** 4) * c2
    )
    d0s2 = gz.sigma2 * hn2 * E2(zv**2 * dz**2) + E2(zv**2 * (1 - zv) ** 2) * c1
    m1 = Z2 + s2
    m2 = E2(zv**4) + 2 * d0s2 + 2 * s2 * Z2 + s4 + s2**2
    # covariance-map slope (the state enters z, r and the candidate; Price's theorem) is
    # Z2 + sz2 E[sigma'(z)^2] E(h - n)^2 + E(1 - z)^2 E[cand] = m1, as Dh = I
    chi = m1
    return MeanField("gru", q, q, m1, m2, chi, _time_scale(chi), _time_scale(Z2), iters, g, q_x)


def _merge(
    names: tuple[str, ...], gates: Mapping[str, GateInit | dict | None] | None, flat: dict[str, float]
) -> dict[str, GateInit | dict | None]:
    """Combine ``gates=`` with flat ``mu_f=...`` keywords (flat ones win)."""
    out: dict[str, dict] = {}
    for k, v in (gates or {}).items():
        out[k] = asdict(v) if isinstance(v, GateInit) else dict(v or {})
    fields = ("sigma2", "rho2", "mu", "nu2")
    for key, value in flat.items():
        name, _, gate = key.rpartition("_")
        if name not in fields or gate not in names:
            raise ValueError(
                f"unknown mean-field option {key!r}: use <{'|'.join(fields)}>_<gate> with gate in {list(names)}, "
                f"e.g. mu_{names[1]}=5"
            )
        out.setdefault(gate, {})[name] = value
    return out  # type: ignore[return-value]
