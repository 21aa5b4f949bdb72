"""Checking keygate's access tokens in a Python service, with PyJWT.

    pip install 'PyJWT[crypto]'

The service knows two things: where keygate is, and its own name (the audience its tokens
are issued for). It reads keygate's discovery document once for the issuer and the JWKS
address; PyJWKClient fetches the JWKS and keeps it, fetching again when a token names a key
it does not hold (keygate publishes its next signing key ahead of using it). Tokens are
checked offline: EdDSA only, the issuer, the audience, the expiry.

    tokens = KeygateTokens("https://keygate.example.com", "https://reports.example.com")
    claims = tokens.verify(request.headers["Authorization"].removeprefix("Bearer "))
    if not tokens.allows(claims, "reports:read"):
        ...  # 403

A token is good until it expires (15 minutes at most by default) even if its key is revoked
meanwhile: a service that must see revocations at once asks keygate's verify API instead.
"""

import fnmatch
import json
import urllib.request

import jwt
from jwt import PyJWKClient


class KeygateTokens:
    def __init__(self, keygate_url, audience):
        discovery = f"{keygate_url.rstrip('/')}/.well-known/openid-configuration"
        with urllib.request.urlopen(discovery, timeout=10) as reply:
            config = json.load(reply)
        self.issuer = config["issuer"]
        self.audience = audience
        self.jwks = PyJWKClient(config["jwks_uri"], cache_keys=True, lifespan=300)

    def verify(self, token):
        """The token's claims; raises jwt.InvalidTokenError (or a subclass) when it is refused."""
        key = self.jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["EdDSA"],
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
        # A token bound to a client certificate (RFC 8705) is for whoever sees that
        # certificate; this service does not check it, so it does not take such a token.
        if "cnf" in claims:
            raise jwt.InvalidTokenError("the token is bound to a client certificate")
        return claims

    @staticmethod
    def scopes(claims):
        """The token's scopes. In the space-delimited claim, a `/path` belongs to the method
        before it (`GET /proxy/pay/*` is one scope)."""
        scopes = []
        for part in claims.get("scope", "").split():
            if part.startswith("/") and scopes and " " not in scopes[-1]:
                scopes[-1] += " " + part
            else:
                scopes.append(part)
        return scopes

    @classmethod
    def allows(cls, claims, permission):
        """Whether a scope of the token grants `permission` (`*` matches any run)."""
        return any(
            fnmatch.fnmatchcase(permission, scope.replace("[", "[[]"))
            for scope in cls.scopes(claims)
        )
