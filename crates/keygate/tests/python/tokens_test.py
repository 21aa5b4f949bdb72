"""keygate's access tokens as a downstream service and a client see them.

crates/keygate/tests/identity.rs starts keygate with a mock OpenAI upstream (model alias
`chat`), then runs this suite with:

- KEYGATE_URL: keygate, such as http://127.0.0.1:PORT (also the tokens' issuer)
- KEYGATE_SERVICE_TOKEN: a token issued for the audience `https://reports.internal`, with the
  scopes `docs:read` and `GET /reports/*`
- KEYGATE_GATEWAY_TOKEN: a token for keygate itself, with the scope `models:chat`

The service side is docs/examples/keygate_tokens.py, the README's example, as written: PyJWT
as any service would use it (the issuer's discovery document, its JWKS through PyJWKClient,
EdDSA only, the audience and issuer checked). The client side is the official OpenAI SDK with
the token as its API key.
"""

import base64
import json
import os
import pathlib
import sys
import unittest
import urllib.request

import jwt
import openai

EXAMPLES = pathlib.Path(__file__).resolve().parents[4] / "docs" / "examples"
sys.path.insert(0, str(EXAMPLES))
from keygate_tokens import KeygateTokens  # noqa: E402

URL = os.environ["KEYGATE_URL"]
SERVICE_TOKEN = os.environ["KEYGATE_SERVICE_TOKEN"]
GATEWAY_TOKEN = os.environ["KEYGATE_GATEWAY_TOKEN"]
AUDIENCE = "https://reports.internal"


def discovery():
    with urllib.request.urlopen(f"{URL}/.well-known/openid-configuration") as reply:
        return json.load(reply)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DownstreamService(unittest.TestCase):
    """A service that accepts keygate tokens meant for it, offline."""

    def setUp(self):
        self.tokens = KeygateTokens(URL, AUDIENCE)
        self.jwks = self.tokens.jwks

    def check(self, token):
        return self.tokens.verify(token)

    def test_the_issuer_is_keygate(self):
        self.assertEqual(self.tokens.issuer, URL)
        self.assertEqual(discovery()["issuer"], URL)

    def test_a_token_for_this_service_verifies(self):
        claims = self.check(SERVICE_TOKEN)
        self.assertTrue(claims["sub"].startswith("key_"))
        self.assertEqual(KeygateTokens.scopes(claims), ["docs:read", "GET /reports/*"])
        self.assertTrue(KeygateTokens.allows(claims, "GET /reports/q3"))
        self.assertFalse(KeygateTokens.allows(claims, "POST /reports/q3"))
        self.assertFalse(KeygateTokens.allows(claims, "docs:write"))
        self.assertLessEqual(claims["exp"] - claims["iat"], 900)

    def test_a_token_for_another_audience_is_refused(self):
        with self.assertRaises(jwt.InvalidAudienceError):
            self.check(GATEWAY_TOKEN)

    def test_a_changed_claim_breaks_the_signature(self):
        header, payload, signature = SERVICE_TOKEN.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["scope"] = "*"
        forged = ".".join([header, b64(json.dumps(claims).encode()), signature])
        with self.assertRaises(jwt.InvalidSignatureError):
            self.check(forged)

    def test_hmac_keyed_with_the_public_key_is_refused(self):
        # The classic confusion: HS256 with the published key's bytes as the secret.
        header = json.loads(base64.urlsafe_b64decode(SERVICE_TOKEN.split(".")[0] + "=="))
        jwk = next(k for k in self.jwks.get_jwk_set().keys if k.key_id == header["kid"])
        raw = jwk.key.public_bytes_raw()
        claims = jwt.decode(SERVICE_TOKEN, options={"verify_signature": False})
        forged = jwt.encode(claims, raw, algorithm="HS256", headers={"kid": header["kid"]})
        self.assertNotEqual(forged, SERVICE_TOKEN)
        with self.assertRaises(jwt.InvalidTokenError):
            self.check(forged)


class GatewayClient(unittest.TestCase):
    """A client holding only a token, on keygate's OpenAI-compatible endpoint."""

    def test_the_token_works_as_an_api_key(self):
        client = openai.OpenAI(base_url=f"{URL}/v1", api_key=GATEWAY_TOKEN, max_retries=0)
        answer = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Say hello"}]
        )
        self.assertTrue(answer.choices[0].message.content)

    def test_the_token_holds_only_its_scopes(self):
        client = openai.OpenAI(base_url=f"{URL}/v1", api_key=GATEWAY_TOKEN, max_retries=0)
        with self.assertRaises(openai.PermissionDeniedError):
            client.chat.completions.create(
                model="other", messages=[{"role": "user", "content": "Say hello"}]
            )


if __name__ == "__main__":
    unittest.main()
