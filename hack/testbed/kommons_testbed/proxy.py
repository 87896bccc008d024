"""A pausable TCP proxy on loopback: a real network cut between an agent and the hub.

The agent's hub kubeconfig points at the proxy instead of the hub's API server; TLS passes
through untouched (the proxy never sees plaintext). :meth:`TcpProxy.cut` closes every open
connection and refuses new ones (accepted, then closed at once), as a broken link does;
:meth:`TcpProxy.restore` lets traffic through again. Everything else on the machine (the
provider's cluster, its workloads) keeps running.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from pathlib import Path

import yaml


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``, with a switch to cut the link."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The local port clients connect to."""
        return int(self._server.getsockname()[1])

    @property
    def is_cut(self) -> bool:
        """Whether the link is cut now."""
        return self._cut

    def cut(self) -> None:
        """Close every open connection and refuse new ones until :meth:`restore`."""
        with self._lock:
            self._cut = True
            for sock in list(self._open):
                _close(sock)
            self._open.clear()

    def restore(self) -> None:
        """Let connections through again."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._closed = True
        self.cut()
        _close(self._server)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    _close(client)
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(
                target=self._pump, args=(client, upstream), name="proxy-pump", daemon=True
            ).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                if self._cut and a not in self._open:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._open.discard(a)
                self._open.discard(b)
            _close(a)
            _close(b)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def proxied_kubeconfig(source: Path, dest: Path, proxy: TcpProxy) -> Path:
    """Copy a kubeconfig with every cluster's server pointing at ``proxy`` (same TLS names).

    The bed's certificates name ``127.0.0.1``, which the proxy also listens on.
    """
    config = yaml.safe_load(source.read_text())
    for cluster in config.get("clusters") or ():
        cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    dest.write_text(yaml.safe_dump(config))
    dest.chmod(0o600)
    return dest


def server_address(kubeconfig: Path) -> tuple[str, int]:
    """Host and port of the (first) cluster's API server in a kubeconfig."""
    config = yaml.safe_load(kubeconfig.read_text())
    server = str(config["clusters"][0]["cluster"]["server"])
    host_port = server.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    return host.strip("[]"), int(port)
