"""Connections and servers: the orchestration above the stream transports.

What it does
------------
``NetMixin`` gives a loop asyncio's connection-level API: ``create_connection``
(with happy eyeballs), ``create_server``, their Unix-socket twins,
``connect_accepted_socket``, ``start_tls``, ``sendfile`` and the ``Server`` object.
None of this is on a hot path: each call costs a few syscalls and a name lookup at
most once per connection, so it is plain Python. Everything per byte lives in the
transports, and this module only decides which socket to build, hands it to the loop
and waits for the protocol to be told.

The mixin talks to its loop through a narrow seam, the same one asyncio's selector loop
has, so that it runs unchanged over gmploop's transports and over asyncio's own:

* ``self._make_socket_transport(sock, protocol, waiter=None, *, extra=None,
  server=None)``: a stream transport that resolves ``waiter`` once
  ``protocol.connection_made`` has run;
* ``self._start_serving(protocol_factory, sock, sslcontext, server, backlog,
  ssl_handshake_timeout, ssl_shutdown_timeout)`` and ``self._stop_serving(sock)``:
  accept on a listening socket (building each connection's transport, TLS ones through
  ``self._make_ssl_transport``), and stop and close it;
* ``self._transport_sock_lend(transport)`` / ``self._transport_sock_reclaim(transport)``:
  borrow a transport's socket for ``sock_sendfile`` and give it back (see 'sendfile').

plus the public loop API (``getaddrinfo``, ``sock_connect``, ``sock_sendfile``,
``create_future``, ``run_in_executor``...).

Rejected approaches
-------------------
* Inheriting the methods from ``asyncio.BaseEventLoop``: they reach into private state
  of the selector loop (``_transports``, ``_ensure_resolved(..., loop=)``, the
  ``_unix_server_sockets`` table) whose shape changes between Python versions, and
  gmploop's loop core is not that class.
* Compiling this with Cython: nothing here runs per byte or per callback, and plain
  Python keeps it readable next to the documentation it follows.
* Writing our own happy eyeballs scheduler: asyncio's ``staggered_race`` is public
  enough, loop-agnostic and exactly the documented algorithm, so it is reused.
* asyncio's sendfile fallback protocol: it insists on asyncio's private
  ``_FlowControlMixin`` base. Ours needs only the public transport API (plus the
  ``_protocol_paused`` flag when a transport has it).

Invariants
----------
* A socket created here is either owned by a transport when the call returns, or
  closed before the exception leaves: cancellation included (``_open_stream`` and
  ``create_server`` close on any exception, not only on ``OSError``).
* A ``Server`` counts its live connections. ``wait_closed`` returns once the server is
  closed *and* that count is zero (asyncio 3.12.1's rule), whichever happens last; the
  waiters are released exactly once, and later calls return at once.
* Every version of Python gets the 3.13 API (``close_clients``, ``abort_clients``,
  ``keep_alive``, ``cleanup_socket``, ``all_errors``): a keyword that is newer than the
  interpreter is accepted wherever honouring it is harmless.

Races it must survive
---------------------
* A connection accepted just before ``Server.close``: its transport still attaches,
  and ``wait_closed`` then waits for it too.
* Transports of asyncio 3.11 attach and detach without saying who they are: those are
  counted anonymously (they can be waited for, not closed by ``close_clients``).
* ``start_tls``: bytes may already wait in the socket when the TLS protocol is swapped
  in. Reading is paused first, and ``connection_made`` and ``resume_reading`` are
  queued in that order, so no record reaches the TLS protocol before it is ready.
* ``sendfile`` while the peer goes away: the fallback's flow-control future fails with
  the connection's error instead of hanging; the native path waits for the transport's
  own buffer to drain before the kernel writes behind it, so bytes stay in order.
"""

import collections
import collections.abc
import errno
import functools
import os
import socket
import stat
import sys
import weakref

import asyncio
from asyncio import base_events as aio_base_events
from asyncio import constants as aio_constants
from asyncio import events as aio_events
from asyncio import exceptions as aio_exceptions
from asyncio import protocols as aio_protocols
from asyncio import sslproto as aio_sslproto
from asyncio import staggered as aio_staggered
from asyncio import trsock as aio_trsock
from asyncio.log import logger

