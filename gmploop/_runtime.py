"""The runtime: many Ps, one per CPU, each a gmploop loop in a process of its own.

What it does
------------
``gmploop.run(main, procs=N)`` (or ``GMPLOOP_PROCS=N``) turns the calling process into
a *supervisor* that forks N *P processes*. Each P pins itself to one CPU, makes a new
gmploop loop and runs ``main()`` on it exactly as ``asyncio.run`` would (a fresh
``asyncio.Runner``: SIGINT cancels the main task, then the remaining tasks are
cancelled, async generators and the default executor shut down). ``main`` runs once on
every P, the way each worker of a prefork server starts the whole application, so no
library ever sees two callbacks of one loop at once, and no Task moves between loops.

On a build with the GIL a process is the only M that runs Python code in parallel, so
here an M is a process and owns its P for life. (On free-threaded builds with the GIL
off the Ps are threads of one process instead: ``_threadrt.py``, which shares this
module's listener rules: ``bind_for_key``, ``free_index``, ``issue``.)

Concepts
--------
* **Supervisor.** Forks the Ps, answers their requests, forwards SIGINT and SIGTERM,
  reaps them and reports. It runs no event loop and no user code after the fork; its
  loop is a ``selectors`` wait on the Ps' control sockets and a signal wakeup socket.
* **Control socket.** One ``AF_UNIX``/``SOCK_SEQPACKET`` pair per P: message
  boundaries for free, and file descriptors ride along (``SCM_RIGHTS``). A P asks
  (``listen``) and waits for the answer; at its end it sends one report (``result``,
  ``failed``, ``interrupted``), after the connections it hands back if it is failing
  (``conns``, see 'Restarts'). The supervisor writes unasked only to move
  connections to a P ('Connection stealing'), which the P's loop reads.
* **Shared listeners.** See the section below.
* **Shared stats.** Each P publishes its ``LoopStats`` into a slot of a shared mapping
  made before the fork, so that ``gmploop.stats()`` in any P shows every P, and the
  supervisor prints schedtrace's one line for all Ps (``_statshm.py`` has the design).

Rejected approaches
-------------------
* ``multiprocessing``: its start methods either re-import ``__main__`` (spawn,
  forkserver: a ``main`` defined in a script or a lambda would not survive) or fork
  with machinery (a resource tracker, feeder threads) the Ps do not need. A bare
  ``os.fork`` gives each P the parent's imported modules, copy-on-write, the way a
  prefork server does.
* Threads as Ms on a GIL build: two loops in one process take turns on one core.
* Migrating tasks or callbacks between Ps: a Task is bound to its loop (and, from
  3.14, to its thread); the only work that may move is work not yet bound to a loop.
  Between processes that is an accepted connection (an fd), never a coroutine.

Shared listeners
----------------
A P that calls ``loop.create_server(host, port)`` (so also ``asyncio.start_server``,
aiohttp's ``TCPSite`` and ``web.run_app``), or ``loop.create_unix_server(path)``, does
not bind: ``_net.listener_source`` is this module's ``ListenerClient``, which asks the
supervisor for a socket for (family, type, proto, address, options), or for the path.
The supervisor binds it once (and removes a Unix socket's file when the runtime ends,
not when one P closes its server), and hands every P that
asks with the same key the same open file description over ``SCM_RIGHTS``. The n-th
server a P has open at once for one key gets the n-th socket bound for that key, so
a ``main`` that opens two servers on port 0 gets two sockets (the same two on every
P), every P sees the same ephemeral port, and a server closed and opened again on its
port gets its socket back.

Every P registers that socket edge-triggered with ``EPOLLEXCLUSIVE``: a new
connection wakes one P that is waiting in ``epoll_wait``, and a P that is running a
callback is not the one woken (the kernel moves on to an epoll that has a waiter). A
woken P accepts a small batch (``SHARED_ACCEPT_BATCH`` in ``_streams.pyx``) and
requeues itself if more wait. So a P stuck in a callback accepts nothing new, and
connections that arrive meanwhile go to the Ps that are polling: the known weakness of
per-worker ``SO_REUSEPORT`` listeners (the kernel hashes each connection to one socket,
polled or not) is gone.

``GMPLOOP_LISTEN=reuseport`` keeps the per-P mode for comparison: the supervisor binds
a placeholder with ``SO_REUSEPORT`` (never listening, so the kernel sends it nothing),
which fixes the port, and each P binds a listener of its own to that address.

The supervisor keeps its copy of each listener until the runtime ends: closing a
server in every P stops accepting, but the port stays bound until ``run`` returns.

Connection stealing
-------------------
What moves between Ps is work no loop has started: here, an accepted connection
before its protocol exists (a coroutine cannot cross a process boundary). A P's
accept loop does not start what it accepts on a shared listener: it puts the
connection in the P's ``StealQueue`` (``ConnHandoff``), and the P starts at most
``START_BATCH`` of them per iteration. The queues of all Ps live in one ``MAP_SHARED``
mapping made before the fork (``SharedStealQueues``); an item is ``listener id << 32
| fd + 1``, the fd being a number in the owner's table.

The thief is the supervisor, acting as Go's sysmon does for a P stuck in a syscall:
every few milliseconds it reads each queue's head, and when a P has left work
waiting for ``STUCK_AFTER`` without taking any, it steals half of it for the P with
the least waiting work. It must own a copy of each connection before it may take it
away, so the steal is two-step (``peek_half``, then ``commit``, the CAS that takes
them iff no one took one meanwhile): copy the items, duplicate each fd into its own
table with ``pidfd_getfd(2)`` (a parent may do that to its children), commit, then
pass the fds to the chosen P over its control socket (``SCM_RIGHTS``), which the P's
loop reads (the one message a P gets unasked). A failed commit or a failed
duplicate (the victim exited) closes the copies: the victim keeps its work.

The victim's own copies: its queue is written only by itself, so once its queue is
empty, every connection it accepted and did not start was stolen, and it closes its
copies then (the peer's connection stays open through the thief's). Without
``pidfd_getfd`` (not Linux, or a kernel before 5.6) there is no stealing and every P
starts what it accepts.

Rejected: the victim handing connections over itself (a stuck P is exactly the one
that cannot); Ps stealing from each other directly (``pidfd_getfd`` needs ptrace
rights that siblings need not have; the parent has them); starting connections at
once and migrating their transports (a started connection belongs to its loop).

Restarts
--------
``run(main, procs=N, restart=R)`` (``GMPLOOP_RESTART=R``, ``Policy(restart=R)``):
a P that fails is started again, at most R times per P within ``RESTART_WINDOW``;
the failure after those ends the run as without restarts (``PFailedError``, which
says the budget was spent). "Fails" is what would otherwise end the run: an
exception out of ``main``, a non-zero exit, death by a signal; not an end by SIGINT
or SIGTERM, which someone sent on purpose, and nothing is restarted once the runtime
is shutting down. Each failure is reported on the supervisor's stderr, with its
status and traceback, before the new P starts: a crash loop is never quiet.

The new P is a new fork of the supervisor, exactly as the first (in policy mode too:
the supervisor still stands where the program started the Ps, so the new P resumes
the program from there). It takes the dead P's index, CPU and queue, and asks for
its listeners as the first did, getting the same shared sockets.

Connections of a P that fails: those started are its own, and end with it (their
clients see the connection reset). Those it accepted and had not started wait in
its queue and its ``ConnHandoff``. A P that fails with an exception (or a non-zero
``sys.exit``) hands them back first: it sends them to the supervisor as a thief's
haul, which parks them and passes them on as stolen ones ('Connection stealing'); a
P given connections for a server it has not started yet keeps them until that
server starts (the new P may be given its predecessor's before it has listened).
A P that dies at once (a signal, ``os._exit``) cannot: the kernel closes its fds,
and those connections are lost; its queue still names them, so the supervisor,
the ring's only user left, empties it before the new P takes it over, and the
report counts them. Connections sent to a P that died before reading them are lost
the same way. A new P closes the parked connections it inherits at the fork.

Rejected: restarting every P on any failure (one P's crash is not the others');
an unbounded restart (a P that fails at once would fork forever, never reported as
a failure of the program); restarting a P that ends normally (``main`` returned:
the program on that P is done, as a prefork server's worker that exits cleanly).

Invariants
----------
* A P never returns into the caller's frames: whatever happens, it ends in
  ``os._exit`` after one report to the supervisor.
* Every P is accounted for: reaped, with its report or its exit status. A P that
  fails (an exception out of ``main``, a non-zero exit, death by a signal, or an
  interruption the supervisor did not ask for) and is not restarted ('Restarts')
  makes ``run`` raise ``PFailedError`` with its status and traceback, after the
  other Ps were shut down.
* ``run`` restores the signal handlers and the wakeup fd it found.

Races it survives
-----------------
* A signal during the forks: SIGINT, SIGTERM and SIGCHLD are blocked around each
  ``fork``; the child installs its own handlers before unblocking them.
* The supervisor dies (SIGKILL): each P asked the kernel for SIGTERM on its parent's
  death (``PR_SET_PDEATHSIG``) and checks, after asking, that the parent is still the
  one it was forked from.
* Ctrl-C in a terminal signals the whole foreground process group. Each P leads a
  process group of its own, so it hears of it only from the supervisor, which sends
  the first SIGINT or SIGTERM on as SIGTERM. A P acts on its first SIGTERM only (it
  does what SIGINT does to ``asyncio.run``), so a copy from elsewhere (a service
  manager signals every process of a service) changes nothing. A second Ctrl-C is
  forwarded as SIGINT, which interrupts the P at once, as a second Ctrl-C interrupts
  ``asyncio.run``.
* A P's report and its exit race: the report is read from its control socket when the
  socket is readable and once more after the P is reaped, before the socket is closed.
* A P asks for a listener while the supervisor is moving connections to it: the
  request's reply loop adopts the moved connections it reads before the reply.
* A victim's fd number is closed and reused between the supervisor's copy of the queue
  and its ``pidfd_getfd``: the number now names another socket, but the owner took
  that item, so the commit fails and the wrong duplicate is closed. The owner never
  reuses the number of a connection that was stolen before closing its own copy.
"""

