"""Run CPython's own asyncio test-suite modules against a chosen event loop.

Usage (from the repository root)::

    python -m tests.conformance.run --loop gmploop                # default modules
    python -m tests.conformance.run --loop gmploop test_tasks test_events
    python -m tests.conformance.run --loop uvloop transport       # TRANSPORT_MODULES
    python -m tests.conformance.run --loop gmploop all --json out.json
    python -m tests.conformance.run --compare asyncio,gmploop     # table per module
    python -m tests.conformance.run --list

How it works:

* Each module runs in its own worker process (``--worker``), which installs the
  loop (loops.py), loads the module (modules.py) and streams one JSON line per
  test event to a results file.  A test that hangs is stopped by
  ``faulthandler.dump_traceback_later(exit=True)`` (``--test-timeout``); a test
  that crashes the interpreter kills only its worker.  Either way the parent
  records that test as ``timeout``/``crash``, with the traceback dump, and
  starts a new worker for the module's remaining tests.
* A test counts for the loop only if it created at least one loop of the chosen
  kind (through the policy or a bound mixin factory).  Tests that never touched
  it (``test_utils.TestLoop``, mocked ``BaseEventLoop``s, pure-Python classes)
  are reported apart, and never count as passes of the loop.
* Failures are compared with expected.py.  If any test failed, the module is
  run once more in a fresh worker, in the same order (so a failure caused by an
  earlier test fails again); a test that passes then is reported as flaky and
  does not fail the run (``--no-rerun`` to make it fail).
* Exit status: 0 if every failure is expected, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import unittest
from pathlib import Path

from . import modules as modlist

REPO_ROOT = Path(__file__).resolve().parents[2]

PASS, FAIL, ERROR, SKIP = "pass", "fail", "error", "skip"
XFAIL, XPASS, TIMEOUT, CRASH = "xfail", "xpass", "timeout", "crash"
OK_STATUSES = {PASS, XFAIL}
BAD_STATUSES = {FAIL, ERROR, XPASS, TIMEOUT, CRASH}

# Seconds for one test, setUp and tearDown included.  Above CPython's
# support.SHORT_TIMEOUT (30 s), which tests use for their own waits, so a test
# that fails by its own timeout reports that failure rather than being killed.
DEFAULT_TEST_TIMEOUT = 45.0
DEFAULT_MODULE_TIMEOUT = 900.0   # seconds, one module including restarts
MAX_RESTARTS = 25                # new workers after hangs/crashes, per module
RERUN_MAX_DURATION = 10.0        # failed tests slower than this are not re-run


def short_id(test_id: str) -> str:
    """``test.test_asyncio.test_tasks.X.test_y`` -> ``test_tasks.X.test_y``."""
    return test_id.replace(modlist.PACKAGE + ".", "")


# --------------------------------------------------------------------------
# Worker: runs one module in this process and streams events as JSON lines.
# --------------------------------------------------------------------------

def _adapt_harness():
    """Harness-only adaptations of CPython's test helpers for foreign loops.

    ``test_utils.TestCase.close_loop`` (the cleanup of every
    ``self.set_event_loop(loop)``) reads ``loop._default_executor``, a private
    attribute of asyncio's BaseEventLoop that other loops need not have.  For
    such loops the same cleanup is done with the public API: shut the default
    executor down, then close.  Loops that have the attribute (asyncio's own)
    go through the original unchanged.  This changes what the harness does
    after a test, never what a test checks.
    """
    from test.test_asyncio import utils as test_utils

    original = test_utils.TestCase.close_loop

    def close_loop(loop):
        if hasattr(loop, "_default_executor"):
            return original(loop)
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    test_utils.TestCase.close_loop = staticmethod(close_loop)


def _iter_tests(suite):
    for item in suite:
        if hasattr(item, "__iter__"):
            yield from _iter_tests(item)
        else:
            yield item


class JsonlResult(unittest.TestResult):
    """A unittest result that writes one JSON line per test event."""

    def __init__(self, emit, installation, test_timeout):
        super().__init__()
        self.emit = emit
        self.inst = installation
        self.test_timeout = test_timeout
        self.current = None

    def _arm(self):
        import faulthandler
        faulthandler.dump_traceback_later(self.test_timeout, exit=True)

    def startTest(self, test):
        super().startTest(test)
        notes = self.inst.ensure()
        self.inst.recorder.take()     # loops made by fixtures are nobody's
        self.current = {"id": short_id(test.id()), "status": None,
                        "detail": None, "notes": notes,
                        "t0": time.monotonic()}
        self.emit(event="start", id=self.current["id"])
        self._arm()

    def _set(self, test, status, err=None, reason=None):
        test = getattr(test, "test_case", test)     # a subTest reports for its test
        tid = short_id(test.id())
        if self.current is None or self.current["id"] != tid:
            # class/module fixture failure (_ErrorHolder): no startTest
            chosen, other = self.inst.recorder.take()
            self.emit(event="done", id=tid, status=status, touched=chosen > 0,
                      loops=chosen, other_loops=other, duration=0.0,
                      detail=self._detail(err, test), fixture=True)
            return
        rank = [None, SKIP, PASS, XFAIL, FAIL, XPASS, ERROR]
        if rank.index(status) >= rank.index(self.current["status"]):
            self.current["status"] = status
            if err is not None:
                self.current["detail"] = self._detail(err, test)
            elif reason is not None:
                self.current["detail"] = str(reason)

    def _detail(self, err, test):
        if err is None:
            return None
        text = self._exc_info_to_string(err, test)
        return text[-6000:]

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set(test, PASS)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set(test, FAIL, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._set(test, ERROR, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, SKIP, reason=reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set(test, XFAIL)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set(test, XPASS)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._set(test, FAIL if failed else ERROR, err)

    def stopTest(self, test):
        super().stopTest(test)
        cur, self.current = self.current, None
        if cur is None:
            return
        chosen, other = self.inst.recorder.take()
        self.emit(event="done", id=cur["id"], status=cur["status"] or PASS,
                  touched=chosen > 0, loops=chosen, other_loops=other,
                  duration=round(time.monotonic() - cur["t0"], 3),
                  detail=cur["detail"], notes=cur["notes"])
        self._arm()    # the next fixture (tearDownClass, ...) is bounded too


def worker_main(args):
    import faulthandler

    out = open(args.results, "a", buffering=1, encoding="utf-8")

    def emit(**event):
        out.write(json.dumps(event) + "\n")
        out.flush()

    faulthandler.enable(all_threads=True)
    faulthandler.dump_traceback_later(args.test_timeout, exit=True)
    try:
        from . import loops
        inst = loops.install(args.loop)
        _adapt_harness()
        suite = modlist.load_suite(args.worker_module, inst)
    except BaseException:
        emit(event="fatal", error=traceback.format_exc()[-6000:])
        return 3
    exclude = set(json.loads(Path(args.exclude_file).read_text())) if args.exclude_file else set()
    only = set(json.loads(Path(args.only_file).read_text())) if args.only_file else None
    tests = [t for t in _iter_tests(suite)
             if short_id(t.id()) not in exclude
             and (only is None or short_id(t.id()) in only)]
    emit(event="plan", ids=[short_id(t.id()) for t in tests],
         loop=args.loop, loop_info=_loop_info(inst))
    result = JsonlResult(emit, inst, args.test_timeout)
    unittest.TestSuite(tests).run(result)
    faulthandler.cancel_dump_traceback_later()
    emit(event="end")
    out.close()
    return 0


def build_fingerprint(package):
    """mtimes of the files this process loaded from a loop's package (its .py
    modules and extensions): an in-place rebuild changes them."""
    if package == "asyncio":
        return {}      # the standard library does not change under us
    prints = {}
    for name, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        if file and (name == package or name.startswith(package + ".")):
            try:
                prints[file] = os.stat(file).st_mtime_ns
            except OSError:
                pass
    return prints


def _loop_info(inst):
    cls = inst.loop_class
    mod = sys.modules.get(cls.__module__.split(".")[0])
    file = getattr(mod, "__file__", None)
    return {"class": f"{cls.__module__}.{cls.__qualname__}",
            "version": getattr(mod, "__version__", None),
            "file": file, "build": build_fingerprint(cls.__module__.split(".")[0])}


def rebuilt_files(results):
    """Files of the loop that changed during the run (an in-place rebuild)."""
    seen = {}
    for mod in results["modules"].values():
        for path, mtime in ((mod.get("loop_info") or {}).get("build") or {}).items():
            seen.setdefault(path, set()).add(mtime)
    changed = []
    for path, mtimes in seen.items():
        try:
            now = Path(path).stat().st_mtime_ns
        except OSError:
            now = None
        if len(mtimes) > 1 or now not in mtimes:
            changed.append(path)
    return sorted(changed)


# --------------------------------------------------------------------------
# Parent: runs workers, resumes after hangs and crashes, aggregates, reports.
# --------------------------------------------------------------------------

def _read_events(path):
    events = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        pass    # a line cut short by a crash
    except FileNotFoundError:
        pass
    return events


def _tail(path, lines=80, limit=8000):
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])[-limit:]


def _crash_report(log):
    """(summary line, dump) for a worker that died: faulthandler's dump, if any."""
    text = _tail(log, lines=400, limit=40000)
    starts = [text.rfind(m) for m in ("Timeout (", "Fatal Python error")]
    start = max(starts)
    if start < 0:
        return "worker died without a traceback dump", text[-8000:]
    dump = text[start:]
    header = dump.splitlines()[0].strip()
    where = ""
    for block in dump.split("\n\n"):
        if "unittest/case.py" in block or "unittest\\case.py" in block:
            frames = [l.strip() for l in block.splitlines() if l.strip().startswith("File ")]
            if frames:
                where = " at " + frames[0][len("File "):]
            break
    return (header + where)[:300], dump[:12000]


