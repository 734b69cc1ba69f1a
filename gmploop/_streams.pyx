"""Stream transports (TCP and Unix) and accept loops, on the edge-triggered netpoller.

What it does
------------
``StreamTransport`` is asyncio's socket transport (``asyncio.Transport`` semantics,
with ``Protocol`` and ``BufferedProtocol``) compiled to C. ``_Listener`` is the accept
loop of one listening socket of a ``Server``. ``StreamsMixin`` gives the loop the three
hooks that asyncio's connection and server code calls (``_make_socket_transport``,
``_start_serving``, ``_stop_serving``), with the selector loop's signatures.

How I/O is done
---------------
Each socket is registered once, edge-triggered, for both directions (``Loop._edge_desc``)
and stays registered until ``connection_lost``. The transport keeps two persistent
handles: ``_rh`` sits in the descriptor's reader slot while the transport wants to
read, ``_wh`` in the writer slot while it has buffered data. Pausing, resuming,
a write that completes at once, a burst of writes: none of them costs an
``epoll_ctl``.

* Reads are optimistic and drain: ``recv`` into the P's 256 KiB receive buffer (or the
  protocol's own buffer for a ``BufferedProtocol``), hand the protocol the data, and
  go on until EAGAIN, a short read, or the per-turn budget. A short read means the
  socket's queue was empty at that instant; anything that arrives later raises a new
  edge (the kernel signals every arrival to an edge-triggered epoll), so stopping
  there is safe and saves the EAGAIN syscall. Except for the peer's EOF: a FIN that
  came with the data was announced by the same edge (EPOLLRDHUP), and nothing more
  will come after it, so once the poller has reported a hang-up (``pd.seen``) the
  reader queues itself again for the zero-byte read. It does not read on at once:
  asyncio's reader sees data and the EOF behind it in two iterations, and code that
  looks at a connection between them (``run_until_complete`` stopping on the
  iteration after a result, say) relies on ``data_received`` and ``eof_received``
  never sharing one. A transport that stops on its budget puts its read handle back
  on the run queue the same way: no new edge will come for data already queued, and
  the other connections get their turn first.
* Large reads: ``data_received`` needs its own ``bytes``, so a read through the P's
  buffer is copied once more. For a 100 KiB message that copy was 9% of the server's
  time. A transport whose last read brought at least 64 KiB reads the next one
  straight into a fresh 256 KiB ``bytes`` and shrinks it to what came
  (``_PyBytes_Resize``: glibc's ``realloc`` keeps the block in place and frees its
  tail). Small reads stay on the shared buffer: for them a 256 KiB allocation and a
  shrink cost more than the copy they save. Rejected: sizing each read with
  ``FIONREAD`` (one more syscall per read).
* Writes are optimistic: ``write`` calls ``send`` at once when nothing is buffered, and
  buffers only what the kernel did not take. Buffered data leaves through ``sendmsg``
  with one iovec per buffered chunk when the writable edge comes; ``writelines``
  appends all its chunks and sends them in one ``sendmsg``.
* Resuming reading queues one optimistic read: an edge that came while the transport
  was paused was dropped (its reader slot was empty), and the data it announced is
  waiting.

Rejected: re-arming interest with ``epoll_ctl`` on pause/resume and per buffered write
(asyncio's selector loop: two syscalls per write that blocks); level-triggered
registration (the loop would be woken again and again for a paused reader whose data
sits unread); a per-transport receive buffer (256 KiB per idle connection).

Invariants
----------
* ``_pd.reader is _rh`` exactly while the transport is started, not paused, not closing
  and has not seen EOF; ``_pd.writer`` is ``_wh`` while data is buffered and None
  otherwise (``_wh`` and the buffer list are made when data first has to wait).
* Buffered data is a list of ``bytes`` (data the caller may still mutate is copied when
  it has to wait); ``_wpos`` is the offset already sent of the first chunk and
  ``_wsize`` the bytes not yet sent.
* ``connection_lost`` is called once, from a fresh callback (never from inside a
  protocol callback), after which the fd leaves the poller and the socket is closed.

Races it must survive
---------------------
* A read handle queued by an event and again by ``resume_reading`` (or a budget stop)
  runs twice in a row: the second run finds EAGAIN and returns.
* The protocol pauses, closes or aborts from inside ``data_received``: the read loop
  checks its state after every protocol call.
* A handle queued before ``close``/``abort`` runs after it: ``_conn_lost`` and the empty
  reader/writer slots make it a no-op.
"""

cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.errno cimport errno, EAGAIN, EINTR
from libc.string cimport memset
from posix.uio cimport iovec

import asyncio
import errno as errno_mod
import os
import socket
import warnings

from asyncio import base_events as aio_base_events
from asyncio import constants as aio_constants
from asyncio import futures as aio_futures
from asyncio import protocols as aio_protocols
from asyncio import trsock as aio_trsock
from asyncio.log import logger as aio_logger

from ._handles cimport Handle
from ._loop cimport Loop
from ._poller cimport PollDesc, PD_EDGE, GP_RDHUP, GP_HUP, GP_ERR
from ._typegraft import graft_bases


cdef extern from "Python.h":
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    object PyContext_CopyCurrent()
    # A bytes object filled in place ('Large reads'), held as a raw reference while
    # _PyBytes_Resize may move it.
    ctypedef struct PyObject
    PyObject *raw_bytes_new "PyBytes_FromStringAndSize" (const char *v, Py_ssize_t n)
    char *raw_bytes_data "PyBytes_AS_STRING" (PyObject *b)
    int _PyBytes_Resize(PyObject **b, Py_ssize_t n)
    void raw_decref "Py_DECREF" (PyObject *o)

cdef extern from "<errno.h>":
    int EWOULDBLOCK

cdef extern from "sys/socket.h" nogil:
    struct msghdr:
        void *msg_name
        int msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    ssize_t c_recv "recv" (int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send" (int fd, const void *buf, size_t n, int flags)
    ssize_t c_sendmsg "sendmsg" (int fd, const msghdr *msg, int flags)
    int MSG_NOSIGNAL


cdef enum:
    # asyncio's stream transport max_size: the most one recv asks for.
    RECV_SIZE = 256 * 1024
    # Full reads one transport may do per turn before yielding to the others.
    READ_BUDGET = 4
    # A read of at least this many bytes makes the next one go straight into a fresh
    # bytes object instead of through the P's buffer ('Large reads').
    LARGE_READ = 64 * 1024
    # Chunks per sendmsg (well under every platform's IOV_MAX).
    MAX_IOV = 64
    # Accepts per wake-up beyond which a listener yields (and requeues itself);
    # asyncio accepts up to `backlog` per wake-up, so do we, within this cap.
    MAX_ACCEPT_BATCH = 1024
    # The same for a listener that several Ps share (see 'Shared listeners' in
    # _runtime.py): small, so that a P takes only what it can start serving in its
    # next iteration and an idle P is woken for the rest. A guess, not yet tuned.
    SHARED_ACCEPT_BATCH = 8

# As asyncio's constants.
cdef int LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5
cdef double ACCEPT_RETRY_DELAY = 1.0
cdef Py_ssize_t DEFAULT_HIGH_WATER = 64 * 1024

cdef object TransportSocket = aio_trsock.TransportSocket
cdef object BufferedProtocol = aio_protocols.BufferedProtocol
cdef object _set_nodelay = aio_base_events._set_nodelay
cdef object _set_result_unless_cancelled = aio_futures._set_result_unless_cancelled
cdef object SendfileMode = aio_constants._SendfileMode

# accept() errors that mean "out of a resource": back off, keep serving.
cdef frozenset ACCEPT_RESOURCE_ERRNOS = frozenset(
    (errno_mod.EMFILE, errno_mod.ENFILE, errno_mod.ENOBUFS, errno_mod.ENOMEM))


cdef inline object _oserror(int err):
    """The OSError subclass for errno err (ConnectionResetError for ECONNRESET, ...)."""
    return OSError(err, os.strerror(err))


cdef inline bint _is_bytes_like(object data):
    return isinstance(data, (bytes, bytearray, memoryview))


cdef _check_data(object data, str what='data argument'):
    if not _is_bytes_like(data):
        raise TypeError(f'{what} must be a bytes-like object, '
                        f'not {type(data).__name__!r}')


# ---------------------------------------------------------------------- I/O handles

cdef class _Pollable:
    """Something that owns an fd's edge registration and does its own I/O."""

    cdef int _on_read(self) except -1:
        return 0

    cdef int _on_write(self) except -1:
        return 0


@cython.final
cdef class _IOHandle(Handle):
    """A persistent Handle that runs its owner's read or write step directly (no
    Python-level call), in the context captured when the owner was created."""
    cdef _Pollable target
    cdef bint writing

    cdef int run(self) except -1:
        cdef _Pollable target = self.target
        PyContext_Enter(self.context)
        try:
            try:
                if self.writing:
                    target._on_write()
                else:
                    target._on_read()
            finally:
                PyContext_Exit(self.context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.loop.call_exception_handler({
                'message': f'Exception in callback {self.callback!r}',
                'exception': exc,
                'handle': self,
            })
        return 0


cdef _IOHandle _io_handle(_Pollable target, bint writing, object callback, Loop loop):
    cdef _IOHandle h = _IOHandle.__new__(_IOHandle)
    h.target = target
    h.writing = writing
    h.callback = callback        # for repr() and Handle._run(); not called by run()
    h.args = ()
    h.context = PyContext_CopyCurrent()
    h.loop = loop
    return h


# ---------------------------------------------------------------------- the transport

cdef class StreamTransport(_Pollable):
    """A TCP or Unix stream socket transport (asyncio.Transport)."""

    cdef Loop _loop
    cdef readonly object _sock
    cdef int _fd
    cdef PollDesc _pd
    cdef object _protocol
    cdef bint _buffered             # the protocol is a BufferedProtocol
    cdef bint _protocol_connected
    cdef object _server
    cdef public dict _extra
    cdef _IOHandle _rh
    cdef _IOHandle _wh              # made when data is first buffered (see _write_handle)

    cdef bint _started              # connection_made has been called
    cdef bint _closing
    cdef bint _paused
    cdef bint _eof                  # write_eof() called
    cdef bint _read_eof             # the peer's EOF seen: reading has ended
    cdef bint _protocol_paused      # pause_writing() called, resume_writing() not yet
    cdef bint _large_reads          # the last read was large: read into bytes directly
    cdef int _conn_lost

    cdef list _wbuf                 # None until data is first buffered
    cdef Py_ssize_t _wpos
    cdef Py_ssize_t _wsize
    cdef Py_ssize_t _high
    cdef Py_ssize_t _low
    cdef object _empty_waiter

    cdef object __weakref__

    _sendfile_compatible = SendfileMode.TRY_NATIVE
    _start_tls_compatible = True

    def __init__(self, *args, **kwargs):
        raise TypeError('StreamTransport is created by the event loop')

    cdef _setup(self, Loop loop, sock, protocol, waiter, extra, server):
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._extra = dict(extra) if extra else {}
        self._extra['socket'] = TransportSocket(sock)
        try:
            self._extra['sockname'] = sock.getsockname()
        except OSError:
            self._extra['sockname'] = None
        if 'peername' not in self._extra:
            try:
                self._extra['peername'] = sock.getpeername()
            except OSError:
                self._extra['peername'] = None
        self._high = DEFAULT_HIGH_WATER
        self._low = DEFAULT_HIGH_WATER // 4
        self.set_protocol(protocol)
        self._rh = _io_handle(self, False, self._read_ready, loop)
        _set_nodelay(sock)
        self._pd = loop._edge_desc(self._fd, self)
        self._server = server
        if server is not None:
            server._attach(self)
        loop._call_soon(self._start, (waiter,), None)

    def _start(self, waiter):
        # Runs even if the transport was closed meanwhile: asyncio, too, calls
        # connection_made before the connection_lost queued after it.
        try:
            self._protocol.connection_made(self)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                'message': f'Exception in callback {self._protocol.connection_made!r}',
                'exception': exc,
                'transport': self,
                'protocol': self._protocol,
            })
        self._started = True
        if self._update_reader():
            self._loop.ready.put(self._rh)      # data may have come before we looked
        if waiter is not None:
            _set_result_unless_cancelled(waiter, None)

    cdef inline bint _wants_read(self):
        return (self._started and not self._paused and not self._closing
                and not self._read_eof and self._conn_lost == 0)

    cdef bint _update_reader(self):
        """Put _rh in the reader slot, or take it out; True when reading is on."""
        cdef bint on = self._wants_read()
        if self._pd is not None:
            self._pd.reader = self._rh if on else None
        return on

    def __repr__(self):
        info = [type(self).__name__]
        if self._sock is None:
            info.append('closed')
        elif self._closing:
            info.append('closing')
        info.append(f'fd={self._fd}')
        if self._loop is not None and not self._loop._closed and self._sock is not None:
            info.append('read=polling' if self._wants_read() else 'read=idle')
            state = 'polling' if self._wsize else 'idle'
            info.append(f'write=<{state}, bufsize={self._wsize}>')
        return '<{}>'.format(' '.join(info))

    def __del__(self):
        if self._sock is not None:
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._detach_fd()
            self._sock.close()
            self._sock = None
            if self._server is not None:
                self._server._detach(self)
                self._server = None

    # -------------------------------------------------------------- BaseTransport

    def get_extra_info(self, name, default=None):
        """Transport information: 'socket', 'sockname', 'peername', ..."""
        return self._extra.get(name, default)

    def is_closing(self):
        return self._closing

    def set_protocol(self, protocol):
        self._buffered = isinstance(protocol, BufferedProtocol)
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self):
        return self._protocol

    def close(self):
        """Close after the buffered data is sent; connection_lost(None) follows."""
        if self._closing:
            return
        self._closing = True
        self._update_reader()
        if self._wsize == 0:
            self._conn_lost += 1
            if self._pd is not None:
                self._pd.writer = None
            self._loop._call_soon(self._call_connection_lost, (None,), None)

    def abort(self):
        """Close now, dropping buffered data; connection_lost(None) follows."""
        self._force_close(None)

    # -------------------------------------------------------------- ReadTransport

    def is_reading(self):
        return not self._paused and not self._closing

    def pause_reading(self):
        if self._closing or self._paused:
            return
        self._paused = True
        self._update_reader()
        if self._loop._debug:
            aio_logger.debug("%r pauses reading", self)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        if self._update_reader():
            self._loop.ready.put(self._rh)      # edges seen while paused were dropped
        if self._loop._debug:
            aio_logger.debug("%r resumes reading", self)

    def _read_ready(self):
        self._on_read()

    cdef int _on_read(self) except -1:
        cdef int budget = READ_BUDGET
        cdef Py_ssize_t n, size
        cdef int err
        cdef char *buf = NULL
        cdef Py_buffer pybuf
        cdef PyObject *fresh = NULL     # NULL again by the end of every turn
        cdef Loop loop = self._loop
        while self._pd is not None and self._pd.reader is self._rh:
            if self._buffered:
                try:
                    target = self._protocol.get_buffer(-1)
                    if not len(target):
                        raise RuntimeError('get_buffer() returned an empty buffer')
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._fatal_error(
                        exc, 'Fatal error: protocol.get_buffer() call failed.')
                    return 0
                PyObject_GetBuffer(target, &pybuf, PyBUF_WRITABLE)
                size = pybuf.len
                n = c_recv(self._fd, pybuf.buf, <size_t>size, 0)
                err = errno
                PyBuffer_Release(&pybuf)
            else:
                size = RECV_SIZE
                if self._large_reads:
                    fresh = raw_bytes_new(NULL, size)
                    if fresh == NULL:
                        raise MemoryError()
                    buf = raw_bytes_data(fresh)
                else:
                    buf = loop._recv_buffer()
                n = c_recv(self._fd, buf, <size_t>size, 0)
                err = errno
                if n <= 0 and fresh != NULL:
                    raw_decref(fresh)
                    fresh = NULL
            if n < 0:
                if err == EAGAIN or err == EWOULDBLOCK:
                    return 0
                if err == EINTR:
                    continue
                self._fatal_error(_oserror(err), 'Fatal read error on socket transport')
                return 0
            if n == 0:
                self._on_eof()
                return 0
            if not self._buffered:
                self._large_reads = n >= LARGE_READ
                if fresh != NULL:
                    # Shrunk in place: glibc's realloc keeps the block and frees its
                    # tail. The reference moves to data.
                    if n < size and _PyBytes_Resize(&fresh, n) < 0:
                        raise MemoryError()
                    data = <object>fresh
                    raw_decref(fresh)
                    fresh = NULL
                else:
                    data = PyBytes_FromStringAndSize(buf, n)
            try:
                if self._buffered:
                    self._protocol.buffer_updated(n)
                else:
                    self._protocol.data_received(data)
                    data = None
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(
                    exc,
                    'Fatal error: protocol.buffer_updated() call failed.' if self._buffered
                    else 'Fatal error: protocol.data_received() call failed.')
                return 0
            budget -= 1
            if n < size or budget == 0:
                # Drained, or out of budget. A hang-up already reported means an EOF
                # waits behind the data with no edge to come: read it next iteration.
                # See 'How I/O is done'.
                if self._pd is not None and self._pd.reader is self._rh and (
                        budget == 0 or self._pd.seen & (GP_RDHUP | GP_HUP | GP_ERR)):
                    loop.ready.put(self._rh)
                return 0
        return 0

    cdef _on_eof(self):
        self._read_eof = True
        self._update_reader()
        if self._loop._debug:
            aio_logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.eof_received() call failed.')
            return
        if not keep_open:
            self.close()

    # -------------------------------------------------------------- WriteTransport

    def write(self, data):
        """Send data, buffering what the kernel does not take at once."""
        cdef Py_buffer pybuf
        cdef Py_ssize_t n, length
        cdef int err
        cdef bint is_bytes = type(data) is bytes
        if not is_bytes:
            _check_data(data)
        if self._eof:
            raise RuntimeError('Cannot call write() after write_eof()')
        if self._empty_waiter is not None:
            raise RuntimeError('unable to write; sendfile is in progress')
        if not data:
            return
        if self._conn_lost:
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                aio_logger.warning('socket.send() raised exception.')
            self._conn_lost += 1
            return
        if self._wsize == 0:
            PyObject_GetBuffer(data, &pybuf, PyBUF_SIMPLE)
            length = pybuf.len
            while True:
                n = c_send(self._fd, pybuf.buf, <size_t>length, MSG_NOSIGNAL)
                if n >= 0 or errno != EINTR:
                    break
            err = errno
            PyBuffer_Release(&pybuf)
            if n < 0:
                if err != EAGAIN and err != EWOULDBLOCK:
                    self._fatal_error(_oserror(err), 'Fatal write error on socket transport')
                    return
                n = 0
            if n == length:
                return
            if is_bytes:
                self._write_buffer().append(data)
                self._wpos = n
            else:
                self._write_buffer().append(bytes(memoryview(data).cast('B')[n:]))
                self._wpos = 0
            self._wsize = length - n
            self._pd.writer = self._write_handle()
        else:
            self._append(data, is_bytes)
        self._maybe_pause_protocol()

    cdef _append(self, object data, bint is_bytes):
        if is_bytes:
            self._write_buffer().append(data)
            self._wsize += PyBytes_GET_SIZE(data)
        else:
            chunk = bytes(memoryview(data).cast('B'))
            self._write_buffer().append(chunk)
            self._wsize += PyBytes_GET_SIZE(chunk)

    # Most connections never buffer a write (the kernel takes each at once), and an
    # idle one never writes at all: the buffer list and the write handle are made the
    # first time data has to wait, and kept from then on.  176 bytes less per idle
    # connection (bench/test_memory.py).

    cdef inline list _write_buffer(self):
        if self._wbuf is None:
            self._wbuf = []
        return self._wbuf

    cdef inline _IOHandle _write_handle(self):
        if self._wh is None:
            self._wh = _io_handle(self, True, self._write_ready, self._loop)
        return self._wh

    def writelines(self, list_of_data):
        """Send several chunks; what the kernel takes at once leaves in one sendmsg."""
        if self._eof:
            raise RuntimeError('Cannot call writelines() after write_eof()')
        if self._empty_waiter is not None:
            raise RuntimeError('unable to writelines; sendfile is in progress')
        chunks = list(list_of_data)
        for data in chunks:
            if type(data) is not bytes:
                _check_data(data)
        if self._conn_lost:
            if any(chunks):
                if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                    aio_logger.warning('socket.send() raised exception.')
                self._conn_lost += 1
            return
        cdef bint was_empty = self._wsize == 0
        for data in chunks:
            if data:
                self._append(data, type(data) is bytes)
        if self._wsize == 0:
            return
        if was_empty:
            self._pd.writer = self._write_handle()
            self._flush()
        if self._wsize:
            self._maybe_pause_protocol()

    def _write_ready(self):
        self._on_write()

    cdef int _on_write(self) except -1:
        if self._conn_lost or self._wsize == 0:
            return 0
        self._flush()
        return 0

    cdef int _flush(self) except -1:
        """Send buffered data until EAGAIN or nothing is left; then finish what waits
        on an empty buffer (close, write_eof, sendfile)."""
        cdef iovec iov[MAX_IOV]
        cdef msghdr msg
        cdef Py_ssize_t n, total, i, count, k, chunk_len
        cdef int err
        cdef list wbuf = self._wbuf
        cdef object chunk
        while self._wsize > 0:
            count = len(wbuf)
            if count > MAX_IOV:
                count = MAX_IOV
            total = 0
            for i in range(count):
                chunk = wbuf[i]
                if i == 0:
                    iov[i].iov_base = PyBytes_AS_STRING(chunk) + self._wpos
                    iov[i].iov_len = PyBytes_GET_SIZE(chunk) - self._wpos
                else:
                    iov[i].iov_base = PyBytes_AS_STRING(chunk)
                    iov[i].iov_len = PyBytes_GET_SIZE(chunk)
                total += iov[i].iov_len
            memset(&msg, 0, sizeof(msg))
            msg.msg_iov = iov
            msg.msg_iovlen = count
            n = c_sendmsg(self._fd, &msg, MSG_NOSIGNAL)
            if n < 0:
                err = errno
                if err == EINTR:
                    continue
                if err == EAGAIN or err == EWOULDBLOCK:
                    break
                exc = _oserror(err)
                self._pd.writer = None
                del wbuf[:]
                self._wsize = 0
                self._wpos = 0
                self._fatal_error(exc, 'Fatal write error on socket transport')
                if self._empty_waiter is not None:
                    self._empty_waiter.set_exception(exc)
                return 0
            # Drop what was sent.
            self._wsize -= n
            k = 0
            while n > 0:
                chunk_len = PyBytes_GET_SIZE(wbuf[k]) - self._wpos
                if n >= chunk_len:
                    n -= chunk_len
                    self._wpos = 0
                    k += 1
                else:
                    self._wpos += n
                    n = 0
            if k:
                del wbuf[:k]
        self._maybe_resume_protocol()
        if self._wsize == 0:
            if self._pd is not None:
                self._pd.writer = None
            if self._empty_waiter is not None:
                self._empty_waiter.set_result(None)
            if self._closing:
                self._call_connection_lost(None)
            elif self._eof:
                self._sock.shutdown(socket.SHUT_WR)
        return 0

    def write_eof(self):
        """Close the write end after the buffered data is sent."""
        if self._closing or self._eof:
            return
        self._eof = True
        if self._wsize == 0:
            self._sock.shutdown(socket.SHUT_WR)

    def can_write_eof(self):
        return True

    def get_write_buffer_size(self):
        return self._wsize

    def get_write_buffer_limits(self):
        return (self._low, self._high)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
        self._high = high
        self._low = low
        self._maybe_pause_protocol()

    cdef _maybe_pause_protocol(self):
        if self._wsize <= self._high or self._protocol_paused:
            return
        self._protocol_paused = True
        self._loop._flow_control(self._protocol, True, self)

    cdef _maybe_resume_protocol(self):
        if self._protocol_paused and self._wsize <= self._low:
            self._protocol_paused = False
            self._loop._flow_control(self._protocol, False, self)

    # -------------------------------------------------------------- sendfile support

    def _make_empty_waiter(self):
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._empty_waiter = self._loop.create_future()
        if self._wsize == 0:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _reset_empty_waiter(self):
        self._empty_waiter = None

    @property
    def _sock_lent(self):
        """True while loop.sendfile has the socket (see Loop._sock_desc)."""
        return self._empty_waiter is not None and not self._closing

    # -------------------------------------------------------------- closing

    def _fatal_error(self, exc, message='Fatal error on transport'):
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                aio_logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self,
                'protocol': self._protocol,
            })
        self._force_close(exc)

    cpdef _force_close(self, exc):
        if self._conn_lost:
            return
        if self._wsize:
            del self._wbuf[:]
            self._wsize = 0
            self._wpos = 0
            if self._pd is not None:
                self._pd.writer = None
        if not self._closing:
            self._closing = True
            self._update_reader()
        self._conn_lost += 1
        self._loop._call_soon(self._call_connection_lost, (exc,), None)

    cdef _detach_fd(self):
        if self._pd is not None:
            if self._loop is not None:
                self._loop._release_desc(self._pd)
            self._pd = None

    def _call_connection_lost(self, exc):
        try:
            if self._protocol_connected and self._protocol is not None:
                self._protocol.connection_lost(exc)
        finally:
            self._detach_fd()
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._protocol = None
            server = self._server
            if server is not None:
                self._server = None
                server._detach(self)
            waiter = self._empty_waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("Connection is closed by peer"))


