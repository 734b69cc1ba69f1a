"""Datagram transports (UDP and AF_UNIX datagrams) and create_datagram_endpoint.

What it does
------------
``DatagramTransport`` is what ``loop.create_datagram_endpoint`` hands the protocol: an
``asyncio.DatagramTransport`` that reads datagrams as they arrive and calls
``datagram_received(data, addr)`` for each, sends with ``sendto`` (immediately when the
kernel takes the datagram, buffered only when it says EAGAIN), reports socket errors
(an ICMP "port unreachable" seen as ECONNREFUSED, a full network queue...) to
``error_received`` and keeps going, and tells the protocol to pause and resume writing
at its buffer's water marks. Its observable behaviour is asyncio's selector datagram
transport's: the order of ``connection_made``, of the endpoint's waiter and of the
first read; what ``close``/``abort`` do with buffered datagrams; the messages of its
errors; the per-Python differences (an empty datagram is dropped before 3.13 and sent
from 3.13 on, where each buffered datagram also counts 8 bytes of header).

Two objects, one transport
--------------------------
asyncio's ``DatagramTransport`` is a plain Python class, not an ABC: ``isinstance``
asks for real inheritance, and an extension type cannot inherit from a class that
declares ``__slots__`` of its own (``BaseTransport._extra``): the layouts conflict. So
the transport is split. ``DatagramTransport`` is a small Python class that inherits
asyncio's and holds one reference, ``_io``; ``_DgramIO`` is an extension type with the
state in C fields and all the work in C methods. Each public method is one attribute
load and one C call away from the work; the read and write paths, run by the loop,
never touch the Python class at all.

Rejected: a pure extension type (what uvloop does) fails ``isinstance(t,
asyncio.DatagramTransport)``, which libraries check. Rejected too: a pure Python class
compiled by Cython, whose every field access on the read path is a dictionary or slot
lookup.

I/O
---
The socket's fd is registered once, edge-triggered for both directions
(``Loop._edge_desc``), from construction to ``connection_lost``. Reading: the read
handle, a persistent ``Handle``, sits in the descriptor's ``reader`` while the
transport reads; it receives into the loop's receive buffer until EAGAIN, or until a
budget of datagrams per turn is spent, when it queues itself again so that one busy
socket does not starve the rest of the loop (an edge will not come again for data
already queued). An IPv4 sender's address is built in C, and reused as long as the
datagrams come from the same peer; other families use the socket module's conversion.
Writing: ``sendto`` tries the syscall first; on EAGAIN the datagram is copied into a
FIFO and the write handle goes into the descriptor's ``writer`` until the FIFO is
drained. Connected sockets send with ``send(2)`` straight from the caller's buffer;
an unconnected IPv4 socket sends to a numeric (host, port) with ``sendto(2)`` and a
``sockaddr_in`` kept for the last destination (a server answering one client reuses
it); any other address goes through ``socket.sendto``, which resolves names and knows
every family.

Invariants
----------
* ``connection_made`` runs before any ``datagram_received``, and the endpoint's waiter
  completes after ``connection_made`` (three ``call_soon`` in a row, as asyncio).
* ``connection_lost`` is called exactly once; then the descriptor is released and the
  socket closed, in that order. After it ``_io.sock`` is None.
* Datagrams leave in ``sendto`` order: nothing is sent directly while the FIFO is
  not empty.
* A protocol callback that raises does not stall the socket: the read (or write)
  handle is queued again before the exception goes to the loop's handler.

Races it must survive
---------------------
* Data that arrived before reading starts: the registration's first edge comes before
  the read handle is installed and is lost, so starting (and resuming) reading queues
  the read handle once, optimistically.
* A protocol that closes, aborts or pauses the transport from ``datagram_received``:
  the read loop checks after every callback.
* A handle still queued for a transport that has been closed since: each handle
  checks the transport's state first and does nothing.
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
# EWOULDBLOCK is EAGAIN on every platform gmploop's poller supports (Linux, macOS,
# the BSDs); Cython would compile the pair into a switch with a duplicate case.
from libc.errno cimport errno, EAGAIN, EINTR
from libc.string cimport memset
from libc.stdint cimport uint16_t, uint32_t

import asyncio
import collections
import os
import socket
import sys
import warnings

from asyncio import base_events as aio_base_events
from asyncio import trsock as aio_trsock

from ._loop cimport Loop
from ._poller cimport PollDesc
from ._handles cimport Handle, new_handle
from ._net import remove_stale_unix_socket


cdef extern from "sys/socket.h" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    ssize_t c_recvfrom "recvfrom" (int fd, void *buf, size_t n, int flags,
                                  sockaddr *addr, socklen_t *addrlen)
    ssize_t c_send "send" (int fd, const void *buf, size_t n, int flags)
    ssize_t c_sendto "sendto" (int fd, const void *buf, size_t n, int flags,
                              const sockaddr *addr, socklen_t addrlen)
    int AF_INET

cdef extern from "netinet/in.h" nogil:
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    uint16_t ntohs(uint16_t)
    uint16_t htons(uint16_t)

cdef extern from "arpa/inet.h" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    int inet_pton(int af, const char *src, void *dst)

cdef extern from "Python.h":
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_WRITE


cdef enum:
    # asyncio's max_size for a datagram transport's recvfrom (and the loop's buffer).
    RECV_SIZE = 256 * 1024
    # Datagrams read per turn before the read handle yields to the rest of the loop.
    READ_BUDGET = 32
    # asyncio's constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES.
    CONNLOST_WARN_AFTER = 5
    INET_ADDRSTRLEN = 16

# asyncio 3.13 sends empty datagrams (earlier versions drop them without a word) and
# counts 8 bytes of header per buffered datagram in get_write_buffer_size().
cdef bint SEND_EMPTY = sys.version_info >= (3, 13)
cdef Py_ssize_t HEADER_SIZE = 8 if sys.version_info >= (3, 13) else 0
# The sock= check: 3.13 accepts any socket that is not a stream (SOCK_SEQPACKET,
# SOCK_RAW...); 3.11 and 3.12 only SOCK_DGRAM, with another message.
cdef bint ANY_NONSTREAM_SOCK = sys.version_info >= (3, 13)

cdef object TransportSocket = aio_trsock.TransportSocket
cdef object deque = collections.deque


cdef object _logger():
    return aio_base_events.logger


cdef object _os_error(int err):
    # OSError(errno, msg) builds the subclass the errno maps to (ConnectionRefusedError...).
    return OSError(err, os.strerror(err))


def _set_result_unless_cancelled(fut, result):
    if not fut.cancelled():
        fut.set_result(result)


# ---------------------------------------------------------------------- the transport


class DatagramTransport(asyncio.DatagramTransport, asyncio.Transport):
    """A datagram transport of a gmploop loop (see asyncio.DatagramTransport)."""

    __slots__ = ('_io', '__weakref__', '__dict__')

    def sendto(self, data, addr=None):
        """Send data to addr (or to the remote address of a connected endpoint)."""
        (<_DgramIO>self._io).sendto(data, addr)

    def abort(self):
        (<_DgramIO>self._io).force_close(None)

    def close(self):
        (<_DgramIO>self._io).close()

    def is_closing(self):
        return (<_DgramIO>self._io).closing

    def get_protocol(self):
        return (<_DgramIO>self._io).protocol

    def set_protocol(self, protocol):
        (<_DgramIO>self._io).protocol = protocol

    def is_reading(self):
        cdef _DgramIO io = <_DgramIO>self._io
        return not io.closing and not io.paused

    def pause_reading(self):
        (<_DgramIO>self._io).pause_reading()

    def resume_reading(self):
        (<_DgramIO>self._io).resume_reading()

    def get_write_buffer_size(self):
        return (<_DgramIO>self._io).buffer_size

    def get_write_buffer_limits(self):
        cdef _DgramIO io = <_DgramIO>self._io
        return (io.low_water, io.high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        cdef _DgramIO io = <_DgramIO>self._io
        io.set_limits(high, low)
        io.maybe_pause_protocol()

    def __repr__(self):
        return (<_DgramIO>self._io).describe(type(self).__name__)

    def __del__(self, _warn=warnings.warn):
        io = getattr(self, '_io', None)
        if io is not None and (<_DgramIO>io).sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            (<_DgramIO>io).abandon()


cdef class _DgramIO:
    """The state and the I/O of one DatagramTransport (owner P only)."""

    cdef Loop loop
    cdef object transport          # the DatagramTransport the protocol sees
    cdef object protocol
    cdef object sock               # None once connection_lost has been called
    cdef int fd
    cdef int family
    cdef PollDesc pd
    cdef Handle read_handle
    cdef Handle write_handle

    cdef object address            # remote_addr given at creation (sendto's default)
    cdef bint connected            # the socket has a peer: send(2), not sendto(2)
    cdef bint closing
    cdef bint paused               # pause_reading()
    cdef int conn_lost             # connection_lost scheduled (and sends after it)

    cdef object buffer             # deque of (bytes, addr) waiting for the write edge
    cdef Py_ssize_t buffer_size
    cdef Py_ssize_t high_water
    cdef Py_ssize_t low_water
    cdef bint protocol_paused

    # The last IPv4 sender seen, and its address tuple (see 'I/O').
    cdef uint32_t last_ip
    cdef uint16_t last_port
    cdef object last_addr
    # The last IPv4 destination of sendto, resolved to a sockaddr_in.
    cdef object dest_key
    cdef sockaddr_in dest

    # ------------------------------------------------------------------ flow control

    cdef int set_limits(self, high, low) except -1:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
        self.high_water = high
        self.low_water = low
        return 0

    cdef int maybe_pause_protocol(self) except -1:
        if self.buffer_size <= self.high_water or self.protocol_paused:
            return 0
        self.protocol_paused = True
        self.loop._flow_control(self.protocol, True, self.transport)
        return 0

    cdef int maybe_resume_protocol(self) except -1:
        if not self.protocol_paused or self.buffer_size > self.low_water:
            return 0
        self.protocol_paused = False
        self.loop._flow_control(self.protocol, False, self.transport)
        return 0

    # ------------------------------------------------------------------ reading

    def _start_reading(self):
        # Scheduled after connection_made. The registration's first edge may have
        # come and gone already: look once (see 'Races').
        if self.closing or self.paused:
            return
        self.pd.reader = self.read_handle
        self.loop.ready.put(self.read_handle)

    cdef int pause_reading(self) except -1:
        if self.closing or self.paused:
            return 0
        self.paused = True
        self.pd.reader = None
        if self.loop.get_debug():
            _logger().debug("%r pauses reading", self.transport)
        return 0

    cdef int resume_reading(self) except -1:
        if self.closing or not self.paused:
            return 0
        self.paused = False
        self.pd.reader = self.read_handle
        self.loop.ready.put(self.read_handle)
        if self.loop.get_debug():
            _logger().debug("%r resumes reading", self.transport)
        return 0

    cdef inline bint reading(self):
        return not self.closing and not self.paused and self.sock is not None

    cdef object inet_addr(self, sockaddr_in *sin):
        cdef char text[INET_ADDRSTRLEN]
        if (self.last_addr is not None and sin.sin_addr.s_addr == self.last_ip
                and sin.sin_port == self.last_port):
            return self.last_addr
        inet_ntop(AF_INET, &sin.sin_addr, text, INET_ADDRSTRLEN)
        addr = (text.decode('ascii'), ntohs(sin.sin_port))
        self.last_ip = sin.sin_addr.s_addr
        self.last_port = sin.sin_port
        self.last_addr = addr
        return addr

    def _on_readable(self):
        """The read handle: datagrams until EAGAIN or the turn's budget is spent."""
        cdef Loop loop = self.loop
        cdef char *buf
        cdef sockaddr_storage ss
        cdef socklen_t sslen
        cdef ssize_t n
        cdef int err, budget = READ_BUDGET
        cdef bint inet = self.family == AF_INET
        if not self.reading():
            return
        buf = loop._recv_buffer()
        view = None
        while True:
            if budget == 0:
                loop.ready.put(self.read_handle)
                return
            budget -= 1
            exc = None
            if inet:
                sslen = sizeof(ss)
                n = c_recvfrom(self.fd, buf, RECV_SIZE, 0, <sockaddr *>&ss, &sslen)
                if n < 0:
                    err = errno
                    if err == EAGAIN:
                        return
                    if err == EINTR:
                        continue
                    exc = _os_error(err)
                else:
                    data = PyBytes_FromStringAndSize(buf, n)
                    if sslen >= sizeof(sockaddr_in) and ss.ss_family == AF_INET:
                        addr = self.inet_addr(<sockaddr_in *>&ss)
                    else:
                        addr = None
            else:
                if view is None:
                    view = PyMemoryView_FromMemory(buf, RECV_SIZE, PyBUF_WRITE)
                try:
                    n, addr = self.sock.recvfrom_into(view)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as e:
                    exc = e
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as e:
                    self.fatal_error(e, 'Fatal read error on datagram transport')
                    return
                else:
                    data = PyBytes_FromStringAndSize(buf, n)
            try:
                if exc is not None:
                    self.protocol.error_received(exc)
                else:
                    self.protocol.datagram_received(data, addr)
            except BaseException:
                if self.reading():
                    loop.ready.put(self.read_handle)
                raise
            if not self.reading():
                return

    # ------------------------------------------------------------------ writing

    cdef int send_now(self, data, addr) except -1:
        """One syscall for one datagram: 1 if sent, 0 if the kernel would block.
        Raises OSError for a socket error, anything else for a fatal one."""
        cdef Py_buffer pybuf
        cdef ssize_t n
        cdef int err
        cdef bint inet_dest
        if self.connected:
            if type(data) is bytes:
                n = c_send(self.fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), 0)
                err = errno
            else:
                PyObject_GetBuffer(data, &pybuf, PyBUF_SIMPLE)
                n = c_send(self.fd, pybuf.buf, pybuf.len, 0)
                err = errno
                PyBuffer_Release(&pybuf)
        else:
            inet_dest = self.family == AF_INET and self.resolve_inet(addr)
            if not inet_dest:
                try:
                    self.sock.sendto(data, addr)
                except (BlockingIOError, InterruptedError):
                    return 0
                return 1
            if type(data) is bytes:
                n = c_sendto(self.fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), 0,
                             <sockaddr *>&self.dest, sizeof(sockaddr_in))
                err = errno
            else:
                PyObject_GetBuffer(data, &pybuf, PyBUF_SIMPLE)
                n = c_sendto(self.fd, pybuf.buf, pybuf.len, 0,
                             <sockaddr *>&self.dest, sizeof(sockaddr_in))
                err = errno
                PyBuffer_Release(&pybuf)
        if n >= 0:
            return 1
        if err == EAGAIN or err == EINTR:
            return 0
        raise _os_error(err)

    cdef bint resolve_inet(self, addr) except -1:
        """Put addr in self.dest if it is a numeric IPv4 (host, port) pair; False
        sends it through the socket module, which knows every other spelling."""
        cdef bytes host
        cdef long port
        if addr is self.dest_key and addr is not None:
            return True
        if type(addr) is not tuple or len(<tuple>addr) != 2:
            return False
        h, p = <tuple>addr
        if type(h) is not str or type(p) is not int:
            return False
        if self.dest_key is not None and addr == self.dest_key:
            self.dest_key = addr
            return True
        port = p
        if port < 0 or port > 65535:
            return False
        try:
            host = (<str>h).encode('ascii')
        except UnicodeEncodeError:
            return False
        memset(&self.dest, 0, sizeof(sockaddr_in))
        if inet_pton(AF_INET, host, &self.dest.sin_addr) != 1:
            self.dest_key = None
            return False
        self.dest.sin_family = AF_INET
        self.dest.sin_port = htons(<uint16_t>port)
        self.dest_key = addr
        return True

    cdef int sendto(self, data, addr) except -1:
        cdef int sent
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f'data argument must be a bytes-like object, '
                            f'not {type(data).__name__!r}')
        if not SEND_EMPTY and not data:
            return 0
        if self.address:
            if addr is not None and addr is not self.address and addr != self.address:
                raise ValueError(f'Invalid address: must be None or {self.address}')
            addr = self.address
        if self.conn_lost and (self.address or self.sock is None):
            if self.conn_lost >= CONNLOST_WARN_AFTER:
                _logger().warning('socket.send() raised exception.')
            self.conn_lost += 1
            return 0
        if not self.buffer:
            try:
                if self.send_now(data, addr):
                    return 0
            except OSError as exc:
                self.protocol.error_received(exc)
                return 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.fatal_error(exc, 'Fatal write error on datagram transport')
                return 0
            self.pd.writer = self.write_handle
        # A copy: the caller may reuse a bytearray or memoryview at once.
        self.buffer.append((bytes(data), addr))
        self.buffer_size += len(data) + HEADER_SIZE
        self.maybe_pause_protocol()
        return 0

    def _on_writable(self):
        """The write handle: send the FIFO until EAGAIN or it is empty."""
        if self.sock is None or self.conn_lost:
            return
        buffer = self.buffer
        while buffer:
            data, addr = buffer.popleft()
            self.buffer_size -= len(<bytes>data) + HEADER_SIZE
            try:
                sent = self.send_now(data, addr)
            except OSError as exc:
                try:
                    self.protocol.error_received(exc)
                except BaseException:
                    if buffer:
                        self.loop.ready.put(self.write_handle)
                    raise
                continue
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.fatal_error(exc, 'Fatal write error on datagram transport')
                return
            if not sent:
                buffer.appendleft((data, addr))
                self.buffer_size += len(<bytes>data) + HEADER_SIZE
                break
        self.maybe_resume_protocol()   # may send, and buffer, more
        if not buffer:
            self.pd.writer = None
            if self.closing and not self.conn_lost:
                self.conn_lost += 1
                self.connection_lost(None)

    # ------------------------------------------------------------------ closing

    cdef int close(self) except -1:
        if self.closing:
            return 0
        self.closing = True
        self.pd.reader = None
        if not self.buffer:
            self.conn_lost += 1
            self.pd.writer = None
            self.loop.call_soon(self._call_connection_lost, None)
        return 0

    cdef int force_close(self, exc) except -1:
        if self.conn_lost:
            return 0
        if self.buffer:
            self.buffer.clear()
            self.buffer_size = 0
            self.pd.writer = None
        if not self.closing:
            self.closing = True
            self.pd.reader = None
        self.conn_lost += 1
        self.loop.call_soon(self._call_connection_lost, exc)
        return 0

    cdef int fatal_error(self, exc, message) except -1:
        if isinstance(exc, OSError):
            if self.loop.get_debug():
                _logger().debug("%r: %s", self.transport, message, exc_info=True)
        else:
            self.loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self.transport,
                'protocol': self.protocol,
            })
        self.force_close(exc)
        return 0

    def _call_connection_lost(self, exc):
        self.connection_lost(exc)

    cdef int connection_lost(self, exc) except -1:
        if self.sock is None:
            return 0
        try:
            self.protocol.connection_lost(exc)
        finally:
            self.release()
            self.protocol = None
        return 0

    cdef int release(self) except -1:
        """Out of the poller, then the socket closed (in that order)."""
        sock = self.sock
        self.sock = None
        self.loop._release_desc(self.pd)
        sock.close()
        return 0

    cdef int abandon(self) except -1:
        """A transport garbage-collected unclosed: close its socket quietly."""
        if self.sock is not None:
            self.closing = True
            self.release()
        return 0

    cdef str describe(self, str name):
        info = [name]
        if self.sock is None:
            info.append('closed')
        elif self.closing:
            info.append('closing')
        info.append(f'fd={self.fd}')
        if self.sock is not None and not self.loop.is_closed():
            info.append('read=polling' if self.pd.reader is not None else 'read=idle')
            state = 'polling' if self.pd.writer is not None else 'idle'
            info.append(f'write=<{state}, bufsize={self.buffer_size}>')
        return '<{}>'.format(' '.join(info))