class ModuleRun:
    """Runs one module for one loop; survives hangs and crashes."""

    def __init__(self, loop, name, opts, workdir):
        self.loop, self.name, self.opts = loop, name, opts
        self.workdir = Path(workdir)
        self.tests = {}          # id -> record
        self.problems = []       # module-level problems (strings)
        self.loop_info = None
        self.fatal = None
        self.attempt = 0
        self.deadline = time.monotonic() + opts.module_timeout

    def _spawn(self, exclude, only):
        self.attempt += 1
        stem = self.workdir / f"{self.loop}-{self.name}-{self.attempt}"
        results, log = f"{stem}.jsonl", f"{stem}.log"
        cmd = [sys.executable, "-m", "tests.conformance.run", "--worker",
               "--package", modlist.PACKAGE,
               "--loop", self.loop, "--worker-module", self.name,
               "--results", results, "--test-timeout", str(self.opts.test_timeout)]
        if exclude:
            Path(f"{stem}.exclude.json").write_text(json.dumps(sorted(exclude)))
            cmd += ["--exclude-file", f"{stem}.exclude.json"]
        if only is not None:
            Path(f"{stem}.only.json").write_text(json.dumps(sorted(only)))
            cmd += ["--only-file", f"{stem}.only.json"]
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log, "wb") as logf:
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=max(1.0, self.deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                rc = "killed"
        return rc, _read_events(results), log

    def run(self, only=None, exclude=()):
        """Run the module's tests (or only those in ``only``, less ``exclude``);
        return the records."""
        got = {}
        exclude = set(exclude)
        while True:
            rc, events, log = self._spawn(exclude, only)
            plan, started, ended = None, None, False
            for ev in events:
                kind = ev["event"]
                if kind == "fatal":
                    self.fatal = ev["error"]
                elif kind == "plan":
                    plan = ev["ids"]
                    self.loop_info = ev.get("loop_info")
                elif kind == "start":
                    started = ev["id"]
                elif kind == "done":
                    rec = {k: v for k, v in ev.items() if k != "event"}
                    got[ev["id"]] = rec
                    if started == ev["id"]:
                        started = None
                elif kind == "end":
                    ended = True
            if self.fatal is not None:
                return got
            if ended:
                if rc != 0:
                    self.problems.append(f"worker exited with status {rc} after the last test")
                    got[f"{self.name}.<interpreter exit>"] = {
                        "id": f"{self.name}.<interpreter exit>", "status": CRASH,
                        "touched": False, "loops": 0, "duration": 0.0,
                        "summary": _crash_report(log)[0],
                        "detail": f"exit status {rc}\n" + _crash_report(log)[1]}
                return got
            summary, dump = _crash_report(log)
            why = TIMEOUT if (rc == "killed" or summary.startswith("Timeout (")) else CRASH
            if rc == "killed":
                summary = f"killed: module time budget ({self.opts.module_timeout:.0f}s) spent"
            if started is not None:
                got[started] = {"id": started, "status": why, "touched": None, "loops": None,
                                "duration": None, "summary": summary,
                                "detail": f"worker exit status {rc}\n{dump}"}
            else:
                self.problems.append(
                    f"worker {why} outside any test (exit status {rc}): {summary}\n{dump}")
            if rc == "killed" or time.monotonic() >= self.deadline:
                self.problems.append(
                    f"module time budget ({self.opts.module_timeout:.0f}s) exhausted")
                return got
            if plan is None:
                self.problems.append(f"worker died before loading the module: {summary}\n{dump}")
                return got
            remaining = [t for t in plan if t not in got]
            if not remaining:
                return got
            if self.attempt > MAX_RESTARTS:
                self.problems.append(f"gave up after {MAX_RESTARTS} worker restarts; "
                                     f"{len(remaining)} tests not run")
                return got
            exclude = set(got) | exclude

    def execute(self):
        t0 = time.monotonic()
        reason = modlist.available(self.name)
        if reason is not None:
            return {"status": "unavailable", "reason": reason, "tests": {}, "problems": [],
                    "duration": 0.0}
        self.tests = self.run()
        flaky = []
        if self.opts.rerun and self.fatal is None:
            # Failed tests get a second chance in a fresh worker that runs the
            # module again in the same order, so a failure caused by an earlier
            # test (state leaking between loops, a watcher left behind) fails
            # again and is not mistaken for a flake.  Left out of the second
            # run: hangs, crashes and slow failures (a test's own SHORT_TIMEOUT
            # ran out) -- they are not flaky, and waiting twice costs minutes.
            bad = [t for t, r in self.tests.items()
                   if r["status"] in (FAIL, ERROR) and not r.get("fixture")
                   and (r.get("duration") or 0) < RERUN_MAX_DURATION
                   and not expected_reason(self.loop, t)]
            skip = {t for t, r in self.tests.items()
                    if r["status"] in (TIMEOUT, CRASH)
                    or (r["status"] in BAD_STATUSES
                        and (r.get("duration") or 0) >= RERUN_MAX_DURATION)}
            if bad:
                again = self.run(exclude=skip)
                for tid in bad:
                    r = again.get(tid)
                    if r is not None and r["status"] in OK_STATUSES:
                        first = self.tests[tid]
                        r["flaky"] = True
                        r["first_status"] = first["status"]
                        r["first_detail"] = first["detail"]
                        r["touched"] = bool(r["touched"] or first["touched"])
                        self.tests[tid] = r
                        flaky.append(tid)
        status = "fatal" if self.fatal is not None else ("problems" if self.problems else "ok")
        return {"status": status, "fatal": self.fatal, "problems": self.problems,
                "tests": self.tests, "flaky": flaky, "loop_info": self.loop_info,
                "workers": self.attempt, "duration": round(time.monotonic() - t0, 2)}


# --------------------------------------------------------------------------
# Expected failures and accounting.
# --------------------------------------------------------------------------

def _expected_table(loop):
    """{key: (reason, match regex or None)} for this loop and this Python."""
    from .expected import EXPECTED
    pyver = "%d.%d" % sys.version_info[:2]
    table = {}
    for key, value in EXPECTED.get(loop, {}).items():
        match = None
        if isinstance(value, dict):
            if "python" in value and pyver not in value["python"]:
                continue
            value, match = value["reason"], value.get("match")
        table[key] = (value, match)
    return table


def _is_pattern(key):
    return any(c in key for c in "*?[")


def expected_entry(loop, test_id):
    """(reason, match) if ``test_id`` is listed as an expected failure, else None."""
    table = _expected_table(loop)
    if test_id in table:
        return table[test_id]
    for key, entry in table.items():
        if _is_pattern(key) and fnmatch.fnmatchcase(test_id, key):
            return entry
    return None


def expected_reason(loop, test_id):
    entry = expected_entry(loop, test_id)
    return entry[0] if entry else None


def module_counts(mod):
    on = {"run": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    off = {"total": 0, "passed": 0, "failed": 0, "skipped": 0}
    for rec in mod.get("tests", {}).values():
        st = rec["status"]
        # A test that hung or crashed before reporting counts for the loop:
        # every module's tests are run with the loop installed.
        touched = rec.get("touched")
        if touched or touched is None:
            on["run"] += 1
            if st in OK_STATUSES:
                on["passed"] += 1
            elif st == SKIP:
                on["skipped"] += 1
            elif st in (FAIL, XPASS):
                on["failed"] += 1
            else:
                on["errors"] += 1
        else:
            off["total"] += 1
            if st in OK_STATUSES:
                off["passed"] += 1
            elif st == SKIP:
                off["skipped"] += 1
            else:
                off["failed"] += 1
    return {"on_loop": on, "not_touched": off}


def classify(loop, results):
    """Split bad outcomes into expected/unexpected; find expected ones now passing."""
    unexpected, expected, flaky = [], [], []
    seen_status = {}
    for name, mod in results["modules"].items():
        if mod["status"] == "fatal":
            unexpected.append({"id": f"{name}.<load>", "module": name, "status": "fatal",
                               "detail": mod["fatal"]})
        for problem in mod.get("problems", []):
            unexpected.append({"id": f"{name}.<worker>", "module": name, "status": CRASH,
                               "summary": problem.splitlines()[0], "detail": problem})
        for tid, rec in mod.get("tests", {}).items():
            seen_status[tid] = rec["status"]
            if rec.get("flaky"):
                flaky.append({"id": tid, "module": name, "first_status": rec["first_status"]})
            if rec["status"] in BAD_STATUSES:
                listed = expected_entry(loop, tid)
                entry = {"id": tid, "module": name, "status": rec["status"],
                         "touched": rec.get("touched"),
                         "summary": rec.get("summary") or _last_line(rec.get("detail")),
                         "detail": rec.get("detail")}
                if listed is None:
                    unexpected.append(entry)
                elif listed[1] and not re.search(listed[1], _last_line(rec.get("detail"))):
                    # Listed for one reason, failing for another: that is news.
                    entry["summary"] = (f"listed in expected.py ({listed[0]}) but the failure "
                                        f"does not match {listed[1]!r}: {entry['summary']}")
                    unexpected.append(entry)
                else:
                    entry["reason"] = listed[0]
                    expected.append(entry)
    now_passing = []
    for key, (reason, _) in _expected_table(loop).items():
        if _is_pattern(key):
            matched = [t for t in seen_status if fnmatch.fnmatchcase(t, key)]
        else:
            matched = [key] if key in seen_status else []
        if matched and all(seen_status[t] in OK_STATUSES for t in matched):
            now_passing.append({"id": key, "reason": reason})
    return unexpected, expected, now_passing, flaky


# --------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------

def _last_line(detail):
    if not detail:
        return ""
    lines = [l for l in detail.strip().splitlines() if l.strip()]
    for l in reversed(lines):
        if not l.startswith(("  ", "Traceback", "----")):
            return l.strip()[:200]
    return lines[-1].strip()[:200] if lines else ""


def _fmt_row(cells, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths)))


