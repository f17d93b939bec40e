"""A built wheel installs everything under `commrouter` and ships the package data."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_only_commrouter_and_its_data(tmp_path):
    source = tmp_path / "src"  # a copy: building writes build/ and *.egg-info into the tree
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("commrouter-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {
        "commrouter",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    for required in (
        "commrouter/actors/connection.py",
        "commrouter/config/defaults.toml",
        "commrouter/frontend/install.html",
        "commrouter/frontend/widget.js",  # the link widget's module (with commrouter.js)
        "commrouter/ipyhost/link_widget.py",
        "commrouter/timing/virtual.py",
    ):
        assert required in names

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import commrouter, commrouter.actors.connection, commrouter.config as c;"
        "assert commrouter.__file__.startswith(sys.argv[1]), commrouter.__file__;"
        "assert commrouter.actors.connection.__file__.startswith(sys.argv[1]);"
        "print(c.Settings.defaults().heartbeat.timeout)"
    )
    # the wheel's copy comes first on sys.path; its dependencies come from this environment
    out = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "0.5"