graft_bases(StreamTransport, asyncio.Transport)


cdef StreamTransport new_stream_transport(Loop loop, sock, protocol, waiter, extra,
                                          server):
    cdef StreamTransport t = StreamTransport.__new__(StreamTransport)
    t._setup(loop, sock, protocol, waiter, extra, server)
    return t


# ---------------------------------------------------------------------- accept loops

cdef class _Listener(_Pollable):
    """The accept loop of one listening socket: accepts on each edge until EAGAIN (or
    a bounded batch, then yields), and backs off for a second when accept() runs out
    of fds or memory, as asyncio's does, without spinning."""

    cdef Loop _loop
    cdef object _sock
    cdef int _fd
    cdef PollDesc _pd
    cdef _IOHandle _rh
    cdef object _protocol_factory
    cdef object _sslcontext
    cdef object _server
    cdef int _backlog
    cdef object _ssl_handshake_timeout
    cdef object _ssl_shutdown_timeout
    cdef object _retry
    cdef bint _active
    cdef bint _shared               # polled by other Ps too (a runtime shared listener)
    cdef object _handoff            # None, or where accepted sockets wait unstarted
                                    # (the runtime's queue that other Ps steal from)

    def is_closing(self):
        return not self._active

    def __repr__(self):
        return f'<_Listener fd={self._fd} {"serving" if self._active else "stopped"}>'

    cdef _begin(self):
        self._active = True
        self._pd = self._loop._edge_desc(self._fd, self)
        if self._shared:
            # One P woken per connection; the others keep polling (EPOLLEXCLUSIVE).
            self._loop.poller.set_edge_exclusive(self._pd)
        self._pd.reader = self._rh

    cdef _stop(self):
        self._active = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._pd is not None:
            self._loop._release_desc(self._pd)
            self._pd = None

    def _resume(self):
        """After a back-off: accept again (edges seen meanwhile were dropped)."""
        self._retry = None
        if self._active and self._pd is not None:
            self._pd.reader = self._rh
            self._loop.ready.put(self._rh)

    def _read_ready(self):
        self._on_read()

    cdef int _on_read(self) except -1:
        cdef int i
        cdef int batch = self._backlog if 0 < self._backlog < MAX_ACCEPT_BATCH \
            else MAX_ACCEPT_BATCH
        if self._shared and batch > SHARED_ACCEPT_BATCH:
            batch = SHARED_ACCEPT_BATCH
        for i in range(batch):
            if not self._active or self._pd is None or self._pd.reader is not self._rh:
                return 0
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return 0
            except ConnectionAbortedError:
                continue        # the peer gave up while queued: take the next one
            except OSError as exc:
                if exc.errno in ACCEPT_RESOURCE_ERRNOS:
                    self._loop.call_exception_handler({
                        'message': 'socket.accept() out of system resource',
                        'exception': exc,
                        'socket': TransportSocket(self._sock),
                    })
                    self._pd.reader = None
                    self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
                    return 0
                raise
            conn.setblocking(False)
            if self._handoff is not None:
                self._handoff.put(self, conn, addr)
            else:
                self._accepted(conn, addr)
        if self._active and self._pd is not None and self._pd.reader is self._rh:
            self._loop.ready.put(self._rh)   # more may be queued; others go first
        return 0

    def _start_accepted(self, conn, addr):
        """Start serving conn, accepted on this listener's socket here or by another P
        (the runtime's handoff); a stopped listener closes it."""
        if not self._active:
            conn.close()
            return
        self._accepted(conn, addr)

    cdef _accepted(self, conn, addr):
        cdef Loop loop = self._loop
        extra = {'peername': addr}
        if self._sslcontext is not None:
            loop.create_task(_accept_tls(
                loop, conn, extra, self._protocol_factory, self._sslcontext,
                self._server, self._ssl_handshake_timeout, self._ssl_shutdown_timeout))
            return
        protocol = None
        try:
            protocol = self._protocol_factory()
            new_stream_transport(loop, conn, protocol, None, extra, self._server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            conn.close()
            if loop._debug:
                context = {
                    'message': 'Error on transport creation for incoming connection',
                    'exception': exc,
                }
                if protocol is not None:
                    context['protocol'] = protocol
                loop.call_exception_handler(context)


async def _accept_tls(loop, conn, extra, protocol_factory, sslcontext, server,
                      ssl_handshake_timeout, ssl_shutdown_timeout):
    protocol = None
    transport = None
    try:
        protocol = protocol_factory()
        waiter = loop.create_future()
        transport = loop._make_ssl_transport(
            conn, protocol, sslcontext, waiter=waiter, server_side=True, extra=extra,
            server=server, ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if transport is None:
            conn.close()
        if loop.get_debug():
            context = {
                'message': 'Error on transport creation for incoming connection',
                'exception': exc,
            }
            if protocol is not None:
                context['protocol'] = protocol
            if transport is not None:
                context['transport'] = transport
            loop.call_exception_handler(context)


# ---------------------------------------------------------------------- loop hooks

class StreamsMixin:
    """The loop's transport hooks, as asyncio's selector loop names them; asyncio's
    connection and server code (and gmploop's) builds on these."""

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None,
                               server=None):
        return new_stream_transport(self, sock, protocol, waiter, extra, server)

    def _start_serving(self, protocol_factory, sock, sslcontext=None, server=None,
                       backlog=100,
                       ssl_handshake_timeout=aio_constants.SSL_HANDSHAKE_TIMEOUT,
                       ssl_shutdown_timeout=aio_constants.SSL_SHUTDOWN_TIMEOUT):
        cdef Loop loop = <Loop?>self
        cdef _Listener listener = _Listener.__new__(_Listener)
        listener._loop = loop
        listener._sock = sock
        listener._fd = sock.fileno()
        listener._protocol_factory = protocol_factory
        listener._sslcontext = sslcontext
        listener._server = server
        listener._backlog = backlog
        listener._ssl_handshake_timeout = ssl_handshake_timeout
        listener._ssl_shutdown_timeout = ssl_shutdown_timeout
        listener._rh = _io_handle(listener, False, listener._read_ready, loop)
        # A socket the runtime shares between Ps says so (gmploop/_runtime.py).
        listener._shared = getattr(sock, '_gmploop_shared', False)
        listener._handoff = getattr(sock, '_gmploop_handoff', None)
        listener._begin()
        if listener._handoff is not None:
            listener._handoff.register(listener, sock)

    def _stop_serving(self, sock):
        cdef Loop loop = <Loop?>self
        cdef PollDesc pd
        fd = sock.fileno()
        if fd >= 0 and not loop._closed:
            pd = loop.poller.lookup(fd)
            if pd is not None and isinstance(pd.owner, _Listener):
                (<_Listener>pd.owner)._stop()
        sock.close()