def print_summary(results, out=sys.stdout, verbose=False):
    loop = results["loop"]
    info = results.get("loop_info") or {}
    print(f"\n== {loop} ({info.get('class', '?')} {info.get('version') or ''}) on Python "
          f"{results['python']} -- {len(results['modules'])} modules in "
          f"{results['duration']:.1f}s", file=out)
    head = ["module", "on-loop", "passed", "failed", "errors", "skipped",
            "not-touched", "(failed)", "time"]
    rows = []
    tot = [0] * 7
    for name, mod in results["modules"].items():
        if mod["status"] == "unavailable":
            rows.append([name, "-", "-", "-", "-", "-", "-", "-", "n/a"])
            continue
        if mod["status"] == "fatal":
            rows.append([name + " !", "-", "-", "-", "-", "-", "-", "-", "NOT RUN"])
            continue
        c = module_counts(mod)
        on, off = c["on_loop"], c["not_touched"]
        vals = [on["run"], on["passed"], on["failed"], on["errors"], on["skipped"],
                off["total"], off["failed"]]
        tot = [a + b for a, b in zip(tot, vals)]
        flag = " !" if mod["status"] in ("fatal", "problems") else ""
        rows.append([name + flag] + vals + [f"{mod['duration']:.1f}s"])
    rows.append(["TOTAL"] + tot + [f"{results['duration']:.1f}s"])
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    print(_fmt_row(head, widths), file=out)
    for r in rows:
        print(_fmt_row(r, widths), file=out)

    unexpected, expected, now_passing, flaky = classify(loop, results)
    if results.get("rebuilt_during_run"):
        print(f"\nWARNING: {loop}'s files changed while the run was going (rebuilt in "
              "place?); results of modules run around then are not trustworthy:", file=out)
        for path in results["rebuilt_during_run"]:
            print(f"  {path}", file=out)
    if expected:
        print(f"\nExpected failures ({len(expected)}, listed in expected.py):", file=out)
        by_reason = {}
        for e in expected:
            by_reason.setdefault(e["reason"], []).append(e)
        for reason, entries in by_reason.items():
            print(f"  [{len(entries)}] {reason}", file=out)
            if verbose or len(entries) <= 3:
                for e in entries:
                    print(f"        {e['id']}  [{e['status']}]", file=out)
    if flaky:
        print(f"\nFlaky: failed, then passed when the module ran again ({len(flaky)}):", file=out)
        for e in flaky:
            print(f"  {e['id']}  [first: {e['first_status']}]", file=out)
    if now_passing:
        print(f"\nUnexpectedly passing -- remove from the {loop} list in expected.py "
              f"({len(now_passing)}):", file=out)
        for e in now_passing:
            print(f"  {e['id']}  (was: {e['reason']})", file=out)
    if unexpected:
        print(f"\nUNEXPECTED FAILURES ({len(unexpected)}):", file=out)
        for e in unexpected:
            where = {True: "", False: " (never touched the loop)", None: ""}.get(
                e.get("touched"), "")
            summary = e.get("summary") or _last_line(e.get("detail"))
            print(f"  {e['id']}  [{e['status']}]{where}  {summary}", file=out)
            if verbose and e.get("detail"):
                print("    " + e["detail"].replace("\n", "\n    "), file=out)
    else:
        print(f"\nNo unexpected failures for {loop}.", file=out)
    return unexpected