cdef object make_transport(Loop loop, sock, protocol, address, waiter):
    """A DatagramTransport for sock, which it now owns; connection_made, reading and
    the waiter follow in three call_soon, as asyncio orders them."""
    cdef _DgramIO io = _DgramIO.__new__(_DgramIO)
    transport = DatagramTransport.__new__(DatagramTransport)
    transport._io = io
    extra = {'socket': TransportSocket(sock)}
    try:
        extra['sockname'] = sock.getsockname()
    except OSError:
        extra['sockname'] = None
    try:
        extra['peername'] = sock.getpeername()
    except OSError:
        extra['peername'] = None
    transport._extra = extra
    io.loop = loop
    io.transport = transport
    io.protocol = protocol
    io.sock = sock
    io.fd = sock.fileno()
    io.family = sock.family
    io.address = address
    io.connected = bool(extra['peername'])   # an unnamed AF_UNIX peer is ''
    io.buffer = deque()
    io.set_limits(None, None)
    io.read_handle = new_handle(io._on_readable, (), None, loop)
    io.write_handle = new_handle(io._on_writable, (), None, loop)
    io.pd = loop._edge_desc(io.fd, transport)
    loop.call_soon(protocol.connection_made, transport)
    loop.call_soon(io._start_reading)
    if waiter is not None:
        loop.call_soon(_set_result_unless_cancelled, waiter, None)
    return transport


