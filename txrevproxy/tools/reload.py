"""
C{txrevproxy reload}: ask a running proxy to reload its configuration, and
say whether it did.

Through the admin API (C{POST /reload}, which answers the problems that
kept the old configuration), or by sending C{SIGHUP} to the pid in
twistd's pid file, after checking the configuration here, since a signal
cannot bring the problems back.  The command is short and runs alone, so
it blocks (L{http.client}) rather than running a reactor.  C{txrevproxy
check --diff} reaches the admin API the same way, for the configuration
the proxy serves (C{GET /config}).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
from typing import List, Optional, TextIO, Tuple
from urllib.parse import urlsplit

import attr

class ReloadError(Exception):
    """
    The admin API could not be asked (for a reload, for the configuration
    it serves), or its answer not read; the message is one sentence for
    the operator.
    """


@attr.s(frozen=True, auto_attribs=True)
class AdminAddress:
    """
    Where the admin API answers, as a client reaches it.

    @ivar shown: how messages name it (a URL, or C{unix:PATH}).
    @ivar scheme: C{"http"}, C{"https"} or C{"unix"} (HTTP over a UNIX
        socket).
    @ivar host: the host to connect to (C{"localhost"} for a UNIX socket).
    @ivar port: the TCP port; L{None} for a UNIX socket.
    @ivar path: the UNIX socket's path; L{None} for TCP.
    """

    shown: str
    scheme: str
    host: str
    port: Optional[int] = None
    path: Optional[str] = None


def _fields(description: str) -> Tuple[List[str], dict]:
    """
    The positional arguments and the keyword arguments of a Twisted
    endpoint description (C{":"} separates them, C{"\\"} escapes the next
    character), as L{twisted.internet.endpoints.serverFromString} reads it.
    """
    fields: List[str] = []
    current: List[str] = []
    characters = iter(description)
    for character in characters:
        if character == "\\":
            current.append(next(characters, ""))
        elif character == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(character)
    fields.append("".join(current))
    positional = [field for field in fields if "=" not in field]
    keywords = dict(field.split("=", 1) for field in fields if "=" in field)
    return positional, keywords


#: The address a client uses for a server listening on every interface.
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def admin_address(text: str) -> AdminAddress:
    """
    Where to reach an admin API given as an C{http://} or C{https://} URL,
    or as the server endpoint description it listens on (C{[admin]
    endpoint}: C{tcp:9901:interface=127.0.0.1}, C{tcp6:9901},
    C{unix:/run/txrevproxy-admin.sock}).  An endpoint listening on every
    interface is reached on the loopback.

    @raise ReloadError: for anything else (such as an C{ssl:} or
        C{systemd:} endpoint: give its URL instead).
    """
    if text.startswith(("http://", "https://")):
        url = urlsplit(text)
        try:
            port = url.port
        except ValueError:
            port = -1
        if not url.hostname or port == -1:
            raise ReloadError("%s: not a URL such as http://127.0.0.1:9901" % (text,))
        default = 443 if url.scheme == "https" else 80
        return AdminAddress(text.rstrip("/"), url.scheme, url.hostname, port or default)
    positional, keywords = _fields(text)
    kind = positional[0].lower() if positional else ""
    if kind in ("tcp", "tcp6"):
        port_text = keywords.get("port", positional[1] if len(positional) > 1 else "")
        interface = keywords.get("interface", "")
        host = _LOOPBACK.get(interface, interface)
        if kind == "tcp6" and not interface:
            host = "::1"
        if port_text.isdigit():
            port = int(port_text)
            shown = "http://%s:%d" % ("[%s]" % (host,) if ":" in host else host, port)
            return AdminAddress(shown, "http", host, port)
    elif kind == "unix":
        path = keywords.get("address", positional[1] if len(positional) > 1 else "")
        if path:
            return AdminAddress("unix:" + path, "unix", "localhost", path=path)
    raise ReloadError(
        "%s: cannot reach an admin API from this endpoint; give its URL "
        "with --admin http://HOST:PORT" % (text,)
    )


class _UNIXConnection(http.client.HTTPConnection):
    """
    HTTP over a UNIX socket.
    """

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def _connection(address: AdminAddress, timeout: float) -> http.client.HTTPConnection:
    if address.scheme == "unix":
        return _UNIXConnection(address.path, timeout)
    if address.scheme == "https":
        return http.client.HTTPSConnection(
            address.host, address.port, timeout=timeout, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(address.host, address.port, timeout=timeout)


def _exchange(
    address: AdminAddress, method: str, path: str, token: Optional[str], timeout: float
) -> Tuple[int, bytes]:
    """
    One request to the admin API, blocking.

    @return: the answer's status and body.
    @raise ReloadError: the API could not be reached or did not answer in
        C{timeout} seconds.
    """
    connection = _connection(address, timeout)
    headers = {"Content-Length": "0"} if method == "POST" else {}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except socket.timeout:
        raise ReloadError(
            "%s: the admin API did not answer within %g seconds" % (address.shown, timeout)
        )
    except (OSError, http.client.HTTPException) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise ReloadError("%s: cannot reach the admin API: %s" % (address.shown, reason))
    finally:
        connection.close()


def _document(address: AdminAddress, status: int, body: bytes) -> dict:
    """
    The JSON document of an admin API answer.

    @raise ReloadError: the answer is not the admin API's.
    """
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ReloadError(
            "%s: answered %d, not the admin API's JSON; is this the admin endpoint?"
            % (address.shown, status)
        )
    return document


def post_reload(
    address: AdminAddress, token: Optional[str], timeout: float
) -> Tuple[int, dict]:
    """
    C{POST /reload} to the admin API, blocking.

    @return: the answer's status and its JSON document.
    @raise ReloadError: the API could not be reached or did not answer in
        C{timeout} seconds, or its answer is not the admin API's.
    """
    status, body = _exchange(address, "POST", "/reload", token, timeout)
    return status, _document(address, status, body)


def get_config(address: AdminAddress, token: Optional[str], timeout: float) -> str:
    """
    C{GET /config} from the admin API, blocking: the effective
    configuration the proxy serves, as TOML with its secrets redacted.

    @raise ReloadError: the API could not be reached, did not answer in
        C{timeout} seconds, or refused (the message says why), or what
        answered is not a configuration.
    """
    from .changes import effective_document

    status, body = _exchange(address, "GET", "/config", token, timeout)
    if status == 200:
        try:
            text = body.decode("utf-8")
            effective_document(text)
        except ValueError:
            # Not UTF-8 or not TOML (both errors are ValueErrors).
            raise ReloadError(
                "%s: answered 200, not a configuration; is this the admin endpoint?"
                % (address.shown,)
            )
        return text
    message = _document(address, status, body).get("error", "")
    raise ReloadError(
        "%s: answered %d: %s%s" % (address.shown, status, message, _token_hint(status))
    )


def _token_hint(status: int) -> str:
    if status == 401:
        return " (give --token or --token-file, or set [admin] token)"
    return ""


def report(
    address: AdminAddress, status: int, document: dict, stdout: TextIO, stderr: TextIO
) -> int:
    """
    Print the outcome of C{POST /reload}: a line on success, else every
    problem that kept the old configuration (each with its key path) or
    the API's refusal.

    @return: the exit status, 0 when the proxy reloaded.
    """
    if status == 200 and document.get("reloaded") is True:
        print("%s: reloaded" % (address.shown,), file=stdout)
        return 0
    if status == 422:
        for problem in document.get("problems", []):
            print(problem, file=stderr)
        print("reload failed: still serving the previous configuration", file=stderr)
        return 1
    message = document.get("error", "") + _token_hint(status)
    print("%s: answered %d: %s" % (address.shown, status, message), file=stderr)
    return 1


def read_token(path: str) -> str:
    """
    The token in a file (surrounding white space left out).

    @raise ReloadError: the file cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ReloadError(
            "%s: cannot read the token: %s" % (path, getattr(error, "strerror", None) or error)
        )


def signal_reload(pidfile: str) -> int:
    """
    Send C{SIGHUP} to the process whose pid is in C{pidfile}.

    @return: the pid.
    @raise ReloadError: the pid file cannot be read or holds no pid, or
        the process is gone or is not this user's.
    """
    try:
        with open(pidfile, encoding="ascii") as file:
            text = file.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ReloadError(
            "%s: cannot read the pid file: %s"
            % (pidfile, getattr(error, "strerror", None) or error)
        )
    if not text.isdigit() or int(text) <= 0:
        raise ReloadError("%s: holds no pid" % (pidfile,))
    pid = int(text)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ReloadError("%s: no process %d; is the proxy running?" % (pidfile, pid))
    except PermissionError:
        raise ReloadError(
            "%s: not allowed to signal process %d; run as the proxy's user" % (pidfile, pid)
        )
    return pid
