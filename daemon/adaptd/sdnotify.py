"""systemd's sd_notify protocol, in a few lines: one datagram to ``$NOTIFY_SOCKET``.

A no-op without ``NOTIFY_SOCKET`` (not under systemd, or ``Type=simple``), and it never raises:
a failing notification must not take the daemon down. Abstract sockets (``@name``) are addressed
with a leading NUL byte, as systemd itself does.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


def notify(message: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (``READY=1``, ``STATUS=...``; several lines allowed); True if sent."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8", errors="replace"))
    except (OSError, ValueError):
        return False
    return True


def watchdog_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """systemd's ``WatchdogSec`` for this process (from ``WATCHDOG_USEC``), or None when the
    watchdog is off or meant for another process (``WATCHDOG_PID`` names someone else)."""
    env = environ if environ is not None else os.environ
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def ready(status: str | None = None) -> bool:
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping(status: str | None = None) -> bool:
    return notify("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))


def reloading() -> bool:
    # Type=notify-reload wants the monotonic time with RELOADING=1 to order it against READY=1.
    return notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")
