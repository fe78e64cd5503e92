"""lsc.krylov, by properties (hypothesis): Arnoldi, Lanczos and power iteration against
``torch.linalg.eigvals`` on random, defective, normal and nilpotent matrices
(docs/design.md sections 3 and 4).

Every example is a batch of small float64 matrices of one kind, each sample its own
problem. Tolerances follow the perturbation theory of each kind: a diagonalisable
eigenvalue moves by O(eps |A|) under rounding, one in a Jordan block of size k by
O((eps |A|)^(1/k)), for torch's reference as much as for the Krylov estimate. A broken
iteration (a lost re-orthogonalisation, a wrong Hessenberg entry, a mixed-up sample)
misses by O(|A|).
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsc.jacobian import LocalJacobian, estimate
from lsc.krylov import FIRST_ROOM, arnoldi, lanczos, power

EPS = torch.finfo(torch.float64).eps
KINDS = ("random", "defective", "normal", "nilpotent")
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def orthogonal(n: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def matrix(kind: str, n: int, g: torch.Generator) -> tuple[torch.Tensor, int]:
    """A matrix of ``kind`` and the size of its largest Jordan block (1: diagonalisable)."""
    if kind == "random":
        return torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n), 1
    q = orthogonal(n, g)
    if kind == "defective":  # one Jordan block of size k at a real lambda, a diagonal beside it
        k = int(torch.randint(2, n + 1, (), generator=g))
        core = torch.diag(torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1)
        lam = float(torch.rand((), generator=g, dtype=torch.float64)) * 2 - 1
        core[:k, :k] = lam * torch.eye(k, dtype=torch.float64) + torch.diag(torch.ones(k - 1, dtype=torch.float64), 1)
        return q @ core @ q.T, k
    if kind == "normal":  # rotation-scaling 2x2 blocks (complex pairs) and reals, orthogonally mixed
        core = torch.zeros(n, n, dtype=torch.float64)
        for i in range(0, n - 1, 2):
            a, b = (torch.randn(2, generator=g, dtype=torch.float64)).tolist()
            core[i : i + 2, i : i + 2] = torch.tensor([[a, -b], [b, a]], dtype=torch.float64)
        if n % 2:
            core[-1, -1] = float(torch.randn((), generator=g, dtype=torch.float64))
        return q @ core @ q.T, 1
    if kind == "nilpotent":  # strictly upper triangular, orthogonally mixed: one block of size n
        u = torch.triu(torch.randn(n, n, generator=g, dtype=torch.float64), 1)
        return q @ u @ q.T, n
    raise ValueError(kind)


def batch(kind: str, n: int, size: int, seed: int) -> tuple[torch.Tensor, int]:
    """``size`` matrices of ``kind`` (size, n, n) and their largest Jordan block."""
    g = torch.Generator().manual_seed(seed)
    mats, blocks = zip(*(matrix(kind, n, g) for _ in range(size)))
    return torch.stack(mats), max(blocks)


def apply(A: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The batched operator v_b -> A_b v_b."""
    return torch.einsum("bij,bj->bi", A, v)


def top_modulus(A: torch.Tensor) -> torch.Tensor:
    return torch.linalg.eigvals(A).abs().amax(-1)


def tolerance(A: torch.Tensor, block: int) -> torch.Tensor:
    """How far a backward-stable eigenvalue may move on A (per sample): 10 (n eps)^(1/k) |A|."""
    n = A.shape[-1]
    return 10 * (n * EPS) ** (1 / block) * torch.linalg.matrix_norm(A, ord=2)


cases = st.tuples(st.sampled_from(KINDS), st.integers(2, 7), st.integers(1, 3), st.integers(0, 2**31 - 1))