try:
    import ssl as _ssl
except ImportError:     # pragma: no cover - Python built without OpenSSL
    _ssl = None

__all__ = ("NetMixin", "Server")

_HAS_IPV6 = hasattr(socket, "AF_INET6")
_SendfileMode = aio_constants._SendfileMode
_NEW_BIND_MESSAGE = sys.version_info >= (3, 12)

# The fallback reads the file in chunks of this size (asyncio's choice too): big enough
# that the executor round trip is amortised, small enough not to bloat the write buffer.
SENDFILE_FALLBACK_CHUNK = 16 * 1024

SSL_HANDSHAKE_TIMEOUT = aio_constants.SSL_HANDSHAKE_TIMEOUT
SSL_SHUTDOWN_TIMEOUT = aio_constants.SSL_SHUTDOWN_TIMEOUT


# ---------------------------------------------------------------------- small helpers

def _refuse_ssl_socket(sock):
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _only_with_ssl(ssl, **values):
    """ValueError for the first TLS-only argument given without TLS."""
    if ssl:
        return
    for name, value in values.items():
        if value is not None:
            raise ValueError(f"{name} is only meaningful with ssl")


def _interleave_by_family(infos, first_family_count=1):
    """Reorder addrinfos so that families alternate (RFC 8305, section 4): the
    first family seen leads with `first_family_count` entries, then one of each."""
    by_family = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    queues = [collections.deque(q) for q in by_family.values()]
    result = []
    if queues:
        head = queues[0]
        for _ in range(min(first_family_count - 1, len(head))):
            result.append(head.popleft())
    while any(queues):
        for q in queues:
            if q:
                result.append(q.popleft())
    return result


def _bind_failed(exc, address):
    """The OSError asyncio raises when bind() fails: the address in the message."""
    # Python 3.12 began quoting the whole error, errno included; before, only strerror.
    reason = str(exc) if _NEW_BIND_MESSAGE else (exc.strerror or str(exc))
    return OSError(exc.errno, f"error while attempting to bind on address "
                              f"{address!r}: {reason.lower()}")


def _set_reuse_port(sock):
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError("reuse_port not supported by socket module, "
                         "SO_REUSEPORT defined but not implemented.")


def _is_filesystem_path(path):
    """A Unix socket address that names a file (not abstract, not autobound)."""
    return bool(path) and path[0] not in (0, "\x00")


# Where create_server's listening sockets come from: None, or the runtime's source in a
# P (an object with bound_listener, same signature), set by gmploop/_runtime.py.
listener_source = None


def bound_listener(family, type_, proto, address, reuse_address, reuse_port,
                   keep_alive):
    """A socket bound to address with create_server's options; None when the host
    has no such family/type/protocol. A failure closes the socket and raises; a
    failed bind raises asyncio's OSError, which names the address."""
    try:
        sock = socket.socket(family, type_, proto)
    except OSError:
        return None
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
        if reuse_port:
            _set_reuse_port(sock)
        if keep_alive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
        if (_HAS_IPV6 and family == socket.AF_INET6 and
                hasattr(socket, "IPPROTO_IPV6")):
            # Linux listens on both families through one IPv6 socket by default; the
            # IPv4 addresses get sockets of their own here.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
        try:
            sock.bind(address)
        except OSError as err:
            raise _bind_failed(err, address) from None
    except BaseException:
        sock.close()
        raise
    return sock


def remove_stale_unix_socket(path):
    """Remove a socket file left at path by a dead endpoint, which would make bind
    fail; only a socket is removed, never a regular file by mistake (bind then
    reports it). Abstract and autobound addresses name no file."""
    if not _is_filesystem_path(path):
        return
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)


