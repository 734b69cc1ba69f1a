"""Pipe transports: asyncio's connect_read_pipe / connect_write_pipe on gmploop.

What it does
------------
A read pipe transport feeds ``protocol.data_received`` from a pipe, a socket or a
character device (a pty); a write pipe transport buffers what the kernel will not take
yet and tells the protocol to pause and resume writing around its water marks. They
are also what subprocesses use for their stdin, stdout and stderr.

Each transport owns its fd's edge registration (``Loop._edge_desc``) from creation to
close, with one persistent Handle per direction:

* reading: ``pd.reader`` holds the read handle while the transport reads (not paused,
  not closing). The handle reads until EAGAIN, or until it has delivered one receive
  buffer's worth (RECV_BUFFER_SIZE) in this turn: then it queues itself again, so
  one busy pipe does not starve the rest of the loop, as asyncio's one read per
  iteration does not. Resuming queues the handle once: data that arrived while
  paused raised its edge when nobody listened.
* writing: ``write`` calls write(2) at once when nothing is buffered, and buffers
  only what EAGAIN left over; ``pd.writer`` holds the write handle while the buffer
  is not empty, and that handle writes until EAGAIN or an empty buffer.
* a write pipe's reader going away: for a FIFO or a socket, asyncio watches the write
  end for readability, which there means an error or a hang-up (the read end was
  closed). Here ``pd.reader`` of a write transport holds a handle for that; since
  an edge event queues it for any change (and the first check is queued
  optimistically, as the edge at registration may have come before anyone
  listened), it asks poll(2) with a zero timeout whether the end really is gone
  before closing the transport: BrokenPipeError if data was still buffered.

The transport seen by protocols is a Python class derived from asyncio.ReadTransport
or asyncio.WriteTransport, so isinstance checks hold; it delegates to a Cython core
holding the C-typed state. Rejected: making the Cython class itself derive from
asyncio's transport classes (impossible: BaseTransport has ``__slots__``, so a Python
class cannot have both as bases: "instance lay-out conflict"), and a field-less Cython
class (every piece of state a dict lookup on the read path).

Invariants
----------
* ``connection_made`` runs in the iteration after the transport is made, before the
  connect coroutine's waiter is woken and before the first read or peer check.
* ``_active`` is False once the registration is released; every handle checks it
  first, because a handle may already be queued in the batch that closes the
  transport.
* An fd epoll refuses (EPERM: ``/dev/null``, ``/dev/zero``) never blocks: such a
  transport has no registration (``_pd`` None) and its handles queue themselves
  instead of waiting for an edge that cannot come.
* The registration is released before the pipe is closed (connection_lost closes
  it, in a later callback, as asyncio's transports do).
* ``eof_received`` then ``connection_lost(None)`` on EOF; ``connection_lost(exc)``
  after a fatal error; each exactly once.

Races
-----
* The read end closes while the write handle and the peer check are both queued in
  one batch: whichever runs first closes the transport, the other sees it inactive.
* A protocol that raises from ``data_received`` leaves data unread; the handle
  queues itself again before the exception goes to the loop's handler, because no
  new edge would come for data already in the pipe.
"""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
# EWOULDBLOCK is EAGAIN on every platform gmploop runs on.
from libc.errno cimport errno, EAGAIN, EINTR, EIO
from libc.string cimport memcpy
from posix.unistd cimport read as c_read, write as c_write

import asyncio
import errno as errno_mod
import os
import stat
import warnings

from asyncio import base_events as aio_base_events
from asyncio import constants as aio_constants

from ._loop cimport Loop
from ._poller cimport PollDesc
from ._handles cimport Handle, new_handle


cdef extern from "poll.h" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    enum:
        POLLIN
        POLLERR
        POLLHUP
    int poll(pollfd *fds, unsigned long nfds, int timeout)


cdef enum:
    # One receive buffer per turn, then the read handle goes to the back of the queue.
    READ_BUDGET = 256 * 1024
    RECV_BUFFER_SIZE = 256 * 1024
    DEFAULT_HIGH_WATER = 64 * 1024


cdef object _logger():
    return aio_base_events.logger


def _set_result_unless_cancelled(fut, result):
    if not fut.cancelled():
        fut.set_result(result)


cdef inline object _oserror(int err):
    return OSError(err, os.strerror(err))


