"""Local Jacobians as matrix-free operators, and per-sample estimators of their size.

A local Jacobian of the stability grid (DESIGN.md section 1) is J_b = d fn(p)_b / d p_b
for every sample b of a batch, where ``fn`` maps a batch of points (B, n) to a batch
of outputs (B, m) and samples do not interact (cells act row-wise). One batched
``torch.func.jvp`` therefore gives every sample's J_b v_b at once, one ``vjp`` every
J_b^T u_b: no Python loop over samples and no n x n matrix (DESIGN.md section 2).

Quantities, each per sample and differentiable with respect to the parameters
``fn`` closes over:

* ``radius``: the spectral radius rho(J) = max |lambda(J)| (Herranz-Celotti & Rouat,
  "Stabilizing RNN Gradients through Pre-training"; lsc_paper.md 1.2). Non-square
  Jacobians use a random square sub-matrix, as the reference code does.
* ``norm``: the spectral norm sigma_max(J).
* ``rms``: the root-mean-square singular value sqrt(||J||_F^2 / min(m, n)).

Methods: ``dense`` materialises J (jvp under vmap) and calls ``torch.linalg.eigvals``
/ ``svdvals`` (the reference approach, exact, O(B n^3)); ``arnoldi`` runs a batched
Arnoldi iteration with full re-orthogonalisation (Lanczos on J^T J for the norm);
``power`` runs power iteration; ``rms`` uses Hutchinson's estimator with Gaussian
probes for every matrix-free method. ``auto`` is dense up to :data:`DENSE_MAX`.

Gradients of matrix-free estimates: the Krylov iteration runs without a graph; the
Ritz pair (right vector x, left vector u) is detached and one final jvp is
differentiated, d lambda = u^T (dJ) x / (u^T x) (first-order eigenvalue
perturbation), and d sigma = (Jv/|Jv|)^T (dJ) v for the norm.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jvp, vjp, vmap

from .checks import unknown_name

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

    ``rows``/``cols`` (sorted index tensors) restrict it to a sub-matrix.
    """

    fn: Callable[[Tensor], Tensor]
    point: Tensor
    out_features: int
    rows: Tensor | None = None
    cols: Tensor | None = None

    @classmethod
    def of(cls, fn: Callable[[Tensor], Tensor], point: Tensor) -> "LocalJacobian":
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
        return (m if self.rows is None else len(self.rows)), (n if self.cols is None else len(self.cols))

    def square(self, generator: torch.Generator | None = None) -> "LocalJacobian":
        """A random square sub-matrix: the larger side subsampled to the smaller one,
        without replacement and in sorted order (as the reference code does).
        A square Jacobian is returned unchanged."""
        m, n = self.shape
        if m == n:
            return self
        k = min(m, n)
        pick = torch.randperm(max(m, n), generator=generator, device=generator_device(generator, self.point))
        pick = pick[:k].sort().values.to(self.point.device)
        if m > n:
            return LocalJacobian(self.fn, self.point, self.out_features, pick, self.cols)
        return LocalJacobian(self.fn, self.point, self.out_features, self.rows, pick)

    def _embed_cols(self, v: Tensor) -> Tensor:
        if self.cols is None:
            return v
        return v.new_zeros(v.shape[:-1] + (self.point.shape[1],)).index_copy(-1, self.cols, v)

    def _embed_rows(self, u: Tensor) -> Tensor:
        if self.rows is None:
            return u
        return u.new_zeros(u.shape[:-1] + (self.out_features,)).index_copy(-1, self.rows, u)

    def _pick_rows(self, y: Tensor) -> Tensor:
        return y if self.rows is None else y.index_select(-1, self.rows)

    def _pick_cols(self, g: Tensor) -> Tensor:
        return g if self.cols is None else g.index_select(-1, self.cols)

    def matvec(self, v: Tensor) -> Tensor:
        """J_b v_b for every sample: (B, n') -> (B, m'). One batched jvp."""
        _, jv = jvp(self.fn, (self.point,), (self._embed_cols(v),))
        return self._pick_rows(jv)

    def rmatvec(self, u: Tensor) -> Tensor:
        """J_b^T u_b for every sample: (B, m') -> (B, n'). One batched vjp."""
        return self.linearize().rmatvec(u)

    def linearize(self) -> "Linearized":
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
        _, self._vjp = vjp(J.fn, J.point)
        self._jvp: Callable[[Tensor], tuple[Tensor]] | None = None

    def rmatvec(self, u: Tensor) -> Tensor:
        (g,) = self._vjp(self.J._embed_rows(u))
        return self.J._pick_cols(g)

    def matvec(self, v: Tensor) -> Tensor:
        if self._jvp is None:
            zero = self.J.point.new_zeros(self.J.batch, self.J.out_features)
            _, self._jvp = vjp(lambda c: self._vjp(c)[0], zero)
        (jv,) = self._jvp(self.J._embed_cols(v))
        return self.J._pick_rows(jv)