@FAST
@given(cases)
def test_full_arnoldi_is_an_orthogonal_similarity_with_the_same_spectrum(case):
    kind, n, size, seed = case
    A, block = batch(kind, n, size, seed)
    v0 = torch.randn(size, n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    V, H = arnoldi(partial(apply, A), v0, n)
    scale = torch.linalg.matrix_norm(A, ord=2).clamp_min(1e-300)
    assert V.shape == (size, n, n) and H.shape == (size, n, n)
    assert torch.allclose(V.mT @ V, torch.eye(n, dtype=torch.float64).expand(size, n, n), atol=1e-12)
    assert (torch.linalg.matrix_norm(A @ V - V @ H) <= 1e-12 * scale * n).all()  # A V = V H
    assert (torch.tril(H, -2) == 0).all()  # upper Hessenberg
    gap = (top_modulus(H) - top_modulus(A)).abs()
    assert (gap <= 2 * tolerance(A, block)).all(), (kind, gap, tolerance(A, block))


@pytest.mark.parametrize("kind", ["random", "defective"])
def test_a_run_past_the_first_room_grows_its_basis_and_stays_exact(kind):
    """The basis starts with room for FIRST_ROOM vectors and doubles: a full run on an 80-wide
    matrix (room 32, 64, 80) is still an orthogonal similarity with A's spectrum."""
    n = 80
    assert n > 2 * FIRST_ROOM
    A, block = batch(kind, n, 2, seed=3)
    v0 = torch.randn(2, n, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    V, H = arnoldi(partial(apply, A), v0, n)
    assert V.shape == (2, n, n) and H.shape == (2, n, n)
    assert torch.allclose(V.mT @ V, torch.eye(n, dtype=torch.float64).expand(2, n, n), atol=1e-10)
    assert (torch.linalg.matrix_norm(A @ V - V @ H) <= 1e-10 * torch.linalg.matrix_norm(A, ord=2) * n).all()
    assert (torch.tril(H, -2) == 0).all()
    assert ((top_modulus(H) - top_modulus(A)).abs() <= 2 * tolerance(A, block)).all()


@FAST
@given(st.sampled_from(("defective", "nilpotent", "normal")), st.integers(2, 7), st.integers(0, 2**31 - 1))
def test_arnoldi_through_a_breakdown_still_spans_the_space(kind, n, seed):
    """A start vector in an invariant subspace (an eigenvector, the kernel of a nilpotent
    map): Arnoldi restarts with a fresh direction, and H keeps A's spectrum."""
    A, block = batch(kind, n, 1, seed)
    q = torch.linalg.eig(A[0])[1][:, 0].real  # an eigenvector (exact for a real eigenvalue)
    start = q if kind != "normal" else torch.linalg.eigh(A[0] @ A[0].T)[1][:, -1]
    V, H = arnoldi(partial(apply, A), start.unsqueeze(0), n, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(V.mT @ V, torch.eye(n, dtype=torch.float64).unsqueeze(0), atol=1e-10)
    assert (torch.linalg.matrix_norm(A @ V - V @ H) <= 1e-10 * torch.linalg.matrix_norm(A, ord=2)).all()
    assert ((top_modulus(H) - top_modulus(A)).abs() <= 2 * tolerance(A, block)).all()


@FAST
@given(st.integers(3, 8), st.integers(1, 3), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_truncated_arnoldi_on_a_normal_matrix_stays_inside_its_spectral_radius(n, size, steps, seed):
    """Ritz values of a normal matrix lie in the convex hull of its eigenvalues."""
    A, _ = batch("normal", n, size, seed)
    v0 = torch.randn(size, n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    _, H = arnoldi(partial(apply, A), v0, min(steps, n))
    assert (top_modulus(H) <= top_modulus(A) * (1 + 1e-10) + 1e-12).all()


@FAST
@given(st.sampled_from(KINDS), st.integers(2, 7), st.integers(1, 3), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_lanczos_ritz_values_interlace_and_are_exact_on_the_whole_space(kind, n, size, steps, seed):
    M, _ = batch(kind, n, size, seed)
    S = M + M.mT  # symmetric
    v0 = torch.randn(size, n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    _, T = lanczos(partial(apply, S), v0, min(steps, n))
    scale = torch.linalg.matrix_norm(S, ord=2).unsqueeze(-1)
    assert (torch.triu(T, 2).abs() <= 1e-10 * scale.unsqueeze(-1)).all()  # tridiagonal
    ritz, exact = torch.linalg.eigvalsh(T), torch.linalg.eigvalsh(S)
    slack = 1e-10 * scale
    assert (ritz.amax(-1, keepdim=True) <= exact.amax(-1, keepdim=True) + slack).all()
    assert (ritz.amin(-1, keepdim=True) >= exact.amin(-1, keepdim=True) - slack).all()
    if T.shape[-1] == n:
        assert torch.allclose(ritz, exact, atol=1e-9 * float(scale.max()))


@FAST
@given(st.integers(2, 8), st.integers(1, 3), st.booleans(), st.integers(0, 2**31 - 1))
def test_power_iteration_finds_a_dominant_eigenvalue(n, size, negative, seed):
    """Symmetric with |lambda_1| >= 1.5 |lambda_2|: 80 steps give lambda_1 to 1e-8."""
    g = torch.Generator().manual_seed(seed)
    d = torch.rand(size, n, generator=g, dtype=torch.float64) * 2 - 1
    d[:, 0] = 1.5 * d[:, 1:].abs().amax(-1).clamp_min(0.1) * (-1 if negative else 1)
    Q = torch.stack([orthogonal(n, g) for _ in range(size)])
    A = Q @ torch.diag_embed(d) @ Q.mT
    _, growth, rayleigh = power(partial(apply, A), torch.randn(size, n, generator=g, dtype=torch.float64), 80)
    assert torch.allclose(rayleigh[-1], d[:, 0], rtol=1e-8)
    assert torch.allclose(growth[-1], d[:, 0].abs(), rtol=1e-8)
    assert torch.allclose(top_modulus(A), d[:, 0].abs(), rtol=1e-10)


@FAST
@given(st.sampled_from(("normal", "nilpotent")), st.integers(2, 7), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_power_iteration_growth_is_bounded_and_a_nilpotent_map_dies(kind, n, size, seed):
    """|A v| <= |A|_2 = rho(A) for a normal A; a strictly upper triangular N has N^n = 0
    exactly, so the growth of step n is exactly 0."""
    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        A, _ = batch("normal", n, size, seed)
    else:
        A = torch.triu(torch.randn(size, n, n, generator=g, dtype=torch.float64), 1)
    _, growth, _ = power(partial(apply, A), torch.randn(size, n, generator=g, dtype=torch.float64), n + 2)
    if kind == "normal":
        assert all((gr <= top_modulus(A) * (1 + 1e-10)).all() for gr in growth)
    else:
        assert all((gr == 0).all() for gr in growth[n - 1 :])


@FAST
@given(st.sampled_from(KINDS), st.integers(2, 7), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_the_radius_and_norm_estimators_match_eigvals_and_svdvals(kind, n, size, seed):
    """``jacobian.estimate`` on a linear map, with as many Arnoldi/Lanczos steps as the
    dimension: the spectral radius of torch.linalg.eigvals and the top singular value."""
    A, block = batch(kind, n, size, seed)
    J = LocalJacobian.of(partial(apply, A), torch.zeros(size, n, dtype=torch.float64))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        radius = estimate(J, "radius", "arnoldi", steps=n, rtol=0, generator=g)
        sigma = estimate(J, "norm", "arnoldi", steps=n, rtol=0, generator=g)
    assert ((radius - top_modulus(A)).abs() <= 2 * tolerance(A, block)).all(), (kind, radius, top_modulus(A))
    assert torch.allclose(sigma, torch.linalg.matrix_norm(A, ord=2), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_the_tolerances_catch_a_broken_arnoldi(kind):
    """The bounds above are tight enough to matter: dropping the sub-diagonal of H (a
    classic indexing slip) misses the spectrum by more than the tolerance on every kind."""
    A, block = batch(kind, 6, 3, 7)
    v0 = torch.randn(3, 6, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    _, H = arnoldi(partial(apply, A), v0, 6)
    broken = torch.triu(H)
    assert ((top_modulus(broken) - top_modulus(A)).abs() > 2 * tolerance(A, block)).any()
