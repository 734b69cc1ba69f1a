"""Checks of the conformance runner itself, on a probe module with known outcomes.

Runs on asyncio's own loop (always available), so it says nothing about gmploop;
it guards the accounting the gmploop gate relies on: hangs and crashes are
bounded and recorded, the run resumes after them, tests that never create the
loop under test are not counted for it, and the loop stays installed across
``set_event_loop_policy(None)`` and leaked policies.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import expected as expected_mod
from . import run

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    out = tmp / "result.json"
    env = dict(os.environ, CONFORMANCE_PROBE_DIR=str(tmp))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.conformance.run", "--package",
         "tests.conformance.fixtures", "--loop", "asyncio", "harness_probe",
         "--test-timeout", "3", "--json", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    result = json.loads(out.read_text())
    return proc, result, result["modules"]["harness_probe"]["tests"]


def _rec(tests, name):
    for key in (f"harness_probe.Probe.{name}", f"harness_probe.IsolatedProbe.{name}"):
        if key in tests:
            return tests[key]
    raise KeyError(name)


def test_exit_status_reports_unexpected_failures(probe):
    proc, result, _ = probe
    assert proc.returncode == 1, proc.stdout + proc.stderr
    ids = {e["id"].rsplit(".", 1)[1] for e in result["unexpected_failures"]}
    assert ids == {"test_c_fails_on_loop", "test_d_hangs", "test_f_crashes",
                   "test_k_subtest_fails", "test_n_order_dependent"}


@pytest.mark.parametrize("name,status,touched", [
    ("test_a_touches_loop", "pass", True),
    ("test_b_never_touches_loop", "pass", False),
    ("test_c_fails_on_loop", "fail", True),
    ("test_d_hangs", "timeout", None),
    ("test_e_policy_reset_survives", "pass", True),
    ("test_f_crashes", "crash", None),
    ("test_g_runs_after_crash", "pass", True),
    ("test_h_leaks_foreign_policy", "pass", False),
    ("test_i_after_leak", "pass", True),
    ("test_j_skips", "skip", False),
    ("test_k_subtest_fails", "fail", True),
    ("test_l_flaky", "pass", True),
    ("test_m_own_loop_only", "pass", False),
    ("test_n_order_dependent", "fail", True),
    ("test_runs_on_loop", "pass", True),
])
def test_outcome_and_accounting(probe, name, status, touched):
    _, _, tests = probe
    rec = _rec(tests, name)
    assert (rec["status"], rec["touched"]) == (status, touched), rec


def test_hang_and_crash_have_tracebacks(probe):
    _, _, tests = probe
    assert "Timeout (" in _rec(tests, "test_d_hangs")["detail"]
    assert "test_d_hangs" in _rec(tests, "test_d_hangs")["summary"]
    assert "test_f_crashes" in _rec(tests, "test_f_crashes")["summary"]


def test_leaked_policy_is_reported(probe):
    _, _, tests = probe
    assert any("Leaky" in n for n in _rec(tests, "test_i_after_leak")["notes"])


def test_flaky_is_reported(probe):
    _, result, tests = probe
    assert _rec(tests, "test_l_flaky")["flaky"]
    assert [e["id"] for e in result["flaky"]] == ["harness_probe.Probe.test_l_flaky"]


def test_untouched_tests_are_not_loop_passes(probe):
    _, result, _ = probe
    counts = run.module_counts(result["modules"]["harness_probe"])
    assert counts["not_touched"]["total"] == 4          # b, h, j, m
    assert counts["on_loop"]["passed"] == 6             # a, e, g, i, l, IsolatedProbe
    assert counts["on_loop"]["run"] == 11               # and c, d, f, k, n


def test_expected_list_matching(probe, monkeypatch):
    _, result, _ = probe
    monkeypatch.setitem(expected_mod.EXPECTED, "asyncio", {
        "harness_probe.Probe.test_c_fails_on_loop": "deliberate",
        "harness_probe.Probe.test_k_*": "pattern",
        "harness_probe.Probe.test_a_touches_loop": "passes: must be reported",
        "harness_probe.Probe.test_d_hangs": {"reason": "other Python only",
                                            "python": ["2.7"]},
    })
    unexpected, expected, now_passing, _ = run.classify("asyncio", result)
    assert {e["id"].rsplit(".", 1)[1] for e in unexpected} == {
        "test_d_hangs", "test_f_crashes", "test_n_order_dependent"}
    assert {e["reason"] for e in expected} == {"deliberate", "pattern"}
    assert [e["id"] for e in now_passing] == ["harness_probe.Probe.test_a_touches_loop"]


def test_expected_entry_must_fail_for_its_reason(probe, monkeypatch):
    _, result, _ = probe
    monkeypatch.setitem(expected_mod.EXPECTED, "asyncio", {
        "harness_probe.Probe.test_c_fails_on_loop": {
            "reason": "needs a private attribute", "match": r"_private_thing"},
        "harness_probe.Probe.test_k_subtest_fails": {
            "reason": "the subtest assertion", "match": r"AssertionError: 1 == 1"},
    })
    unexpected, expected, _, _ = run.classify("asyncio", result)
    by_id = {e["id"].rsplit(".", 1)[1]: e for e in unexpected}
    assert "does not match" in by_id["test_c_fails_on_loop"]["summary"]
    assert [e["id"].rsplit(".", 1)[1] for e in expected] == ["test_k_subtest_fails"]