# ---------------------------------------------------------------------- the endpoint


cdef _set_reuseport(sock):
    if not hasattr(socket, 'SO_REUSEPORT'):
        raise ValueError('reuse_port not supported by socket module')
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError('reuse_port not supported by socket module, '
                         'SO_REUSEPORT defined but not implemented.')


async def _address_candidates(loop, local_addr, remote_addr, family, proto, flags):
    """[((family, proto), (local, remote)), ...]: the socket kinds both addresses
    resolve to, in resolution order."""
    if not (local_addr or remote_addr):
        if family == 0:
            raise ValueError('unexpected address family')
        return [((family, proto), (None, None))]
    if hasattr(socket, 'AF_UNIX') and family == socket.AF_UNIX:
        for addr in (local_addr, remote_addr):
            if addr is not None and not isinstance(addr, str):
                raise TypeError('string is expected')
        if local_addr:
            remove_stale_unix_socket(local_addr)
        return [((family, proto), (local_addr, remote_addr))]

    by_kind = {}          # (family, proto) -> [local, remote]; insertion-ordered
    for side, addr in ((0, local_addr), (1, remote_addr)):
        if addr is None:
            continue
        if not (isinstance(addr, tuple) and len(addr) == 2):
            raise TypeError('2-tuple is expected')
        infos = await loop._ensure_resolved(addr, family=family,
                                            type=socket.SOCK_DGRAM,
                                            proto=proto, flags=flags)
        if not infos:
            raise OSError('getaddrinfo() returned empty list')
        for fam, _, pro, _, sockaddr in infos:
            pair = by_kind.setdefault((fam, pro), [None, None])
            pair[side] = sockaddr
    # Only kinds for which every address given has a resolution.
    pairs = [(kind, pair) for kind, pair in by_kind.items()
             if not ((local_addr and pair[0] is None) or
                     (remote_addr and pair[1] is None))]
    if not pairs:
        raise ValueError('can not get address information')
    return pairs


