from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adaptd import sdnotify


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield sock, str(path)
    sock.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    assert sdnotify.notify("READY=1", environ={}) is False


def test_messages_reach_a_real_datagram_socket(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert sdnotify.ready("serving adapter abc")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving adapter abc"
    assert sdnotify.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    assert sdnotify.reloading()
    assert sock.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
    assert sdnotify.status("draining")
    assert sock.recv(4096) == b"STATUS=draining"


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="abstract sockets are Linux-only")
def test_abstract_sockets_are_addressed_with_a_nul_byte() -> None:
    name = f"adaptd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_a_dead_socket_never_raises(tmp_path: Path) -> None:
    assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
    assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": "@\0bad"}) is False