cdef bint _peer_gone(int fd):
    """Whether the other end of a write pipe or socket was closed (or the socket
    has something to read, which asyncio also takes for the end of the pipe)."""
    cdef pollfd p
    cdef int r
    p.fd = fd
    p.events = POLLIN
    p.revents = 0
    while True:
        r = poll(&p, 1, 0)
        if r >= 0 or errno != EINTR:
            break
    return r > 0 and (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0


cdef PollDesc _register(Loop loop, int fd, object transport):
    """fd's edge registration for transport, or None for an fd epoll refuses (it
    never blocks: /dev/null, /dev/zero)."""
    try:
        return loop._edge_desc(fd, transport)
    except PermissionError:
        return None


# ---------------------------------------------------------------------- read side

@cython.final
cdef class _ReadPipe:
    cdef Loop _loop
    cdef object _transport          # the ReadPipeTransport protocols see
    cdef object _protocol
    cdef object _pipe
    cdef int _fileno
    cdef PollDesc _pd               # None once released, or if epoll refuses the fd
    cdef bint _active               # from _open until the registration is released
    cdef Handle _rh
    cdef bint _closing
    cdef bint _paused

    cdef int _open(self, Loop loop, object transport, object pipe, object protocol,
                   object waiter) except -1:
        cdef int fd = pipe.fileno()
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            raise ValueError("Pipe transport is for pipes/sockets only.")
        os.set_blocking(fd, False)
        self._pd = _register(loop, fd, transport)
        self._active = True
        self._loop = loop
        self._transport = transport
        self._protocol = protocol
        self._pipe = pipe
        self._fileno = fd
        self._rh = new_handle(self._read_ready, (), None, loop)
        loop._call_soon(protocol.connection_made, (transport,), None)
        # Reading starts after connection_made, and the waiter is woken after both.
        loop._call_soon(self._start, (), None)
        if waiter is not None:
            loop._call_soon(_set_result_unless_cancelled, (waiter, None), None)
        return 0

    cdef inline bint _reading(self):
        return not self._paused and not self._closing

    def _start(self):
        if self._reading() and self._active:
            if self._pd is not None:
                self._pd.reader = self._rh
            self._loop.ready.put(self._rh)

    def _read_ready(self):
        cdef Loop loop = self._loop
        cdef char *buf
        cdef Py_ssize_t n
        cdef Py_ssize_t total = 0
        cdef int err
        while self._active and self._reading():
            buf = loop._recv_buffer()
            n = c_read(self._fileno, buf, RECV_BUFFER_SIZE)
            if n > 0:
                data = PyBytes_FromStringAndSize(buf, n)
                total += n
                try:
                    self._protocol.data_received(data)
                except BaseException:
                    # The rest of the data raised its edge already: look again.
                    if self._active and self._reading():
                        loop.ready.put(self._rh)
                    raise
                if total >= READ_BUDGET:
                    if self._active and self._reading():
                        loop.ready.put(self._rh)
                    return
            elif n == 0:
                self._eof()
                return
            else:
                err = errno
                if err == EINTR:
                    continue
                if err == EAGAIN:
                    return
                self._fatal_error(_oserror(err), 'Fatal read error on pipe transport')
                return

    cdef _eof(self):
        if self._loop.get_debug():
            _logger().info("%r was closed by peer", self._transport)
        self._closing = True
        self._release()
        self._loop._call_soon(self._protocol.eof_received, (), None)
        self._loop._call_soon(self._call_connection_lost, (None,), None)

    cdef _release(self):
        if self._active:
            self._active = False
            if self._pd is not None:
                self._loop._release_desc(self._pd)
                self._pd = None

    def pause_reading(self):
        if not self._reading():
            return
        self._paused = True
        if self._pd is not None:
            self._pd.reader = None
        if self._loop.get_debug():
            _logger().debug("%r pauses reading", self._transport)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        if self._active:
            if self._pd is not None:
                self._pd.reader = self._rh
            # Whatever arrived while paused raised its edge then: read once anyway.
            self._loop.ready.put(self._rh)
        if self._loop.get_debug():
            _logger().debug("%r resumes reading", self._transport)

    def close(self):
        if not self._closing:
            self._close(None)

    cdef _close(self, exc):
        self._closing = True
        self._release()
        self._loop._call_soon(self._call_connection_lost, (exc,), None)

    cdef _fatal_error(self, exc, message):
        if isinstance(exc, OSError) and exc.errno == EIO:
            # A pty whose other side is gone reports EIO: an ordinary end.
            if self._loop.get_debug():
                _logger().debug("%r: %s", self._transport, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self._transport,
                'protocol': self._protocol,
            })
        self._close(exc)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._pipe is not None:
                self._pipe.close()
            self._pipe = None
            self._protocol = None
            self._loop = None

    cdef str _state(self):
        info = []
        if self._pipe is None:
            info.append('closed')
        elif self._closing:
            info.append('closing')
        info.append(f'fd={self._fileno}')
        if self._pipe is not None:
            if self._loop is None or self._loop.is_closed():
                info.append('open')
            elif self._pd is not None and self._pd.reader is not None:
                info.append('polling')
            else:
                info.append('idle')
        return ' '.join(info)


