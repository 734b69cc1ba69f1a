"""Known failures of CPython's asyncio tests, per loop, each with a one-line reason.

Keys are test ids as the runner prints them: ``<module>.<Class>.<test>``, where
the module is the test_asyncio module (``test_events``, not
``test_events_subprocess``) and bound mixin classes carry the names that
modules.py gives them (``EventLoopTests``, ``SubprocessTests``, ``SockTests``,
...).  A key may be an ``fnmatch`` pattern (``test_events.SubprocessTests.*``).

A value is either the reason, or a dict::

    {"reason": "...",
     "python": ["3.11", ...],   # optional: expected only on these Pythons
     "match": r"regex"}         # optional: expected only if the exception
                                # line (the traceback's last line) matches; a
                                # failure for any other reason is unexpected

Entries for private internals carry a ``match`` on the private name, so that
a test listed because its last line pokes ``loop._stop_serving`` still fails
the run if the loop breaks the assertions that come before it.

Rules:
* gmploop's list holds only tests that cannot pass on any loop other than
  asyncio's own, because they reach into asyncio's private internals (patch
  ``loop._selector``, ``BaseEventLoop`` methods, ``_run_once`` internals, ...)
  or test an asyncio-only API.  Real gmploop bugs are never listed here: they
  fail the run until fixed.
* The runner exits non-zero on any failure not listed for the loop, and
  prints listed tests that now pass ("unexpectedly passing -- remove from list").
"""

# Tests that need asyncio's private internals; no loop but asyncio's own can
# pass them.  Each is failed by uvloop for the same reason.
_PRIVATE = {
    "test_events.EventLoopTests.test_prompt_cancellation": {
        "reason": "reaches into asyncio private internals: its cleanup calls "
                  "loop._stop_serving(sock) (the sock_recv cancellation it tests "
                  "has passed by then)",
        "match": r"_stop_serving"},
    "test_events.EventLoopTests.test_timeout_rounding": {
        "reason": "reaches into asyncio private internals: wraps loop._run_once "
                  "to count iterations, reads loop._selector",
        "match": r"_run_once|_selector|_clock_resolution"},
    "test_events.EventLoopTests.test_create_server_multiple_hosts_ipv4": {
        "reason": "reaches into asyncio private internals: mock.patch of "
                  "asyncio.base_events.socket and loop._start_serving, so a loop "
                  "with its own create_server binds 1.2.3.4:80 for real",
        "match": r"Errno (98|99|13)|_start_serving|assign requested address|"
                 r"could not bind on any address"},
    "test_events.EventLoopTests.test_create_server_multiple_hosts_ipv6": {
        "reason": "reaches into asyncio private internals: mock.patch of "
                  "asyncio.base_events.socket and loop._start_serving, so a loop "
                  "with its own create_server binds [::2]:80 for real",
        "match": r"Errno (98|99|13)|_start_serving|assign requested address|"
                 r"getsockbyname"},
    # TRANSPORT_MODULES (not run by default).
    "test_sendfile.SendfileTests.test_sendfile_no_fallback_for_fallback_transport": {
        "reason": "reaches into asyncio private internals: a mock transport with "
                  "_sendfile_compatible = asyncio.constants._SendfileMode.FALLBACK",
        "match": r"fallback is disabled"},
    "test_ssl.TestSSL.test_flush_before_shutdown": {
        "reason": "reaches into asyncio private internals: "
                  "writer.transport._ssl_protocol",
        "match": r"_ssl_protocol"},
    "test_subprocess.SubprocessLoopTests.test_popen_error": {
        "reason": "patches subprocess.Popen, which asyncio's subprocess transport "
                  "happens to call; a loop that spawns on its own never sees it",
        "match": r"ZeroDivisionError not raised"},
    "test_subprocess.SubprocessLoopTests.test_popen_error_with_stdin_pipe": {
        "reason": "patches subprocess.Popen, which asyncio's subprocess transport "
                  "happens to call; a loop that spawns on its own never sees it",
        "match": r"ZeroDivisionError not raised"},
    "test_subprocess.GenericWatcherTests.*": {
        "reason": "tests asyncio's own child watchers (set_child_watcher, deprecated "
                  "in 3.12, gone in 3.14); a loop that reaps its own children has none",
        "match": r"NotImplementedError"},
}

# gmploop's policy keeps a child watcher as asyncio's Unix policy does (for code that
# uses one directly), but its subprocesses never go through it.
_GMPLOOP_WATCHER = {
    "test_subprocess.GenericWatcherTests.test_create_subprocess_fails_with_inactive_watcher": {
        "reason": "tests how asyncio's subprocess transport consults the child watcher "
                  "(with watcher: is_active()); gmploop reaps each child through its "
                  "pidfd and never consults it, so an inactive mock watcher cannot make "
                  "it fail",
        "match": r"RuntimeError not raised"},
}

