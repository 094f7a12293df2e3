"""Servers run as child processes on 127.0.0.1: a free port, waiting until one answers, stopping one whole."""

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from carvana.core.errors import CarvanaError

HOST = "127.0.0.1"


def local_url(port: int) -> str:
    return f"http://{HOST}:{port}"


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick); whoever binds it first gets it."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether something listens on `port`; connections in TIME_WAIT (a server just stopped) do not count."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def wait_for_http(url: str, server: subprocess.Popen, timeout: float, log: Path) -> None:
    """Poll `url` until it answers with success; fail if `server` exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while server.poll() is None and time.monotonic() < deadline:
        # OSError: refused, reset, timed out, or an HTTP error status
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5):
            return
        time.sleep(0.25)
    state = f"exited with code {server.returncode}" if server.poll() is not None else f"timed out after {timeout:.0f} s"
    raise CarvanaError(f"{url} did not answer: the server {state}; its log: {log}")


def stop_group(server: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process group of `server` (started with start_new_session=True, so it leads one: its workers
    are in it), wait until every process in it has exited, and SIGKILL what is left after `timeout` seconds."""
    signal_group(server, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while group_alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    signal_group(server, signal.SIGKILL)
    server.wait()


def signal_group(server: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has exited
        os.killpg(server.pid, signum)


def group_alive(server: subprocess.Popen) -> bool:
    server.poll()  # reaps the leader once it exits: a zombie would count as alive
    try:
        os.killpg(server.pid, 0)
    except ProcessLookupError:
        return False
    return True
