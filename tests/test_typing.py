"""The shipped type stubs (gmploop/__init__.pyi, with py.typed) satisfy mypy --strict, and
describe the public API precisely enough that a wrong use is an error."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import gmploop

PACKAGE = os.path.dirname(os.path.abspath(gmploop.__file__))

GOOD = """
import asyncio

import gmploop


async def answer() -> int:
    await asyncio.sleep(0)
    return 42


def main() -> None:
    n: int = gmploop.run(answer())
    m: int = gmploop.run(answer, debug=True)
    each: int | list[int] = gmploop.run(answer, procs=2, restart=3)
    again: int | list[int] = gmploop.run(answer, procs="auto", restart=True)
    loop: gmploop.Loop = gmploop.Loop()
    loop.close()
    loop = gmploop.new_event_loop()
    handle: asyncio.TimerHandle = loop.call_later(1.0, print, "late")
    handle.cancel()
    stats: gmploop.LoopStats = loop.stats()
    loop.close()
    with asyncio.Runner(loop_factory=gmploop.new_event_loop) as runner:
        k: int = runner.run(answer())
    factory: type[asyncio.AbstractEventLoop] = gmploop.Loop
    asyncio.set_event_loop_policy(gmploop.Policy())
    gmploop.install()
    asyncio.set_event_loop_policy(gmploop.Policy(procs=2, restart=False))
    print(n, m, k, each, again, stats, factory, gmploop.__version__)
"""

BAD = """
import gmploop


async def answer() -> int:
    return 42


s: str = gmploop.run(answer())
gmploop.run(answer(), debug="yes")
gmploop.new_event_loop().call_soon(1)
gmploop.run(answer, procs=2, restart="often")
"""


def mypy(tmp_path, source):
    pytest.importorskip("mypy")
    # The stub of the gmploop under test (a checkout's, or an installed wheel's), copied
    # out so that mypy checks it as a file of its own: mypy refuses site-packages as a
    # place for files to check, and silences errors in installed packages.
    stubs = tmp_path / "stubs" / "gmploop"
    stubs.mkdir(parents=True)
    for name in ("__init__.pyi", "py.typed"):
        shutil.copy(os.path.join(PACKAGE, name), stubs / name)
    (tmp_path / "snippet.py").write_text(textwrap.dedent(source))
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
           "--cache-dir", os.devnull, "snippet.py", str(stubs / "__init__.pyi")]
    env = {**os.environ, "MYPYPATH": str(tmp_path / "stubs")}
    env.pop("PYTHONPATH", None)
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=100)


@pytest.mark.timeout(110)
def test_stubs_and_public_api_pass_mypy_strict(tmp_path):
    out = mypy(tmp_path, GOOD)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("Success: no issues found in 2 source files")


@pytest.mark.timeout(110)
def test_stubs_reject_wrong_use(tmp_path):
    out = mypy(tmp_path, BAD)
    assert out.returncode == 1, out.stdout + out.stderr
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 4, out.stdout
    assert 'snippet.py:9: error: Incompatible types in assignment' in errors[0]
    # run() is overloaded (one P gives main's result, several the list of results).
    assert 'snippet.py:10: error: No overload variant of "run" matches' in errors[1]
    assert 'snippet.py:11: error: Argument 1 has incompatible type "int"' in errors[2]
    assert 'snippet.py:12: error: No overload variant of "run" matches' in errors[3]
