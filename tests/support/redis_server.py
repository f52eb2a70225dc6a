"""
A real C{redis-server} on a free port of 127.0.0.1, for the tests of
state shared through Redis: started in a temporary directory without
persistence, stopped (or killed, to show the fallback) by the test.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .processes import free_port, temporary_directory, wait_for_port

REDIS_SERVER = shutil.which("redis-server")

#: Skips a test where redis-server is not installed (CI installs it).
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server is not installed (apt-get install redis-server)",
)


class RedisServer:
    """
    One redis-server process; L{start} again after L{kill} brings it back
    on the same port, empty.
    """

    def __init__(self, directory: Path, *options: str) -> None:
        """
        @param options: more of redis-server's options (TLS, a unix
            socket); the port it listens on is still C{port}.
        """
        self.directory = directory
        self.port = free_port()
        self.options = options
        self.process = None

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % (self.port,)

    def start(self) -> None:
        tls = "--tls-cert-file" in self.options
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--tls-port" if tls else "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ]
            + (["--port", "0"] if tls else [])
            + list(self.options),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def kill(self) -> None:
        """
        Stop the server at once (SIGKILL), as a crash would.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def redis_server(case, *options: str) -> RedisServer:
    """
    A started L{RedisServer}, killed after the test C{case}.
    """
    server = RedisServer(temporary_directory(case), *options)
    server.start()
    case.addCleanup(server.kill)
    return server