def _with_expected(vals, n_expected):
    vals = list(vals)
    if n_expected:
        vals[2] = f"{vals[2]} ({n_expected} exp.)"
    return vals


def print_compare(all_results, out=sys.stdout):
    loops = list(all_results)
    names = []
    for res in all_results.values():
        for n in res["modules"]:
            if n not in names:
                names.append(n)
    pyver = next(iter(all_results.values()))["python"]
    print(f"\nCPython {pyver} test_asyncio, per module: tests run on each loop / passed / "
          "failed (failures+errors+hangs; 'exp.': of which listed in expected.py) / "
          "skipped / not touched (never created the loop under test)\n", file=out)
    head = ["module"]
    for lp in loops:
        head += [f"{lp} run", "pass", "fail", "skip", "not touched"]
    rows = []
    totals = {lp: [0] * 6 for lp in loops}
    expected = {lp: classify(all_results[lp]["loop"], all_results[lp])[1] for lp in loops}
    for n in names:
        row = [n]
        for lp in loops:
            mod = all_results[lp]["modules"].get(n)
            if mod is None or mod["status"] == "unavailable":
                row += ["n/a"] * 5
                continue
            c = module_counts(mod)
            on, off = c["on_loop"], c["not_touched"]
            vals = [on["run"], on["passed"], on["failed"] + on["errors"], on["skipped"],
                    off["total"]]
            n_expected = sum(1 for e in expected[lp] if e["module"] == n)
            totals[lp] = [a + b for a, b in zip(totals[lp], vals + [n_expected])]
            row += _with_expected(vals, n_expected)
        rows.append(row)
    total_row = ["**total**"]
    for lp in loops:
        total_row += _with_expected(totals[lp][:5], totals[lp][5])
    rows.append(total_row)
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def md(cells):
        return "| " + " | ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    print(md(head), file=out)
    print("|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2))
                         for i, w in enumerate(widths)) + "|", file=out)
    for r in rows:
        print(md(r), file=out)


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------