def bound_unix_listener(path):
    """A Unix stream socket bound to path, a stale socket file there removed first
    (never a regular file); EADDRINUSE as asyncio words it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    remove_stale_unix_socket(path)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(errno.EADDRINUSE,
                          f"Address {path!r} is already in use") from None
        raise
    except BaseException:
        sock.close()
        raise
    return sock


# ---------------------------------------------------------------------- Server

class Server(aio_events.AbstractServer):
    """A listening server: what create_server and create_unix_server return.

    Connections are tracked as they attach (a transport calls ``_attach`` when it is
    made for an accepted socket and ``_detach`` after ``connection_lost``), so that
    ``wait_closed`` can wait for them and ``close_clients``/``abort_clients`` can
    reach them.
    """

    def __init__(self, loop, sockets, protocol_factory, ssl_context, backlog,
                 ssl_handshake_timeout, ssl_shutdown_timeout=None,
                 unix_paths=None):
        self._loop = loop
        self._sockets = sockets
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        self._backlog = backlog
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        # Weak, so that a transport nobody closed can still be collected and warn.
        self._clients = weakref.WeakSet()
        self._pinned_clients = set()    # transports that cannot be weakly referenced
        self._anonymous_clients = 0     # attached without saying who they are
        self._waiters = []              # None once closed and drained: see wakeup
        self._serving = False
        self._serving_forever_fut = None
        # {socket: (path, inode)}: socket files to remove on close if still ours.
        self._unix_paths = unix_paths or {}

    def __repr__(self):
        return f"<{self.__class__.__name__} sockets={self.sockets!r}>"

    # Connections

    def _attach(self, transport=None):
        if transport is None:
            self._anonymous_clients += 1
            return
        try:
            self._clients.add(transport)
        except TypeError:
            self._pinned_clients.add(transport)

    def _detach(self, transport=None):
        if transport is None:
            if self._anonymous_clients > 0:
                self._anonymous_clients -= 1
        else:
            self._pinned_clients.discard(transport)
            try:
                self._clients.discard(transport)
            except TypeError:
                pass
        if self._sockets is None and not self._has_clients():
            self._wakeup()

    def _has_clients(self):
        return bool(self._anonymous_clients or self._pinned_clients or
                    len(self._clients))

    def _known_clients(self):
        return list(self._clients) + list(self._pinned_clients)

    def _wakeup(self):
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def close_clients(self):
        for transport in self._known_clients():
            transport.close()

    def abort_clients(self):
        for transport in self._known_clients():
            transport.abort()

    # Listening

    def _start_serving(self):
        if self._serving:
            return
        self._serving = True
        for sock in self._sockets:
            sock.listen(self._backlog)
            self._loop._start_serving(
                self._protocol_factory, sock, self._ssl_context, self, self._backlog,
                self._ssl_handshake_timeout, self._ssl_shutdown_timeout)

    async def start_serving(self):
        self._start_serving()
        # One iteration, so that the accept registrations are in place on return.
        await asyncio.sleep(0)

    def get_loop(self):
        return self._loop

    def is_serving(self):
        return self._serving

    @property
    def sockets(self):
        if self._sockets is None:
            return ()
        return tuple(aio_trsock.TransportSocket(s) for s in self._sockets)

    def close(self):
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            paths = self._unix_paths.pop(sock, None)
            self._loop._stop_serving(sock)
            if paths is not None:
                _remove_if_ours(*paths)
        self._serving = False
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
            self._serving_forever_fut = None
        if not self._has_clients():
            self._wakeup()

    async def serve_forever(self):
        if self._serving_forever_fut is not None:
            raise RuntimeError(
                f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except aio_exceptions.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self):
        """Wait until the server is closed and all its connections are gone."""
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()


def _remove_if_ours(path, inode):
    """Unlink a Unix server's socket file unless someone replaced it meanwhile."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)


# ---------------------------------------------------------------------- sendfile fallback

