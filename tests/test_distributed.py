"""Data-parallel training and pre-training (lsc.distributed): 2 gloo processes on CPU with a
local rendezvous on 127.0.0.1, each a tests/dist_worker.py started with the environment
torchrun gives its workers (the slow tests go through torchrun itself)."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lsc import distributed

HERE = Path(__file__).parent
WORKER = HERE / "dist_worker.py"
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(OMP_NUM_THREADS="1", LSC_DIST_TIMEOUT="60", **extra)
    return env


def start(mode: str, out: Path, world: int) -> list[subprocess.Popen]:
    out.mkdir(parents=True, exist_ok=True)
    port = str(free_port())
    procs = []
    for r in range(world):
        extra = (
            {}
            if world == 1
            else dict(
                WORLD_SIZE=str(world),
                RANK=str(r),
                LOCAL_RANK=str(r),
                LOCAL_WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
            )
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), mode, str(out)],
                env=_env(**extra),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> None:
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, o in zip(procs, outs):
        assert p.returncode == 0, o[-3000:]


def load(out: Path, rank: int) -> dict:
    return torch.load(out / f"rank{rank}.pt", weights_only=False)


def same_state(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_single_process_untouched(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not distributed.launched() and not distributed.active()
    assert distributed.resolve(None) is False and distributed.rank() == 0 and distributed.is_main()
    with pytest.raises(ValueError, match="no process group"):
        distributed.resolve(True)
    assert distributed.select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        distributed.select_device("tpu9")
    x = torch.arange(7)
    parts = [distributed.shard(x, r, 3) for r in range(3)]
    assert torch.equal(torch.cat(parts), x) and [len(p) for p in parts] == [2, 2, 3]


@pytest.mark.integration
def test_training_on_two_ranks_equals_one_process_on_the_global_batch(tmp_path):
    two, one = start("train", tmp_path / "two", 2), start("train", tmp_path / "one", 1)
    finish(two)
    finish(one)
    r0, r1, single = load(tmp_path / "two", 0), load(tmp_path / "two", 1), load(tmp_path / "one", 0)
    assert r0["world"] == 2 and single["world"] == 1
    assert same_state(r0["state"], r1["state"]) == 0.0  # identical weights on both ranks
    assert same_state(r0["state"], single["state"]) < 1e-10  # float64 model: summation order only
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop(r0["history"]) == drop(r1["history"])  # the same reduced metrics on both ranks
    assert (r0["best_epoch"], r0["stopped"]) == (single["best_epoch"], single["stopped"])
    for a, b in zip(r0["history"], single["history"]):
        for key, value in b.items():
            if key != "seconds":  # the loss tallies are float32 sums in another order
                assert math.isclose(a[key], value, rel_tol=1e-6, abs_tol=1e-9), (key, a[key], value)


@pytest.mark.integration
def test_pretraining_on_two_ranks_stops_together_with_identical_weights(tmp_path):
    finish(start("pretrain", tmp_path, 2))
    r0, r1 = load(tmp_path, 0), load(tmp_path, 1)
    assert r0["converged"] and r1["converged"]
    assert (r0["steps"], r0["best_step"]) == (r1["steps"], r1["best_step"])
    assert same_state(r0["state"], r1["state"]) == 0.0
    assert r0["history"][-1]["radii"] == r1["history"][-1]["radii"]  # the reduced radii
    for value in r0["history"][-1]["radii"].values():
        assert abs(value - 1.0) < 0.15


@pytest.mark.integration
def test_a_killed_rank_fails_the_job_quickly_with_a_clear_message(tmp_path):
    procs = start("forever", tmp_path, 2)
    try:
        deadline = time.time() + 60
        while not all((tmp_path / f"pid{r}").exists() for r in range(2)):
            assert time.time() < deadline and all(p.poll() is None for p in procs), "the workers did not start"
            time.sleep(0.1)
        time.sleep(1.0)  # both are training now
        os.kill(int((tmp_path / "pid1").read_text()), signal.SIGKILL)
        t0 = time.time()
        out, _ = procs[0].communicate(timeout=60)
        assert time.time() - t0 < 30
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert procs[0].returncode != 0
    assert "DistributedError" in out and "another process stopped or cannot be reached" in out, out[-2000:]


def _torchrun(port: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        *args,
    ]


@pytest.mark.integration
@pytest.mark.slow
def test_cli_under_torchrun_then_resumed_by_one_process(tmp_path):
    task = [
        "--task",
        "copy",
        "-o",
        "symbols=4",
        "-o",
        "length=3",
        "-o",
        "delay=2",
        "-o",
        "train_size=96",
        "-o",
        "val_size=40",
        "-o",
        "test_size=40",
        "--layers",
        "1",
        "--width",
        "16",
        "--batch-size",
        "32",
        "--pretrain",
        "1",
        "--pretrain-steps",
        "10",
        "--out",
        str(tmp_path / "run"),
        "--device",
        "cpu",
    ]
    run = subprocess.run(
        _torchrun(free_port(), "-m", "lsc", "train", *task, "--epochs", "2"),
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("val accuracy") == 1  # rank 0 alone prints
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    again = subprocess.run(
        [sys.executable, "-m", "lsc", "train", *task, "--epochs", "3"],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stderr
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.integration
@pytest.mark.slow
def test_torchrun_reports_a_killed_rank(tmp_path):
    p = subprocess.Popen(
        _torchrun(free_port(), str(WORKER), "forever", str(tmp_path)),
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while not all((tmp_path / f"pid{r}").exists() for r in range(2)):
            assert time.time() < deadline and p.poll() is None, "the workers did not start"
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(int((tmp_path / "pid1").read_text()), signal.SIGKILL)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    assert p.returncode != 0
    assert "ChildFailedError" in out and "SIGKILL" in out, out[-2000:]


def test_bf16_autocast_trains_on_cpu(tmp_path):
    import lsc

    task = lsc.tasks.get("adding", length=10, train_size=128, val_size=32, test_size=32)
    torch.manual_seed(0)
    model = task.model("gru", layers=1, width=16)
    res = lsc.train(model, task, epochs=2, batch_size=32, lr=1e-2, amp="bf16", progress=False, out=tmp_path)
    assert (
        res.stopped == "epochs"
        and math.isfinite(res.val)
        and res.history[-1]["train_loss"] < res.history[0]["train_loss"] * 1.5
    )
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay float32
    assert '"amp": "bf16"' in (tmp_path / "config.json").read_text()
    with pytest.raises(ValueError, match="amp"):
        lsc.train(model, task, epochs=1, amp="fp8", progress=False)
