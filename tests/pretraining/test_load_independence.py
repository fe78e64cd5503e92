"""Step budgets make the init a function of the seed alone: the same pre-training under a
competing CPU load gives the same weights and radii as on an idle machine (issue 18.2)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import lsc
from lsc.models import StackedRNN


def _pretrained() -> tuple[dict[str, torch.Tensor], list[float]]:
    torch.manual_seed(0)
    model = StackedRNN("gru", 4, 16, 2, 3)
    res = lsc.pretrain(
        model, None, target=0.5, kinds=["time", "depth"], max_steps=10, tol=0.0, time_steps=12, progress=False
    )  # tol 0: never converges, always the full 10 steps
    assert res.steps == 10 and res.stopped == "max_steps"
    x = torch.randn(8, 20, 4, generator=torch.Generator().manual_seed(5))
    radii = [e.mean for e in lsc.measure(model, x, estimator="dense", kinds=["time", "depth"]).edges]
    return {k: v.clone() for k, v in model.state_dict().items()}, radii


@pytest.mark.integration
def test_the_same_seed_gives_the_same_init_on_an_idle_and_a_loaded_machine():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread against one competing process: slow, not oversubscribed
    try:
        idle_state, idle_radii = _pretrained()
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            loaded_state, loaded_radii = _pretrained()
        finally:
            burner.kill()
            burner.wait()
    finally:
        torch.set_num_threads(threads)
    assert max(abs(a - b) for a, b in zip(idle_radii, loaded_radii)) <= 1e-6
    assert all(torch.equal(idle_state[k], loaded_state[k]) for k in idle_state)
