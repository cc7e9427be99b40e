"""Start and stop a real `chroma run` server for server-mode tests (a helper, not a test module)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

CHROMA = Path(sys.executable).with_name("chroma")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def chroma_server(path: Path, *, timeout: float = 60.0, port: int | None = None):
    """Run ``chroma run --path PATH`` on ``port`` (default: a free one); yield its URL once its heartbeat answers.

    The server runs in its own process group and is killed (SIGTERM, then SIGKILL) on exit, even
    when the test fails. Raises RuntimeError when it does not come up within ``timeout`` seconds.
    """
    with chroma_process(path, timeout=timeout, port=port) as (url, _):
        yield url


@contextmanager
def chroma_process(path: Path, *, timeout: float = 60.0, port: int | None = None):
    """As :func:`chroma_server`, yielding ``(url, process)`` for a test that kills the server itself."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = (path.parent / f"chroma-{port}.log").open("ab")
    process = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"chroma run exited with {process.returncode}; see {log.name}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chroma run gave no heartbeat within {timeout:g} s; see {log.name}")
            time.sleep(0.2)
        yield url, process
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