async def create_datagram_endpoint(loop, protocol_factory, local_addr=None,
                                   remote_addr=None, *, family=0, proto=0, flags=0,
                                   reuse_port=None, allow_broadcast=None, sock=None):
    """loop.create_datagram_endpoint() for a gmploop loop (asyncio's semantics)."""
    cdef bint own_sock = sock is None
    r_addr = None
    if sock is not None:
        if ANY_NONSTREAM_SOCK:
            if sock.type == socket.SOCK_STREAM:
                raise ValueError(f'A datagram socket was expected, got {sock!r}')
        elif sock.type != socket.SOCK_DGRAM:
            raise ValueError(f'A UDP Socket was expected, got {sock!r}')
        if (local_addr or remote_addr or family or proto or flags or
                reuse_port or allow_broadcast):
            given = dict(local_addr=local_addr, remote_addr=remote_addr,
                         family=family, proto=proto, flags=flags,
                         reuse_port=reuse_port, allow_broadcast=allow_broadcast)
            problems = ', '.join(f'{k}={v}' for k, v in given.items() if v)
            raise ValueError(f'socket modifier keyword arguments can not be used '
                             f'when sock is specified. ({problems})')
        sock.setblocking(False)
    else:
        pairs = await _address_candidates(loop, local_addr, remote_addr, family,
                                          proto, flags)
        errors = []
        for (fam, pro), (local, remote) in pairs:
            sock = None
            r_addr = None
            try:
                sock = socket.socket(family=fam, type=socket.SOCK_DGRAM, proto=pro)
                if reuse_port:
                    _set_reuseport(sock)
                if allow_broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setblocking(False)
                if local_addr:
                    sock.bind(local)
                if remote_addr:
                    # A broadcast endpoint stays unconnected: replies come from
                    # the hosts, not from the broadcast address.
                    if not allow_broadcast:
                        await loop.sock_connect(sock, remote)
                    r_addr = remote
            except OSError as exc:
                if sock is not None:
                    sock.close()
                errors.append(exc)
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            else:
                break
        else:
            raise errors[0]

    try:
        protocol = protocol_factory()
        waiter = loop.create_future()
        transport = make_transport(<Loop?>loop, sock, protocol, r_addr, waiter)
    except BaseException:
        if own_sock:
            sock.close()
        raise
    if loop.get_debug():
        if local_addr:
            _logger().info("Datagram endpoint local_addr=%r remote_addr=%r "
                           "created: (%r, %r)",
                           local_addr, remote_addr, transport, protocol)
        else:
            _logger().debug("Datagram endpoint remote_addr=%r created: (%r, %r)",
                            remote_addr, transport, protocol)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol
