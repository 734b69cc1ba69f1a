"""Subprocesses: asyncio's subprocess_exec / subprocess_shell on gmploop.

What it does
------------
The transport is asyncio's own pure-Python ``BaseSubprocessTransport`` (it spawns
with ``subprocess.Popen``, connects the child's pipes through the loop's
``connect_read_pipe`` / ``connect_write_pipe``, which are gmploop's pipe transports,
and orders ``pipe_data_received``, ``pipe_connection_lost``, ``process_exited`` and
``connection_lost``). asyncio's ``SubprocessStreamProtocol`` and ``Process`` (what
``asyncio.create_subprocess_exec`` builds) then work unchanged. What gmploop adds is
how the loop learns that a child exited.

Reaping
-------
gmploop reaps its own children, one at a time, and nobody else's:

* Where the kernel has pidfds (Linux 5.3+), ``os.pidfd_open(pid)`` gives an fd that
  becomes readable when the child exits; the loop watches it with ``add_reader`` (a
  child exits once: this path is not hot) and, when it fires, reaps exactly that
  child with ``waitid(P_PIDFD, ..., WNOHANG)``, which cannot reap another process
  that reused the pid, or ``waitpid(pid, WNOHANG)`` where ``P_PIDFD`` is missing.
* Elsewhere, or where pidfd_open fails (seccomp policies, an old kernel), a daemon
  thread per child blocks in ``waitpid(pid, 0)`` and hands the status to the loop
  with ``call_soon_threadsafe``.

Rejected: a SIGCHLD handler (a process has one SIGCHLD disposition: it would fight
with any other library's, and ``waitpid(-1)`` reaps children that are not ours), and
asyncio's child watchers (deprecated since 3.12 and gone in 3.14; their policy-level
registry is process-wide state a loop should not depend on).

Races
-----
* ``Popen.poll()`` reaps too: ``BaseSubprocessTransport.close()`` calls it, and so
  does ``Popen.send_signal`` on Python 3.11 (``Process.kill()`` there). Our wait then
  fails with ECHILD; the status is in ``Popen.returncode`` by then, and that is what
  is reported (asyncio reports 255 and a warning in that case).
* The exit is reported to the transport exactly once, and only while the loop that
  started the child is open; a thread that finishes after the loop closed logs a
  warning and drops the status, as asyncio's threaded watcher does.
"""

import os
import subprocess
import threading

from asyncio import base_events as _base_events
from asyncio import base_subprocess as _base_subprocess

# Looked up through the module so that tests can take the thread path.
_pidfd_open = getattr(os, "pidfd_open", None)
_P_PIDFD = getattr(os, "P_PIDFD", None)


def _logger():
    return _base_events.logger


def _exitcode(status):
    try:
        return os.waitstatus_to_exitcode(status)
    except ValueError:       # a status the os module does not understand: report it
        return status


class SubprocessTransport(_base_subprocess.BaseSubprocessTransport):
    """asyncio.SubprocessTransport for one child, its exit reported by gmploop."""

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        # On Linux a pipe's write end reports its reader closing (see _pipes), so
        # stdin is an ordinary pipe, as with asyncio there.
        self._proc = subprocess.Popen(
            args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
            universal_newlines=False, bufsize=bufsize, **kwargs)


def _deliver(transp, returncode):
    """On the loop: tell transp its child exited (once)."""
    if transp._returncode is not None:
        return
    if returncode is None:
        proc = transp._proc
        returncode = proc.returncode if proc is not None else None
        if returncode is None:
            _logger().warning(
                "child process pid %d exit status already read: "
                " will report returncode 255", transp.get_pid())
            returncode = 255
    if transp._loop is not None and transp._loop.get_debug():
        _logger().debug('process %s exited with returncode %s',
                        transp.get_pid(), returncode)
    transp._process_exited(returncode)