class ReadPipeTransport(asyncio.ReadTransport):
    """asyncio.ReadTransport over a pipe, socket or character device."""

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(extra)
        self._extra['pipe'] = pipe
        core = _ReadPipe()
        (<_ReadPipe>core)._open(loop, self, pipe, protocol, waiter)
        self._core = core

    def __repr__(self):
        return f'<{type(self).__name__} {(<_ReadPipe>self._core)._state()}>'

    def is_reading(self):
        return (<_ReadPipe>self._core)._reading()

    def pause_reading(self):
        (<_ReadPipe>self._core).pause_reading()

    def resume_reading(self):
        (<_ReadPipe>self._core).resume_reading()

    def set_protocol(self, protocol):
        (<_ReadPipe>self._core)._protocol = protocol

    def get_protocol(self):
        return (<_ReadPipe>self._core)._protocol

    def is_closing(self):
        return (<_ReadPipe>self._core)._closing

    def close(self):
        (<_ReadPipe>self._core).close()

    @property
    def _pipe(self):
        return (<_ReadPipe>self._core)._pipe

    @_pipe.setter
    def _pipe(self, value):
        (<_ReadPipe>self._core)._pipe = value

    def __del__(self, _warn=warnings.warn):
        core = self.__dict__.get('_core')
        if core is not None and (<_ReadPipe>core)._pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            (<_ReadPipe>core)._release()
            (<_ReadPipe>core)._pipe.close()
            (<_ReadPipe>core)._pipe = None


# --------------------------------------------------------------------- write side

