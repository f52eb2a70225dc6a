"""
C{txrevproxy demo} under an impatient operator: a second SIGTERM while a
request is still being served.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

from ..support.processes import (
    free_port,
    simple_config,
    source_tree_environment,
    stop_process,
    wait_for_port,
)
from ..support.waiting import until_blocking

#: A bound on every wait for the process to do something.
WAIT = 30.0


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
    except ConnectionRefusedError:
        return False
    return True


def test_a_second_sigterm_while_a_request_is_served_changes_nothing(tmp_path):
    """
    The request whose body is still arriving when two SIGTERMs come is
    answered, the demo exits 0, and nothing is logged as a traceback.
    """
    port = free_port()
    config = tmp_path / "demo.toml"
    config.write_text(simple_config(port, ["http://127.0.0.1:%d" % free_port()]))
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from txrevproxy.tools.cli import main; "
         "sys.exit(main())", "demo", "--config", str(config)],
        cwd=str(tmp_path),
        env=source_tree_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as client:
            client.sendall(
                b"POST / HTTP/1.1\r\nHost: demo\r\nContent-Length: 4\r\n\r\nab"
            )
            # The head is read (the request is in flight) once the proxy
            # has answered a request after it on another connection.
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as other:
                other.sendall(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
                assert other.recv(12) == b"HTTP/1.1 200"
            process.send_signal(signal.SIGTERM)
            # The stop has begun once the listener is closed; only then is
            # the second signal not merged with the first.
            until_blocking(lambda: not accepts(port))
            process.send_signal(signal.SIGTERM)
            client.sendall(b"cd")
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = client.recv(4096)
                assert chunk, answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        output, _ = process.communicate(timeout=WAIT)
        assert process.returncode == 0, output
        assert b"Traceback" not in output, output
    finally:
        stop_process(process)
