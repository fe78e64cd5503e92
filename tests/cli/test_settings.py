"""The command line's defaults, choices and help come from the settings' dataclasses: what
`lsc pretrain` and `lsc train` do by default is what PretrainConfig, TrainConfig and
TrainJob do by default."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from lsc.cli import build_parser
from lsc.cli.pretrain import config_from_args
from lsc.cli.train import job_from_args
from lsc.condition import MEASURE_ESTIMATOR
from lsc.job import TRAIN_FIELDS, TrainJob
from lsc.optimizers import OPTIMIZERS
from lsc.pretraining import PretrainConfig
from lsc.settings import default_of, spelt
from lsc.train import TRAIN_OPTIMIZERS, TrainConfig


def command(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def options(name: str) -> dict[str, argparse.Action]:
    return {a.dest: a for a in command(name)._actions}


def test_lsc_pretrain_by_default_is_pretrain_by_default():
    args = command("pretrain").parse_args([])
    assert config_from_args(args) == PretrainConfig()


def test_lsc_pretrain_options_take_their_defaults_and_choices_from_the_config():
    opts = options("pretrain")
    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    shared = {"batch": "batch_size", "time": "time_steps", "seed": "seed"}  # the model's options
    checked = 0
    for dest, action in opts.items():
        name = shared.get(dest, dest)
        if name in names:
            default = default_of(PretrainConfig, name)
            assert action.default in (default, spelt(default)), dest
            checked += 1
    assert checked >= 14
    assert opts["method"].default == PretrainConfig().edge_estimator.method
    assert opts["rescale"].choices == ["auto", "on", "off"]


def test_lsc_train_by_default_is_the_default_job():
    args = command("train").parse_args(["--task", "copy"])
    job = job_from_args(args)
    assert dataclasses.replace(job, device="cpu") == TrainJob(task="copy")
    assert args.device == "auto"  # the command takes the GPU when there is one; a job built in Python stays on the cpu


def test_the_jobs_settings_are_the_configs():
    """TrainJob's pretrain_* and training fields default to PretrainConfig's and TrainConfig's
    (a job trains 5 epochs where lsc.train trains 10)."""
    pre = {
        "pretrain_kinds": "kinds",
        "pretrain_steps": "max_steps",
        "pretrain_seconds": "max_seconds",
        "pretrain_tol": "tol",
        "pretrain_shuffle": "shuffle",
        "pretrain_optimizer": "optimizer",
    }
    for field, name in pre.items():
        assert default_of(TrainJob, field) == default_of(PretrainConfig, name), field
    assert TrainJob(task="copy").pretrain_config("auto", None).rescale == default_of(PretrainConfig, "rescale")
    for name in TRAIN_FIELDS:
        if name != "epochs":
            assert default_of(TrainJob, name) == default_of(TrainConfig, name), name
    assert (default_of(TrainJob, "epochs"), default_of(TrainConfig, "epochs")) == (5, 10)
    assert TrainJob(task="copy").pretrain_config("auto", None) == PretrainConfig()


def test_lsc_train_options_take_their_defaults_from_the_job():
    fields = {f.name for f in dataclasses.fields(TrainJob)}
    for dest, action in options("train").items():
        if dest in fields and dest not in ("device", "task"):  # --task is required; --device: see above
            default = default_of(TrainJob, dest)
            assert action.default in (default, spelt(default)), dest


@pytest.mark.parametrize("command_name,flag", [("pretrain", "optimizer"), ("train", "pretrain_optimizer")])
def test_pretrain_and_train_list_the_same_pretraining_optimisers(command_name, flag):
    text = options(command_name)[flag].help
    assert ", ".join(OPTIMIZERS) in text and "(default adam)" in text


def test_lsc_train_lists_the_training_optimisers():
    text = options("train")["optimizer"].help
    assert ", ".join(TRAIN_OPTIMIZERS) in text and "none" not in text


def test_lsc_measure_takes_its_estimator_defaults_from_measure():
    opts = options("measure")
    assert (opts["method"].default, opts["steps"].default, opts["probes"].default) == (
        MEASURE_ESTIMATOR.method,
        MEASURE_ESTIMATOR.steps,
        MEASURE_ESTIMATOR.probes,
    )