@cython.final
cdef class _WritePipe:
    cdef Loop _loop
    cdef object _transport          # the WritePipeTransport protocols see
    cdef object _protocol
    cdef object _pipe
    cdef int _fileno
    cdef PollDesc _pd               # None once released, or if epoll refuses the fd
    cdef bint _active               # from _open until the registration is released
    cdef Handle _wh                 # writes the buffer when the pipe has room
    cdef Handle _ph                 # checks whether the reader went away
    cdef bint _watch_peer
    cdef bytearray _buffer
    cdef Py_ssize_t _conn_lost
    cdef bint _closing              # close(), write_eof() or a fatal error
    cdef bint _protocol_paused
    cdef Py_ssize_t _high_water
    cdef Py_ssize_t _low_water

    cdef int _open(self, Loop loop, object transport, object pipe, object protocol,
                   object waiter) except -1:
        cdef int fd = pipe.fileno()
        mode = os.fstat(fd).st_mode
        is_fifo = stat.S_ISFIFO(mode)
        is_socket = stat.S_ISSOCK(mode)
        if not (is_fifo or is_socket or stat.S_ISCHR(mode)):
            raise ValueError("Pipe transport is only for "
                             "pipes, sockets and character devices")
        os.set_blocking(fd, False)
        self._pd = _register(loop, fd, transport)
        self._active = True
        self._loop = loop
        self._transport = transport
        self._protocol = protocol
        self._pipe = pipe
        self._fileno = fd
        self._buffer = bytearray()
        self._set_limits(None, None)
        self._wh = new_handle(self._write_ready, (), None, loop)
        self._ph = new_handle(self._check_peer, (), None, loop)
        # A character device (a pty) gives no sign of its reader going away.
        self._watch_peer = is_fifo or is_socket
        loop._call_soon(protocol.connection_made, (transport,), None)
        if self._watch_peer:
            loop._call_soon(self._start, (), None)
        if waiter is not None:
            loop._call_soon(_set_result_unless_cancelled, (waiter, None), None)
        return 0

    def _start(self):
        if self._active and self._pd is not None:
            self._pd.reader = self._ph
            self._loop.ready.put(self._ph)

    def _check_peer(self):
        if not self._active or not _peer_gone(self._fileno):
            return
        if self._loop.get_debug():
            _logger().info("%r was closed by peer", self._transport)
        if PyByteArray_GET_SIZE(self._buffer):
            self._close(BrokenPipeError())
        else:
            self._close(None)

    # Writing.

    def write(self, data):
        cdef Py_buffer view
        cdef Py_ssize_t n, size
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if view.len == 0:
                return
            if self._conn_lost or self._closing:
                if self._conn_lost >= aio_constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                    _logger().warning('pipe closed by peer or '
                                      'os.write(pipe, data) raised exception.')
                self._conn_lost += 1
                return
            n = 0
            if PyByteArray_GET_SIZE(self._buffer) == 0:
                n = self._write_some(<char *>view.buf, view.len)
                if n < 0:
                    return          # fatal error, already reported
                if n == view.len:
                    return
                self._wait_writable()
            size = PyByteArray_GET_SIZE(self._buffer)
            PyByteArray_Resize(self._buffer, size + view.len - n)
            memcpy(PyByteArray_AS_STRING(self._buffer) + size,
                   <char *>view.buf + n, view.len - n)
        finally:
            PyBuffer_Release(&view)
        self._maybe_pause_protocol()

    cdef _wait_writable(self):
        if self._pd is not None:
            self._pd.writer = self._wh
        else:
            self._loop.ready.put(self._wh)

    cdef Py_ssize_t _write_some(self, char *p, Py_ssize_t size) except -2:
        """Write p[:size] until done or EAGAIN; how much went. -1 after a fatal error
        (reported, transport closing)."""
        cdef Py_ssize_t done = 0
        cdef Py_ssize_t n
        cdef int err
        while done < size:
            n = c_write(self._fileno, p + done, size - done)
            if n >= 0:
                done += n
                continue
            err = errno
            if err == EINTR:
                continue
            if err == EAGAIN:
                break
            self._buffer.clear()
            self._conn_lost += 1
            self._fatal_error(_oserror(err), 'Fatal write error on pipe transport')
            return -1
        return done

    def _write_ready(self):
        cdef Py_ssize_t n
        if not self._active or PyByteArray_GET_SIZE(self._buffer) == 0:
            return
        n = self._write_some(PyByteArray_AS_STRING(self._buffer),
                             PyByteArray_GET_SIZE(self._buffer))
        if n < 0:
            return
        if n < PyByteArray_GET_SIZE(self._buffer):
            if n > 0:
                del self._buffer[:n]    # O(1): bytearray drops its head in place
            if self._pd is None:
                self._loop.ready.put(self._wh)
            return
        self._buffer.clear()
        if self._pd is not None:
            self._pd.writer = None
        self._maybe_resume_protocol()   # may write (and buffer) again
        if self._closing and PyByteArray_GET_SIZE(self._buffer) == 0:
            self._release()
            self._call_connection_lost(None)

    # Flow control (asyncio's _FlowControlMixin).

    cdef _set_limits(self, high, low):
        if high is None:
            high = DEFAULT_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
        self._high_water = high
        self._low_water = low

    def set_write_buffer_limits(self, high=None, low=None):
        self._set_limits(high, low)
        self._maybe_pause_protocol()

    cdef _maybe_pause_protocol(self):
        if PyByteArray_GET_SIZE(self._buffer) <= self._high_water:
            return
        if not self._protocol_paused:
            self._protocol_paused = True
            self._loop._flow_control(self._protocol, True, self._transport)

    cdef _maybe_resume_protocol(self):
        if (self._protocol_paused and
                PyByteArray_GET_SIZE(self._buffer) <= self._low_water):
            self._protocol_paused = False
            self._loop._flow_control(self._protocol, False, self._transport)

    # Closing.

    def write_eof(self):
        if self._closing:
            return
        if self._pipe is None:
            raise RuntimeError("write_eof() on a closed pipe transport")
        self._closing = True
        if PyByteArray_GET_SIZE(self._buffer) == 0:
            self._release()
            self._loop._call_soon(self._call_connection_lost, (None,), None)

    def close(self):
        if self._pipe is not None and not self._closing:
            self.write_eof()     # the write end closing is all a reader sees

    def abort(self):
        self._close(None)

    cdef _release(self):
        if self._active:
            self._active = False
            if self._pd is not None:
                self._loop._release_desc(self._pd)
                self._pd = None

    cdef _close(self, exc):
        self._closing = True
        self._buffer.clear()
        if not self._active and self._loop is None:
            return                  # connection_lost already ran
        self._release()
        self._loop._call_soon(self._call_connection_lost, (exc,), None)

    cdef _fatal_error(self, exc, message):
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                _logger().debug("%r: %s", self._transport, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self._transport,
                'protocol': self._protocol,
            })
        self._close(exc)

    def _call_connection_lost(self, exc):
        if self._protocol is None:
            return
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._pipe is not None:
                self._pipe.close()
            self._pipe = None
            self._protocol = None
            self._loop = None

    cdef str _state(self):
        info = []
        if self._pipe is None:
            info.append('closed')
        elif self._closing:
            info.append('closing')
        info.append(f'fd={self._fileno}')
        if self._pipe is not None:
            if self._loop is None or self._loop.is_closed():
                info.append('open')
            else:
                info.append('polling' if PyByteArray_GET_SIZE(self._buffer) else 'idle')
                info.append(f'bufsize={PyByteArray_GET_SIZE(self._buffer)}')
        return ' '.join(info)