def _reap_pidfd(pid, pidfd):
    """The exit code of the exited child behind pidfd, None if it was reaped
    elsewhere, or False if it has not exited after all."""
    try:
        if _P_PIDFD is not None:
            info = os.waitid(_P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
            if info is None:
                return False
            if info.si_code == os.CLD_EXITED:
                return info.si_status
            return -info.si_status          # killed or dumped: the signal number
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == 0:
            return False
        return _exitcode(status)
    except ChildProcessError:
        return None


def _pidfd_ready(loop, transp, pid, pidfd):
    returncode = _reap_pidfd(pid, pidfd)
    if returncode is False:
        return                              # spurious: keep watching
    loop.remove_reader(pidfd)
    os.close(pidfd)
    _deliver(transp, returncode)


def _wait_thread(loop, transp, pid):
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        returncode = None
    else:
        returncode = _exitcode(status)
    try:
        loop.call_soon_threadsafe(_deliver, transp, returncode)
    except RuntimeError:                    # the loop was closed meanwhile
        _logger().warning("Loop %r that handles pid %r is closed", loop, pid)


def watch_child(loop, transp):
    """Arrange for transp._process_exited(returncode) when its child exits."""
    pid = transp.get_pid()
    pidfd = None
    if _pidfd_open is not None:
        try:
            pidfd = _pidfd_open(pid)
        except OSError:
            pidfd = None
    if pidfd is not None:
        try:
            loop.add_reader(pidfd, _pidfd_ready, loop, transp, pid, pidfd)
        except BaseException:
            os.close(pidfd)
            raise
        return
    threading.Thread(target=_wait_thread, args=(loop, transp, pid),
                     name=f"gmploop-waitpid-{pid}", daemon=True).start()


async def make_subprocess_transport(loop, protocol, args, shell, stdin, stdout,
                                    stderr, bufsize, extra=None, **kwargs):
    """Loop._make_subprocess_transport: spawn, watch, connect the pipes."""
    waiter = loop.create_future()
    transp = SubprocessTransport(loop, protocol, args, shell, stdin, stdout, stderr,
                                 bufsize, waiter=waiter, extra=extra, **kwargs)
    watch_child(loop, transp)
    try:
        await waiter
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:
        transp.close()
        await transp._wait()
        raise
    return transp


def _format_pipe(fd):
    if fd == subprocess.PIPE:
        return '<pipe>'
    if fd == subprocess.STDOUT:
        return '<stdout>'
    return repr(fd)


def _log_spawn(what, stdin, stdout, stderr):
    info = [what]
    if stdin is not None:
        info.append(f'stdin={_format_pipe(stdin)}')
    if stdout is not None and stderr == subprocess.STDOUT:
        info.append(f'stdout=stderr={_format_pipe(stdout)}')
    else:
        if stdout is not None:
            info.append(f'stdout={_format_pipe(stdout)}')
        if stderr is not None:
            info.append(f'stderr={_format_pipe(stderr)}')
    _logger().debug(' '.join(info))


def _check_common(bufsize, text, encoding, errors):
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


async def _spawn(loop, protocol_factory, args, shell, what, stdin, stdout, stderr,
                 bufsize, kwargs):
    protocol = protocol_factory()
    debug_log = None
    if loop.get_debug():
        # Only the program (or the command line) is logged: arguments may hold secrets.
        debug_log = what
        _log_spawn(debug_log, stdin, stdout, stderr)
    transport = await loop._make_subprocess_transport(
        protocol, args, shell, stdin, stdout, stderr, bufsize, **kwargs)
    if debug_log is not None:
        _logger().info('%s: %r', debug_log, transport)
    return transport, protocol


async def subprocess_shell(loop, protocol_factory, cmd, *, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=False, shell=True, bufsize=0,
                           encoding=None, errors=None, text=None, **kwargs):
    """Loop.subprocess_shell, with asyncio's argument checks."""
    if not isinstance(cmd, (bytes, str)):
        raise ValueError("cmd must be a string")
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if not shell:
        raise ValueError("shell must be True")
    _check_common(bufsize, text, encoding, errors)
    return await _spawn(loop, protocol_factory, cmd, True, f'run shell command {cmd!r}',
                        stdin, stdout, stderr, bufsize, kwargs)


async def subprocess_exec(loop, protocol_factory, program, *args, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=False, shell=False, bufsize=0,
                          encoding=None, errors=None, text=None, **kwargs):
    """Loop.subprocess_exec, with asyncio's argument checks."""
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if shell:
        raise ValueError("shell must be False")
    _check_common(bufsize, text, encoding, errors)
    return await _spawn(loop, protocol_factory, (program,) + args, False,
                        f'execute program {program!r}', stdin, stdout, stderr,
                        bufsize, kwargs)
