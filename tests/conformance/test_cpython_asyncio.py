"""Conformance gate: CPython's own asyncio tests, run on gmploop.

One pytest test per test_asyncio module.  Each runs
``python -m tests.conformance.run --loop gmploop <module> --json ...`` in a
subprocess with a timeout, and fails on any failure not listed for the loop in
expected.py, printing the runner's summary.

gmploop is required: if it does not import, these tests fail (they never skip).

Environment:
  GMPLOOP_CONFORMANCE_LOOP=asyncio|uvloop   run the same gate on another loop,
                                            for comparison (default: gmploop)
  GMPLOOP_CONFORMANCE_MODULES=transport     extra modules: a comma-separated list
                                            of module names, or 'transport'/'all'
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from . import modules as modlist

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOP = os.environ.get("GMPLOOP_CONFORMANCE_LOOP", "gmploop")

# The runner bounds each test (its --test-timeout default) and each module
# (MODULE_TIMEOUT, restarts included); the subprocess timeout is the backstop
# if the runner itself wedges.
MODULE_TIMEOUT = 600
SUBPROCESS_TIMEOUT = MODULE_TIMEOUT + 120


def _modules():
    names = list(modlist.DEFAULT_MODULES)
    extra = os.environ.get("GMPLOOP_CONFORMANCE_MODULES", "")
    for item in filter(None, (x.strip() for x in extra.split(","))):
        group = {"transport": modlist.TRANSPORT_MODULES, "all": modlist.ALL_MODULES}
        for name in group.get(item, [item]):
            if name not in names:
                names.append(name)
    return names


def test_loop_importable():
    """The loop under test must exist; a missing gmploop is a failure, not a skip."""
    code = ("import asyncio;"
            "from tests.conformance import loops;"
            f"inst = loops.install({LOOP!r});"
            "loop = asyncio.new_event_loop(); loop.close(); print(type(loop))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (
        f"cannot install loop {LOOP!r} with {sys.executable}:\n{proc.stdout}{proc.stderr}")


@pytest.mark.timeout(SUBPROCESS_TIMEOUT + 60)
@pytest.mark.parametrize("module", _modules())
def test_cpython_asyncio_module(module, tmp_path):
    why = modlist.available(module)
    if why is not None:
        pytest.skip(f"not on this Python: {why}")
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "tests.conformance.run", "--loop", LOOP, module,
           "--json", str(out), "--module-timeout", str(MODULE_TIMEOUT)]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"runner did not finish within {SUBPROCESS_TIMEOUT}s: {' '.join(cmd)}\n"
                    f"{exc.stdout or ''}{exc.stderr or ''}", pytrace=False)
    report = f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    if not out.exists():
        pytest.fail(f"runner wrote no results (exit status {proc.returncode})\n{report}",
                    pytrace=False)
    result = json.loads(out.read_text())
    for entry in result.get("unexpectedly_passing", []):
        warnings.warn(f"[{LOOP}] {entry['id']} passes now: remove it from expected.py "
                      f"(was: {entry['reason']})")
    for entry in result.get("flaky", []):
        warnings.warn(f"[{LOOP}] {entry['id']} is flaky: failed ({entry['first_status']}), "
                      "then passed when the module was run again")
    if proc.returncode != 0 or result.get("unexpected_failures"):
        n = len(result.get("unexpected_failures", []))
        pytest.fail(f"{module} on {LOOP}: {n} unexpected failures "
                    f"(runner exit status {proc.returncode})\n{report}", pytrace=False)
