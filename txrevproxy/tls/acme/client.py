"""
An RFC 8555 client on treq: the C{acme} library's messages and JWS, sent
with the injected reactor, so that no call blocks it.

One L{AcmeClient} orders one certificate at a time: it registers (or
finds) the account of its key, places an order, has each authorization's
challenge answered by a responder (see L{AcmeClient.issue}), polls
until the CA validated them, finalizes with a certificate request and
downloads the chain.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional, Sequence, Tuple

import josepy as jose
import treq
from acme import jws, messages
from cryptography import x509
from twisted.internet.task import deferLater
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

from ..client import client_tls_trust

#: The media types of RFC 8555.
JOSE = b"application/jose+json"
PEM_CHAIN = b"application/pem-certificate-chain"

#: How many times an authorization or an order is polled, and the seconds
#: between polls when the CA gives no Retry-After.
POLLS = 30
POLL_INTERVAL = 1.0

#: The seconds any one HTTP exchange with the CA may take.
REQUEST_TIMEOUT = 30.0


class AcmeProblem(Exception):
    """
    The CA refused a request or failed an order.

    @ivar problem: the problem document (RFC 7807), as the CA sent it, or
        a sentence of ours when it sent none.
    """

    def __init__(self, problem: Any) -> None:
        super().__init__(problem)
        self.problem = problem

    def __str__(self) -> str:
        problem = self.problem
        if isinstance(problem, messages.Error):
            return json.dumps(problem.to_partial_json(), sort_keys=True, default=str)
        return str(problem)


def http_client(reactor, ca_bundle: Optional[str]) -> treq.client.HTTPClient:
    """
    A treq client that trusts the CAs of C{ca_bundle} (a test CA such as
    Pebble's) or the system's.
    """
    policy = BrowserLikePolicyForHTTPS(trustRoot=client_tls_trust(ca_bundle))
    return treq.client.HTTPClient(Agent(reactor, contextFactory=policy))


class AcmeClient:
    """
    Speaks RFC 8555 with one CA for one account key.

    @ivar account: the account's URL once L{register} found it.
    """

    def __init__(self, http, directory_url: str, key: Any, clock) -> None:
        """
        @param http: a treq L{HTTPClient}.
        @param key: the account's private key (ECDSA P-256).
        @param clock: what polls wait with.
        """
        self._http = http
        self._directory_url = directory_url
        self._key = jose.JWKEC(key=key)
        self._clock = clock
        self._directory: Optional[messages.Directory] = None
        self._nonces: List[bytes] = []
        self.account: Optional[str] = None

    async def _request(self, method: str, url: str, **kwargs: Any):
        d = self._http.request(method, url, **kwargs)
        d.addTimeout(REQUEST_TIMEOUT, self._clock)
        response = await d
        body = await response.content()
        nonce = response.headers.getRawHeaders(b"replay-nonce", [None])[0]
        if nonce is not None:
            self._nonces.append(jose.b64decode(nonce.decode("ascii")))
        return response, body

    async def directory(self) -> messages.Directory:
        if self._directory is None:
            response, body = await self._request("GET", self._directory_url)
            if response.code != 200:
                raise AcmeProblem(
                    "the directory %s answered %d" % (self._directory_url, response.code)
                )
            self._directory = messages.Directory.from_json(json.loads(body))
        return self._directory

    async def _nonce(self) -> bytes:
        if not self._nonces:
            directory = await self.directory()
            await self._request("HEAD", directory["newNonce"])
            if not self._nonces:
                raise AcmeProblem("the CA gave no Replay-Nonce")
        return self._nonces.pop()

    async def post(self, url: str, payload: Any, accept: bytes = b"") -> Tuple[Any, bytes]:
        """
        POST a signed request (RFC 8555 section 6.2): C{payload} is a
        C{josepy} object, a plain C{dict}, or L{None} for a POST-as-GET.  A bad nonce is retried once with a fresh one
        (section 6.5).

        @raise AcmeProblem: the CA answered with an error.
        """
        if payload is None:
            data = b""
        elif isinstance(payload, dict):
            data = json.dumps(payload).encode("utf-8")
        else:
            data = payload.json_dumps().encode("utf-8")
        for attempt in (1, 2):
            signed = jws.JWS.sign(
                data,
                key=self._key,
                alg=jose.ES256,
                nonce=await self._nonce(),
                url=url,
                kid=self.account,
            )
            headers = {b"Content-Type": [JOSE]}
            if accept:
                headers[b"Accept"] = [accept]
            response, body = await self._request(
                "POST", url, data=signed.json_dumps().encode("utf-8"), headers=headers
            )
            if response.code < 400:
                return response, body
            problem = _problem(response, body)
            if attempt == 1 and getattr(problem, "code", None) == "badNonce":
                continue
            raise AcmeProblem(problem)
        raise AssertionError("unreachable")

    async def register(self, email: str) -> str:
        """
        Create the account of the key, or find it (a CA answers the same
        key's new account with the existing one), agreeing to the terms.

        @return: the account's URL.
        """
        directory = await self.directory()
        registration = messages.NewRegistration.from_data(
            email=email, terms_of_service_agreed=True
        )
        self.account = None
        response, _ = await self.post(directory["newAccount"], registration)
        self.account = _location(response)
        return self.account

    async def issue(
        self, names: Sequence[str], csr: x509.CertificateSigningRequest, kind: str, responder
    ) -> bytes:
        """
        Order a certificate for C{names} and return its PEM chain.

        @param kind: the challenge to answer, C{"http-01"} or
            C{"tls-alpn-01"}.
        @param responder: has C{put(kind, name, token, key_authorization)}
            to start answering a challenge for C{name} and C{remove(kind,
            name, token)} to stop; both are synchronous.
        @raise AcmeProblem: the CA refused or an authorization failed.
        """
        directory = await self.directory()
        order_request = messages.NewOrder(
            identifiers=[
                messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=name)
                for name in names
            ]
        )
        response, body = await self.post(directory["newOrder"], order_request)
        order_url = _location(response)
        order = messages.Order.from_json(json.loads(body))
        for url in order.authorizations:
            await self._authorize(url, kind, responder)
        order = await self._poll_order(order_url, ("ready", "valid"))
        if order.status.name == "ready":
            await self.post(order.finalize, messages.CertificateRequest(csr=csr))
            order = await self._poll_order(order_url, ("valid",))
        _, chain = await self.post(order.certificate, None, accept=PEM_CHAIN)
        return chain

    async def _authorize(self, url: str, kind: str, responder) -> None:
        _, body = await self.post(url, None)
        authorization = messages.Authorization.from_json(json.loads(body))
        if authorization.status.name == "valid":
            return
        name = authorization.identifier.value
        # The challenges as sent: the acme library no longer decodes
        # tls-alpn-01, and the type and token are all that is needed.
        offered = [each.to_partial_json() for each in authorization.challenges]
        wanted = [each for each in offered if each.get("type") == kind]
        if not wanted:
            raise AcmeProblem(
                "the CA offers no %s challenge for %s (it offers %s)"
                % (kind, name, ", ".join(str(each.get("type")) for each in offered))
            )
        fields = wanted[0]
        responder.put(kind, name, fields["token"], self.key_authorization(fields["token"]))
        try:
            await self.post(fields["url"], {})
            authorization = await self._poll(
                url, messages.Authorization, ("valid", "invalid")
            )
        finally:
            responder.remove(kind, name, fields["token"])
        if authorization.status.name != "valid":
            failed = [c.error for c in authorization.challenges if c.error is not None]
            raise AcmeProblem(failed[0] if failed else "%s: authorization failed" % (name,))

    def key_authorization(self, token: str) -> str:
        """
        The key authorization of a challenge's token (RFC 8555 section
        8.1): the token and the account key's thumbprint (RFC 7638).
        """
        return token + "." + jose.b64encode(self._key.thumbprint()).decode("ascii")

    async def _poll_order(self, url: str, until: Sequence[str]) -> messages.Order:
        order = await self._poll(url, messages.Order, tuple(until) + ("invalid",))
        if order.status.name == "invalid":
            raise AcmeProblem(order.error or "the order %s became invalid" % (url,))
        return order

    async def _poll(self, url: str, kind, until: Sequence[str]):
        """
        POST-as-GET C{url} until its status is one of C{until}, waiting
        as the CA's Retry-After says (or L{POLL_INTERVAL}) between polls.
        """
        for _ in range(POLLS):
            response, body = await self.post(url, None)
            found = kind.from_json(json.loads(body))
            if found.status.name in until:
                return found
            await deferLater(self._clock, _retry_after(response), lambda: None)
        raise AcmeProblem("%s: still %s after %d polls" % (url, found.status.name, POLLS))


def _retry_after(response) -> float:
    value = response.headers.getRawHeaders(b"retry-after", [b""])[0]
    try:
        return min(max(float(value), POLL_INTERVAL), 60.0)
    except ValueError:
        return POLL_INTERVAL


def _location(response) -> str:
    location = response.headers.getRawHeaders(b"location", [None])[0]
    if location is None:
        raise AcmeProblem("the CA answered %d with no Location" % (response.code,))
    return location.decode("ascii")


def _problem(response, body: bytes):
    try:
        return messages.Error.from_json(json.loads(body))
    except (ValueError, jose.DeserializationError):
        return "the CA answered %d: %r" % (response.code, body[:200])