import asyncio
import errno
import os
import pickle
import selectors
import signal
import socket
import sys
import threading
import time
import traceback

from asyncio import events as aio_events

from . import _net, _statshm
from ._runq import SharedStealQueues

__all__ = ("PFailedError", "resolve_procs", "run_procs")

# A report or request larger than this is cut (a traceback) or refused (a result): the
# kernel's default socket buffer, which bounds one SEQPACKET message, is about 200 KiB.
MAX_MESSAGE = 128 * 1024
# Longest traceback text a P sends; the end of a traceback is the part that matters.
MAX_TRACEBACK = 64 * 1024
# Signals the supervisor handles itself while Ps run.
SUPERVISOR_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
PR_SET_PDEATHSIG = 1    # <linux/prctl.h>
SYS_pidfd_getfd = 438   # the same number on every Linux architecture (5.6 and later)
# Connection stealing (see the essay): accepted connections a P may hold unstarted (a
# power of two; one accept batch is 8, so this is slack, not a target).
HANDOFF_CAPACITY = 256
# Unstarted connections a P starts per iteration of its loop: few, so that one that
# turns out to block the P leaves the others stealable. A guess, not yet tuned.
START_BATCH = 4
# A P whose queue head has not moved for this long while connections wait is not
# taking them (Go's sysmon retakes a P after 10 ms in a syscall).
STUCK_AFTER = 0.010
# The supervisor looks at the queues this often while any holds work, and less often
# while all are empty (an idle server should not wake 200 times a second).
STEAL_TICK_BUSY = 0.005
STEAL_TICK_IDLE = 0.020
# Connections moved per steal at most (one SCM_RIGHTS message carries them all).
STEAL_MOST = 64
# Restarting failed Ps (see 'Restarts'): run(restart=True) allows this many restarts
# of one P per RESTART_WINDOW (systemd's default burst is 5 starts in 10 s; a P's
# start is slower than most services', so a longer window).
RESTART_DEFAULT = 5
RESTART_WINDOW = 60.0