class _SendfileWriter(aio_protocols.Protocol):
    """Stands in for the application's protocol while sendfile writes by hand.

    It keeps the transport's flow control: ``pause_writing`` makes ``wait_writable``
    block until ``resume_writing``. Reading is paused for the duration, so the
    transport never delivers data here. ``restore`` puts the application's protocol
    back, with reading and writing in the state they would have had.
    """

    def __init__(self, loop, transport):
        self._loop = loop
        self._transport = transport
        self._app = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        paused = getattr(transport, "_protocol_paused", None)
        if paused is None:      # no flag: the buffer above the high-water mark
            paused = (transport.get_write_buffer_size() >
                      transport.get_write_buffer_limits()[1])
        self._app_was_paused = bool(paused)
        self._writable = loop.create_future() if paused else None
        transport.pause_reading()
        transport.set_protocol(self)

    async def wait_writable(self):
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        if self._writable is not None:
            await self._writable

    def connection_made(self, transport):
        raise RuntimeError("Invalid state: "
                           "connection should have been established already.")

    def connection_lost(self, exc):
        fut = self._writable
        if fut is not None and not fut.done():
            fut.set_exception(exc if exc is not None else
                              ConnectionError("Connection is closed by peer"))
        self._app.connection_lost(exc)

    def pause_writing(self):
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self):
        fut, self._writable = self._writable, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def data_received(self, data):
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self):
        raise RuntimeError("Invalid state: reading should be paused")

    def restore(self):
        self._transport.set_protocol(self._app)
        if self._resume_reading:
            self._transport.resume_reading()
        fut, self._writable = self._writable, None
        if fut is not None:
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()     # retrieved: connection_lost already told the app
        if self._app_was_paused:
            # The transport's resume_writing, if any, came to us: pass it on.
            self._app.resume_writing()


# ---------------------------------------------------------------------- the mixin

