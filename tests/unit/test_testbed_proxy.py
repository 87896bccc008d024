"""Unit tests of the bed's pausable TCP proxy (real sockets on loopback).

Behaviour matrix: bytes pass both ways; ``cut`` closes an open connection and refuses new
ones; ``restore`` lets new connections through; the kubeconfig copy points at the proxy.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import yaml

from kommons_testbed.proxy import TcpProxy, proxied_kubeconfig, server_address


def echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return

            def echo(c: socket.socket = conn) -> None:
                with c:
                    while data := c.recv(1024):
                        c.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server, int(server.getsockname()[1])


def roundtrip(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"ping")
        return conn.recv(16)


def test_proxy_forwards_cuts_and_restores() -> None:
    server, port = echo_server()
    proxy = TcpProxy("127.0.0.1", port)
    try:
        assert roundtrip(proxy.port) == b"ping"
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        held.sendall(b"a")
        assert held.recv(4) == b"a"

        proxy.cut()
        assert held.recv(4) == b""  # the open connection was closed
        held.close()
        assert roundtrip(proxy.port) == b""  # new ones are refused

        proxy.restore()
        assert roundtrip(proxy.port) == b"ping"
    finally:
        proxy.close()
        server.close()


def test_proxied_kubeconfig_points_at_the_proxy(tmp_path: Path) -> None:
    source = tmp_path / "hub.kubeconfig"
    source.write_text(
        yaml.safe_dump(
            {"clusters": [{"name": "hub", "cluster": {"server": "https://127.0.0.1:6443"}}]}
        )
    )
    assert server_address(source) == ("127.0.0.1", 6443)
    proxy = TcpProxy("127.0.0.1", 6443)
    try:
        dest = proxied_kubeconfig(source, tmp_path / "proxied", proxy)
        assert server_address(dest) == ("127.0.0.1", proxy.port)
    finally:
        proxy.close()
