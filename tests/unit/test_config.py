"""GMPLOOP_DEBUG parsing (gmploop/_config.py), without a loop."""
import os
import subprocess
import sys

import pytest

from gmploop import _config


def test_defaults():
    opts = _config.parse_debug("")
    assert opts.sysmon_ms == _config.SYSMON_THRESHOLD_MS == 100
    assert opts.sysmon_threshold == 0.1
    assert opts.schedtrace_ms == 0
    assert _config.parse_debug(None) == opts


def test_known_names_and_spacing():
    opts = _config.parse_debug(" schedtrace=1000 , sysmon=250,")
    assert (opts.schedtrace_ms, opts.sysmon_ms) == (1000, 250)
    assert _config.parse_debug("sysmon=0").sysmon_threshold == 0.0


def test_unknown_names_are_kept_and_ignored():
    opts = _config.parse_debug("scheddetail=1,sysmon=50,future")
    assert opts.sysmon_ms == 50
    assert opts.extra == (("scheddetail", "1"), ("future", ""))


@pytest.mark.parametrize("bad", ["sysmon=-1", "sysmon=fast", "sysmon", "schedtrace=1.5"])
def test_bad_values_warn_and_keep_the_default(bad):
    with pytest.warns(RuntimeWarning, match="GMPLOOP_DEBUG"):
        opts = _config.parse_debug(bad)
    assert opts == _config.DebugOptions()


def test_environment_is_read_and_python_E_ignores_it():
    assert _config.debug_options({"GMPLOOP_DEBUG": "sysmon=7"}).sysmon_ms == 7
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = "from gmploop import _config; print(_config.DEBUG.sysmon_ms)"
    env = dict(os.environ, GMPLOOP_DEBUG="sysmon=7")
    plain = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                           capture_output=True, text=True, timeout=60)
    ignored = subprocess.run([sys.executable, "-E", "-c", code], env=env, cwd=root,
                             capture_output=True, text=True, timeout=60)
    assert plain.stdout.strip() == "7", plain.stderr
    assert ignored.stdout.strip() == "100", ignored.stderr
