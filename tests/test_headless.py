"""A headless run: `jupyter nbconvert --execute` of the demo notebook on ipykernel, with no
browser anywhere. Every cell completes, the cell that noticed gets one warning, reads return
their default, listeners end, and the saved notebook holds no install script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_nbconvert_execute_of_the_demo_completes(tmp_path):
    shutil.copyfile(ROOT / "docs" / "demo.ipynb", tmp_path / "demo.ipynb")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    env.pop("COMMROUTER_HEADLESS", None)  # detected, not configured
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=60", "--output", "out.ipynb", "demo.ipynb"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    saved = (tmp_path / "out.ipynb").read_text()
    outputs = [o for c in json.loads(saved)["cells"] for o in c.get("outputs", [])]
    assert [o for o in outputs if o["output_type"] == "error"] == []
    assert "data-commrouter-install" not in saved  # erased, never saved
    stderr = "".join("".join(o["text"]) for o in outputs if o.get("name") == "stderr")
    assert stderr.count("no page has opened this kernel's link") == 1
    stdout = "".join("".join(o["text"]) for o in outputs if o.get("name") == "stdout")
    assert "the page says nothing (no page)" in stdout  # read's default
    assert "stopped at speed 50" in stdout  # the Stop button's listener ended
