"""Local Jacobians as matrix-free operators, and per-sample estimators of their size.

A local Jacobian of the stability grid (docs/design.md, section 1) is J_b = d fn(p)_b / d p_b
for every sample b of a batch, where ``fn`` maps a batch of points (B, n) to a batch
of outputs (B, m) and samples do not interact (cells act row-wise). One batched
``torch.func.jvp`` therefore gives every sample's J_b v_b at once, one ``vjp`` every
J_b^T u_b: no Python loop over samples and no n x n matrix (docs/design.md, section 2).

Quantities, each per sample and differentiable with respect to the parameters
``fn`` closes over:

* ``radius``: the spectral radius rho(J) = max |lambda(J)| (Herranz-Celotti & Rouat,
  "Stabilizing RNN Gradients through Pre-training"; docs/design.md A1.2). Non-square
  Jacobians use a random square sub-matrix, as the reference code does.
* ``norm``: the spectral norm sigma_max(J).
* ``rms``: the root-mean-square singular value sqrt(||J||_F^2 / min(m, n)).

Methods: ``dense`` materialises J (products under vmap) and calls ``torch.linalg.eig``
/ matrix norms (the reference approach, exact, O(B n^3)); ``arnoldi`` runs a batched
Arnoldi iteration with full re-orthogonalisation that stops when the top Ritz value
settles (Lanczos on J^T J for the norm); ``power`` runs power iteration; matrix-free
``rms`` is exact from the smaller side's basis when that has at most ``probes``
vectors, else Hutchinson's estimator. ``auto`` is dense up to :data:`DENSE_MAX`.

Products: :meth:`LocalJacobian.linearize` runs the forward pass once and reuses its
vjp for J^T u and a second vjp through it for J v (docs/design.md section 2).

Gradients: the iteration runs without a graph; the eigenvector pair (right x, left u;
from eig for ``dense``, from a two-sided Arnoldi for ``arnoldi``) is detached and one
final vjp is differentiated, d lambda = u^T (dJ) x / (u^T x) (first-order eigenvalue
perturbation); d sigma = (Jv/|Jv|)^T (dJ) v for the norm.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jvp, vjp, vmap

from .checks import check_count, check_number, unknown_name
from .krylov import (
    arnoldi,
    eig,
    eigvals,
    finite,
    generator_device,
    lanczos,
    norm,
    normalise,
    power,
)

METHODS = ("auto", "dense", "arnoldi", "power")
QUANTITIES = ("radius", "norm", "rms")
DENSE_MAX = 64
"""``method="auto"`` materialises Jacobians whose larger side is at most this."""
DEFAULT_STEPS = 100
DEFAULT_RTOL = 1e-3
"""Arnoldi stops once the top Ritz modulus moves less than this over 5 steps."""
DEFAULT_PROBES = 8


@dataclass(frozen=True)
class LocalJacobian:
    """The per-sample Jacobian of a row-wise batched map ``fn`` at ``point``.

    ``rows``/``cols`` ((B, k) index tensors, sorted per sample) restrict each
    sample's Jacobian to a sub-matrix.
    """

    fn: Callable[[Tensor], Tensor]
    point: Tensor
    out_features: int
    rows: Tensor | None = None
    cols: Tensor | None = None

    @classmethod
    def of(cls, fn: Callable[[Tensor], Tensor], point: Tensor) -> LocalJacobian:
        """Wrap ``fn`` at ``point`` (B, n); runs ``fn`` once to learn the output width."""
        if point.dim() != 2:
            raise ValueError(f"point must be (batch, features), got shape {tuple(point.shape)}")
        point = point.detach()
        with torch.no_grad():
            out = fn(point)
        if out.dim() != 2 or out.shape[0] != point.shape[0]:
            raise ValueError(f"fn must map (B, n) to (B, m), got {tuple(point.shape)} -> {tuple(out.shape)}")
        return cls(fn, point, out.shape[1])

    @property
    def batch(self) -> int:
        return self.point.shape[0]

    @property
    def full_shape(self) -> tuple[int, int]:
        """(m, n) of the whole Jacobian, before any sub-matrix."""
        return self.out_features, self.point.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        """(m', n') of the operator (the sub-matrix if one was taken)."""
        m, n = self.full_shape
        return (m if self.rows is None else self.rows.shape[1]), (n if self.cols is None else self.cols.shape[1])

    def square(self, generator: torch.Generator | None = None, keys: Tensor | None = None) -> LocalJacobian:
        """A random square sub-matrix per sample: the larger side subsampled to the
        smaller one, without replacement and in sorted order (the reference code's
        choice, drawn independently for every sample so that batch means average over
        sub-matrices). A square Jacobian is returned unchanged. ``keys`` (B, larger side),
        when given, are the uniform draws that choose (the smallest ``k`` are kept)."""
        m, n = self.shape
        if m == n:
            return self
        k, big = min(m, n), max(m, n)
        if keys is None:
            keys = torch.rand(self.batch, big, generator=generator, device=generator_device(generator, self.point))
        elif tuple(keys.shape) != (self.batch, big):
            raise ValueError(f"keys must have shape {(self.batch, big)}, got {tuple(keys.shape)}")
        pick = keys.argsort(dim=1)[:, :k].sort(dim=1).values.to(self.point.device)
        if m > n:
            return LocalJacobian(self.fn, self.point, self.out_features, pick, self.cols)
        return LocalJacobian(self.fn, self.point, self.out_features, self.rows, pick)

    def _embed_cols(self, v: Tensor) -> Tensor:
        if self.cols is None:
            return v
        return v.new_zeros(self.point.shape).scatter(1, self.cols, v)

    def _embed_rows(self, u: Tensor) -> Tensor:
        if self.rows is None:
            return u
        return u.new_zeros(self.batch, self.out_features).scatter(1, self.rows, u)

    def _pick_rows(self, y: Tensor) -> Tensor:
        return y if self.rows is None else y.gather(1, self.rows)

    def _pick_cols(self, g: Tensor) -> Tensor:
        return g if self.cols is None else g.gather(1, self.cols)

    def matvec(self, v: Tensor) -> Tensor:
        """J_b v_b for every sample: (B, n') -> (B, m'). One batched jvp."""
        jv = jvp(self.fn, (self.point,), (self._embed_cols(v),))[1]  # (out, J v)
        return self._pick_rows(jv)

    def rmatvec(self, u: Tensor) -> Tensor:
        """J_b^T u_b for every sample: (B, m') -> (B, n'). One batched vjp."""
        return self.linearize().rmatvec(u)

    @staticmethod
    def concat(jacobians: Sequence[LocalJacobian]) -> LocalJacobian:
        """One operator over the batches of several same-shape, whole Jacobians.

        Samples never interact, so edges of different layers (different maps) can share
        one batch: the combined map sends each chunk of the batch through its own map.
        """
        first = jacobians[0]
        if any(j.rows is not None or j.cols is not None for j in jacobians):
            raise ValueError("only whole Jacobians (no sub-matrix) can be concatenated")
        if any(j.full_shape != first.full_shape for j in jacobians):
            raise ValueError(f"shapes differ: {[j.full_shape for j in jacobians]}")
        split = _Split(tuple(j.fn for j in jacobians), tuple(j.batch for j in jacobians))
        return LocalJacobian(split, torch.cat([j.point for j in jacobians]), first.out_features)

    def linearize(self) -> Linearized:
        """J frozen at ``point`` for repeated products (see :class:`Linearized`)."""
        return Linearized(self)

    def dense(self) -> Tensor:
        """The Jacobians themselves, (B, m', n'), from the cheaper of m' vjps or n' products under vmap."""
        m, n = self.shape
        lin = self.linearize()
        k = min(m, n)
        eye = torch.eye(k, device=self.point.device, dtype=self.point.dtype)
        basis = eye.unsqueeze(1).expand(k, self.batch, k)
        chunk = max(1, min(k, (1 << 24) // max(self.batch * max(self.full_shape) * 8, 1)))
        if m <= n:
            return vmap(lin.rmatvec, chunk_size=chunk)(basis).permute(1, 0, 2)  # rows of J
        return vmap(lin.matvec, chunk_size=chunk)(basis).permute(1, 2, 0)  # columns of J


@dataclass(frozen=True)
class _Split:
    """A row-wise map that sends consecutive chunks of the batch through different maps."""

    fns: tuple[Callable[[Tensor], Tensor], ...]
    sizes: tuple[int, ...]

    def __call__(self, point: Tensor) -> Tensor:
        return torch.cat([fn(part) for fn, part in zip(self.fns, torch.split(point, list(self.sizes)))])


class Linearized:
    """J at a fixed point, for many products: one forward pass and one vjp graph, reused.

    ``rmatvec`` reuses the vjp (a backward pass per call); ``matvec`` differentiates the
    linear map u -> J^T u once more (J v = d/du <J^T u, v>), which is several times
    faster than a fresh ``jvp`` per product. Built in the ambient grad mode: under
    ``torch.no_grad`` products carry no graph to the parameters; with grad enabled
    they are differentiable with respect to them.
    """

    def __init__(self, J: LocalJacobian) -> None:
        self.J = J
        self._vjp: Callable[[Tensor], tuple[Tensor]] = vjp(J.fn, J.point)[1]  # (out, pullback)
        self._jvp: Callable[[Tensor], tuple[Tensor]] | None = None

    def rmatvec(self, u: Tensor) -> Tensor:
        (g,) = self._vjp(self.J._embed_rows(u))
        return self.J._pick_cols(g)

    def matvec(self, v: Tensor) -> Tensor:
        if self._jvp is None:
            zero = self.J.point.new_zeros(self.J.batch, self.J.out_features)
            self._jvp = vjp(lambda c: self._vjp(c)[0], zero)[1]
        (jv,) = self._jvp(self.J._embed_cols(v))
        return self.J._pick_rows(jv)


def check_counts(
    steps: object = DEFAULT_STEPS, probes: object = DEFAULT_PROBES, rtol: object = DEFAULT_RTOL
) -> tuple[int, int, float]:
    """``steps`` and ``probes`` as integers >= 1 and ``rtol`` as a finite number >= 0, or a ValueError."""
    for value in (steps, probes):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"steps and probes must be >= 1 (integers), got steps={steps!r}, probes={probes!r}")
    tol = check_number(rtol, "rtol")
    if tol < 0:
        raise ValueError(f"rtol must be >= 0 (0: run every step), got {rtol!r}")
    return int(steps), int(probes), tol  # type: ignore[call-overload]


def check_choice(method: str, quantity: str) -> None:
    """Raise a ValueError with a "did you mean" hint for an unknown method or quantity."""
    if method not in METHODS:
        raise unknown_name("method", method, METHODS)
    if quantity not in QUANTITIES:
        raise unknown_name("quantity", quantity, QUANTITIES)


def _start(J: LocalJacobian, n: int, generator: torch.Generator | None, count: int | None = None) -> Tensor:
    shape = (J.batch, n) if count is None else (count, J.batch, n)
    dev = generator_device(generator, J.point)
    return torch.randn(shape, generator=generator, device=dev, dtype=J.point.dtype).to(J.point.device)


def _columns(vecs: Tensor, j: Tensor) -> Tensor:
    """Columns j_b (B, k) of each vecs_b (B, n, m) -> (B, n, k)."""
    return vecs.gather(2, j.unsqueeze(1).expand(-1, vecs.shape[1], -1))


def _top_eigenpairs(M: Tensor, k: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """The ``k`` eigenvalues theta_b (B, k) of largest modulus of each M_b (descending),
    with right eigenvectors Y (B, n, k) and left eigenvectors L (B, n, k), l_j^T M =
    theta_j l_j^T, scaled so that l_j^T y_j = 1.

    Both come from one eigendecomposition M = Y diag(lambda) Y^-1: y_j is a column of Y,
    l_j^T the same row of Y^-1 (one solve Y^T L = E). LAPACK computes Y from the Schur form,
    so an eigenvalue that is exactly representable (a diagonal, rotation-block or
    permutation matrix; docs/design.md section 4) loses nothing, where inverse iteration
    shifted by that exact value would meet a singular matrix. A defective M (Y singular)
    gives non-finite L for that sample only; callers keep the bare values there."""
    evals, vecs = eig(M)
    assert vecs is not None
    k = min(k, M.shape[-1])
    j = evals.abs().topk(k, dim=1).indices
    theta = evals.gather(1, j)
    y = _columns(vecs, j)
    e = torch.zeros_like(vecs[:, :, :k]).scatter_(1, j.unsqueeze(1), 1.0)
    left, info = torch.linalg.solve_ex(vecs.transpose(1, 2), e)
    bad = (info != 0) | ~torch.isfinite(left).all(dim=(1, 2))
    return theta, y, torch.where(bad[:, None, None], torch.full_like(left, float("nan")), left)


def _lift(V: Tensor, coeffs: Tensor) -> Tensor:
    """V (B, n, k) real times complex coefficients (B, k, ...) -> complex (B, n, ...)."""
    cdt = torch.complex128 if V.dtype == torch.float64 else torch.complex64
    return torch.einsum("bnk,bk...->bn...", V.to(cdt), coeffs.to(cdt))


def _differentiable_moduli(J: LocalJacobian, theta: Tensor, x: Tensor, u: Tensor) -> Tensor:
    """|u_j^T J x_j / u_j^T x_j| for the eigenvector pairs (x_j, u_j) (B, n, k) held fixed:
    equal to |theta_j| (B, k) in value, and the gradient of each is the first-order
    eigenvalue perturbation d lambda = u^T (dJ) x / u^T x (docs/design.md section 4).
    Pairs that are degenerate (defective J, u^T x = 0) keep |theta| with no gradient."""
    denom = (u * x).sum(1)
    ok = torch.isfinite(denom) & (denom.abs() > 0) & torch.isfinite(u).all(1) & torch.isfinite(x).all(1)
    if not bool(ok.all()):  # zero the degenerate pairs' vectors so no NaN reaches the backward pass
        u, x = torch.where(ok[:, None], u, 0), torch.where(ok[:, None], x, 0)
        denom = torch.where(ok, denom, 1)
    lin = J.linearize()
    k = u.shape[-1]
    parts = torch.cat([u.real, u.imag], dim=-1).permute(2, 0, 1).contiguous()  # (2k, B, m)
    jtu = vmap(lin.rmatvec)(parts) if k > 1 else torch.stack([lin.rmatvec(p) for p in parts])
    jtu = torch.complex(jtu[:k], jtu[k:]).permute(1, 2, 0)  # (B, n, k)
    rho = ((jtu * x).sum(1) / denom).abs()
    return torch.where(ok, rho, theta.abs().to(rho.dtype))


def _left_start(x: Tensor, J: LocalJacobian, generator: torch.Generator | None) -> Tensor:
    """The left run's start: the right Ritz vectors' real and imaginary parts summed. A
    left eigenvector u has u^T x != 0 with its right one x, and for the nearly normal
    Jacobians of trained cells u is close to x, so this start holds far more of u than a
    random vector's 1/sqrt(n); a sample whose sum vanishes starts at random."""
    s = (x.real + x.imag).sum(-1).to(J.point.dtype)
    dead = ~(s.norm(dim=1) > 0)
    if bool(dead.any()):
        s = torch.where(dead[:, None], _start(J, s.shape[1], generator), s)
    return s