class WritePipeTransport(asyncio.WriteTransport):
    """asyncio.WriteTransport over a pipe, socket or character device."""

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(extra)
        self._extra['pipe'] = pipe
        core = _WritePipe()
        (<_WritePipe>core)._open(loop, self, pipe, protocol, waiter)
        self._core = core

    def __repr__(self):
        return f'<{type(self).__name__} {(<_WritePipe>self._core)._state()}>'

    def write(self, data):
        (<_WritePipe>self._core).write(data)

    def get_write_buffer_size(self):
        return PyByteArray_GET_SIZE((<_WritePipe>self._core)._buffer)

    def get_write_buffer_limits(self):
        core = <_WritePipe>self._core
        return (core._low_water, core._high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        (<_WritePipe>self._core).set_write_buffer_limits(high, low)

    def can_write_eof(self):
        return True

    def write_eof(self):
        (<_WritePipe>self._core).write_eof()

    def set_protocol(self, protocol):
        (<_WritePipe>self._core)._protocol = protocol

    def get_protocol(self):
        return (<_WritePipe>self._core)._protocol

    def is_closing(self):
        return (<_WritePipe>self._core)._closing

    def close(self):
        (<_WritePipe>self._core).close()

    def abort(self):
        (<_WritePipe>self._core).abort()

    @property
    def _pipe(self):
        return (<_WritePipe>self._core)._pipe

    @_pipe.setter
    def _pipe(self, value):
        (<_WritePipe>self._core)._pipe = value

    def __del__(self, _warn=warnings.warn):
        core = self.__dict__.get('_core')
        if core is not None and (<_WritePipe>core)._pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            (<_WritePipe>core)._release()
            (<_WritePipe>core)._pipe.close()
            (<_WritePipe>core)._pipe = None


# ------------------------------------------------------------------ loop methods

def make_read_pipe_transport(loop, pipe, protocol, waiter=None, extra=None):
    return ReadPipeTransport(loop, pipe, protocol, waiter, extra)


def make_write_pipe_transport(loop, pipe, protocol, waiter=None, extra=None):
    return WritePipeTransport(loop, pipe, protocol, waiter, extra)


async def _connect(loop, make, protocol_factory, pipe, what):
    protocol = protocol_factory()
    waiter = loop.create_future()
    transport = make(loop, pipe, protocol, waiter)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    if loop.get_debug():
        _logger().debug('%s pipe %r connected: (%r, %r)',
                        what, pipe.fileno(), transport, protocol)
    return transport, protocol


async def connect_read_pipe(loop, protocol_factory, pipe):
    """Loop.connect_read_pipe: (transport, protocol) once connection_made has run."""
    return await _connect(loop, make_read_pipe_transport, protocol_factory, pipe, 'Read')


async def connect_write_pipe(loop, protocol_factory, pipe):
    """Loop.connect_write_pipe: (transport, protocol) once connection_made has run."""
    return await _connect(loop, make_write_pipe_transport, protocol_factory, pipe,
                          'Write')
