"""A real nats-server per test, started on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterator

import pytest

import jetstation


def nats_server_bin() -> str:
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit:
        return explicit
    cache = Path(os.environ.get("JETSTATION_CACHE", Path.home() / ".cache" / "jetstation"))
    path = cache / "bin" / "nats-server"
    if not path.exists():
        pytest.fail(f"no nats-server at {path}: run scripts/setup.sh (make setup)")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, extra_config: str = "", binary: str | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="jetstation-py-nats-")
        self.port = free_port()
        self.binary = binary or nats_server_bin()
        self.extra = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = Path(self.dir) / "server.conf"
        conf.write_text(
            f'listen: 127.0.0.1:{self.port}\njetstream {{ store_dir: "{self.dir}/store" }}\n{self.extra}\n'
        )
        self.process = subprocess.Popen(
            [self.binary, "-c", str(conf), "-l", f"{self.dir}/server.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(Path(f"{self.dir}/server.log").read_text())
                # Poll interval while the server starts; bounded by the deadline above.
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    """Polls `condition` until it holds; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        # Poll interval of wait_for; bounded by its deadline.
        await asyncio.sleep(0.02)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[jetstation.Client]:
    async with await jetstation.connect(server.url, request_timeout=2.0, max_reconnect_delay=0.25) as c:
        yield c