class PFailedError(RuntimeError):
    """One or more Ps of ``gmploop.run(main, procs=N)`` failed.

    ``failures`` is a list of ``(index, pid, status, traceback_text)``: the P's number,
    its process id, how it ended (e.g. ``"exit status 1"``, ``"killed by SIGKILL"``)
    and the traceback it sent (``""`` when it could send none).
    """

    def __init__(self, failures):
        self.failures = failures
        lines = [f"{len(failures)} of gmploop's Ps failed:"]
        for index, pid, status, tb in failures:
            lines.append(f"P{index} (pid {pid}): {status}")
            if tb:
                lines.append("  " + tb.rstrip().replace("\n", "\n  "))
        super().__init__("\n".join(lines))


def resolve_procs(procs):
    """The number of Ps for run(procs=...): procs as given, else $GMPLOOP_PROCS, else 1;
    0 or "auto" means one per CPU this process may run on."""
    if procs is None:
        procs = os.environ.get("GMPLOOP_PROCS", "") or 1
    if isinstance(procs, str):
        text = procs.strip().lower()
        if text == "auto":
            procs = 0
        else:
            try:
                procs = int(text)
            except ValueError:
                raise ValueError(
                    f"procs must be a number of Ps, 0 or 'auto', not {procs!r}") from None
    elif isinstance(procs, bool) or not isinstance(procs, int):
        raise TypeError(f"procs must be an int or 'auto', not {type(procs).__name__}")
    if procs < 0:
        raise ValueError(f"procs must be >= 0, not {procs}")
    if procs == 0:
        procs = len(_usable_cpus()) or 1
    return procs


def _usable_cpus():
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def listen_mode():
    """'shared' (one listener for all Ps) or 'reuseport' (one per P), from
    $GMPLOOP_LISTEN."""
    mode = os.environ.get("GMPLOOP_LISTEN", "") or "shared"
    if mode not in ("shared", "reuseport"):
        raise ValueError(f"GMPLOOP_LISTEN must be 'shared' or 'reuseport', not {mode!r}")
    return mode


def resolve_restart(restart):
    """The restart budget for run(restart=...): how many times one P may be restarted
    within RESTART_WINDOW seconds (0: never). restart as given, else
    $GMPLOOP_RESTART, else 0; True (or "on", "yes", "true") means RESTART_DEFAULT."""
    if restart is None:
        restart = os.environ.get("GMPLOOP_RESTART", "") or 0
    if isinstance(restart, str):
        text = restart.strip().lower()
        if text in ("on", "yes", "true"):
            return RESTART_DEFAULT
        if text in ("off", "no", "false"):
            return 0
        try:
            restart = int(text)
        except ValueError:
            raise ValueError(f"restart must be a number of restarts, 'on' or 'off', "
                             f"not {restart!r}") from None
    elif isinstance(restart, bool):
        return RESTART_DEFAULT if restart else 0
    elif not isinstance(restart, int):
        raise TypeError(f"restart must be a bool or an int, not "
                        f"{type(restart).__name__}")
    if restart < 0:
        raise ValueError(f"restart must be >= 0, not {restart}")
    return restart


def check_run_args(main, procs):
    """What run(main, procs=N) needs whatever an M is: a callable main (it runs once
    on every P), no running loop here, the main thread (the one signals reach)."""
    if asyncio.iscoroutine(main) or not callable(main):
        if asyncio.iscoroutine(main):
            main.close()    # it will never run: no "never awaited" warning
        raise TypeError(
            f"gmploop.run(main, procs={procs}) runs main once on every P, so main must "
            f"be a callable that returns a coroutine (e.g. an async def function), "
            f"not {type(main).__name__}")
    if aio_events._get_running_loop() is not None:
        raise RuntimeError("gmploop.run() cannot be called from a running event loop")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("gmploop.run(procs=N) must be called from the main thread")


def run_procs(main, procs, debug, loop_factory, restart=None):
    """Run main() on procs Ps (procs > 1); see the module essay."""
    check_run_args(main, procs)
    if not hasattr(os, "fork"):
        raise RuntimeError("gmploop.run(procs=N) needs os.fork")
    return Supervisor(procs, listen_mode(), resolve_restart(restart)).run(
        main, debug, loop_factory)


def fork_here(procs, restart=None):
    """Policy mode (gmploop.Policy(procs=N)): fork procs Ps right here. Returns in
    each P, which goes on with the program (it is about to get its loop); the
    supervisor never returns: once every P has ended it raises SystemExit(0),
    KeyboardInterrupt, SystemExit(143) or PFailedError as run_procs would."""
    if aio_events._get_running_loop() is not None:
        raise RuntimeError("gmploop.Policy(procs=N) cannot start its Ps from inside a "
                           "running event loop")
    if not hasattr(os, "fork"):
        raise RuntimeError("gmploop.Policy(procs=N) needs os.fork")
    supervisor = Supervisor(procs, listen_mode(), resolve_restart(restart))
    supervisor.policy_mode = True
    supervisor.run(None, None, None)
    if supervisor.in_p:
        return
    raise SystemExit(0)


class _InP(Exception):
    """Policy mode: unwinds a new P out of Supervisor.run, back to the program."""


# ---------------------------------------------------------------------- messages

def _send(sock, message, fds=()):
    data = pickle.dumps(message)
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


# ---------------------------------------------------------------------- supervisor

class _PState:
    """The supervisor's record of one P."""

    __slots__ = ("index", "pid", "cpu", "sock", "report", "status", "pidfd", "queue",
                 "last_head", "head_since", "restarts", "handed_back")

    def __init__(self, index, pid, cpu, sock, restarts):
        self.index = index
        self.pid = pid
        self.cpu = cpu
        self.sock = sock
        self.report = None      # the P's last message: ("result", value), ...
        self.status = None      # os.waitpid status once reaped
        self.pidfd = -1         # for pidfd_getfd (connection stealing)
        self.queue = None       # its queue of unstarted connections (shared memory)
        self.last_head = 0      # that queue's head when last seen to move ...
        self.head_since = 0.0   # ... and since when
        self.restarts = restarts    # monotonic times this P index was restarted at
        self.handed_back = 0        # unstarted connections it gave back as it failed


