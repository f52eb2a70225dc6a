"""
Unit tests of token checking (L{txrevproxy.filters.tokens}) and key sources
(L{txrevproxy.filters.jwks}): each way a token is refused, each algorithm
family, and key files.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from txrevproxy.filters.jwks import KeyFileError, read_key_file, secret_keys
from txrevproxy.filters.tokens import (
    TokenRefused,
    TokenRules,
    check_token,
    verification_keys,
)

from ..support.oidc_provider import SigningKey

NOW = 1_800_000_000
RSA = SigningKey("k1")
OTHER = SigningKey("k1")


def jwks(*keys):
    return {"keys": [key.jwk() for key in keys]}


def rules(**overrides):
    options = dict(
        algorithms=("RS256",), issuer="https://issuer.test", audience=("api",)
    )
    options.update(overrides)
    return TokenRules(**options)


def claims(**overrides):
    body = {"iss": "https://issuer.test", "aud": "api", "sub": "alice", "exp": NOW + 60}
    body.update(overrides)
    return body


def refusal(token, keys=None, **rule_overrides):
    with pytest.raises(TokenRefused) as raised:
        check_token(
            token,
            keys or verification_keys(jwks(RSA), ("RS256",)),
            rules(**rule_overrides),
            NOW,
        )
    return raised.value


def test_good_rs256_token_gives_its_claims():
    keys = verification_keys(jwks(RSA), ("RS256",))
    assert check_token(RSA.sign(claims()), keys, rules(), NOW)["sub"] == "alice"


def test_signature_by_another_key_is_refused():
    assert refusal(OTHER.sign(claims())).description == "signature verification failed"


def test_algorithm_not_listed_is_refused_even_when_key_fits():
    token = RSA.sign(claims(), algorithm="RS512")
    assert refusal(token).description == "algorithm not allowed"


def test_alg_none_is_refused():
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    token = (header + b"." + body + b".").decode()
    assert (
        refusal(token, algorithms=("RS256", "HS256")).description
        == "algorithm not allowed"
    )


def test_hs256_signed_with_the_rsa_public_key_is_refused():
    """
    The classic confusion: the attacker signs with HMAC, using the RSA
    public key (which is public) as the secret.
    """
    public = RSA.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k1"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(
        hmac.new(public, header + b"." + body, hashlib.sha256).digest()
    ).rstrip(b"=")
    token = b".".join([header, body, signature]).decode()
    keys = verification_keys(jwks(RSA), ("RS256", "HS256"))
    assert [key.algorithm_name for key in keys] == ["RS256"]
    assert (
        refusal(token, keys, algorithms=("RS256", "HS256")).description
        == "no key for this token"
    )


def test_expired_token_is_refused_after_the_leeway():
    keys = verification_keys(jwks(RSA), ("RS256",))
    token = RSA.sign(claims(exp=NOW - 20))
    assert check_token(token, keys, rules(leeway=30), NOW)["sub"] == "alice"
    assert refusal(token, leeway=10).description == "token expired"


def test_token_not_yet_valid_is_refused():
    assert refusal(RSA.sign(claims(nbf=NOW + 120))).description == "token not yet valid"


def test_token_issued_in_the_future_is_refused_after_the_leeway():
    keys = verification_keys(jwks(RSA), ("RS256",))
    token = RSA.sign(claims(iat=NOW + 20))
    assert check_token(token, keys, rules(leeway=30), NOW)["sub"] == "alice"
    assert refusal(token, leeway=10).description == "token issued in the future"
    assert refusal(RSA.sign(claims(iat="yesterday"))).description == (
        "iat is not a number"
    )


def test_wrong_issuer_and_audience_are_refused():
    assert (
        refusal(RSA.sign(claims(iss="https://evil.test"))).description == "wrong issuer"
    )
    assert refusal(RSA.sign(claims(aud="other"))).description == "wrong audience"


def test_one_of_several_audiences_is_enough():
    keys = verification_keys(jwks(RSA), ("RS256",))
    token = RSA.sign(claims(aud=["other", "api"]))
    assert check_token(token, keys, rules(audience=("nope", "api")), NOW)


def test_missing_required_claim_is_refused():
    assert (
        refusal(RSA.sign(claims()), required_claims=("exp", "email")).description
        == "missing claim email"
    )


def test_claim_value_mismatch_is_insufficient_scope():
    refused = refusal(RSA.sign(claims(role="user")), claims=(("role", ("admin",)),))
    assert refused.error == "insufficient_scope"


def test_claim_values_match_arrays_and_scope_words():
    keys = verification_keys(jwks(RSA), ("RS256",))
    wanted = (("groups", ("ops", "admins")), ("scope", ("write",)))
    token = RSA.sign(claims(groups=["staff", "ops"], scope="read write"))
    assert check_token(token, keys, rules(claims=wanted), NOW)


def test_malformed_token_is_refused():
    assert refusal("not.a.token").description == "malformed token"


@pytest.mark.parametrize(
    "algorithm, private",
    [
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("ES384", ec.generate_private_key(ec.SECP384R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
        ("PS256", RSA.private),
    ],
)
def test_every_asymmetric_family_verifies_from_a_pem_file(tmp_path, algorithm, private):
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    keys = read_key_file(str(path), (algorithm,))
    token = jwt.encode(claims(), private, algorithm=algorithm, headers={"kid": "any"})
    assert (
        check_token(token, keys, rules(algorithms=(algorithm,)), NOW)["sub"] == "alice"
    )


def test_hs256_secret():
    secret = b"s" * 32
    keys = secret_keys(secret, ("HS256",))
    token = jwt.encode(claims(), secret, algorithm="HS256")
    assert check_token(token, keys, rules(algorithms=("HS256",)), NOW)["sub"] == "alice"
    forged = jwt.encode(claims(), b"t" * 32, algorithm="HS256")
    with pytest.raises(TokenRefused):
        check_token(forged, keys, rules(algorithms=("HS256",)), NOW)


def test_jwks_file_and_kid_choose_the_key(tmp_path):
    path = tmp_path / "keys.json"
    second = SigningKey("k2")
    path.write_text(json.dumps(jwks(RSA, second)))
    keys = read_key_file(str(path), ("RS256",))
    assert check_token(second.sign(claims()), keys, rules(), NOW)
    unknown = SigningKey("k3").sign(claims())
    assert refusal(unknown, keys).description == "no key for this token"


def test_key_file_without_a_usable_key_is_an_error(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text("hello")
    with pytest.raises(KeyFileError):
        read_key_file(str(path), ("RS256",))
    with pytest.raises(KeyFileError):
        read_key_file(str(tmp_path / "missing.pem"), ("RS256",))
