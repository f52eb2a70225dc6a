"""
The proxy as a real process: C{twistd -n txrevproxy --config FILE}, as
operators run it, for end-to-end tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import attr

#: How long a proxy may take to start listening.
START_TIMEOUT = 30.0

#: The root of the source tree these tests belong to.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def source_tree_environment() -> dict:
    """
    This process's environment with the source tree first on the Python
    path, so that a child process runs the code under test.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SOURCE_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    return env


def temporary_directory(case) -> Path:
    """
    A new empty directory, removed after the test.  (Trial's C{mktemp}
    makes its paths relative to the current directory, which under pytest
    is the source tree.)
    """
    path = Path(tempfile.mkdtemp(prefix="txrevproxy-test-"))
    case.addCleanup(shutil.rmtree, str(path), True)
    return path


def free_port() -> int:
    """
    A TCP port on 127.0.0.1 that nothing listens on at the moment.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def twistd_command(*arguments: str) -> List[str]:
    """
    The command line running twistd with this interpreter.
    """
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"] + list(
        arguments
    )


def rss_bytes(pid: int) -> int:
    """
    The resident set size of a process, from /proc.
    """
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError("no VmRSS for pid %d" % pid)


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    """
    Wait until something accepts connections on 127.0.0.1:port, failing
    early if the process exits.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("the proxy exited with %s" % (process.returncode,))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the proxy did not listen on %d in time" % (port,))


@attr.s(auto_attribs=True)
class ProxyProcess:
    process: subprocess.Popen
    port: int
    config: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def simple_config(port: int, backend_urls: List[str]) -> str:
    """
    A config with one listener and one upstream of the given backends.
    """
    servers = ", ".join('{ url = "%s" }' % url for url in backend_urls)
    return (
        '[listeners.web]\nendpoint = "tcp:%d:interface=127.0.0.1"\n\n'
        "[upstreams.app]\nservers = [%s]\n\n"
        '[[routes]]\npath = "/"\nupstream = "app"\n'
    ) % (port, servers)


@contextlib.contextmanager
def proxy_process(
    directory: Path,
    backend_urls: List[str],
    config_text: str = "",
    twistd_options: Sequence[str] = (),
) -> Iterator[ProxyProcess]:
    """
    Run C{twistd -n txrevproxy} in front of C{backend_urls} (or with
    C{config_text}, whose listener port is then found as C{{port}}), and
    stop it with SIGTERM afterwards.  Its standard output and error go to
    C{proxy.log} in C{directory}.

    @param twistd_options: more options of twistd's (C{--logfile F}).
    """
    port = free_port()
    config = directory / "proxy.toml"
    text = config_text.format(port=port) if config_text else simple_config(
        port, backend_urls
    )
    config.write_text(text)
    log = open(directory / "proxy.log", "wb")
    process = subprocess.Popen(
        twistd_command(
            "-n", "--pidfile=", *twistd_options, "txrevproxy", "--config", str(config)
        ),
        cwd=str(directory),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process)
        yield ProxyProcess(process, port, config)
    finally:
        stop_process(process)
        log.close()


def serving_twistd(
    case, command: List[str], environment: Optional[dict] = None
) -> Tuple[subprocess.Popen, Path]:
    """
    Run C{COMMAND txrevproxy --config FILE}, where C{COMMAND} runs twistd,
    with a configuration whose C{/fixed} route answers C{ok} by itself;
    check that it does, and stop the process after the test.

    @param environment: the child's environment (default: the source
        tree's, see L{source_tree_environment}).
    @return: the running process and the path of its log.
    """
    directory = temporary_directory(case)
    port = free_port()
    config = directory / "proxy.toml"
    config.write_text(
        simple_config(port, ["http://127.0.0.1:9"])
        + '\n[[routes]]\npath = "/fixed"\nrespond = { status = 200, body = "ok" }\n'
    )
    log_path = directory / "proxy.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command + ["txrevproxy", "--config", str(config)],
            cwd=str(directory),
            env=source_tree_environment() if environment is None else environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    case.addCleanup(stop_process, process)
    wait_for_port(port, process)
    with urllib.request.urlopen("http://127.0.0.1:%d/fixed" % (port,), timeout=30) as answer:
        case.assertEqual(answer.read(), b"ok")
    return process, log_path


def stop_process(process: subprocess.Popen) -> None:
    """
    Stop a proxy process as an operator does (SIGTERM), killing it if it
    has not exited 20 seconds later.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def proxy_modules_imported_by(module: str) -> List[str]:
    """
    The txrevproxy modules (and the reactor, if installed) that importing
    C{module} brings in, in a fresh interpreter on the source tree: what
    twistd pays to list a plugin module.
    """
    script = (
        "import sys\n"
        "import %s\n"
        "print('\\n'.join(sorted(m for m in sys.modules\n"
        "      if m == 'txrevproxy' or m.startswith('txrevproxy.')\n"
        "      or m == 'twisted.internet.reactor')))\n" % (module,)
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=source_tree_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.decode("ascii").split()
