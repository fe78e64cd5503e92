"""Data-parallel plumbing for ``torchrun`` (and for process groups the user started).

``lsc train`` / ``lsc pretrain`` started by ``torchrun`` find ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK`` in the environment, :func:`setup` initialises the process group (nccl on
CUDA, gloo on CPU) and picks the device (``LOCAL_RANK`` -> ``cuda:LOCAL_RANK``). Without
those variables nothing here does anything and the single-process path is untouched.

Gradients are averaged with one flat ``all_reduce`` per step (:func:`all_reduce_grads`),
metric tallies and stopping decisions with :func:`all_reduce_floats`, so every rank holds
the same weights and takes the same decisions. A peer that dies makes the next collective
fail; :func:`collective` turns that into a :class:`DistributedError` naming the failure
(gloo notices a closed connection at once; a silent peer is caught by the process-group
timeout, ``LSC_DIST_TIMEOUT`` seconds, default 300).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import timedelta

import torch
from torch import Tensor, nn
from torch import distributed as dist


class DistributedError(RuntimeError):
    """A collective operation failed: another process stopped or cannot be reached."""


def launched() -> bool:
    """Whether this process was started by torchrun (or an equivalent launcher) with
    more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and "RANK" in os.environ


def active() -> bool:
    """Whether a process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def resolve(distributed: bool | None) -> bool:
    """``None``: use the process group when one is active; ``True``: require one."""
    if distributed is None:
        return active()
    if distributed and not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "distributed=True but no process group is initialised; start the script with torchrun "
            "or call torch.distributed.init_process_group (or lsc.distributed.setup()) first"
        )
    return bool(distributed) and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """Rank 0 (or a single process): the one that writes files and progress."""
    return rank() == 0


def select_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` under torchrun means
    ``cuda:LOCAL_RANK``; anything else is passed to ``torch.device``."""
    spec = "auto" if spec is None else spec
    text = str(spec)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise ValueError(f"unknown device {spec!r}; use auto, cpu or cuda") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda asked for, but this torch has no CUDA device; use cpu or auto")
        if dev.index is None:
            dev = torch.device("cuda", local_rank() if launched() else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    return dev


def timeout() -> timedelta:
    return timedelta(seconds=float(os.environ.get("LSC_DIST_TIMEOUT", "300")))


def setup(device: str | torch.device | None = "auto") -> torch.device:
    """Initialise the process group from the torchrun environment (when there is one and
    none is initialised yet) and return this rank's device."""
    dev = select_device(device)
    if launched() and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend=backend, timeout=timeout())
        except Exception as exc:  # rendezvous errors come in many types
            raise DistributedError(f"could not join the process group ({backend}): {exc}") from exc
    return dev


def teardown() -> None:
    """Destroy the process group (when one is initialised)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _fail(what: str, exc: BaseException) -> DistributedError:
    return DistributedError(
        f"rank {rank()} of {world_size()}: {what} failed, another process stopped or cannot be reached "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    )


def all_reduce_floats(values: Sequence[float], op: str = "sum", device: torch.device | None = None) -> list[float]:
    """Sum (or max) a few numbers over all ranks, in float64."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device(device))
    try:
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    except Exception as exc:
        raise _fail("all_reduce", exc) from exc
    return t.cpu().tolist()


def all_reduce_grads(params: Iterable[nn.Parameter], *, average: bool) -> None:
    """Sum (``average``: mean) the gradients of ``params`` over all ranks in one flat
    buffer; a parameter without a gradient counts as zeros."""
    params = list(params)
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    try:
        dist.all_reduce(flat)
    except Exception as exc:
        raise _fail("the gradient all_reduce", exc) from exc
    if average:
        flat /= world_size()
    i = 0
    for p in params:
        n = p.numel()
        p.grad = flat[i : i + n].view_as(p).clone()
        i += n


def broadcast_module(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank."""
    try:
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src)
    except Exception as exc:
        raise _fail("broadcast", exc) from exc


def barrier() -> None:
    try:
        dist.barrier()
    except Exception as exc:
        raise _fail("barrier", exc) from exc


def shard(x: Tensor | None, index: int | None = None, count: int | None = None) -> Tensor | None:
    """This rank's contiguous slice of a global batch along dim 0 (sizes differ by at
    most one; a rank may get an empty slice)."""
    if x is None:
        return None
    r = rank() if index is None else index
    w = world_size() if count is None else count
    n = x.shape[0]
    lo, hi = (n * r) // w, (n * (r + 1)) // w
    return x[lo:hi]


def _comm_device(device: torch.device | None) -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return (
            device
            if device is not None and device.type == "cuda"
            else torch.device("cuda", torch.cuda.current_device())
        )
    return torch.device("cpu")
