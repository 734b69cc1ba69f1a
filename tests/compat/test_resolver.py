"""getaddrinfo and getnameinfo on loopback names: the same answers as the socket module."""

import socket

import pytest

from .support import run


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_getaddrinfo_matches_socket_module(loop, host):
    kwargs = dict(family=socket.AF_INET, type=socket.SOCK_STREAM)
    result = run(loop, loop.getaddrinfo(host, 8080, **kwargs))
    expected = socket.getaddrinfo(host, 8080, **kwargs)
    assert sorted(result) == sorted(expected)
    assert (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
            ("127.0.0.1", 8080)) in result


def test_getaddrinfo_any_type(loop):
    result = run(loop, loop.getaddrinfo("127.0.0.1", 53, family=socket.AF_INET))
    expected = socket.getaddrinfo("127.0.0.1", 53, family=socket.AF_INET)
    assert sorted(result) == sorted(expected)


def test_getaddrinfo_string_port_and_none_port(loop):
    result = run(loop, loop.getaddrinfo("127.0.0.1", "80", type=socket.SOCK_STREAM))
    assert result[0][4] == ("127.0.0.1", 80)
    result = run(loop, loop.getaddrinfo("127.0.0.1", None, type=socket.SOCK_STREAM))
    assert result[0][4] == ("127.0.0.1", 0)


def test_getaddrinfo_error(loop):
    with pytest.raises(socket.gaierror):
        run(loop, loop.getaddrinfo("not a numeric host", 80, flags=socket.AI_NUMERICHOST))


def test_getnameinfo_numeric(loop):
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    assert run(loop, loop.getnameinfo(("127.0.0.1", 80), flags)) == ("127.0.0.1", "80")


def test_getnameinfo_matches_socket_module(loop):
    assert (run(loop, loop.getnameinfo(("127.0.0.1", 22)))
            == socket.getnameinfo(("127.0.0.1", 22), 0))