class NetMixin:
    """asyncio's connection and server API, for a loop that provides transports.

    See the module's docstring for what the loop must provide.
    """

    # Name resolution ---------------------------------------------------------------

    async def _net_resolve(self, address, *, family=0, proto=0, flags=0):
        """addrinfos for a stream address: numeric hosts without a lookup (as
        asyncio does), names through self.getaddrinfo."""
        host, port = address[:2]
        info = aio_base_events._ipaddr_info(host, port, family, socket.SOCK_STREAM,
                                            proto, *address[2:])
        if info is not None:
            return [info]
        return await self.getaddrinfo(host, port, family=family,
                                      type=socket.SOCK_STREAM, proto=proto,
                                      flags=flags)

    # Clients -----------------------------------------------------------------------

    async def _open_stream(self, errors, addrinfo, local_infos):
        """A connected non-blocking socket for one addrinfo; this attempt's errors go
        to a list of their own appended to `errors` (attempts may run concurrently)."""
        mine = []
        errors.append(mine)
        family, type_, proto, _, address = addrinfo
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_infos is not None:
                bound = False
                for lfamily, _, _, _, laddr in local_infos:
                    if lfamily != family:
                        continue
                    try:
                        sock.bind(laddr)
                    except OSError as exc:
                        mine.append(_bind_failed(exc, laddr))
                    else:
                        bound = True
                        break
                if not bound:
                    if mine:
                        raise mine.pop()
                    raise OSError(f"no matching local address with family={family!r} "
                                  f"found")
            await self.sock_connect(sock, address)
            return sock
        except OSError as exc:
            mine.append(exc)
            if sock is not None:
                sock.close()
            raise
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        finally:
            errors = mine = None    # no cycle through the tracebacks

    async def create_connection(
            self, protocol_factory, host=None, port=None, *, ssl=None, family=0,
            proto=0, flags=0, sock=None, local_addr=None, server_hostname=None,
            ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
            happy_eyeballs_delay=None, interleave=None, all_errors=False):
        """Open a stream connection to host:port (or over sock); (transport,
        protocol)."""
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            # The host name is what the certificate is checked against; a caller
            # without one must say so explicitly (server_hostname='').
            if not host:
                raise ValueError("You must set server_hostname "
                                 "when using ssl without a host")
            server_hostname = host
        _only_with_ssl(ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                       ssl_shutdown_timeout=ssl_shutdown_timeout)
        if sock is not None:
            _refuse_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1

        if host is not None or port is not None:
            if sock is not None:
                raise ValueError(
                    "host/port and sock can not be specified at the same time")
            infos = await self._net_resolve((host, port), family=family, proto=proto,
                                            flags=flags)
            if not infos:
                raise OSError("getaddrinfo() returned empty list")
            local_infos = None
            if local_addr is not None:
                local_infos = await self._net_resolve(
                    local_addr, family=family, proto=proto, flags=flags)
                if not local_infos:
                    raise OSError("getaddrinfo() returned empty list")
            if interleave:
                infos = _interleave_by_family(infos, interleave)

            errors = []
            if happy_eyeballs_delay is None:
                for addrinfo in infos:
                    try:
                        sock = await self._open_stream(errors, addrinfo, local_infos)
                    except OSError:
                        continue
                    break
            else:
                attempts = (functools.partial(self._open_stream, errors, addrinfo,
                                              local_infos) for addrinfo in infos)
                sock = (await aio_staggered.staggered_race(
                    attempts, happy_eyeballs_delay, loop=self))[0]

            if sock is None:
                flat = [exc for attempt in errors for exc in attempt]
                errors = None
                try:
                    raise self._connect_failure(flat, all_errors)
                finally:
                    flat = None
        else:
            if sock is None:
                raise ValueError(
                    "host and port was not specified and no sock specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")

        transport, protocol = await self._wrap_stream(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        if self.get_debug():
            logger.debug("%r connected to %s:%r: (%r, %r)",
                         transport.get_extra_info("socket"), host, port,
                         transport, protocol)
        return transport, protocol

    @staticmethod
    def _connect_failure(errors, all_errors):
        """The one exception create_connection raises when no address worked."""
        if all_errors:
            return ExceptionGroup("create_connection failed", errors)
        if len(errors) == 1:
            return errors[0]
        first = str(errors[0])
        if all(str(exc) == first for exc in errors):
            return errors[0]
        return OSError("Multiple exceptions: " + ", ".join(str(e) for e in errors))

    async def _wrap_stream(self, sock, protocol_factory, ssl, server_hostname,
                           server_side=False, ssl_handshake_timeout=None,
                           ssl_shutdown_timeout=None):
        """Put a transport (TLS if ssl) on a connected socket and wait until the
        protocol has been told."""
        sock.setblocking(False)
        protocol = protocol_factory()
        waiter = self.create_future()
        try:
            if ssl:
                transport = self._make_ssl_transport(
                    sock, protocol, None if isinstance(ssl, bool) else ssl, waiter,
                    server_side=server_side, server_hostname=server_hostname,
                    ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout)
            else:
                transport = self._make_socket_transport(sock, protocol, waiter)
        except BaseException:
            sock.close()    # no transport owns it: it would leak
            raise
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def create_unix_connection(
            self, protocol_factory, path=None, *, ssl=None, sock=None,
            server_hostname=None, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None):
        """Open a Unix stream connection to path (or over sock)."""
        if ssl:
            if server_hostname is None:
                raise ValueError("you have to pass server_hostname when using ssl")
        else:
            _only_with_ssl(ssl, server_hostname=server_hostname,
                           ssl_handshake_timeout=ssl_handshake_timeout,
                           ssl_shutdown_timeout=ssl_shutdown_timeout)
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(
                    f"A UNIX Domain Stream Socket was expected, got {sock!r}")
            sock.setblocking(False)
        return await self._wrap_stream(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def connect_accepted_socket(self, protocol_factory, sock, *, ssl=None,
                                      ssl_handshake_timeout=None,
                                      ssl_shutdown_timeout=None):
        """Wrap a socket accepted outside the loop in a (server-side) transport."""
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        _only_with_ssl(ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                       ssl_shutdown_timeout=ssl_shutdown_timeout)
        _refuse_ssl_socket(sock)
        transport, protocol = await self._wrap_stream(
            sock, protocol_factory, ssl, "", server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        if self.get_debug():
            logger.debug("%r handled: (%r, %r)", transport.get_extra_info("socket"),
                         transport, protocol)
        return transport, protocol

    # Servers -----------------------------------------------------------------------

    async def _listen_infos(self, host, port, family, flags):
        infos = await self._net_resolve((host, port), family=family, flags=flags)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos

    async def create_server(
            self, protocol_factory, host=None, port=None, *,
            family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None, backlog=100,
            ssl=None, reuse_address=None, reuse_port=None, keep_alive=None,
            ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
            start_serving=True):
        """Listen on host:port (every address it resolves to) or on sock."""
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl is None:
            _only_with_ssl(ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                           ssl_shutdown_timeout=ssl_shutdown_timeout)
        if sock is not None:
            _refuse_ssl_socket(sock)

        if host is not None or port is not None:
            if sock is not None:
                raise ValueError(
                    "host/port and sock can not be specified at the same time")
            if reuse_address is None:
                reuse_address = os.name == "posix" and sys.platform != "cygwin"
            if host == "":
                hosts = [None]
            elif isinstance(host, str) or not isinstance(host,
                                                         collections.abc.Iterable):
                hosts = [host]
            else:
                hosts = host
            resolved = await asyncio.gather(
                *[self._listen_infos(h, port, family, flags) for h in hosts])
            # The same address may come from two host names: bind it once.
            infos = list(dict.fromkeys(i for infos in resolved for i in infos))
            sockets = self._bind_listeners(infos, reuse_address, reuse_port,
                                           keep_alive)
        else:
            if sock is None:
                raise ValueError("Neither host/port nor sock were specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
            sockets = [sock]

        for s in sockets:
            s.setblocking(False)
        server = Server(self, sockets, protocol_factory, ssl, backlog,
                        ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            await self._serve_or_close(server, sockets)
        if self.get_debug():
            logger.info("%r is serving", server)
        return server

    async def _serve_or_close(self, server, sockets):
        """Start a new server; if that fails, its sockets do not outlive the error."""
        try:
            await server.start_serving()
        except BaseException:
            try:
                server.close()
            except Exception:   # the first error is the one to report
                pass
            for sock in sockets:
                sock.close()
            raise

    def _bind_listeners(self, infos, reuse_address, reuse_port, keep_alive):
        """One bound socket per addrinfo. An address family the host has no address
        in is skipped; any other failure closes what was made and raises.

        Under the runtime (gmploop/_runtime.py) the sockets come from its listener
        source, which binds each address once for all Ps (see 'Shared listeners'
        there); either way one function, bound_listener, makes them."""
        source = listener_source
        make = bound_listener if source is None else source.bound_listener
        sockets = []
        done = False
        try:
            for family, type_, proto, _, address in infos:
                try:
                    sock = make(family, type_, proto, address, reuse_address,
                                reuse_port, keep_alive)
                except OSError as err:
                    if err.errno != errno.EADDRNOTAVAIL:
                        raise
                    # Taken to mean the family is not configured (bpo-30945).
                    if self.get_debug():
                        logger.warning(str(err))
                    continue
                if sock is None:
                    # A family/type/protocol combination this host does not have.
                    if self.get_debug():
                        logger.warning("create_server() failed to create "
                                       "socket.socket(%r, %r, %r)",
                                       family, type_, proto)
                    continue
                sockets.append(sock)
            if not sockets:
                raise OSError("could not bind on any address out of %r"
                              % ([info[4] for info in infos],))
            done = True
            return sockets
        finally:
            if not done:
                for sock in sockets:
                    sock.close()

    async def create_unix_server(
            self, protocol_factory, path=None, *, sock=None, backlog=100, ssl=None,
            ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
            start_serving=True, cleanup_socket=True):
        """Listen on a Unix socket at path (or on sock)."""
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        _only_with_ssl(ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                       ssl_shutdown_timeout=ssl_shutdown_timeout)
        source = None
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            # Under the runtime the socket is bound once for all Ps, and its file is
            # the runtime's to remove (see 'Shared listeners' in _runtime.py).
            source = listener_source
            sock = (bound_unix_listener(path) if source is None
                    else source.bound_unix_listener(path))
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(
                    f"A UNIX Domain Stream Socket was expected, got {sock!r}")

        unix_paths = {}
        if cleanup_socket and source is None:
            bound = sock.getsockname()
            if _is_filesystem_path(bound):
                try:
                    unix_paths[sock] = (bound, os.stat(bound).st_ino)
                except FileNotFoundError:
                    pass
        sock.setblocking(False)
        server = Server(self, [sock], protocol_factory, ssl, backlog,
                        ssl_handshake_timeout, ssl_shutdown_timeout,
                        unix_paths=unix_paths)
        if start_serving:
            await self._serve_or_close(server, [sock])
        return server

    # TLS ---------------------------------------------------------------------------

    def _make_ssl_transport(
            self, rawsock, protocol, sslcontext, waiter=None, *, server_side=False,
            server_hostname=None, extra=None, server=None,
            ssl_handshake_timeout=SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=SSL_SHUTDOWN_TIMEOUT, call_connection_made=True):
        """A TLS transport over rawsock: asyncio's SSLProtocol between a plain stream
        transport and the application's protocol. Returns the application's side."""
        tls = aio_sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=call_connection_made)
        self._make_socket_transport(rawsock, tls, extra=extra, server=server)
        return tls._app_transport

    async def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                        server_hostname=None, ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        """Upgrade an open connection to TLS; returns the new transport to use."""
        if _ssl is None:
            raise RuntimeError("Python ssl module is not available")
        if not isinstance(sslcontext, _ssl.SSLContext):
            raise TypeError(f"sslcontext is expected to be an instance of "
                            f"ssl.SSLContext, got {sslcontext!r}")
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        waiter = self.create_future()
        tls = aio_sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout, call_connection_made=False)
        # See 'Races' above: nothing may reach tls before its connection_made.
        transport.pause_reading()
        transport.set_protocol(tls)
        made = self.call_soon(tls.connection_made, transport)
        resumed = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            raise
        return tls._app_transport

    # sendfile ----------------------------------------------------------------------
    #
    # A transport says how it can send a file through _sendfile_compatible: natively
    # (its socket goes to sock_sendfile, i.e. os.sendfile, once its own buffer has
    # drained, so the kernel's bytes follow the queued ones), through the fallback
    # (reads and transport.write, e.g. TLS), or not at all. While the native path runs,
    # the transport's socket is lent to sock_sendfile: a loop whose sock_* refuse a
    # transport's fd (asyncio's rule) lets this one through between
    # _transport_sock_lend and _transport_sock_reclaim.

    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        """Send a file over a transport; returns the number of bytes sent."""
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        mode = getattr(transport, "_sendfile_compatible", _SendfileMode.UNSUPPORTED)
        if mode is _SendfileMode.UNSUPPORTED:
            raise RuntimeError(
                f"sendfile is not supported for transport {transport!r}")
        if mode is _SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except aio_exceptions.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(f"fallback is disabled and native sendfile is not "
                               f"supported for transport {transport!r}")
        return await self._sendfile_fallback(transport, file, offset, count)

    def _transport_sock_lend(self, transport):
        """The socket under transport, for sock_sendfile (see 'sendfile')."""
        return transport._sock

    def _transport_sock_reclaim(self, transport):
        """sock_sendfile is done with transport's socket."""

    async def _sendfile_native(self, transport, file, offset, count):
        resume_reading = transport.is_reading()
        transport.pause_reading()
        await transport._make_empty_waiter()
        try:
            sock = self._transport_sock_lend(transport)
            try:
                return await self.sock_sendfile(sock, file, offset, count,
                                                fallback=False)
            finally:
                self._transport_sock_reclaim(transport)
        finally:
            transport._reset_empty_waiter()
            if resume_reading:
                transport.resume_reading()

    async def _sendfile_fallback(self, transport, file, offset, count):
        if offset:
            file.seek(offset)
        chunk = min(count, SENDFILE_FALLBACK_CHUNK) if count else SENDFILE_FALLBACK_CHUNK
        buf = bytearray(chunk)
        sent = 0
        writer = _SendfileWriter(self, transport)
        try:
            while True:
                if count:
                    chunk = min(count - sent, chunk)
                    if chunk <= 0:
                        return sent
                view = memoryview(buf)[:chunk]
                n = await self.run_in_executor(None, file.readinto, view)
                if not n:
                    return sent
                await writer.wait_writable()
                # A copy: the buffer is refilled while the transport may still hold
                # this chunk.
                transport.write(bytes(view[:n]))
                sent += n
        finally:
            if sent > 0 and hasattr(file, "seek"):
                file.seek(offset + sent)
            writer.restore()
