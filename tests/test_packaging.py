"""The built wheel: it carries the licence, and installed into a fresh environment it gives a
working ``lsc`` command whose ``__version__`` is the distribution's version.

Offline: the wheel is built from a copy of the checkout with the running interpreter's setuptools
(``--no-build-isolation --no-index``), and installed with ``--no-deps --no-index`` into a new venv
that sees this interpreter's site-packages (torch, numpy) through a ``.pth`` file, so nothing is
downloaded. A venv made from a venv's python gets the *base* interpreter's packages with
``--system-site-packages``, not this one's, hence the ``.pth``.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = ("pyproject.toml", "README.md", "LICENSE", "src")  # what a build reads


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools", minversion="77", reason="building needs setuptools>=77 (the test extra)")
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "checkout"
    src.mkdir()
    for name in CHECKOUT:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    offline = ("--no-deps", "--no-build-isolation", "--no-index")
    _run(sys.executable, "-m", "pip", "wheel", *offline, src, "-w", dist, cwd=tmp)
    (built,) = dist.glob("lsc-*.whl")
    return built


def test_wheel_ships_the_license(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        licences = [n for n in zf.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert len(licences) == 1, zf.namelist()
        assert zf.read(licences[0]).decode() == (ROOT / "LICENSE").read_text()
        metadata = zf.read(licences[0].replace("licenses/LICENSE", "METADATA")).decode()
    assert "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata
    assert "lsc/py.typed" in zipfile.ZipFile(wheel).namelist()


def test_wheel_installs_a_working_lsc(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp_path)
    scripts = "Scripts" if os.name == "nt" else "bin"
    python = venv / scripts / ("python.exe" if os.name == "nt" else "python")
    where_to = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = Path(_run(python, "-c", where_to, cwd=tmp_path).stdout.strip())
    # This interpreter's packages (torch, numpy, pip) after the venv's own, which come first on sys.path.
    ours = [*site.getsitepackages(), sysconfig.get_path("purelib")]
    (purelib / "_lsc_test_parent.pth").write_text("".join(f"{p}\n" for p in dict.fromkeys(ours)))

    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", wheel, cwd=tmp_path)

    lsc = venv / scripts / ("lsc.exe" if os.name == "nt" else "lsc")
    assert lsc.is_file(), "no lsc console script in the venv"
    out = _run(lsc, "--help", cwd=tmp_path).stdout
    assert "usage: lsc" in out

    probe = (
        "import importlib.metadata as md, lsc; print(lsc.__version__); print(md.version('lsc')); print(lsc.__file__)"
    )
    version, meta, where = _run(python, "-c", probe, cwd=tmp_path).stdout.split()
    assert Path(where).resolve().is_relative_to(purelib.resolve()), f"imported lsc from {where}, not the venv"
    assert version == meta
    wheel_version = wheel.name.split("-")[1]
    assert version == wheel_version
    assert _run(lsc, "--version", cwd=tmp_path).stdout.strip() == f"lsc {version}"