class Supervisor:
    """Forks the Ps and looks after them (see 'Concepts' above). Main thread only."""

    def __init__(self, procs, mode, restart=0):
        self.procs = procs
        self.mode = mode
        self.restart = restart          # restarts allowed per P per RESTART_WINDOW
        self.ps = []
        self.listeners = {}     # key -> [socket, ...] in the order first asked for
        self.selector = None
        self.shutdown_signal = None     # the first SIGINT/SIGTERM received
        self.failed = False
        self.in_p = False               # policy mode: this process is now a P
        self.shared = None              # SharedStealQueues: one queue per P
        self.listener_ids = []          # listener id -> socket (ids ride in queue items)
        self.steals = 0                 # connections moved from a stuck P to another
        self.parked = []                # stolen (ids, fds) not yet handed to a P
        self.unix_files = []            # (path, inode) of Unix listeners, removed at end
        self.policy_mode = False        # started by fork_here (gmploop.Policy)
        self.stats = None               # _statshm.SharedStats: each P's LoopStats
        self.trace = None               # _statshm.RuntimeTrace, with schedtrace on
        self.fork_args = None           # what _fork needs again to restart a P

    def run(self, main, debug, loop_factory):
        cpus = _usable_cpus()
        pinned = hasattr(os, "sched_setaffinity")
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_handlers = {}
        old_wakeup = None
        self.selector = selectors.DefaultSelector()
        try:
            for sig in SUPERVISOR_SIGNALS:
                old_handlers[sig] = signal.signal(sig, _note_signal)
            old_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
            self.selector.register(wake_r, selectors.EVENT_READ, None)
            if self.mode == "shared" and _pidfd_getfd is not None:
                self.shared = SharedStealQueues(self.procs, HANDOFF_CAPACITY)
            self.stats = _statshm.SharedStats(self.procs)
            self.trace = _statshm.RuntimeTrace.configured(self.stats)
            self.fork_args = (main, debug, loop_factory, wake_r, wake_w)
            for index in range(self.procs):
                cpu = cpus[index % len(cpus)] if pinned and cpus else None
                self.ps.append(self._fork(index, cpu, []))
            self._supervise(wake_r)
        except _InP:
            # Policy mode, in a P: go back to the program (the supervisor's fds and
            # handlers were dealt with at the fork).
            self.in_p = True
            return None
        except BaseException:
            # The supervisor itself failed (or was interrupted before it could set up):
            # no P may outlive it unreported.
            self._kill_all(signal.SIGTERM)
            self._reap_all_blocking()
            raise
        finally:
            if not self.in_p:
                self._close(old_wakeup, old_handlers, wake_r, wake_w)
        return self._outcome()

    def _close(self, old_wakeup, old_handlers, wake_r, wake_w):
        """Supervisor: restore what run() found, close what it made."""
        if old_wakeup is not None:
            signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        self.selector.close()
        for p in self.ps:
            p.sock.close()
            if p.pidfd >= 0:
                os.close(p.pidfd)
                p.pidfd = -1
        for socks in self.listeners.values():
            for s in socks:
                s.close()
        for path, inode in self.unix_files:
            _net._remove_if_ours(path, inode)
        for _victim, _ids, fds in self.parked:
            for fd in fds:
                os.close(fd)
        if self.stats is not None:
            self.stats.close()
        wake_r.close()
        wake_w.close()

    def _fork(self, index, cpu, restarts):
        """Start P number index; its _PState, for the caller to put in self.ps."""
        main, debug, loop_factory, wake_r, wake_w = self.fork_args
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                # The P: never returns (see 'Invariants').
                try:
                    parent_sock.close()
                    wake_r.close()
                    wake_w.close()
                    for p in self.ps:
                        p.sock.close()
                        if p.pidfd >= 0:
                            os.close(p.pidfd)
                    self.selector.close()
                    for socks in self.listeners.values():
                        for s in socks:
                            s.close()
                    # A P started again after a failure: connections parked for
                    # other Ps are not its own to hold open.
                    for _victim, _ids, fds in self.parked:
                        for fd in fds:
                            os.close(fd)
                finally:
                    queue = self.shared.queue(index) if self.shared else None
                    _statshm.attach(self.stats, index)
                    if main is None:
                        _p_continue(index, cpu, child_sock, blocked, queue)
                        raise _InP()    # back to the program: see fork_here
                    _p_main(index, cpu, child_sock, main, debug, loop_factory,
                            blocked, queue)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child_sock.close()
        p = _PState(index, pid, cpu, parent_sock, restarts)
        if self.shared is not None:
            p.queue = self.shared.queue(index)
            try:
                p.pidfd = os.pidfd_open(pid)
            except OSError:
                p.pidfd = -1
        self.selector.register(parent_sock, selectors.EVENT_READ, p)
        return p

    def _supervise(self, wake_r):
        tick = STEAL_TICK_IDLE if self.shared is not None else 1.0
        while any(p.status is None for p in self.ps):
            timeout = tick if self.trace is None else self.trace.timeout(tick)
            for key, _ in self.selector.select(timeout=timeout):
                if key.data is None:
                    self._signals(wake_r)
                else:
                    self._read_messages(key.data)
            self._reap()
            if self.shared is not None:
                tick = STEAL_TICK_BUSY if self._steal_tick() else STEAL_TICK_IDLE
                if self.parked:
                    self._deliver_parked(self.ps, time.monotonic())
            if self.trace is not None:
                self.trace.tick(self.ps)

    def _steal_tick(self):
        """'Connection stealing': move half the unstarted connections of a P that is
        not taking them to the P with the least work. True while any queue holds
        connections."""
        now = time.monotonic()
        live = [p for p in self.ps if p.status is None and p.pidfd >= 0]
        stuck = None
        busy = False
        for p in live:
            head, waiting = p.queue.head, len(p.queue)
            busy = busy or waiting > 0
            if waiting == 0 or head != p.last_head:
                p.last_head, p.head_since = head, now
            elif now - p.head_since >= STUCK_AFTER and stuck is None:
                stuck = p
        if stuck is None:
            return busy
        if not self._takers(live, now, stuck):
            return busy
        items, head = stuck.queue.peek_half(STEAL_MOST)
        fds = []
        taken = False
        try:
            for item in items:
                # Duplicate each connection into this process before taking it, so
                # that the victim may close its copy the moment it sees it gone.
                fds.append(_pidfd_getfd(stuck.pidfd, (item & 0xFFFFFFFF) - 1))
            taken = bool(items) and stuck.queue.commit(head, len(items))
        except OSError:
            pass        # the victim died or closed one meanwhile: it keeps its work
        if not taken:
            for fd in fds:
                os.close(fd)
            return True
        self.steals += len(items)
        self.parked.append((stuck, [item >> 32 for item in items], fds))
        self._deliver_parked(live, now)
        return True

    @staticmethod
    def _takers(live, now, victim):
        """Ps that may be given stolen work: not the victim, and taking their own."""
        return [p for p in live if p is not victim and p.status is None and
                (len(p.queue) == 0 or now - p.head_since < STUCK_AFTER)]

    def _deliver_parked(self, live, now):
        """Hand stolen connections to the P with the least waiting work whose control
        socket takes them without blocking (the supervisor must never block on a P);
        what no P takes now waits for the next tick. Nothing new goes to Ps that are
        shutting down: what is parked then is closed when run ends."""
        if self.failed or self.shutdown_signal is not None:
            return
        while self.parked:
            victim, ids, fds = self.parked[0]
            takers = self._takers(live, now, victim)
            if not takers:
                return
            thief = min(takers, key=lambda p: len(p.queue))
            try:
                socket.send_fds(thief.sock, [pickle.dumps(("conns", ids))], fds,
                                socket.MSG_DONTWAIT)
            except OSError:
                return
            self.parked.pop(0)
            for fd in fds:
                os.close(fd)

    def _signals(self, wake_r):
        try:
            data = wake_r.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            if signum not in (signal.SIGINT, signal.SIGTERM):
                continue
            if self.shutdown_signal is None:
                # The first one reaches every P as SIGTERM, which a P acts on once
                # (see 'Races'): so a copy sent to a P by anyone else cannot turn the
                # shutdown into an interruption. A later Ctrl-C goes as SIGINT: it
                # interrupts the Ps at once, as a second Ctrl-C does asyncio.run.
                self.shutdown_signal = signum
                self._kill_all(signal.SIGTERM)
            elif signum == signal.SIGINT:
                self._kill_all(signal.SIGINT)

    def _kill_all(self, signum):
        for p in self.ps:
            if p.status is None:
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:
                    pass

    def _read_messages(self, p):
        while True:
            try:
                # Only "conns" brings fds (a failing P's unstarted connections).
                data, fds = _recv_with_fds(p.sock, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._unregister(p)
                return
            message = pickle.loads(data)
            if message[0] == "conns" and self.shared is not None and fds:
                self.parked.append((p, message[1], fds))
                p.handed_back += len(fds)
                continue
            for fd in fds:
                os.close(fd)
            if message[0] == "listen":
                self._answer_listen(p, message[1], message[2])
            else:
                p.report = message

    def _unregister(self, p):
        try:
            self.selector.unregister(p.sock)
        except (KeyError, ValueError):
            pass

    def _answer_listen(self, p, key, index):
        socks = self.listeners.setdefault(key, [])
        try:
            while len(socks) <= index:
                sock = self._bind(key)
                if sock is None:
                    _send(p.sock, ("nofamily",))
                    return
                socks.append(sock)
        except OSError as exc:
            _send(p.sock, ("oserror", exc.errno, exc.strerror or str(exc)))
            return
        except Exception as exc:
            _send(p.sock, ("error", type(exc).__name__, str(exc)))
            return
        sock = socks[index]
        if sock not in self.listener_ids:
            self.listener_ids.append(sock)
        mode = self.mode if key[0] == "tcp" else "shared"   # no SO_REUSEPORT for Unix
        _send(p.sock, ("ok", mode, self.listener_ids.index(sock)), [sock.fileno()])

    def _bind(self, key):
        return bind_for_key(key, self.mode, self.listeners, self.unix_files)

    def _reap(self):
        for p in self.ps:
            if p.status is not None:
                continue
            try:
                pid, status = os.waitpid(p.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = p.pid, 255 << 8
            if pid == 0:
                continue
            p.status = status
            self.stats.clear(p.index)       # it drops out of gmploop.stats()
            self._read_messages(p)
            self._unregister(p)
            if self._p_failed(p) and self._may_restart(p):
                self._restart(p)
            elif self._p_failed(p) and not self.failed:
                # One P lost is a failed program: stop the others as on SIGTERM.
                self.failed = True
                self._kill_all(signal.SIGTERM)

    def _may_restart(self, p):
        """'Restarts': p failed; may it be started again?"""
        if not self.restart or self.failed or self.shutdown_signal is not None:
            return False
        if p.report and p.report[0] == "interrupted":
            return False        # someone signalled this P: it is not a crash
        code = os.waitstatus_to_exitcode(p.status)
        if code in (-signal.SIGINT, -signal.SIGTERM):
            return False
        now = time.monotonic()
        p.restarts[:] = [t for t in p.restarts if now - t < RESTART_WINDOW]
        return len(p.restarts) < self.restart

    def _restart(self, p):
        """'Restarts': report p's failure, drop what died with it, start a new P with
        the same index and CPU in its place."""
        p.restarts.append(time.monotonic())
        lost = self._drop_queue(p)
        note = ""
        if p.handed_back:
            note += f"; its {p.handed_back} unstarted connections go to other Ps"
        if lost:
            note += f"; {lost} unstarted connections were lost with it"
        text = (f"gmploop: P{p.index} (pid {p.pid}) failed: {self._describe(p)}{note}; "
                f"restarting it ({len(p.restarts)} of {self.restart} restarts allowed "
                f"in {RESTART_WINDOW:g} s)\n")
        tb = self._traceback(p)
        if tb:
            text += "  " + tb.rstrip().replace("\n", "\n  ") + "\n"
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        p.sock.close()
        if p.pidfd >= 0:
            os.close(p.pidfd)
            p.pidfd = -1
        self.ps[self.ps.index(p)] = self._fork(p.index, p.cpu, p.restarts)

    @staticmethod
    def _drop_queue(p):
        """p is dead: empty its steal queue for the P that takes its index, and say
        how many connections were in it. The items name fds of the dead process,
        which the kernel closed (those connections are gone: their clients see the
        connection reset); the supervisor, the only other user of the ring, acts as
        its owner here."""
        if p.queue is None:
            return 0
        lost = 0
        while True:
            try:
                p.queue.pop()
            except IndexError:
                return lost
            lost += 1

    def _reap_all_blocking(self):
        for p in self.ps:
            if p.status is None:
                try:
                    _, p.status = os.waitpid(p.pid, 0)
                except ChildProcessError:
                    p.status = 255 << 8

    def _p_failed(self, p):
        kind = p.report[0] if p.report else None
        code = os.waitstatus_to_exitcode(p.status)
        if kind in ("result", "exit", None) and code == 0:
            # A result (run), or the program's own end (policy mode: no report).
            return False
        if kind is None and self.shutdown_signal is not None and \
                code == -self.shutdown_signal:
            # Policy mode: a P whose program let the forwarded signal kill it.
            return False
        # Ended by the shutdown the supervisor asked for: that is not a failure.
        if kind == "interrupted" and (self.shutdown_signal is not None or self.failed):
            return False
        return True

    def _outcome(self):
        failures = []
        results = []
        for p in self.ps:
            if self._p_failed(p):
                status = self._describe(p)
                if self.restart and len(p.restarts) >= self.restart:
                    status += (f" (and {len(p.restarts)} restarts within "
                               f"{RESTART_WINDOW:g} s were all it was allowed)")
                failures.append((p.index, p.pid, status, self._traceback(p)))
            elif p.report and p.report[0] == "result":
                results.append(p.report[1])
            else:
                results.append(None)
        if failures:
            raise PFailedError(failures)
        if self.policy_mode and all(os.waitstatus_to_exitcode(p.status) == 0
                                    for p in self.ps):
            # Every P's program ended by itself (it handled the signal, as
            # web.run_app does): so does the supervisor's.
            raise SystemExit(0)
        if self.shutdown_signal == signal.SIGINT:
            raise KeyboardInterrupt()
        if self.shutdown_signal == signal.SIGTERM:
            raise SystemExit(128 + signal.SIGTERM)
        return results

    @staticmethod
    def _traceback(p):
        if p.report and p.report[0] in ("failed", "interrupted", "exit"):
            return p.report[1]
        return ""

    def _describe(self, p):
        code = os.waitstatus_to_exitcode(p.status)
        if code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exit status {code}"
        kind = p.report[0] if p.report else None
        if kind is None:
            return f"{how}, without a report"
        if kind == "interrupted":
            return f"{how}, interrupted by a signal the runtime did not send"
        if kind == "failed":
            return f"{how}, main raised an exception"
        if kind == "exit":
            return f"{how}, main called sys.exit"
        return how


def bind_for_key(key, mode, listeners, unix_files):
    """A new listener for key: ("tcp", family, type, proto, address, options...) or
    ("unix", path). listeners: key -> [sockets] already held (a port first asked for
    as port 0, then by its number, is one of them); a Unix socket's file goes on
    unix_files as (path, inode), to be removed when the runtime ends."""
    if key[0] == "unix":
        sock = _net.bound_unix_listener(key[1])
        bound = sock.getsockname()
        if _net._is_filesystem_path(bound):
            unix_files.append((bound, os.stat(bound).st_ino))
        return sock
    _, family, type_, proto, address, reuse_address, reuse_port, keep_alive = key
    try:
        return _net.bound_listener(family, type_, proto, address, reuse_address,
                                   reuse_port or mode == "reuseport", keep_alive)
    except OSError as exc:
        sock = _bound_to(listeners, family, type_, address)
        if exc.errno != errno.EADDRINUSE or sock is None:
            raise
        return sock


def _bound_to(listeners, family, type_, address):
    """A listener held in listeners bound to exactly address, or None."""
    for socks in listeners.values():
        for sock in socks:
            if sock.family == family and sock.type == type_ and \
                    sock.getsockname()[:2] == tuple(address[:2]):
                return sock
    return None


def listener_key(family, type_, proto, address, reuse_address, reuse_port, keep_alive):
    """The key under which Ps share create_server's socket for one address."""
    return ("tcp", family, type_, proto, address, bool(reuse_address),
            bool(reuse_port), bool(keep_alive))


def free_index(issued):
    """The n-th server a P has open at once for one key gets the n-th socket: the
    first one this P has closed is reused (a server closed and opened again on a fixed
    port gets its socket back), else a new one."""
    return next((i for i, s in enumerate(issued) if s.fileno() < 0), len(issued))


def issue(issued, index, sock):
    """Record sock as the socket a P holds for index (see free_index)."""
    if index < len(issued):
        issued[index] = sock
    else:
        issued.append(sock)


def reuseport_listener(key, placeholder_fd):
    """GMPLOOP_LISTEN=reuseport: the P's own listener at the address of the runtime's
    placeholder (which only holds the port); placeholder_fd is closed."""
    _, family, type_, proto, _address, reuse_address, _, keep_alive = key
    with socket.socket(fileno=placeholder_fd) as placeholder:
        where = placeholder.getsockname()
    return _net.bound_listener(family, type_, proto, where, reuse_address, True,
                               keep_alive)


def _note_signal(signum, frame):
    """Supervisor's handler: nothing; the signal number reaches the wakeup socket."""


# ---------------------------------------------------------------------- the P

class SharedListenerSocket(socket.socket):
    """A listening socket that every P polls (see 'Shared listeners'); the accept loop
    in _streams.pyx reads the markers below: it registers the socket with
    EPOLLEXCLUSIVE and, when there is a handoff, queues what it accepts there."""

    __slots__ = ("_gmploop_handoff", "_gmploop_listener_id")
    _gmploop_shared = True


def _recv_with_fds(sock, flags=0):
    """One message and the fds that came with it (socket.recv_fds ignores flags)."""
    size = socket.CMSG_SPACE(STEAL_MOST * 4)
    data, ancdata, _flags, _addr = sock.recvmsg(MAX_MESSAGE, size, flags)
    fds = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += memoryview(payload)[:usable].cast("i").tolist()
    return data, fds


class ListenerClient:
    """The P's side of 'Shared listeners': _net.listener_source in a P. Also reads
    the connections the supervisor moves to this P ('Connection stealing')."""

    def __init__(self, sock, handoff):
        self.sock = sock
        self.handoff = handoff
        self.issued = {}        # key -> [socket given out for index 0, 1, ...]
        self.watched = None     # the loop that reads self.sock for moved connections

    def bound_listener(self, family, type_, proto, address, reuse_address, reuse_port,
                       keep_alive):
        """create_server's socket for one address (see _net.bound_listener)."""
        return self._request(listener_key(family, type_, proto, address, reuse_address,
                                          reuse_port, keep_alive))

    def bound_unix_listener(self, path):
        """create_unix_server's socket (see _net.bound_unix_listener). The supervisor
        removes the socket file when the runtime ends, not each P's server."""
        return self._request(("unix", path))

    def _request(self, key):
        issued = self.issued.setdefault(key, [])
        index = free_index(issued)
        _send(self.sock, ("listen", key, index))
        while True:
            data, fds = _recv_with_fds(self.sock)
            if not data:
                raise RuntimeError("gmploop: the runtime's supervisor has gone away")
            reply = pickle.loads(data)
            if reply[0] != "conns":
                break
            self.handoff.adopt(reply[1], fds)
        if reply[0] != "ok":
            for fd in fds:
                os.close(fd)
            if reply[0] == "nofamily":
                return None
            if reply[0] == "oserror":
                raise OSError(reply[1], reply[2])
            raise (ValueError if reply[1] == "ValueError" else RuntimeError)(reply[2])
        if reply[1] == "reuseport":
            # The supervisor's socket only holds the port: bind one of our own there.
            sock = reuseport_listener(key, fds[0])
            issue(issued, index, sock)
            return sock
        sock = SharedListenerSocket(fileno=fds[0])
        issue(issued, index, sock)
        sock._gmploop_listener_id = reply[2]
        sock._gmploop_handoff = self.handoff
        if self.handoff is not None:
            self._watch(asyncio.get_running_loop())
        return sock

    def _watch(self, loop):
        if self.watched is loop:
            return
        self.watched = loop
        self.handoff.loop = loop
        loop._steal_queue = self.handoff          # stats: connections waiting here
        loop.add_reader(self.sock.fileno(), self._read_moved)

    def _read_moved(self):
        while True:
            try:
                data, fds = _recv_with_fds(self.sock, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                self.watched.remove_reader(self.sock.fileno())
                return
            message = pickle.loads(data)
            if message[0] == "conns":
                self.handoff.adopt(message[1], fds)
            else:
                for fd in fds:
                    os.close(fd)


class ConnHandoff:
    """A P's queue of accepted, unstarted connections ('Connection stealing'):
    the accept loop puts, the P starts a few per iteration, the supervisor moves
    half of them to another P when this one stops taking them."""

    def __init__(self, queue):
        self.queue = queue          # raw StealQueue in shared memory: (id << 32 | fd+1)
        self.loop = None
        self.pending = {}           # fd -> (listener, socket, address), until started
        self.listeners = {}         # listener id -> this P's _Listener for that socket
        self.ids = {}               # _Listener -> listener id
        self.scheduled = False
        self.started = 0            # connections this P accepted and started
        self.stolen_out = 0         # ... accepted and then moved to another P
        self.stolen_in = 0          # moved here from another P and started
        self.early = {}             # listener id -> [(conn, addr)] moved here before
                                    # this P's server on that listener started

    def register(self, listener, sock):
        """Called by the accept loop when it starts on a shared socket."""
        lid = sock._gmploop_listener_id
        self.listeners[lid] = listener
        self.ids[listener] = lid
        for conn, addr in self.early.pop(lid, ()):
            self._start_moved(listener, conn, addr)

    def put(self, listener, conn, addr):
        """Owner P. conn was just accepted on listener: queue it unstarted."""
        fd = conn.fileno()
        if self.loop is None or not self.queue.push((self.ids[listener] << 32) | (fd + 1)):
            self.started += 1
            listener._start_accepted(conn, addr)
            return
        self.pending[fd] = (listener, conn, addr)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.start)

    def start(self):
        """Owner P, once per iteration while connections wait: start a few."""
        self.scheduled = False
        for _ in range(START_BATCH):
            try:
                item = self.queue.pop()
            except IndexError:
                break
            listener, conn, addr = self.pending.pop((item & 0xFFFFFFFF) - 1)
            self.started += 1
            listener._start_accepted(conn, addr)
        if len(self.queue):
            self.scheduled = True
            self.loop.call_soon(self.start)
        elif self.pending:
            # The queue is empty and only this P puts: whatever is still pending was
            # moved to another P, which holds its own copy. Close ours.
            for _listener, conn, _addr in self.pending.values():
                conn.close()
                self.stolen_out += 1
            self.pending.clear()

    def adopt(self, ids, fds):
        """Connections the supervisor moved here: start them now, or when this P's
        server on their listener starts (a P started again after a failure may be
        given the failed P's connections before its own server is up)."""
        for lid, fd in zip(ids, fds):
            conn = socket.socket(fileno=fd)
            try:
                conn.setblocking(False)
                addr = conn.getpeername()
            except OSError:
                conn.close()
                continue
            listener = self.listeners.get(lid)
            if listener is None:
                self.early.setdefault(lid, []).append((conn, addr))
            else:
                self._start_moved(listener, conn, addr)
        for fd in fds[len(ids):]:
            os.close(fd)

    def _start_moved(self, listener, conn, addr):
        self.stolen_in += 1
        if self.loop is not None:
            self.loop._n_steals += 1            # stats and schedtrace: steals=
        listener._start_accepted(conn, addr)

    def hand_back(self, sock):
        """Owner P, failing ('Restarts'): send the connections it accepted and did
        not start to the supervisor, which moves them to other Ps; close its copies
        of them all (the rest were moved already)."""
        items = []
        while True:
            try:
                items.append(self.queue.pop())
            except IndexError:
                break
        for i in range(0, len(items), STEAL_MOST):
            chunk = items[i:i + STEAL_MOST]
            _send(sock, ("conns", [item >> 32 for item in chunk]),
                  [(item & 0xFFFFFFFF) - 1 for item in chunk])
        for _listener, conn, _addr in self.pending.values():
            conn.close()
        self.pending.clear()
        for waiting in self.early.values():
            for conn, _addr in waiting:
                conn.close()
        self.early.clear()

    def __len__(self):
        """Connections waiting here unstarted (loop.stats().stealable)."""
        return len(self.queue)

    def stats(self):
        return {"started": self.started, "stolen_out": self.stolen_out,
                "stolen_in": self.stolen_in, "waiting": len(self.queue)}


def p_stats():
    """In a P: this P's connection counts (see ConnHandoff); None elsewhere."""
    source = _net.listener_source
    if source is None or source.handoff is None:
        return None
    return source.handoff.stats()


def _p_main(index, cpu, sock, main, debug, loop_factory, blocked, queue):
    """The body of P number index: runs main() and reports; ends the process."""
    code = 1
    try:
        try:
            code = _p_run(index, cpu, sock, main, debug, loop_factory, blocked, queue)
        except KeyboardInterrupt:
            # Signalled before main's runner was up (or after it was done).
            try:
                _send(sock, ("interrupted", traceback.format_exc()[-MAX_TRACEBACK:]))
            except BaseException:
                pass
            code = 0
        except SystemExit as exc:
            # sys.exit() in main: the P exits as a program would, with that status.
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None
                                                                else 1)
            if code:
                _hand_back(sock)
            try:
                _send(sock, ("exit", traceback.format_exc()[-MAX_TRACEBACK:]))
            except BaseException:
                pass
        except BaseException:
            # Whatever happened, the supervisor hears of it (see 'Invariants').
            text = traceback.format_exc()[-MAX_TRACEBACK:]
            _hand_back(sock)
            try:
                _send(sock, ("failed", text))
            except BaseException:
                pass
            code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


_terminating = False
_this_p = None          # in a P: its index (loops made there are labelled with it)
_handoff = None         # in a P with connection stealing: its ConnHandoff


def _hand_back(sock):
    """A failing P: its unstarted connections go back to the supervisor, which
    passes them to other Ps (see 'Restarts'); never raises."""
    if _handoff is None:
        return
    try:
        _handoff.hand_back(sock)
    except BaseException:
        pass
# The thread runtime (_threadrt.py): a P's index, per thread (thread_p.index).
thread_p = threading.local()


def this_p():
    """In a P of the runtime: its index, 0 to N-1; None elsewhere."""
    if _this_p is not None:
        return _this_p
    return getattr(thread_p, "index", None)


def _on_sigterm(signum, frame):
    """A P's SIGTERM: the first one does what SIGINT does to asyncio.run (cancel the
    main task, then shut down); later ones are ignored (see 'Races')."""
    global _terminating
    if _terminating:
        return
    _terminating = True
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt()


def _p_setup(index, cpu, sock, blocked, queue):
    """The start of every P: signals, process group, parent-death signal, CPU,
    listener source."""
    global _terminating
    _terminating = False
    parent = os.getppid()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpgid(0, 0)
    _set_parent_death_signal(signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    if os.getppid() != parent:
        raise RuntimeError("gmploop: the runtime's supervisor died during start-up")
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    os.environ["GMPLOOP_P"] = str(index)
    global _this_p
    _this_p = index
    global _handoff
    _handoff = None if queue is None else ConnHandoff(queue)
    _net.listener_source = ListenerClient(sock, _handoff)


def _p_run(index, cpu, sock, main, debug, loop_factory, blocked, queue):
    _p_setup(index, cpu, sock, blocked, queue)
    try:
        with asyncio.Runner(loop_factory=loop_factory, debug=debug) as runner:
            result = runner.run(main())
    except KeyboardInterrupt:
        _send(sock, ("interrupted", traceback.format_exc()[-MAX_TRACEBACK:]))
        return 0
    finally:
        _net.listener_source = None
    try:
        data = pickle.dumps(("result", result))
    except Exception as exc:
        raise RuntimeError(f"main's result could not be sent to the supervisor: "
                           f"{exc!r}") from exc
    if len(data) > MAX_MESSAGE:
        raise RuntimeError(f"main's result is too large to send to the supervisor "
                           f"({len(data)} bytes pickled, at most {MAX_MESSAGE})")
    sock.send(data)
    return 0


def _p_continue(index, cpu, sock, blocked, queue):
    """Policy mode: set the P up and arrange its report, then let the program go on.
    An exception that ends the program is reported (sys.excepthook) before Python
    prints it; a normal end is exit status 0 without a report."""
    _p_setup(index, cpu, sock, blocked, queue)
    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):
        kind = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        if kind == "failed":
            _hand_back(sock)
        try:
            _send(sock, (kind, text[-MAX_TRACEBACK:]))
        except OSError:
            pass
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook


def _set_parent_death_signal(signum):
    """Linux: have the kernel send signum to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _make_pidfd_getfd():
    """pidfd_getfd(2) through libc's syscall(), or None where it cannot be had."""
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return None
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):
        return None

    def pidfd_getfd(pidfd, fd):
        new = syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        if new < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return new

    return pidfd_getfd


_pidfd_getfd = _make_pidfd_getfd()