def generator_device(generator: torch.Generator | None, like: Tensor) -> torch.device:
    """The device random draws must be made on for ``generator`` (its own, or ``like``'s)."""
    return generator.device if generator is not None else like.device


def _check_choice(method: str, quantity: str) -> None:
    if method not in METHODS:
        raise unknown_name("method", method, METHODS)
    if quantity not in QUANTITIES:
        raise unknown_name("quantity", quantity, QUANTITIES)


def _start(J: LocalJacobian, n: int, generator: torch.Generator | None, count: int | None = None) -> Tensor:
    shape = (J.batch, n) if count is None else (count, J.batch, n)
    dev = generator_device(generator, J.point)
    return torch.randn(shape, generator=generator, device=dev, dtype=J.point.dtype).to(J.point.device)


def arnoldi(
    matvec: Callable[[Tensor], Tensor],
    v0: Tensor,
    steps: int,
    *,
    tol: float = 0.0,
    check_every: int = 5,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Batched Arnoldi with full (twice classical Gram-Schmidt) re-orthogonalisation.

    Returns V (B, n, k) with orthonormal columns and H (B, k, k) = V^T A V, upper
    Hessenberg, k <= min(steps, n). With ``tol > 0`` it stops early, every
    ``check_every`` steps, once the largest Ritz modulus of 90% of the samples moved
    by at most ``tol`` (relative) since the last check (checked on at most 32 samples,
    an even spread of the batch, to keep the small eigenproblems cheap). A sample whose Krylov space
    becomes invariant continues with a fresh random direction (its sub-diagonal entry
    is 0), so H stays the exact projection of A and its eigenvalues stay Ritz values.
    Call it without a graph (it uses no autograd).
    """
    B, n = v0.shape
    kmax = min(steps, n)
    eps, tiny = torch.finfo(v0.dtype).eps, torch.finfo(v0.dtype).tiny
    V = v0.new_zeros(B, kmax, n)  # basis vectors as rows: V[:, :j] is a strided batch of blocks
    V[:, 0] = v0 / v0.norm(dim=1, keepdim=True).clamp_min(tiny)
    H = v0.new_zeros(B, kmax, kmax)

    def orthogonalise(w: Tensor, Vj: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.bmm(Vj, w.unsqueeze(2))
        w = w - torch.bmm(Vj.transpose(1, 2), h).squeeze(2)
        h2 = torch.bmm(Vj, w.unsqueeze(2))
        return w - torch.bmm(Vj.transpose(1, 2), h2).squeeze(2), (h + h2).squeeze(2)

    k, last = kmax, None
    watch = torch.linspace(0, B - 1, min(B, 32), device=v0.device).long()
    for j in range(kmax):
        w = matvec(V[:, j])
        scale = w.norm(dim=1)
        w, H[:, : j + 1, j] = orthogonalise(w, V[:, : j + 1])
        if j + 1 == kmax:
            break
        beta = w.norm(dim=1)
        broke = beta <= 64 * eps * scale
        if bool(broke.any()):  # invariant subspace: continue with a random orthogonal direction
            fresh = torch.randn(w.shape, generator=generator, device=generator_device(generator, w), dtype=w.dtype)
            fresh, _ = orthogonalise(fresh.to(w.device), V[:, : j + 1])
            w = torch.where(broke.unsqueeze(1), fresh, w)
            beta = torch.where(broke, torch.zeros_like(beta), beta)
        H[:, j + 1, j] = beta
        V[:, j + 1] = w / w.norm(dim=1, keepdim=True).clamp_min(tiny)
        if tol > 0 and (j + 1) % check_every == 0:
            top = torch.linalg.eigvals(H[watch, : j + 1, : j + 1].double()).abs().amax(dim=1)
            if last is not None:
                moved = (top - last).abs() / top.clamp_min(tiny)
                if float(torch.quantile(moved, 0.9)) <= tol:
                    k = j + 1
                    break
            last = top
    return V[:, :k].transpose(1, 2), H[:, :k, :k]


def _top_ritz(H: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Ritz value of largest modulus of each H_b, with its right and left eigenvectors
    (y, l) normalised so that l^T y = 1 (l is the row of Y^-1, H = Y diag Y^-1)."""
    evals, Y = torch.linalg.eig(H.double())
    idx = evals.abs().argmax(dim=1)
    k = H.shape[-1]
    theta = evals.gather(1, idx[:, None]).squeeze(1)
    y = Y.gather(2, idx[:, None, None].expand(-1, k, 1)).squeeze(2)
    e = torch.zeros(H.shape[0], k, 1, dtype=Y.dtype, device=Y.device).scatter_(1, idx[:, None, None], 1.0)
    left = torch.linalg.solve(Y.transpose(1, 2), e).squeeze(2)
    return theta, y, left


def _lift(V: Tensor, coeffs: Tensor) -> Tensor:
    """V (B, n, k) real times complex coefficients (B, k) -> complex (B, n)."""
    cdt = torch.complex128 if V.dtype == torch.float64 else torch.complex64
    return torch.einsum("bnk,bk->bn", V.to(cdt), coeffs.to(cdt))


def _radius_arnoldi(J: LocalJacobian, steps: int, rtol: float, generator: torch.Generator | None) -> Tensor:
    """Largest-modulus Ritz value of a batched Arnoldi run.

    Without grad: |theta| of the Krylov space of J. With grad: a second Arnoldi run on
    J^T gives the left vector u (the left Ritz vector of the first run when the two
    runs disagree), and rho = |u^T J x / u^T x| is differentiated through one vjp.
    """
    n = J.shape[1]
    want_grad = torch.is_grad_enabled()
    with torch.no_grad():
        lin = J.linearize()
        V, H = arnoldi(lin.matvec, _start(J, n, generator), steps, tol=rtol, generator=generator)
        if not want_grad:
            return torch.linalg.eigvals(H.double()).abs().amax(dim=1).to(J.point.dtype)
        theta, y, left = _top_ritz(H)
        x, u = _lift(V, y), _lift(V, left)
        W, G = arnoldi(lin.rmatvec, _start(J, n, generator), H.shape[-1], generator=generator)
        evals_t, Z = torch.linalg.eig(G.double())
        gap, j = (evals_t - theta[:, None]).abs().min(dim=1)
        z = Z.gather(2, j[:, None, None].expand(-1, Z.shape[1], 1)).squeeze(2)
        agree = (gap <= 1e-2 * theta.abs()).unsqueeze(1)
        u = torch.where(agree, _lift(W, z), u)
    lin = J.linearize()  # with grad: the final product is differentiable in the parameters
    jtu = torch.complex(lin.rmatvec(u.real.contiguous()), lin.rmatvec(u.imag.contiguous()))
    rho = ((jtu * x).sum(1) / (u * x).sum(1)).abs()
    ok = torch.isfinite(rho)
    return rho if bool(ok.all()) else torch.where(ok, rho, theta.abs().to(rho.dtype))


def _radius_power(J: LocalJacobian, steps: int, generator: torch.Generator | None) -> Tensor:
    """Power iteration on J; the radius is the geometric mean of the growth over the
    second half of the iterations (robust to the complex pairs at the rim)."""
    n = J.shape[1]
    tiny = torch.finfo(J.point.dtype).tiny
    with torch.no_grad():
        mv = J.linearize().matvec
        v = _start(J, n, generator)
        v = v / v.norm(dim=1, keepdim=True)
        logs = []
        for _ in range(max(steps, 2)):
            w = mv(v)
            nrm = w.norm(dim=1)
            logs.append(torch.log(nrm.clamp_min(tiny)))
            v = w / nrm.clamp_min(tiny).unsqueeze(1)
        rho = torch.exp(torch.stack(logs[len(logs) // 2 :]).mean(0))
        rho = torch.where(nrm > tiny, rho, torch.zeros_like(rho))
    if not torch.is_grad_enabled():
        return rho
    growth = J.matvec(v).norm(dim=1)
    return growth * (rho / growth.clamp_min(tiny)).detach()


def _norm_krylov(J: LocalJacobian, steps: int, rtol: float, generator: torch.Generator | None, lanczos: bool) -> Tensor:
    """sigma_max from Lanczos (or power iteration) on J^T J; sigma = |J v| at the top vector."""
    n = J.shape[1]
    tiny = torch.finfo(J.point.dtype).tiny
    with torch.no_grad():
        lin = J.linearize()
        gram = lambda v: lin.rmatvec(lin.matvec(v))  # noqa: E731
        if lanczos:
            V, H = arnoldi(gram, _start(J, n, generator), steps, tol=rtol, generator=generator)
            _, vecs = torch.linalg.eigh(0.5 * (H + H.transpose(1, 2)).double())
            v = torch.einsum("bnk,bk->bn", V, vecs[:, :, -1].to(V.dtype))
        else:
            v = _start(J, n, generator)
            for _ in range(max(steps, 1)):
                v = gram(v / v.norm(dim=1, keepdim=True).clamp_min(tiny))
        v = v / v.norm(dim=1, keepdim=True).clamp_min(tiny)
    return J.matvec(v).norm(dim=1)


def _rms_hutchinson(J: LocalJacobian, probes: int, generator: torch.Generator | None) -> Tensor:
    """sqrt(E|J g|^2 / min(m, n)) over Gaussian probes g: E|J g|^2 = ||J||_F^2 (Hutchinson)."""
    m, n = J.shape
    g = _start(J, n, generator, count=probes)
    sq = vmap(J.linearize().matvec)(g).pow(2).sum(-1).mean(0)
    return (sq / min(m, n)).sqrt()


def _dense(J: LocalJacobian, quantity: str) -> Tensor:
    M = J.dense()
    if quantity == "radius":
        return torch.linalg.eigvals(M).abs().amax(dim=-1)
    if quantity == "norm":
        return torch.linalg.matrix_norm(M, ord=2)
    return torch.linalg.matrix_norm(M, ord="fro") / math.sqrt(min(M.shape[-2:]))


def resolve_method(method: str, J: LocalJacobian) -> str:
    """``auto`` -> ``dense`` when the Jacobian's larger side is at most :data:`DENSE_MAX`."""
    if method == "auto":
        return "dense" if max(J.shape) <= DENSE_MAX else "arnoldi"
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
    _check_choice(method, quantity)
    if steps < 1 or probes < 1:
        raise ValueError(f"steps and probes must be >= 1, got steps={steps}, probes={probes}")
    if quantity == "radius":
        J = J.square(generator)
    method = resolve_method(method, J)
    if method == "dense":
        return _dense(J, quantity)
    if quantity == "radius":
        return _radius_arnoldi(J, steps, rtol, generator) if method == "arnoldi" else _radius_power(J, steps, generator)
    if quantity == "norm":
        return _norm_krylov(J, steps, rtol, generator, lanczos=method == "arnoldi")
    return _rms_hutchinson(J, probes, generator)


def spectral_radius(J: LocalJacobian, method: str = "auto", **options: object) -> Tensor:
    """Per-sample spectral radius max |lambda(J_b)| (random square sub-matrix if J is not square)."""
    return estimate(J, "radius", method, **options)  # type: ignore[arg-type]


def spectral_norm(J: LocalJacobian, method: str = "auto", **options: object) -> Tensor:
    """Per-sample largest singular value of J_b."""
    return estimate(J, "norm", method, **options)  # type: ignore[arg-type]


def rms_singular_value(J: LocalJacobian, method: str = "auto", **options: object) -> Tensor:
    """Per-sample sqrt(||J_b||_F^2 / min(m, n)), the rms of the singular values."""
    return estimate(J, "rms", method, **options)  # type: ignore[arg-type]