_UVLOOP_TRANSPORT_CLASSES = (
    "uvloop's transports do not derive from asyncio.Transport / "
    "asyncio.DatagramTransport (isinstance checks fail)")

EXPECTED = {
    "asyncio": {},

    # uvloop 0.23.0: the harness's reference for a foreign loop.  Observed on
    # CPython 3.11.7 and 3.13.0.
    "uvloop": {
        **_PRIVATE,
        "test_events.EventLoopTests.test_create_connection": _UVLOOP_TRANSPORT_CLASSES,
        "test_events.EventLoopTests.test_create_unix_connection": _UVLOOP_TRANSPORT_CLASSES,
        "test_events.EventLoopTests.test_create_ssl_connection": _UVLOOP_TRANSPORT_CLASSES,
        "test_events.EventLoopTests.test_create_ssl_unix_connection":
            _UVLOOP_TRANSPORT_CLASSES,
        "test_events.EventLoopTests.test_create_datagram_endpoint": _UVLOOP_TRANSPORT_CLASSES,
        "test_events.EventLoopTests.test_create_datagram_endpoint_ipv6":
            _UVLOOP_TRANSPORT_CLASSES,
        "test_events.EventLoopTests.test_create_datagram_endpoint_sock":
            _UVLOOP_TRANSPORT_CLASSES,
        "test_sock_lowlevel.SockTests.test_create_connection_sock": _UVLOOP_TRANSPORT_CLASSES,
        "test_events.EventLoopTests.test_create_server_trsock":
            "uvloop's Server.sockets are uvloop.PseudoSocket, not asyncio.trsock.TransportSocket",
        "test_events.EventLoopTests.test_create_connection_local_addr_in_use":
            "uvloop's 'Address already in use' error does not name the address",
        "test_events.EventLoopTests.test_unclosed_pipe_transport":
            "uvloop's pipe transport repr lacks asyncio's open/closed wording",
        "test_events.EventLoopTests.test_writer_callback":
            "uvloop's remove_writer() returns None, not True, for a registered fd",
        "test_events.EventLoopTests.test_run_until_complete_nesting":
            "uvloop does not close the coroutine it refuses to run when nested "
            "(no 'never awaited' RuntimeWarning)",
        "test_events.EventLoopTests.test_add_signal_handler":
            "uvloop: handler never runs within the test's SHORT_TIMEOUT (the test's "
            "own timeout path then hits futures.TimeoutError, missing since 3.11)",
        "test_events.EventLoopTests.test_bidirectional_pty":
            "uvloop: pty data never arrives within the test's SHORT_TIMEOUT (the "
            "test's own timeout path then hits futures.TimeoutError)",
        "test_sock_lowlevel.SockTests.test_recvfrom":
            "uvloop does not implement sock_recvfrom (NotImplementedError)",
        "test_sock_lowlevel.SockTests.test_recvfrom_into":
            "uvloop does not implement sock_recvfrom_into (NotImplementedError)",
        "test_sock_lowlevel.SockTests.test_sendto_blocking":
            "uvloop does not implement sock_sendto (NotImplementedError)",
        "test_sock_lowlevel.SockTests.test_sock_client_racing":
            "uvloop: sock_connect racing a cancelled sock_recv hangs (timeout)",
        "test_tasks.RunCoroutineThreadsafeTests."
        "test_run_coroutine_threadsafe_task_factory_exception":
            "uvloop passes context= to a task factory that does not take it",
        "test_futures2.*Tests.test_task_exc_handler_correct_context":
            "uvloop: an unretrieved task exception is not reported after one "
            "sleep(0) (the task outlives its last reference)",
        "test_eager_task_factory.*":
            "uvloop 0.23 passes eager_start= to task factories; asyncio's "
            "create_eager_task_factory does not accept it",
    },

    # Only tests that need asyncio's private internals.  Real gmploop bugs are
    # never listed: they fail the run until fixed.
    "gmploop": {
        # gmploop spawns through subprocess.Popen, as asyncio does, so the tests that
        # patch it pass; it has the _stop_serving hook test_prompt_cancellation calls;
        # its transports keep the private attributes the two sendfile/TLS tests read.
        **_GMPLOOP_WATCHER,
        **{k: v for k, v in _PRIVATE.items() if not k.startswith(
            ("test_subprocess.SubprocessLoopTests.test_popen_error",
             "test_subprocess.GenericWatcherTests."))
           and k not in (
               "test_events.EventLoopTests.test_prompt_cancellation",
               "test_sendfile.SendfileTests."
               "test_sendfile_no_fallback_for_fallback_transport",
               "test_ssl.TestSSL.test_flush_before_shutdown")},
    },
}
