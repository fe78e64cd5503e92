"""PretrainConfig and TrainConfig: each setting's default written once, every bad value a
ValueError naming its field, settings by name with unknown names refused, the deprecated
estimator keywords mapped in one place; and the code rules that keep it so."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import lsc
from lsc.jacobian import Estimator
from lsc.models import StackedRNN
from lsc.pretraining import PretrainConfig
from lsc.pretraining.config import configure
from lsc.pretraining.step import PRETRAINING_ESTIMATOR, TIME_KRYLOV_STEPS
from lsc.train import TrainConfig

SRC = Path(lsc.__file__).parent


def tiny() -> StackedRNN:
    torch.manual_seed(0)
    return StackedRNN("gru", input_size=3, hidden_size=4, num_layers=2)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("tol", -0.1, "tol must be >= 0"),
        ("tol", "a", "tol must be a finite number"),
        ("patience", 0, "patience must be an integer >= 1"),
        ("max_steps", 2.5, "max_steps must be an integer >= 1"),
        ("max_seconds", -1, "max_seconds must be a finite number > 0"),
        ("lr", 0, "lr must be a finite number > 0"),
        ("plateau", 0, "plateau must be an integer >= 1"),
        ("smoothing", 1.0, r"smoothing must be in \[0, 1\)"),
        ("batch_size", 2**40, "batch_size must be at most"),
        ("time_steps", None, "time_steps must be an integer >= 1"),
        ("time_points", 0, "time_points must be an integer >= 1"),
        ("edges_per_step", 0, "edges_per_step must be an integer >= 1"),
        ("time_krylov_steps", 0, "time_krylov_steps must be an integer >= 1"),
        ("checkpoint_every", 0, "checkpoint_every must be an integer >= 1"),
        ("seed", "a", "seed must be an integer or None"),
        ("shuffle", 1.5, "shuffle is a probability"),
        ("rescale", "yes", "rescale must be True, False or 'auto'"),
        ("optimizer", "adamm", "unknown optimizer 'adamm'. Did you mean 'adam'"),
        ("optimizer", 3, "optimizer must be a name"),
        ("objective", "mse", "unknown objective"),
        ("spectrum", 0, "spectrum"),
        ("target", 0, "> 0"),
        ("target", "balanced", "unknown target"),
        ("kinds", ["tme"], "Did you mean 'time'"),
        ("kinds", [], "no edge kinds"),
        ("decoder_target", -1, "decoder_target"),
        ("estimator", "Arnoldi", "unknown method 'Arnoldi'"),
    ],
)
def test_a_bad_setting_is_one_value_error_naming_it(field, value, message):
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**{field: value})
    with pytest.raises(ValueError, match=message):  # the same through pretrain's keywords
        lsc.pretrain(tiny(), None, **{field: value})


def test_the_defaults_are_the_documented_ones():
    c = PretrainConfig()
    assert (c.target, c.kinds, c.tol, c.patience, c.max_steps, c.lr, c.batch_size, c.time_steps) == (
        "auto",
        None,
        0.02,
        5,
        1000,
        1e-2,
        32,
        50,
    )
    assert c.edge_estimator == PRETRAINING_ESTIMATOR == Estimator("arnoldi", 20, 1e-2)
    assert c.time_estimator == Estimator("arnoldi", TIME_KRYLOV_STEPS, 1e-2)
    dense = PretrainConfig(estimator="dense")  # a method name: the default's budget with that method
    assert dense.edge_estimator == Estimator("dense", 20, 1e-2) and dense.time_estimator.method == "dense"
    assert PretrainConfig(time_krylov_steps=None).time_estimator == PRETRAINING_ESTIMATOR
    assert PretrainConfig(kinds=["time", "depth"]).kinds == ("time", "depth") and PretrainConfig(
        kinds="time"
    ).kinds == ("time",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tol = 0.1  # type: ignore[misc]


def test_settings_by_name_override_the_config_and_unknown_names_are_refused():
    res = lsc.pretrain(
        tiny(), None, PretrainConfig(max_steps=5, batch_size=4, time_steps=6), max_steps=2, progress=False
    )
    assert res.steps == 2
    with pytest.raises(TypeError, match=r"unknown setting 'tool'\. Did you mean 'tol'\? Its settings: target, kinds, "):
        lsc.pretrain(tiny(), None, tool=0.1)
    with pytest.raises(TypeError, match=r"config must be an lsc\.PretrainConfig, got dict .*extra="):
        lsc.pretrain(tiny(), None, {"cli": {}})  # the old config= (entries to record) is extra= now
    assert configure(PretrainConfig(lr=0.5), {"tol": 0.1}) == PretrainConfig(lr=0.5, tol=0.1)


def test_the_hint_for_an_unknown_name_knows_the_other_keywords():
    import inspect

    from lsc.pretraining.config import KEYWORDS
    from lsc.train import KEYWORDS as TRAIN_KEYWORDS

    for fn, keywords in ((lsc.pretrain, KEYWORDS), (lsc.train, TRAIN_KEYWORDS)):
        params = inspect.signature(fn).parameters.values()
        assert keywords == tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
    with pytest.raises(TypeError, match="Did you mean 'progress'"):
        lsc.pretrain(tiny(), None, progres=False)


def test_the_deprecated_estimator_keywords_build_the_estimator_in_one_place():
    with pytest.warns(DeprecationWarning, match=r"pretrain\(method=\) is deprecated"):
        assert configure(None, {"method": "dense"}) == PretrainConfig(estimator="dense")
    with pytest.warns(DeprecationWarning):  # rtol: every edge; the time edges keep their own budget
        assert configure(None, {"rtol": 0.0}).time_estimator == Estimator("arnoldi", TIME_KRYLOV_STEPS, 0.0)
    with pytest.warns(DeprecationWarning):  # krylov_steps: that many on every edge, as before
        c = configure(None, {"krylov_steps": 10, "method": "power"})
    assert c.edge_estimator == c.time_estimator == Estimator("power", 10, 1e-2)
    with pytest.warns(DeprecationWarning):
        assert configure(None, {"krylov_steps": None}) == PretrainConfig()
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="not both"):
        configure(None, {"estimator": "dense", "method": "dense"})


def test_the_checkpoint_records_the_settings_it_recorded_before():
    """A checkpoint written before PretrainConfig existed holds these keys; a resume compares them."""
    record = PretrainConfig().record({"time": 0.5}, ("time",))
    assert set(record) == {
        "target",
        "kinds",
        "tol",
        "patience",
        "optimizer",
        "lr",
        "plateau",
        "smoothing",
        "batch_size",
        "time_steps",
        "time_points",
        "edges_per_step",
        "method",
        "krylov_steps",
        "time_krylov_steps",
        "rtol",
        "objective",
        "spectrum",
        "seed",
        "rescale",
        "shuffle",
    }
    assert (record["krylov_steps"], record["time_krylov_steps"], record["kinds"]) == (20, 40, ["time"])


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("epochs", 0, "epochs must be an integer >= 1"),
        ("batch_size", True, "batch_size must be an integer >= 1"),
        ("patience", 0, "patience must be an integer >= 1"),
        ("eval_batch_size", 2.0, "eval_batch_size must be an integer >= 1"),
        ("lr", -1, "lr must be a finite number > 0"),
        ("clip", 0, "clip must be a finite number > 0"),
        ("weight_decay", -1, "weight_decay must be >= 0"),
        ("weight_decay", "a", "weight_decay must be a finite number"),
        ("optimizer", "none", "unknown optimizer 'none'"),
        ("optimizer", "adan", "Did you mean 'adam'"),
        ("schedule", "cosin", "Did you mean 'cosine'"),
        ("seed", 1.5, "seed must be an integer"),
        ("amp", "fp16", "unknown amp 'fp16'"),
    ],
)
def test_a_bad_training_setting_is_one_value_error_naming_it(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_train_takes_a_config_and_settings_by_name():
    task = lsc.tasks.get("copy", symbols=4, length=3, delay=2, train_size=32, val_size=8, test_size=8)
    torch.manual_seed(0)
    model = task.model("gru", layers=1, width=4)
    res = lsc.train(model, task, TrainConfig(epochs=3, batch_size=32), epochs=1)
    assert res.epochs == 1
    with pytest.raises(TypeError, match=r"unknown setting 'epoch'\. Did you mean 'epochs'\?"):
        lsc.train(model, task, epoch=1)
    with pytest.raises(TypeError, match=r"config must be an lsc\.TrainConfig"):
        lsc.train(model, task, {"x": 1})


# ------------------------------------------------------------------ the code rules


def _tol_defaults(tree: ast.AST) -> list[int]:
    """Lines that give a name with "tol" in it (a parameter, a field, a variable, a keyword)
    the value 0.02."""

    def is_002(node: ast.AST | None) -> bool:
        return node is not None and any(isinstance(n, ast.Constant) and n.value == 0.02 for n in ast.walk(node))

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            named = [*a.posonlyargs, *a.args][-len(a.defaults) :] if a.defaults else []
            pairs = [*zip(named, a.defaults), *zip(a.kwonlyargs, a.kw_defaults)]
            lines += [d.lineno for arg, d in pairs if "tol" in arg.arg and is_002(d)]
        elif _assigns_tol(node):
            lines += [node.lineno] if is_002(node.value) else []
        elif isinstance(node, ast.keyword) and node.arg is not None and "tol" in node.arg and is_002(node.value):
            lines.append(node.value.lineno)
        elif isinstance(node, ast.Call) and any(
            isinstance(x, ast.Constant) and x.value in ("--tol", "--pretrain-tol") for x in node.args
        ):
            lines += [node.lineno] if any(k.arg == "default" and is_002(k.value) for k in node.keywords) else []
    return lines


def test_tols_default_is_written_once():
    """Pre-training's tol of 0.02 is given once in src/lsc: PretrainConfig's default (it was
    written in pretrain(), Rule, TrainJob and both commands)."""
    found = [
        (path.relative_to(SRC).as_posix(), line)
        for path in sorted(SRC.rglob("*.py"))
        for line in _tol_defaults(ast.parse(path.read_text()))
    ]
    assert [name for name, _ in found] == ["pretraining/config.py"], found
    assert {f.name: f.default for f in dataclasses.fields(PretrainConfig)}["tol"] == 0.02
    old = ast.parse(
        "def pretrain(m, *, tol: float = 0.02): ...\nclass Rule:\n    tol: float = 0.02\n"
        "g.add_argument('--tol', type=float, default=0.02)\nrun(tol=0.02)\n"
    )
    assert len(_tol_defaults(old)) == 4  # the check sees each way it was written


def _assigns_tol(node: ast.AST) -> bool:
    """``tol... = value`` or ``tol...: type = value``."""
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and "tol" in node.target.id
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and "tol" in t.id for t in node.targets)
