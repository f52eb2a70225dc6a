"""
The extension points of txrevproxy, as C{zope.interface} interfaces.

Built-in implementations are registered through C{twisted.plugin} exactly
as a third party's are (see C{twisted/plugins/txrevproxy_balancing.py} and
C{docs/balancing.rst}), and named in the configuration file.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Tuple

import attr
from zope.interface import Attribute, Interface

Header = Tuple[bytes, bytes]


class IBalancingPolicy(Interface):
    """
    A way of choosing a backend, named by an upstream's C{balance} key.

    Provide it together with L{twisted.plugin.IPlugin} on an object in a
    module of the C{twisted.plugins} package, and the configuration accepts
    its L{name}.  Keep that module small: C{twistd} imports every plugin
    module, so heavy imports belong inside L{picker}.
    """

    name = Attribute(
        "The name an upstream's balance key uses, such as 'round_robin' "
        "(letters, digits and _)."
    )

    def picker(upstream, backends, clock, random):
        """
        Make the picker of one upstream; called once per upstream each time
        a configuration is loaded, so its state (a rotation, a hash ring)
        lives as long as that configuration.

        @param upstream: the upstream's configuration
            (L{txrevproxy.config.model.Upstream}), for keys such as
            C{hash_key}.
        @param backends: every backend of the upstream
            (L{txrevproxy.upstream.balancer.Backend}), in configuration order.
        @param clock: an L{IReactorTime}, for time-aware policies.
        @param random: a L{random.Random}, the only source of randomness a
            policy should use, so that tests can fix it.
        @return: an L{IBackendPicker}.
        """


class IBackendPicker(Interface):
    """
    The per-upstream state of a L{IBalancingPolicy}.
    """

    def pick(request, candidates):
        """
        Choose the backend for one request.  Called on the hot path: do no
        I/O and keep it cheap.

        @param request: the L{twisted.web.server.Request} to be sent.
        @param candidates: a non-empty sequence of the backends that may
            take it now (healthy, not ejected, not draining, below their
            C{max_connections}, not already tried by this request), in
            configuration order.  The same sequence object is passed again
            as long as the set does not change, so a picker may cache what
            it derives from it by identity.
        @return: one of C{candidates}.
        """


class IBackendsChanged(Interface):
    """
    A picker (L{IBackendPicker}) that follows changes of its upstream's
    backends: those found in the DNS join and leave while it serves.  A
    picker that does not provide it is made again by its policy
    (L{IBalancingPolicy.picker}) with the new list, losing its state (a
    rotation's position, smoothed scores); one with state worth keeping,
    or per-backend state that must grow and shrink (a hash ring),
    provides it.
    """

    def backends_changed(backends):
        """
        The upstream's backends changed.

        @param backends: every backend of the upstream now: those that
            stayed (the same objects as before, in the same order), then
            those that joined.
        """


class IFilterType(Interface):
    """
    A kind of filter, named by the C{type} key of a C{[filters.NAME]}
    table (C{"rate_limit"}, C{"compress"}, or a plugin's name).

    Provide it together with L{twisted.plugin.IPlugin} on an object in a
    module of the C{twisted.plugins} package, as for L{IBalancingPolicy};
    keep that module small and import the implementation in L{configure}.
    """

    name = Attribute(
        "The name a filter table's type key uses, such as 'rate_limit' "
        "(letters, digits and _)."
    )

    def configure(options, context):
        """
        Validate a C{[filters.NAME]} table and make its filter; called once
        per table each time a configuration is loaded (C{txrevproxy check}
        calls it too), so it must not start anything.

        @param options: the table's keys other than C{type}, as parsed from
            TOML (a L{dict}).
        @param context: a L{FilterContext}: the reactor, the server
            settings, and where the filter table is (for messages).
        @return: an L{IFilter}.
        @raise txrevproxy.config.schema.Invalid: for a bad option; raise
            L{txrevproxy.config.ConfigError} with several problems, each
            starting with its key (C{"rate: ..."}), to report them all.
        """


class IFilter(Interface):
    """
    One configured filter, attached to routes (a route's C{filters}) or to
    listeners (a listener's C{filters}, run before the route's).

    Filters run in order for each request before it goes to a backend
    (or gets a route's own answer); each may let it through, answer it
    itself (a 403, a 429, a 401), or hold it while it asks something (an
    authentication service).  On the way back, each filter that passed the
    request sees the response head, may change it, and may transform the
    body as it streams (compression).
    """

    def request(request):
        """
        Decide on a request.  Called on the hot path: return quickly, and
        return a L{Deferred} only when there is really something to wait for.

        @param request: the L{txrevproxy.server.request.ProxyRequest}
            (C{request.connection.client_ip}, C{request.requestHeaders},
            C{request.method}, C{request.uri} ...).  Its body, if any, is
            held (up to a bound, then the client is paused) until every
            filter has decided.
        @return: L{None} to let it through; an L{Answer} to answer it; or a
            L{Deferred} firing with either.
        """

    def response(request, status, headers):
        """
        Look at (and change) a response head before it goes to the client.

        @param status: the status code (an L{int}).
        @param headers: the response fields as a L{list} of C{(name,
            value)} byte pairs, hop-by-hop fields already removed; change
            it in place.
        @return: L{None}, or an L{IBodyTransform} that every body byte
            then goes through (the response is then sent without a
            Content-Length, chunked to HTTP/1.1 clients, unless the
            filter put one back).
        """


    # A filter that holds resources of its own (connections to a service)
    # may also have a close() method: it is called when the runtime that
    # made the filter is closed, and may return a Deferred.


class IBodyTransform(Interface):
    """
    A streaming change to a response body, such as compression.
    """

    def transform(data):
        """
        @param data: the next body bytes from the backend.
        @return: the bytes to send to the client now (may be empty).
        """

    def finish():
        """
        The body is complete.

        @return: the last bytes to send to the client.
        """


class ICacheStore(Interface):
    """
    Where a C{[caches.NAME]} table keeps its responses
    (L{txrevproxy.cache.store.StoredResponse}): bounded by bytes, evicting
    the least recently used.

    A store outlives the configuration that made it: a reload hands it to
    the new runtime, so what is stored stays.  Every method is called on
    the reactor thread and must return quickly.
    """

    size = Attribute("The bytes stored now (bodies and fields).")
    max_size = Attribute("The bytes it may hold; settable (a reload may change it).")
    count = Attribute("The responses stored now (each Vary variant counts).")
    evicted = Attribute(
        "How many responses it evicted to stay within max_size, in all "
        "(not those removed by remove or replaced by put); for the metrics."
    )

    def variants(key):
        """
        The responses stored for a primary key (one per set of Vary
        values), most recent first; counts as a use of each.

        @param key: the request's URL as bytes (C{b"https://host/path?q"}).
        @return: a L{list} of L{StoredResponse}.
        """

    def writer():
        """
        Somewhere to put a body as it arrives, before the response is
        stored with L{put}.

        @return: an L{IBodyWriter}.
        """

    def put(response):
        """
        Store a response, replacing the one stored for the same key and
        Vary values, then evict the least recently used responses while
        the store is over its C{max_size}.

        A partial response (status 206), or one combined from pieces, has
        a L{txrevproxy.cache.partial.Pieces} body made of bodies L{writer}
        gave, which it may share with the response it replaces: a store
        that frees a body's resources when it forgets a response frees
        only those no stored response holds any more.
        """

    def remove(key):
        """
        Forget every response stored for a primary key.

        @return: how many were forgotten.
        """

    def remove_prefix(prefix):
        """
        Forget every response whose primary key starts with C{prefix}.

        @return: how many were forgotten.
        """


class ICacheStoreType(Interface):
    """
    A kind of L{ICacheStore}, named by the C{store} key of a
    C{[caches.NAME]} table (C{"memory"}, C{"disk"}, or a plugin's name).

    Provide it together with L{twisted.plugin.IPlugin} on an object in a
    module of the C{twisted.plugins} package, as for L{IBalancingPolicy};
    keep that module small and import the store in L{configure}.
    """

    name = Attribute(
        "The name a cache table's store key uses, such as 'memory' "
        "(letters, digits and _)."
    )

    def configure(settings, clock):
        """
        Make the store of a C{[caches.NAME]} table.  Called when a runtime
        is built and the cache has no store yet: a reload that keeps the
        table's C{store} and C{path} hands the old store to the new runtime
        (setting its C{max_size}) instead.  Not called while a
        configuration is only checked.  It must not block; a store that
        touches files or services should do so when first used, so that a
        runtime made only to explain a request (C{txrevproxy route})
        touches nothing.

        @param settings: the table, a
            L{txrevproxy.config.model.CacheSettings}: its C{max_size}, and
            its C{path} (absolute) when it has one.
        @param clock: an L{IReactorTime}, for stores that keep time.
        @return: an L{ICacheStore}.
        """


class IBodyWriter(Interface):
    """
    A body being received for an L{ICacheStore}: in memory, or in a file.
    """

    def write(data):
        """
        Keep the next body bytes.
        """

    def received():
        """
        The bytes kept so far, for a request that joins a response already
        streaming; L{None} when the store cannot give them back cheaply
        (such a request then makes its own backend request).
        """

    def close():
        """
        The body is complete.

        @return: the body as the store's responses hold it: L{bytes}, or
            an object with C{len()} whose C{open()} returns a binary file.
        """

    def discard():
        """
        The body will not be stored: let go of what was kept.
        """


class IMatcherType(Interface):
    """
    A kind of route matcher: a condition on a request besides its host and
    path, named by a key of a route's C{match} table (C{match = { NAME =
    VALUE }}).  The built-in C{methods}, C{headers} and C{query} are
    matcher types too, which a route may also give as keys of its own.

    Provide it together with L{twisted.plugin.IPlugin} on an object in a
    module of the C{twisted.plugins} package, as for L{IBalancingPolicy};
    keep that module small and import the implementation in L{configure}
    and L{matchers}.

    The work is in two steps so that the configuration holds plain data:
    L{configure} checks what the file says once, when it is loaded, and
    L{matchers} makes the objects that test requests each time a runtime
    is built from it.
    """

    name = Attribute(
        "The key a route's match table uses, such as 'cookie' "
        "(letters, digits and _)."
    )

    def configure(value):
        """
        Check the value a route gives this matcher type; called when a
        configuration is loaded (C{txrevproxy check} calls it too).

        @param value: the value as parsed from TOML (a L{dict}, L{list},
            L{str} ...); do not change it.
        @return: the settings L{matchers} is given: an immutable value
            that compares equal for two routes that select the same
            requests (a tuple, a frozen attrs instance), so that two
            routes that could never be told apart are refused.
        @raise txrevproxy.config.schema.Invalid: for a bad value; each
            problem's path, relative to the value (C{""}, C{".beta"}),
            is reported after the route's (C{routes[2].match.cookie.beta}).
        """

    def matchers(settings):
        """
        Make the matchers a route's settings ask for; called once per
        route each time a runtime is built.

        @param settings: what L{configure} returned.
        @return: a sequence of L{IMatcher}, usually one.  Each counts as
            one matcher when routes of the same prefix are ordered (more
            matchers first), as each header of C{headers} does.
        """


class IMatcher(Interface):
    """
    One condition of a route, asked about every request the route is a
    candidate for.
    """

    description = Attribute(
        "What it wants, for C{txrevproxy route} to say why a request did "
        "not match: 'method is GET or HEAD', 'cookie beta = \"yes\"'."
    )

    def matches(request):
        """
        Whether the request satisfies the condition.  Called on the hot
        path, before any filter: decide from the request's head alone
        (C{method}, C{uri}, C{requestHeaders}, C{getHeader}), quickly,
        without I/O.

        @return: L{True} or L{False}.
        """


@attr.s(frozen=True, auto_attribs=True)
class Answer:
    """
    A filter's own answer to a request, sent instead of forwarding it.

    @ivar status: the status code.
    @ivar headers: extra response fields (Content-Length, Date and
        X-Request-ID are added).
    @ivar body: the body; empty for the proxy's standard error page of
        C{status} (with the request ID).
    """

    status: int
    headers: Tuple[Header, ...] = ()
    body: bytes = b""


@attr.s(frozen=True, auto_attribs=True)
class FilterContext:
    """
    What a filter type's C{configure} gets besides its options.

    @ivar name: the filter table's name (C{NAME} in C{[filters.NAME]}).
    @ivar reactor: the reactor (time, connections), for filters that
        keep time or call services.
    @ivar server: the C{[server]} settings
        (L{txrevproxy.config.model.ServerSettings}), for C{trusted_proxies}.
    @ivar directory: the directory of the configuration file, which
        relative paths in options are taken from.
    @ivar redis: the client (C{txrevproxy.redis.client.RedisClient}) of
        each C{[redis.NAME]} table, by name, for filters whose state is
        shared through one (C{store = "redis:NAME"}).
    @ivar metrics: the process's C{txrevproxy.observe.metrics.Metrics}.
    @ivar workers: how many processes serve the listeners on this machine
        (C{[server] workers}): a filter that keeps its state in its own
        process gives each its share of a machine-wide limit.

    While a configuration is only being checked, C{reactor} and
    C{metrics} are L{None}, and so is each client in C{redis}.
    """

    name: str
    reactor: Any
    server: Any
    directory: str = ""
    redis: Mapping[str, Any] = attr.Factory(dict)
    metrics: Any = None
    workers: int = 1

    def path(self, name: str) -> str:
        """
        The path a file option names, relative paths taken from
        L{directory}.
        """
        return os.path.join(self.directory, os.path.expanduser(name))


# The internal protocols of the request's path ------------------------------
#
# Not extension points for plugins: the seams between the rooms (server/,
# forward/, upstream/, cache/), each with several implementations, written
# down so that each implementation can be checked with verifyObject.


class IRequestHandler(Interface):
    """
    What receives a client request's body as it streams in: the
    C{handler} of an L{IProxiedRequest}.  The exchange that forwards it, a
    filter chain that holds it while a filter decides, or a sink that drops
    a body nobody wants.
    """

    def bodyReceived(data):
        """
        Some request body bytes arrived from the client.

        @param data: the bytes (de-chunked).
        """

    def bodyFinished():
        """
        The request body is complete.
        """

    def bodyTooLarge():
        """
        The request body went over the listener's C{max_request_body}
        mid-stream; nothing more of it follows.
        """

    def clientGone():
        """
        The client connection closed before the exchange ended.
        """


class IBackendPool(Interface):
    """
    The connections to one backend, as the exchanges, the balancer and the
    health checks use them: keep-alive HTTP/1.1 connections
    (L{txrevproxy.upstream.pool.ConnectionPool}) or shared HTTP/2 ones
    whose streams stand for connections
    (L{txrevproxy.upstream.h2pool.H2ConnectionPool}).  What a pool hands
    out (a connection or a stream) sends one exchange at a time.
    """

    name = Attribute("The backend's URL, for log messages.")
    endpoint = Attribute("The IStreamClientEndpoint connections are made with.")
    connect_timeout = Attribute("The endpoint's own connect timeout, in seconds.")
    proxy_protocol = Attribute(
        'The PROXY protocol header version its connections start with, '
        '"v1" or "v2", or None.'
    )
    idle_count = Attribute("How many connections carry nothing now.")
    busy_count = Attribute("How many connections carry exchanges, or are opening.")

    def serialize_head(method, target, headers):
        """
        The request head in the form its connections send it.
        """

    def proxy_header(source, destination):
        """
        The PROXY protocol header of a client at C{source} (a Twisted
        address) that connected to C{destination}, or L{None} when the
        pool sends none.
        """

    def take_idle(header=None):
        """
        A connection (or stream) ready now, for a request with the PROXY
        header C{header}, or L{None}: a request never waits for a new
        connection when one is ready.
        """

    def connect(timeout=None, header=None):
        """
        A connection (or stream) on a connection being made.

        @param timeout: the route's connect timeout, when it is shorter
            than L{connect_timeout}.
        @param header: the request's PROXY header (see L{proxy_header}).
        @return: a L{Deferred} of it, failing with the connection error.
        """

    def release(connection):
        """
        Take back what an exchange that ended cleanly used.
        """

    def health_pool(clock):
        """
        A pool of the same kind for the backend's health checks, which
        keeps nothing idle.
        """

    def close():
        """
        Close what is idle now and the rest when its exchanges end (a
        reload retires the pool, or the proxy stops).
        """


class IUpstreamExchange(Interface):
    """
    One exchange as the backend connection
    (L{txrevproxy.upstream.connection.UpstreamProtocol}) sees it: what it
    tells as the response arrives.  Implemented by the forwarding exchange,
    the caching exchange and the health check.

    The connection tells an exchange at most one of L{responseEnd} and
    L{upstreamFailed}, once, and nothing more after the exchange aborted
    the connection.  Besides these methods, an exchange that
    starts the connection's response timer (C{awaitResponse}) must have
    C{responseTimedOut()}, and one whose request asks to switch protocols
    must have C{responseUpgraded(rest)} and C{tunnelData(data)}, for the
    bytes after a 101 answer, and one on a connection of a pool that sweeps
    deadlines must have C{checkDeadlines(now, read_at)} (see
    L{txrevproxy.upstream.deadlines}); the health check does none of them.
    """

    def responseStarted():
        """
        The first byte of the response arrived: the backend is answering.
        """

    def holdWrites():
        """
        Hold the client writes that what the backend sent in one read
        causes, so they leave in one system call.

        @return: a callable that releases them, or L{None} when nothing
            is held.
        """

    def responseHead(status, reason, headers, length):
        """
        The response head arrived.

        @param status: the status code (an L{int}).
        @param reason: the reason phrase (L{bytes}, maybe empty).
        @param headers: the fields as a L{list} of C{(name, value)} pairs.
        @param length: the body length when the framing gives one, else
            L{None}.
        """

    def responseBody(data):
        """
        Some response body bytes arrived (de-chunked).
        """

    def responseTrailers(trailers):
        """
        The trailer fields that ended the response (from an HTTP/2
        backend), before L{responseEnd}.

        @param trailers: a L{list} of C{(name, value)} pairs.
        """

    def responseEnd():
        """
        The response is complete.
        """

    def upstreamFailed(reason):
        """
        The backend connection failed, or broke the protocol, before the
        response was complete.

        @param reason: a L{twisted.python.failure.Failure}.
        """


class IProxiedRequest(Interface):
    """
    A client request as the exchange that forwards it sees it: the
    L{txrevproxy.server.request.ProxyRequest} of an HTTP/1.x connection or
    an HTTP/2 stream, or a request the cache makes itself (a background
    revalidation).

    Besides these, an exchange reads the request's head as C{twisted.web}
    holds it (C{method}, C{uri}, C{clientproto}, C{requestHeaders}) and
    writes the response body with C{write}, C{registerProducer},
    C{unregisterProducer} and C{finish}.
    """

    handler = Attribute("The L{IRequestHandler} that receives the body.")
    bodyLength = Attribute(
        "The declared body length, or None when the body is chunked."
    )
    bodyComplete = Attribute("Whether the whole request body has arrived.")
    bodyBytes = Attribute(
        "How many body bytes have arrived; with bodyComplete, a body held "
        "whole while a filter decided."
    )
    request_id = Attribute("The request's ID (bytes), sent to the backend.")
    response_filters = Attribute(
        "The filters the request passed, which see its response head."
    )
    error_pages = Attribute(
        "The pages of the route that took the request, by status, or None."
    )
    trace = Attribute(
        "The request's RequestTrace (txrevproxy.observe.tracing), which "
        "records each backend attempt and gives it a traceparent; None when "
        "the request is not traced."
    )

    def pauseReading():
        """
        Stop reading the request body from the client (the backend is not
        taking it).
        """

    def resumeReading():
        """
        Read the request body again.
        """

    def requestedUpgrade():
        """
        The protocol the request asks to switch to (C{b"websocket"}), or
        L{None}.
        """

    def holdWrites():
        """
        Hold the response writes (see L{IUpstreamExchange.holdWrites}).

        @return: what releases them, or L{None}.
        """

    def backendChosen(backend):
        """
        The balancer leased C{backend} for this request (for the access
        log and the upstream timings).
        """

    def backendAnswered():
        """
        The chosen backend's response head arrived.
        """

    def writeResponseHead(code, reason, headers, length):
        """
        Send the response head to the client, with the fields every
        response of the proxy carries added.

        @param length: the body length, or L{None} when it is not known
            (the body is then chunked, or delimited by the close).
        """

    def writeTrailers(trailers):
        """
        Send the backend's trailer fields after the body, before
        C{finish}: on HTTP/2, and on a chunked HTTP/1.1 response whose
        client said C{TE: trailers}; otherwise they are dropped.

        @param trailers: a L{list} of C{(name, value)} pairs.
        """

    def releaseHandler():
        """
        The exchange is over: forget it as the L{handler} (the request and
        its exchange point at each other; breaking the cycle lets reference
        counting free both), so that what still arrives of the body is
        dropped.
        """