def resolve_modules(names):
    if not names:
        return list(modlist.DEFAULT_MODULES)
    groups = {"default": modlist.DEFAULT_MODULES, "transport": modlist.TRANSPORT_MODULES,
              "all": modlist.ALL_MODULES}
    out = []
    for n in names:
        for m in groups.get(n, [n]):
            if modlist.available(m) and not modlist.available("test_" + m):
                m = "test_" + m     # "tasks" -> "test_tasks"
            if m not in out:
                out.append(m)
    return out


def run_loop(loop, module_names, opts, log=sys.stderr):
    t0 = time.monotonic()
    results = {"loop": loop, "python": platform.python_version(),
               "implementation": platform.python_implementation(),
               "platform": platform.platform(), "executable": sys.executable,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "options": {"test_timeout": opts.test_timeout, "jobs": opts.jobs,
                           "rerun": opts.rerun},
               "modules": {}}
    done = {}
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        workdir = opts.keep_logs or tmp
        Path(workdir).mkdir(parents=True, exist_ok=True)

        def one(name):
            return name, ModuleRun(loop, name, opts, workdir).execute()

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as ex:
            futures = [ex.submit(one, n) for n in module_names]
            for i, fut in enumerate(concurrent.futures.as_completed(futures), 1):
                name, mod = fut.result()
                done[name] = mod
                if mod["status"] == "unavailable":
                    line = f"not available ({mod['reason']})"
                elif mod["status"] == "fatal":
                    line = "COULD NOT RUN: " + _last_line(mod["fatal"])
                else:
                    c = module_counts(mod)
                    on, off = c["on_loop"], c["not_touched"]
                    line = (f"{on['run']} on loop: {on['passed']} passed, {on['failed']} "
                            f"failed, {on['errors']} errors, {on['skipped']} skipped; "
                            f"{off['total']} not touched")
                    if mod["problems"]:
                        line += f"; {len(mod['problems'])} worker problems"
                print(f"[{loop} {i}/{len(module_names)}] {name}: {line} "
                      f"({mod['duration']:.1f}s)", file=log, flush=True)
    for name in module_names:     # keep the requested order
        results["modules"][name] = done[name]
        info = done[name].get("loop_info")
        if info and "loop_info" not in results:
            results["loop_info"] = info
    results["duration"] = round(time.monotonic() - t0, 2)
    results["rebuilt_during_run"] = rebuilt_files(results)
    unexpected, expected, now_passing, flaky = classify(loop, results)
    results["unexpected_failures"] = unexpected
    results["expected_failures"] = expected
    results["unexpectedly_passing"] = now_passing
    results["flaky"] = flaky
    return results


