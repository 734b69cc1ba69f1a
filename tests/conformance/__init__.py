"""Run CPython's own asyncio test suite against gmploop (or another loop).

Entry points:

* ``python -m tests.conformance.run --loop gmploop``: the runner (see run.py).
* ``tests/conformance/test_cpython_asyncio.py``: the pytest gate that fails the
  project's normal test run on a conformance regression.

Everything here is test tooling; nothing is imported by gmploop itself.
"""
