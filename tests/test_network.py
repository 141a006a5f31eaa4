"""The test process reaches loopback only (pytest-socket, pyproject addopts; STYLE.md, Tests)."""

import socket

import pytest
from pytest_socket import SocketConnectBlockedError


def test_a_connection_past_loopback_is_refused_in_tests():
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("203.0.113.7", 443), timeout=1)


def test_loopback_stays_open_for_the_sandbox_and_services():
    server = socket.create_server(("127.0.0.1", 0))
    try:
        socket.create_connection(server.getsockname(), timeout=1).close()
    finally:
        server.close()