def _moduli_arnoldi(J: LocalJacobian, k: int, steps: int, rtol: float, generator: torch.Generator | None) -> Tensor:
    """The ``k`` largest-modulus Ritz values of a batched Arnoldi run, (B, k).

    Without grad: their moduli. With grad: each modulus is differentiated through the vjps
    of :func:`_differentiable_moduli`, with left vectors u_j from the right run's own Ritz
    pairs where its Krylov space is the whole space (exact there), else from a second
    Arnoldi run on J^T started at the right Ritz vectors (:func:`_two_sided`).
    """
    n = J.shape[1]
    want_grad = torch.is_grad_enabled()
    with torch.no_grad():
        lin = J.linearize()
        V, H = arnoldi(lin.matvec, _start(J, n, generator), steps, tol=rtol, generator=generator)
        if not want_grad:
            return eigvals(H).abs().topk(min(k, H.shape[-1]), dim=1).values.to(J.point.dtype)
        theta, y, left = _top_eigenpairs(H, k)
        x, u = _lift(V, y), _lift(V, left)
        if H.shape[-1] < n:  # else V is square and orthogonal: its left Ritz vectors are J's own
            u = _two_sided(lin, x, u, theta, J, k, H.shape[-1], rtol, generator)
    return _differentiable_moduli(J, theta, x, u)


