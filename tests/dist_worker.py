"""One rank of the distributed tests (tests/test_distributed.py), started with the torchrun
environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or alone for the
single-process reference. Writes what it ended with to OUT/rank<r>.pt.

    python tests/dist_worker.py train|pretrain|forever OUT
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import lsc
from lsc import distributed


def copy_task():
    # masked per-step targets: the shards hold different numbers of loss terms
    return lsc.tasks.get("copy", symbols=4, length=3, delay=2, train_size=96, val_size=40, test_size=40)


def main() -> int:
    mode, out = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    distributed.setup("cpu")
    r = distributed.rank()
    blob: dict[str, object] = {"world": distributed.world_size()}
    if mode == "train":
        task = copy_task()
        torch.manual_seed(1 + r)  # different start on each rank: rank 0's weights must win
        model = task.model("gru", layers=2, width=16).double()
        res = lsc.train(
            model,
            task,
            epochs=3,
            lr=3e-3,
            batch_size=32,
            clip=1.0,
            seed=3,
            eval_batch_size=20,
            progress=False,
            out=out / "run" if len(sys.argv) > 3 else None,
        )
        blob.update(
            history=res.history,
            val=res.val,
            test=res.test,
            best_epoch=res.best_epoch,
            stopped=res.stopped,
            state=model.state_dict(),
        )
    elif mode == "pretrain":
        torch.manual_seed(5 + r)
        model = lsc.models.StackedRNN("gru", input_size=3, hidden_size=12, num_layers=2)
        res = lsc.pretrain(
            model,
            None,
            target=1.0,
            kinds=["time", "depth"],
            tol=0.05,
            patience=3,
            max_steps=300,
            batch_size=8,
            time_steps=8,
            lr=3e-2,
            seed=0,
            plateau=None,
            progress=False,
        )
        blob.update(
            converged=res.converged,
            stopped=res.stopped,
            steps=res.steps,
            best_step=res.best_step,
            history=res.history,
            target=res.target,
            state=model.state_dict(),
        )
    elif mode == "forever":  # for the failure test: trains until a peer is killed
        (out / f"pid{r}").write_text(str(os.getpid()))
        task = lsc.tasks.get("adding", length=10, train_size=4096, val_size=64, test_size=64)
        model = task.model("gru", layers=1, width=16)
        lsc.train(model, task, epochs=10_000, batch_size=8, progress=False)
    else:
        raise SystemExit(f"unknown mode {mode}")
    torch.save(blob, out / f"rank{r}.pt")
    distributed.teardown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
