"""
Checking a JSON Web Token (RFC 7519): its signature with one of the keys
the operator trusts, and its claims against the rules of a C{jwt} or
C{oidc} filter.

PyJWT checks the signature, the algorithm, C{iss} and C{aud}; the times
(C{exp}, C{nbf}, C{iat}) are checked here against the reactor's clock, so
that a reload, a test's L{twisted.internet.task.Clock} and the leeway all
see the same time.  Every refusal is a L{TokenRefused} whose text may go to the
client: it never holds the token.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import attr
import jwt
from jwt import PyJWK

#: What a token's algorithm may be: never C{none}, never one of our own.
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
    "HS256",
    "HS384",
    "HS512",
)

#: The key type (and curve) that each algorithm verifies with.
_KEY_KINDS = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
    "HS256": ("oct", None),
    "HS384": ("oct", None),
    "HS512": ("oct", None),
}


class TokenRefused(Exception):
    """
    A token that does not let its bearer in.

    @ivar error: the RFC 6750 error code: C{invalid_token} (401) or
        C{insufficient_scope} (403).
    @ivar description: why, in words that may be shown to the client.
    """

    def __init__(self, description: str, error: str = "invalid_token") -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@attr.s(frozen=True, auto_attribs=True)
class TokenRules:
    """
    What a token must be to be accepted.

    @ivar algorithms: the signature algorithms accepted (from L{ALGORITHMS}).
    @ivar issuer: the C{iss} it must have, if any.
    @ivar audience: C{aud} must name one of these (none: not checked).
    @ivar leeway: seconds of clock difference allowed on C{exp}, C{nbf}
        and C{iat}.
    @ivar required_claims: claims that must be present.
    @ivar claims: C{(name, values)}: the claim must be one of the values
        (or, for an array claim, hold one of them).
    """

    algorithms: Tuple[str, ...]
    issuer: Optional[str] = None
    audience: Tuple[str, ...] = ()
    leeway: float = 30.0
    required_claims: Tuple[str, ...] = ("exp",)
    claims: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()


def verification_keys(
    jwks: Mapping[str, Any], algorithms: Sequence[str]
) -> Tuple[PyJWK, ...]:
    """
    The keys of a JWK Set (RFC 7517) that can verify a signature with one
    of C{algorithms}, each bound to one algorithm, so a key is never used
    with an algorithm of another family (an RSA public key as an HMAC
    secret).  A key that names its C{alg} is used only with it; one that
    does not, with every accepted algorithm its type fits.  Keys for
    encryption (C{"use": "enc"}) and keys PyJWT cannot read are left out.
    """
    found = []
    for data in jwks.get("keys", ()) if isinstance(jwks, Mapping) else ():
        if not isinstance(data, Mapping) or data.get("use", "sig") != "sig":
            continue
        named = data.get("alg")
        for algorithm in algorithms:
            kind, curve = _KEY_KINDS[algorithm]
            if named not in (None, algorithm) or data.get("kty") != kind:
                continue
            if curve is not None and data.get("crv") != curve:
                continue
            try:
                found.append(PyJWK(dict(data), algorithm))
            except jwt.PyJWTError:
                continue
    return tuple(found)


def token_header(token: str) -> Dict[str, Any]:
    """
    The header of a token, not yet verified: which key and algorithm to
    verify it with.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRefused("malformed token")
    return header


def candidate_keys(
    header: Mapping[str, Any], keys: Sequence[PyJWK], rules: TokenRules
) -> Tuple[PyJWK, ...]:
    """
    The keys that may have signed a token with C{header}: of its algorithm,
    and of its C{kid} when both name one (a key read from a PEM file has
    none, and is tried whatever the token names).

    @raise TokenRefused: for an algorithm the rules do not accept.
    """
    algorithm = header.get("alg")
    if algorithm not in rules.algorithms:
        raise TokenRefused("algorithm not allowed")
    kid = header.get("kid")
    return tuple(
        key
        for key in keys
        if key.algorithm_name == algorithm
        and (kid is None or key.key_id in (None, kid))
    )


def check_token(
    token: str, keys: Sequence[PyJWK], rules: TokenRules, now: float
) -> Dict[str, Any]:
    """
    The claims of a token that one of C{keys} signed and that meets
    C{rules} at time C{now}.

    @raise TokenRefused: otherwise.
    """
    header = token_header(token)
    candidates = candidate_keys(header, keys, rules)
    if not candidates:
        raise TokenRefused("no key for this token")
    options = {
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": bool(rules.audience),
        "verify_iss": rules.issuer is not None,
        "require": list(rules.required_claims),
    }
    for key in candidates:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=list(rules.audience) or None,
                issuer=rules.issuer,
                options=options,
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.MissingRequiredClaimError as error:
            raise TokenRefused("missing claim %s" % (error.claim,))
        except jwt.InvalidAudienceError:
            raise TokenRefused("wrong audience")
        except jwt.InvalidIssuerError:
            raise TokenRefused("wrong issuer")
        except jwt.PyJWTError:
            raise TokenRefused("malformed token")
        _check_times(claims, rules.leeway, now)
        _check_values(claims, rules.claims)
        return claims
    raise TokenRefused("signature verification failed")


def _number(claims: Mapping[str, Any], name: str) -> Optional[float]:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenRefused("%s is not a number" % (name,))
    return float(value)


def _check_times(claims: Mapping[str, Any], leeway: float, now: float) -> None:
    expires = _number(claims, "exp")
    if expires is not None and now > expires + leeway:
        raise TokenRefused("token expired")
    not_before = _number(claims, "nbf")
    if not_before is not None and now < not_before - leeway:
        raise TokenRefused("token not yet valid")
    # RFC 7519 section 4.1.6 leaves iat to the application; a token from
    # the future is refused as PyJWT's own check would.
    issued = _number(claims, "iat")
    if issued is not None and now < issued - leeway:
        raise TokenRefused("token issued in the future")


def claim_values(claims: Mapping[str, Any], name: str) -> Tuple[Any, ...]:
    """
    The values of a claim: an array's items, the words of C{scope} (a
    space-separated list, RFC 8693 section 4.2), or the one value.
    """
    value = claims.get(name)
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(value)
    if name == "scope" and isinstance(value, str):
        return tuple(value.split())
    return (value,)


def _check_values(
    claims: Mapping[str, Any], wanted: Sequence[Tuple[str, Tuple[Any, ...]]]
) -> None:
    for name, accepted in wanted:
        if not any(value in accepted for value in claim_values(claims, name)):
            raise TokenRefused(
                "claim %s does not allow this" % (name,), "insufficient_scope"
            )