def _two_sided(
    lin: Linearized,
    x: Tensor,
    u: Tensor,
    theta: Tensor,
    J: LocalJacobian,
    k: int,
    steps: int,
    rtol: float,
    generator: torch.Generator | None,
) -> Tensor:
    """The left vectors u_j from an Arnoldi run on J^T of at most ``steps`` (the right
    run's length), started at the right Ritz vectors ``x`` and, for the radius (k = 1),
    stopped like the right run once its top Ritz value settles to ``rtol``; matched to the
    right run's values ``theta`` by nearest Ritz value. Where none is within 1%, the right
    run's left Ritz vector ``u`` stays. Call without a graph."""
    W, G = arnoldi(lin.rmatvec, _left_start(x, J, generator), steps, tol=rtol if k == 1 else 0.0, generator=generator)
    evals_t, vecs_t = eig(G)
    assert vecs_t is not None
    gap, j = (evals_t.unsqueeze(2) - theta.unsqueeze(1)).abs().min(dim=1)  # nearest left Ritz value
    z = _columns(vecs_t, j)
    agree = ((gap <= 1e-2 * theta.abs()) & torch.isfinite(z).all(1)).unsqueeze(1)
    return torch.where(agree, _lift(W, z), u)


def _radius_arnoldi(J: LocalJacobian, steps: int, rtol: float, generator: torch.Generator | None) -> Tensor:
    """Largest-modulus Ritz value of a batched Arnoldi run (:func:`_moduli_arnoldi`, k = 1)."""
    return _moduli_arnoldi(J, 1, steps, rtol, generator)[:, 0]


