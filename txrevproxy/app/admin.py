"""
The admin API, on C{[admin] endpoint}: status, metrics, reload, drain,
cache purge, routes and their maintenance.

Every answer is JSON (but C{/metrics}, in the Prometheus text format,
C{/config}, the effective configuration in TOML, C{/health}, a plain
C{ok}, and the status page C{/}, HTML; see L{txrevproxy.app.status_page}),
errors included: C{{"error": "sentence"}}
with the right status.  C{GET /health} and C{GET /ready}, the liveness
and readiness probes, need no token; everything else does, when one is
configured, as a bearer token or as the status page's sign-in cookie.
The API talks to the proxy through an L{IProxyControl}: the
L{ProxyService} of a single process, or the
L{txrevproxy.app.workers.WorkerSupervisor} that asks each of its workers
and sums their answers.

Adding an operation is one L{AdminAPI.add} call (as C{POST /cache/purge}
is)::

    api.add(b"POST", r"/cache/purge", self._purge)

where C{purge(request, **groups)} returns a L{Reply} or a L{Deferred} of
one, and raises L{AdminError} for a client's mistake.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any, Callable, List, Optional, Pattern, Tuple
from urllib.parse import parse_qs, unquote

import attr
from twisted.application.service import Service
from twisted.internet.defer import gatherResults, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import Interface

from ..config.dump import dumped
from ..http.headers import serialize_answer_head
from ..http.status import reason_phrase
from ..net.http_channel import HTTPChannelBase
from ..net.http_request import StreamingRequest
from ..observe.metrics import CONTENT_TYPE, render
from ..server.answers import connection_answer
from ..server.request import new_request_id
from .dashboard import dashboard
from .service import listen_now
from .status_page import (
    PAGE,
    content_security_policy,
    session_cookie,
    sign_in_form,
    signed_in,
)


class IProxyControl(Interface):
    """
    What the admin API asks of the proxy.  Every method but
    C{admin_token} returns its answer or a L{Deferred} of it (a proxy with
    workers asks them over a pipe).

    @ivar config: the current L{Config}.
    """

    def admin_token() -> Optional[str]:
        """
        The bearer token requests must carry (the current configuration's),
        or L{None}.  Not a Deferred.
        """

    def status():
        """
        The status document (a dict).
        """

    def snapshot():
        """
        The metrics (a L{txrevproxy.observe.metrics.Snapshot}).
        """

    def recent():
        """
        The last minute of requests (a L{txrevproxy.observe.window.Window}).
        """

    def reload():
        """
        Reload the configuration; the problems that kept the old one
        (empty on success).
        """

    def readiness():
        """
        Why the proxy should not be sent traffic (stopping, a listener not
        listening, no worker running); empty when it is ready.
        """

    def set_draining(upstream: str, server: Any, draining: bool):
        """
        Drain or enable a backend, by position or URL; its state, or
        L{KeyError} for an unknown upstream or server.
        """

    def routes():
        """
        The routes (a list of dicts), with which are in maintenance.
        """

    def set_maintenance(route: str, on: bool):
        """
        Put a route, by name or index, in maintenance or back in service;
        its state, or L{KeyError} for an unknown route or one that does
        not forward.
        """

    def purge_cache(cache: Optional[str], url: Optional[str], prefix: Optional[str]):
        """
        Forget the stored responses of C{url}, or of the URLs starting with
        C{prefix}, in the cache named C{cache} (all when L{None}); how many
        were forgotten, or L{KeyError} for an unknown cache.
        """


@attr.s(frozen=True, auto_attribs=True)
class Reply:
    """
    An admin answer: status, body, content type and further header
    fields.
    """

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Tuple[Tuple[bytes, bytes], ...] = ()


def json_reply(status: int, document: Any) -> Reply:
    return Reply(status, json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")


class AdminError(Exception):
    """
    A request the admin API refuses: its status and sentence.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[..., Any]


def _not_found(failure: Failure):
    """
    The errback of an operation on something named: a L{KeyError} (no
    such upstream, server, cache or route) is the client's 404.
    """
    failure.trap(KeyError)
    raise AdminError(404, failure.value.args[0])


class AdminAPI(Resource):
    """
    The admin API's one resource: it dispatches on method and path through
    a table of operations, after checking the bearer token.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, control, clock) -> None:
        super().__init__()
        self.control = control
        self._clock = clock
        self._operations: List[Tuple[bytes, Pattern[str], Handler, bool]] = []
        self.add(b"GET", r"/health", self._health, public=True)
        self.add(b"GET", r"/ready", self._ready, public=True)
        self.add(b"GET", r"/", self._page, public=True)
        self.add(b"POST", r"/login", self._login, public=True)
        self.add(b"GET", r"/status", self._status)
        self.add(b"GET", r"/status\.json", self._status_json)
        self.add(b"GET", r"/metrics", self._metrics)
        self.add(b"GET", r"/config", self._config)
        self.add(b"POST", r"/reload", self._reload)
        self.add(
            b"POST",
            r"/backends/(?P<upstream>[^/]+)/(?P<server>[^/]+)/(?P<action>drain|enable)",
            self._drain,
        )
        self.add(b"POST", r"/cache/purge", self._purge)
        self.add(b"GET", r"/routes", self._routes)
        maintenance = r"/routes/(?P<route>[^/]+)/maintenance"
        self.add(b"POST", maintenance, self._maintenance)
        self.add(b"DELETE", maintenance, self._maintenance)

    def add(
        self, method: bytes, pattern: str, handler: Handler, public: bool = False
    ) -> None:
        """
        Answer C{method} on the paths C{pattern} matches whole with
        C{handler(request, **named_groups)} (groups percent-decoded).

        @param public: answer without the bearer token (the probes, which
            load balancers and orchestrators send without credentials).
        """
        self._operations.append((method, re.compile(pattern + r"\Z"), handler, public))

    def render(self, request):
        d = maybeDeferred(self._dispatch, request)
        d.addErrback(self._failed)
        d.addCallback(self._send, request)
        return NOT_DONE_YET

    def _dispatch(self, request):
        path = request.path.decode("latin-1")
        allowed = []
        for method, pattern, handler, public in self._operations:
            match = pattern.match(path)
            if match is None:
                continue
            if not public:
                self._authorize(request)
            if method != request.method:
                allowed.append(method)
                continue
            groups = {k: unquote(v) for k, v in match.groupdict().items()}
            return handler(request, **groups)
        if allowed:
            request.setHeader(b"Allow", b", ".join(allowed))
            raise AdminError(405, "use %s" % (b" or ".join(allowed).decode(),))
        self._authorize(request)
        raise AdminError(404, "no such admin operation: %s" % (path,))

    def _authorized(self, request) -> bool:
        """
        Whether C{request} carries the token, as a bearer token or as the
        status page's cookie (or no token is configured).
        """
        token = self.control.admin_token()
        if token is None:
            return True
        given = request.getHeader(b"authorization") or b""
        return hmac.compare_digest(
            given, b"Bearer " + token.encode("ascii")
        ) or signed_in(request, token)

    def _authorize(self, request) -> None:
        if not self._authorized(request):
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="txrevproxy"')
            raise AdminError(401, "a valid bearer token is required")

    def _failed(self, failure: Failure) -> Reply:
        if failure.check(AdminError):
            if failure.value.status >= 500:
                # The proxy's fault (a worker that did not answer): one line.
                self.log.warn("admin request failed: {error}", error=failure.value.message)
            return json_reply(failure.value.status, {"error": failure.value.message})
        self.log.failure("admin request failed", failure)
        return json_reply(500, {"error": "internal error; see the proxy's log"})

    def _send(self, reply: Reply, request) -> None:
        """
        Write C{reply} with what the proxy's own answers carry (see
        L{txrevproxy.server.answers.send_answer}): the RFC 9110 reason
        phrase, a request ID, Date (Twisted's), and the proxy's own Server
        value when C{[server] server_header} sets one, never Twisted's.
        """
        if request.disconnected:
            return
        request.setResponseCode(reply.status, reason_phrase(reply.status))
        server = self.control.config.server.server_header
        if server is None:
            request.responseHeaders.removeHeader(b"Server")
        else:
            request.setHeader(b"Server", server.encode("ascii"))
        request.setHeader(b"X-Request-ID", new_request_id())
        request.setHeader(b"Content-Type", reply.content_type.encode("ascii"))
        request.setHeader(b"Content-Length", b"%d" % (len(reply.body),))
        request.setHeader(b"Cache-Control", b"no-store")
        for name, value in reply.headers:
            request.setHeader(name, value)
        request.write(reply.body)
        request.finish()

    # Operations --------------------------------------------------------------

    def _health(self, request) -> Reply:
        """
        Liveness: the process runs and its reactor answers.
        """
        return Reply(200, b"ok\n", "text/plain; charset=utf-8")

    def _ready(self, request):
        """
        Readiness: 200 while the proxy serves its listeners, 503 with the
        reasons otherwise (while it drains before stopping, for one).
        """

        def answer(reasons: List[str]) -> Reply:
            if reasons:
                return json_reply(503, {"ready": False, "reasons": reasons})
            return json_reply(200, {"ready": True})

        return maybeDeferred(self.control.readiness).addCallback(answer)

    def _status(self, request):
        d = maybeDeferred(self.control.status)
        return d.addCallback(lambda doc: json_reply(200, doc))

    def _page(self, request) -> Reply:
        """
        The status page; without the token, the sign-in form, or with
        C{?token=TOKEN}, the cookie and a redirect to the page without the
        token in its URL.
        """
        token = self.control.admin_token()
        if b"token" in request.args and token is not None:
            return self._sign_in(request, request.args[b"token"][0])
        if not self._authorized(request):
            return _html(401, sign_in_form(None))
        return _html(200, PAGE)

    def _login(self, request) -> Reply:
        """
        C{POST /login}, the sign-in form's C{token} field.
        """
        body = request.content.read() if request.content is not None else b""
        given = parse_qs(body.decode("latin-1")).get("token", [""])[0]
        return self._sign_in(request, given.encode("latin-1"))

    def _sign_in(self, request, given: bytes) -> Reply:
        token = self.control.admin_token()
        if token is None or hmac.compare_digest(given, token.encode("ascii")):
            cookie = () if token is None else (
                (b"Set-Cookie", session_cookie(token, request.isSecure())),
            )
            return Reply(303, b"", "text/plain", ((b"Location", b"./"),) + cookie)
        return _html(401, sign_in_form("That is not the admin token."))

    def _status_json(self, request):
        """
        The status page's document (see L{txrevproxy.app.dashboard}).
        """
        d = gatherResults(
            [
                maybeDeferred(self.control.status),
                maybeDeferred(self.control.snapshot),
                maybeDeferred(self.control.recent),
            ],
            consumeErrors=True,
        )
        d.addErrback(lambda failure: failure.value.subFailure)
        return d.addCallback(
            lambda results: json_reply(
                200, dashboard(*results, now=self._clock.seconds())
            )
        )

    def _metrics(self, request):
        return maybeDeferred(self.control.snapshot).addCallback(
            lambda snapshot: Reply(200, render(snapshot), CONTENT_TYPE)
        )

    def _config(self, request) -> Reply:
        """
        The effective configuration being served, as C{txrevproxy check
        --dump} writes a file's, secrets redacted: what C{txrevproxy check
        --diff} compares a new file with.
        """
        text = dumped(self.control.config)
        return Reply(200, text.encode("utf-8"), "application/toml; charset=utf-8")

    def _reload(self, request):
        def done(problems: List[str]) -> Reply:
            if problems:
                return json_reply(422, {"reloaded": False, "problems": problems})
            return json_reply(200, {"reloaded": True})

        return maybeDeferred(self.control.reload).addCallback(done)

    def _drain(self, request, upstream: str, server: str, action: str):
        key: Any = int(server) if server.isdigit() else server

        d = maybeDeferred(self.control.set_draining, upstream, key, action == "drain")
        d.addCallbacks(lambda state: json_reply(200, state), _not_found)
        return d


    def _routes(self, request):
        d = maybeDeferred(self.control.routes)
        return d.addCallback(lambda routes: json_reply(200, {"routes": routes}))

    def _maintenance(self, request, route: str):
        """
        C{POST /routes/ROUTE/maintenance} puts the route in maintenance,
        C{DELETE} (or C{POST} with C{?off}) takes it out; ROUTE is its
        C{name} or its index.
        """
        # (request.args leaves out a parameter without a value, as ?off.)
        query = request.uri.partition(b"?")[2]
        parameters = [each.partition(b"=")[0] for each in query.split(b"&")]
        on = request.method == b"POST" and b"off" not in parameters

        d = maybeDeferred(self.control.set_maintenance, route, on)
        d.addCallbacks(lambda state: json_reply(200, state), _not_found)
        return d

    def _purge(self, request):
        """
        C{POST /cache/purge?url=URL} or C{?prefix=URL}, optionally with
        C{&cache=NAME} (by default every cache); the parameters may also
        come as a JSON object in the body.
        """
        wanted = {
            key.decode("latin-1"): values[0].decode("utf-8", "replace")
            for key, values in request.args.items()
        }
        body = request.content.read() if request.content is not None else b""
        if body.strip():
            try:
                document = json.loads(body)
            except ValueError:
                raise AdminError(400, "the body is not JSON")
            if not isinstance(document, dict):
                raise AdminError(400, "the body must be a JSON object")
            wanted.update({k: v for k, v in document.items() if isinstance(v, str)})
        url, prefix = wanted.get("url"), wanted.get("prefix")
        if (url is None) == (prefix is None):
            raise AdminError(400, "give exactly one of url and prefix")
        target = url if url is not None else prefix
        if not re.match(r"https?://[^/]+", target):
            raise AdminError(400, "not an absolute http(s) URL: %s" % (target,))

        d = maybeDeferred(self.control.purge_cache, wanted.get("cache"), url, prefix)
        d.addCallbacks(lambda purged: json_reply(200, {"purged": purged}), _not_found)
        return d


def _html(status: int, page: bytes) -> Reply:
    return Reply(
        status,
        page,
        "text/html; charset=utf-8",
        ((b"Content-Security-Policy", content_security_policy(page)),),
    )


class _AdminChannel(HTTPChannelBase):
    """
    The admin API's connection: its heads spell field names as the
    proxy's other answers do, and a request Twisted cannot parse is
    answered as the proxy answers one (with Date and a request ID), not
    with Twisted's bare C{400}.
    """

    def writeHeaders(self, version, code, reason, headers) -> None:
        self.transport.write(serialize_answer_head(version, code, reason, headers))

    def badRequest(self) -> None:
        now = self.site.reactor.seconds()
        self.transport.write(connection_answer(400, new_request_id(), now, None))
        self.loseConnection()


class _AdminSite(Site):
    """
    The admin API's site, without twisted.web's line per request in the
    log (a scrape every few seconds would fill it), whose requests say
    whether their client went (L{StreamingRequest.disconnected}).
    """

    noisy = False
    protocol = _AdminChannel
    requestFactory = StreamingRequest

    def log(self, request) -> None:
        pass


class AdminService(Service):
    """
    Listens on C{[admin] endpoint} with the L{AdminAPI} of C{control}.

    The endpoint is read at start: a reload changes the token, not where
    the API listens.
    """

    log = Logger()

    def __init__(self, control, reactor) -> None:
        self.control = control
        self.api = AdminAPI(control, reactor)
        self._reactor = reactor
        self.port = None

    def privilegedStartService(self) -> None:
        self._listen()
        super().privilegedStartService()

    def startService(self) -> None:
        if self.port is None:
            self._listen()
        super().startService()

    def _listen(self) -> None:
        description = self.control.config.admin.endpoint
        self.port = listen_now(
            self._reactor,
            description,
            _AdminSite(self.api, reactor=self._reactor),
            "admin.endpoint",
        )
        self.log.info("admin API on {address}", address=self.port.getHost())

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