def show_saved(paths, verbose=False):
    """Summaries and a comparison table from saved results, re-checked against
    the current expected.py."""
    all_results = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for res in (data["results"].values() if "compare" in data else [data]):
            key = res["loop"]
            if key in all_results or len({r["python"] for r in all_results.values()}
                                         | {res["python"]}) > 1:
                key = f"{res['loop']}@{res['python']}"
            all_results[key] = res
    failed = False
    for res in all_results.values():
        if sys.version_info[:2] != tuple(int(x) for x in res["python"].split(".")[:2]):
            print(f"\n(note: {res['loop']} results are from Python {res['python']}; "
                  "version-specific expected.py entries are applied for this Python)")
        if print_summary(res, verbose=verbose):
            failed = True
    if len(all_results) > 1:
        print_compare(all_results)
    return 1 if failed else 0


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m tests.conformance.run",
        description="Run CPython's asyncio test suite against an event loop.")
    p.add_argument("modules", nargs="*",
                   help="test_asyncio modules (default: DEFAULT_MODULES); also the groups "
                        "'default', 'transport', 'all'")
    p.add_argument("--loop", default="gmploop", help="asyncio, uvloop or gmploop")
    p.add_argument("--compare", metavar="LOOP,LOOP",
                   help="run every loop listed and print a table per module")
    p.add_argument("--json", metavar="PATH", help="write full results as JSON")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="modules run in parallel (default 1: timing tests are "
                        "sensitive to load)")
    p.add_argument("--test-timeout", type=float, default=DEFAULT_TEST_TIMEOUT,
                   help="seconds before a single test is declared hung (default %(default)s)")
    p.add_argument("--module-timeout", type=float, default=DEFAULT_MODULE_TIMEOUT,
                   help="seconds for one module, restarts included (default %(default)s)")
    p.add_argument("--no-rerun", dest="rerun", action="store_false",
                   help="do not re-run failed tests to tell flaky ones apart")
    p.add_argument("--keep-logs", metavar="DIR",
                   help="keep workers' logs and JSON-lines results in DIR")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print tracebacks of unexpected failures")
    p.add_argument("--list", action="store_true", help="list known modules and exit")
    p.add_argument("--from-json", nargs="+", metavar="PATH",
                   help="do not run: print summaries (and a comparison table if several) "
                        "from files written by --json")
    # Worker mode (internal).
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-module", help=argparse.SUPPRESS)
    p.add_argument("--results", help=argparse.SUPPRESS)
    p.add_argument("--exclude-file", help=argparse.SUPPRESS)
    p.add_argument("--only-file", help=argparse.SUPPRESS)
    # Where test modules come from; test_harness.py points it at its probe module.
    p.add_argument("--package", default=modlist.PACKAGE, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    modlist.PACKAGE = opts.package

    if opts.worker:
        return worker_main(opts)

    if opts.list:
        for title, names in (("DEFAULT_MODULES", modlist.DEFAULT_MODULES),
                             ("TRANSPORT_MODULES", modlist.TRANSPORT_MODULES)):
            print(title)
            for n in names:
                why = modlist.available(n)
                print(f"  {n}" + (f"  (unavailable: {why})" if why else ""))
        return 0

    if opts.from_json:
        return show_saved(opts.from_json, verbose=opts.verbose)

    from .loops import LOOP_NAMES
    loops = [s.strip() for s in opts.compare.split(",")] if opts.compare else [opts.loop]
    for lp in loops:
        if lp not in LOOP_NAMES:
            p.error(f"unknown loop {lp!r}; choose from {', '.join(LOOP_NAMES)}")
    names = resolve_modules(opts.modules)
    for n in names:
        if n not in modlist.ALL_MODULES and modlist.available(n):
            p.error(f"unknown module {n!r}: {modlist.available(n)}")

    all_results = {}
    failed = False
    for lp in loops:
        res = run_loop(lp, names, opts)
        all_results[lp] = res
        if print_summary(res, verbose=opts.verbose):
            failed = True
    if opts.compare:
        print_compare(all_results)
    if opts.json:
        payload = all_results[loops[0]] if not opts.compare else {
            "compare": loops, "results": all_results}
        Path(opts.json).write_text(json.dumps(payload, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