def _radius_power(J: LocalJacobian, steps: int, generator: torch.Generator | None) -> Tensor:
    """Power iteration on J; the radius is the geometric mean of the growth over the
    second half of the iterations (robust to the complex pairs at the rim).

    Its gradient is a surrogate: that of |J v| at the last iterate v, scaled to the
    estimate. It agrees with the radius gradient in sign, not closely in size (cosine
    0.5-0.7 with the dense gradient on default LSTM/GRU/Elman cells); pre-train with
    ``arnoldi`` or ``dense``.
    """
    n = J.shape[1]
    with torch.no_grad():
        v, growth, _ = power(J.linearize().matvec, _start(J, n, generator), max(steps, 2))
        rho = torch.exp(torch.stack([g.log() for g in growth[len(growth) // 2 :]]).mean(0))
        rho = finite(torch.where(growth[-1] > 0, rho, torch.zeros_like(rho)), "power iteration")
    if not torch.is_grad_enabled():
        return rho
    grow = norm(J.matvec(v))
    return grow * (rho / torch.where(grow > 0, grow, torch.ones_like(grow))).detach()


def _norm_krylov(
    J: LocalJacobian, steps: int, rtol: float, generator: torch.Generator | None, use_lanczos: bool
) -> Tensor:
    """sigma_max from Lanczos (or power iteration) on J^T J; sigma = |J v| at the top
    vector v, whose gradient (Jv/|Jv|)^T (dJ) v is exact at convergence."""
    n = J.shape[1]
    with torch.no_grad():
        lin = J.linearize()
        v0, _ = normalise(_start(J, n, generator))
        s = norm(lin.matvec(v0))  # scale J^T J by 1/s^2 so sigma^2 cannot overflow
        s = torch.where(s > 0, s, torch.ones_like(s)).unsqueeze(1)
        gram = lambda v: lin.rmatvec(lin.matvec(v) / s) / s  # noqa: E731
        if use_lanczos:
            V, T = lanczos(gram, v0, steps, tol=rtol, generator=generator)
            _, vecs = torch.linalg.eigh(T.double())
            v = torch.einsum("bnk,bk->bn", V, vecs[:, :, -1].to(V.dtype))
        else:
            v, _, _ = power(gram, v0, max(steps, 1))
        v, _ = normalise(v)
    return norm(J.matvec(v))


def _rms(J: LocalJacobian, probes: int, generator: torch.Generator | None) -> Tensor:
    """sqrt(||J||_F^2 / min(m, n)): exact from the basis of the smaller side when it has
    at most ``probes`` vectors, else Hutchinson's E|J g|^2 = ||J||_F^2 over Gaussian g."""
    m, n = J.shape
    lin = J.linearize()
    if min(m, n) <= probes:
        k = min(m, n)
        basis = torch.eye(k, device=J.point.device, dtype=J.point.dtype).unsqueeze(1).expand(k, J.batch, k)
        sq = vmap(lin.rmatvec if m <= n else lin.matvec)(basis).pow(2).sum((0, 2))
    else:
        sq = vmap(lin.matvec)(_start(J, n, generator, count=probes)).pow(2).sum(-1).mean(0)
    return (sq / min(m, n)).sqrt()


def _moduli_dense(J: LocalJacobian, k: int) -> Tensor:
    """The ``k`` largest eigenvalue moduli of the materialised Jacobians, (B, k). The gradient
    goes through the exact eigenvector pairs (:func:`_differentiable_moduli`), not through
    ``eigvals``' backward, which fails at defective matrices."""
    want_grad = torch.is_grad_enabled()
    with torch.no_grad():
        M = finite(J.dense(), "Jacobian")
        if not want_grad:
            return eigvals(M).abs().topk(min(k, M.shape[-1]), dim=1).values.to(M.dtype)
        theta, y, left = _top_eigenpairs(M, k)
        cdt = torch.complex128 if M.dtype == torch.float64 else torch.complex64
    return _differentiable_moduli(J, theta, y.to(cdt), left.to(cdt))


def _dense(J: LocalJacobian, quantity: str) -> Tensor:
    """Exact, from the materialised Jacobians."""
    if quantity == "radius":
        return _moduli_dense(J, 1)[:, 0]
    M = J.dense()
    value: Tensor
    if quantity == "norm":
        value = torch.linalg.matrix_norm(M, ord=2)
    else:
        value = torch.linalg.matrix_norm(M, ord="fro") / math.sqrt(min(M.shape[-2:]))
    return value


def moduli(
    J: LocalJacobian,
    k: int,
    method: str = "auto",
    *,
    steps: int = DEFAULT_STEPS,
    rtol: float = DEFAULT_RTOL,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The ``k`` largest eigenvalue moduli of every sample's Jacobian (its square sub-matrix),
    (B, k), descending; the first column is the spectral radius. Differentiable: each is the
    first-order perturbation of its eigenvalue (exact for ``dense``, Ritz values of the
    Krylov space for ``arnoldi``, so at most ``steps`` of them). What pre-training pushes
    down when it moves the whole spectrum (docs/design.md section 9)."""
    check_choice(method, "radius")
    steps, _, rtol = check_counts(steps, DEFAULT_PROBES, rtol)
    k = check_count(k, "k")
    J = J.square(generator)
    method = resolve_method(method, J)
    if method == "dense":
        values = _moduli_dense(J, k)
    elif method == "arnoldi":
        values = _moduli_arnoldi(J, k, steps, rtol, generator)
    else:
        raise ValueError("moduli need method dense or arnoldi (power iteration sees only the top eigenvalue)")
    return finite(values, "eigenvalue moduli")


def resolve_method(method: str, J: LocalJacobian, quantity: str = "radius", probes: int = DEFAULT_PROBES) -> str:
    """The algorithm that will run: ``auto`` is ``dense`` when the Jacobian's larger side
    is at most :data:`DENSE_MAX`; matrix-free ``rms`` is ``exact`` (small side at most
    the number of probes) or ``hutchinson``."""
    if method == "auto":
        method = "dense" if max(J.shape) <= DENSE_MAX else "arnoldi"
    if quantity == "rms" and method != "dense":
        return "exact" if min(J.shape) <= probes else "hutchinson"
    return method


def estimate(
    J: LocalJacobian,
    quantity: str = "radius",
    method: str = "auto",
    *,
    steps: int = DEFAULT_STEPS,
    rtol: float = DEFAULT_RTOL,
    probes: int = DEFAULT_PROBES,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample ``quantity`` of J, shape (B,). See the module docstring.

    ``steps``: the most Krylov (or the power) steps; ``rtol``: Arnoldi/Lanczos stop
    early once the top Ritz modulus moves by at most this (relative) over 5 steps
    (0: always run ``steps``); ``probes``: Hutchinson probes (``rms``);
    ``generator``: seeds the start vectors, probes and square sub-matrix.
    """
    check_choice(method, quantity)
    steps, probes, rtol = check_counts(steps, probes, rtol)
    if J.point.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"estimates need float32 or float64, got {J.point.dtype}; convert the model (model.float())")
    if quantity == "radius":
        J = J.square(generator)
    method = resolve_method(method, J)
    if method == "dense":
        values = _dense(J, quantity)
    elif quantity == "radius":
        values = (
            _radius_arnoldi(J, steps, rtol, generator) if method == "arnoldi" else _radius_power(J, steps, generator)
        )
    elif quantity == "norm":
        values = _norm_krylov(J, steps, rtol, generator, use_lanczos=method == "arnoldi")
    else:
        values = _rms(J, probes, generator)
    return finite(values, quantity)


@dataclass(frozen=True)
class Estimator:
    """How a per-sample quantity of a local Jacobian is estimated: the ``method`` (``auto``,
    ``dense``, ``arnoldi``, ``power``), the most Krylov (or power) ``steps``, the Arnoldi
    stopping tolerance ``rtol`` (0: always ``steps``) and the Hutchinson ``probes`` of the
    rms singular value. One value, used by :func:`lsc.measure`, :func:`lsc.pretrain`, the
    report and the command line (docs/design.md, section 3)."""

    method: str = "auto"
    steps: int = DEFAULT_STEPS
    rtol: float = DEFAULT_RTOL
    probes: int = DEFAULT_PROBES

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise unknown_name("method", self.method, METHODS)
        check_counts(self.steps, self.probes, self.rtol)

    def estimate(self, J: LocalJacobian, quantity: str = "radius", generator: torch.Generator | None = None) -> Tensor:
        """:func:`estimate` with these settings."""
        return estimate(
            J, quantity, self.method, steps=self.steps, rtol=self.rtol, probes=self.probes, generator=generator
        )

    def estimate_all(
        self, jacobians: Sequence[LocalJacobian], quantity: str = "radius", generator: torch.Generator | None = None
    ) -> list[Tensor]:
        """:func:`estimate_all` with these settings."""
        return estimate_all(
            jacobians, quantity, self.method, steps=self.steps, rtol=self.rtol, probes=self.probes, generator=generator
        )

    def resolve(self, J: LocalJacobian, quantity: str = "radius") -> str:
        """The algorithm that will run on J (see :func:`resolve_method`)."""
        return resolve_method(self.method, J, quantity, self.probes)


MEMORY_BUDGET = 1 << 28
"""Bytes a matrix-free estimate may spend on its Krylov basis; larger batches are split."""


def rows_within_budget(size: int, steps: int = DEFAULT_STEPS, element_size: int = 4) -> int:
    """How many samples of a Jacobian whose larger side is ``size`` one matrix-free
    estimator call may take within :data:`MEMORY_BUDGET` (two Krylov bases of
    ``steps + 1`` vectors)."""
    per_row = 2 * (min(steps, size) + 1) * size * element_size
    return max(1, MEMORY_BUDGET // per_row)


def estimate_all(
    jacobians: Sequence[LocalJacobian],
    quantity: str = "radius",
    method: str = "auto",
    *,
    generator: torch.Generator | None = None,
    **options: object,
) -> list[Tensor]:
    """:func:`estimate` for many Jacobians, batching same-shape whole ones into shared
    calls of at most :func:`rows_within_budget` samples (fewer Python-level Krylov loops).

    Radii take each Jacobian's square sub-matrix first (drawn from ``generator`` in
    order); sub-matrices are estimated on their own. Returns one (B_i,) tensor each.
    """
    check_choice(method, quantity)
    check_counts(
        options.get("steps", DEFAULT_STEPS), options.get("probes", DEFAULT_PROBES), options.get("rtol", DEFAULT_RTOL)
    )
    ops = [J.square(generator) if quantity == "radius" else J for J in jacobians]
    groups: dict[tuple[object, ...], list[list[int]]] = {}
    for i, J in enumerate(ops):
        whole = J.rows is None and J.cols is None
        key = (J.full_shape, J.point.dtype, J.point.device) if whole else ("alone", i)
        chunks = groups.setdefault(key, [[]])
        steps = int(options.get("steps", DEFAULT_STEPS))  # type: ignore[call-overload]
        limit = rows_within_budget(max(J.full_shape), steps, J.point.element_size())
        if chunks[-1] and sum(ops[m].batch for m in chunks[-1]) + J.batch > limit:
            chunks.append([])
        chunks[-1].append(i)
    out: list[Tensor | None] = [None] * len(ops)
    for chunks in groups.values():
        for members in chunks:
            J = ops[members[0]] if len(members) == 1 else LocalJacobian.concat([ops[i] for i in members])
            values = estimate(J, quantity, method, generator=generator, **options)  # type: ignore[arg-type]
            for i, v in zip(members, torch.split(values, [ops[i].batch for i in members])):
                out[i] = v
    return out  # type: ignore[return-value]
