#!/usr/bin/env python3
"""Source-like trees with planted secrets, for bench/scan.sh.

    gen.py tree OUT [--size-mb 200] [--seed 1]      OUT/tree and OUT/truth.json
    gen.py history OUT [--commits 200] [--size-mb 40] [--seed 2]
                                                    OUT/repo (git) and OUT/truth-history.json
    gen.py keys [--count 100] [--seed 3]            valid and mistyped keygate keys, one a line

Everything comes from one seeded random generator, so the same arguments give the same bytes
(and, for the history, the same commits: dates and identities are fixed).

The truth lists every planted secret as {path, line, lines: [first, last], kind, context} and
every decoy (a near miss no scanner should report) the same way. `lines` spans what a finding
may point at: all the lines of a PEM key, and the key's line before a YAML block scalar (a
parser of YAML sees the value there). In the history's truth each secret
also names the commit whose tree first holds its blob: the one a scanner that reads each blob
once should name.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import string
import subprocess
import sys
import zlib

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = string.ascii_letters + string.digits + "+/"
B64URL = string.ascii_letters + string.digits + "-_"

# keygate reads a file in windows of 4 MiB that overlap by 64 KiB, each seeing 1 KiB before
# its first match (crates/keygate-scan/src/scanner.rs); a large file gets secrets planted to
# start right at those edges, to catch one cut in two or found twice.
WINDOW, OVERLAP, CONTEXT = 4 * 1024 * 1024, 64 * 1024, 1024
STEP = WINDOW - OVERLAP - CONTEXT

KINDS = ["keygate", "aws", "github", "stripe", "slack", "private-key", "jwt", "openai",
         "gitlab", "sendgrid", "twilio", "url-password"]

WORDS = """account active address admin after agent alert allow amount api app apply archive
async audit auth backend balance batch before billing block body bucket buffer build bundle
cache call cancel card cart catalog change channel charge check child claim client close
cluster code column commit config connect consumer context count country create credit
currency cursor customer daily data date debug default delete delivery deploy detail device
digest disable dispatch domain draft driver email enable endpoint entry error event expire
export feature fetch field file filter flag flush format frame gateway group handler header
health history host image import index input insert instance invoice item job key label
language latency layer ledger level limit line link list load local lock log lookup manager
mapping merge message metric migrate mode model module monitor name network node notify
object offset order origin output owner page parent parse partner path payload payment
pending period plan policy pool port prefix price primary process product profile project
provider proxy publish query queue quota range rate reader record refund region registry
release remote render replica report request reset resource response result retry return
review role route rule runner sample schedule schema scope search secret section segment
select sender server service session setting shard shipment signal snapshot source span
state status stock storage store stream subject summary supplier sync table tag target task
tax team template tenant thread ticket timeout topic total trace track transfer trigger type
unit update upload usage user value vendor version view volume wallet warehouse watch webhook
window worker workspace zone""".split()
SENTENCE_WORDS = WORDS + "the a of to and in is for on with that by this be it as are from".split()
ENV_NAMES = ["DATABASE_HOST", "DATABASE_PORT", "LOG_LEVEL", "REDIS_HOST", "CACHE_TTL",
             "FEATURE_FLAGS", "SENTRY_ENVIRONMENT", "WORKERS", "TIMEZONE", "REGION",
             "QUEUE_NAME", "BUCKET_NAME", "SERVICE_NAME", "HTTP_TIMEOUT", "MAX_RETRIES"]


def crc_key(env, secret):
    """A keygate key: kg_<env>_, 43 base62 digits of 32 random bytes, 6 of the CRC32 of all
    before them (crates/keygate-core/src/key.rs)."""
    body = "kg_%s_%s" % (env, base62_fixed(int.from_bytes(secret, "big"), 43))
    return body + base62_fixed(zlib.crc32(body.encode()), 6)


def base62_fixed(number, width):
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Source:
    """Random text: words, names, values."""

    def __init__(self, rng):
        self.rng = rng

    def chars(self, alphabet, n):
        return "".join(self.rng.choices(alphabet, k=n))

    def word(self):
        return self.rng.choice(WORDS)

    def ident(self, parts=None):
        return "_".join(self.rng.choices(WORDS, k=parts or self.rng.randint(1, 3)))

    def camel(self, parts=None):
        first, *rest = self.rng.choices(WORDS, k=parts or self.rng.randint(1, 3))
        return first + "".join(w.capitalize() for w in rest)

    def cls(self):
        return "".join(w.capitalize() for w in self.rng.choices(WORDS, k=self.rng.randint(1, 3)))

    def const(self):
        return self.ident().upper()

    def sentence(self, lo=4, hi=14):
        words = self.rng.choices(SENTENCE_WORDS, k=self.rng.randint(lo, hi))
        return " ".join(words).capitalize()

    def uuid(self):
        h = self.chars(HEX, 32)
        return "%s-%s-4%s-a%s-%s" % (h[:8], h[8:12], h[13:16], h[17:20], h[20:])

    def scalar(self):
        r = self.rng.random()
        if r < 0.3:
            return str(self.rng.randint(0, 100000))
        if r < 0.5:
            return '"%s"' % self.ident()
        if r < 0.6:
            return "True" if self.rng.random() < 0.5 else "None"
        if r < 0.7:
            return '"%s"' % self.uuid()
        if r < 0.75:
            return '"sha256:%s"' % self.chars(HEX, 64)
        if r < 0.85:
            return '"https://%s.%s.internal/%s"' % (self.word(), self.word(), self.ident())
        return "%.2f" % (self.rng.random() * 1000)


# --- secrets ---------------------------------------------------------------------------------

class Secrets:
    """Values of each kind, in the shapes both scanners know, and near misses."""

    def __init__(self, src):
        self.src = src
        self.rng = src.rng

    def make(self, kind):
        return getattr(self, kind.replace("-", "_"))()

    def keygate(self):
        env = "live" if self.rng.random() < 0.7 else "test"
        return crc_key(env, self.rng.randbytes(32))

    def aws(self):
        if self.rng.random() < 0.7:
            prefix = "AKIA" if self.rng.random() < 0.8 else "ASIA"
            return ("id", prefix + self.src.chars(string.ascii_uppercase + "234567", 16))
        return ("secret", self.src.chars(B64, 40))

    def github(self):
        prefix = self.rng.choice(["ghp_", "ghp_", "ghp_", "gho_", "ghs_", "ghu_"])
        return prefix + self.src.chars(ALNUM, 36)

    def stripe(self):
        prefix = "sk_live_" if self.rng.random() < 0.8 else "rk_live_"
        return prefix + self.src.chars(ALNUM, self.rng.choice([24, 24, 34, 99]))

    def slack(self):
        r = self.rng.random()
        digits = lambda n: str(self.rng.randint(1, 9)) + self.src.chars(string.digits, n - 1)
        if r < 0.5:
            return "xoxb-%s-%s-%s" % (digits(12), digits(13), self.src.chars(ALNUM, 24))
        if r < 0.75:
            return "xoxp-%s-%s-%s-%s" % (digits(12), digits(12), digits(13), self.src.chars(HEX, 32))
        return "https://hooks.slack.com/services/T%s/B%s/%s" % (
            self.src.chars(string.ascii_uppercase + string.digits, 9),
            self.src.chars(string.ascii_uppercase + string.digits, 9),
            self.src.chars(ALNUM, 24))

    def private_key(self):
        label = self.rng.choice(["RSA PRIVATE KEY", "RSA PRIVATE KEY", "PRIVATE KEY",
                                 "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        size = {"EC PRIVATE KEY": 121}.get(label, self.rng.choice([1190, 1218, 1700]))
        body = base64.b64encode(b"\x30\x82" + self.rng.randbytes(size)).decode()
        rows = [body[i:i + 64] for i in range(0, len(body), 64)]
        return ["-----BEGIN %s-----" % label] + rows + ["-----END %s-----" % label]

    def jwt(self):
        header = {"alg": self.rng.choice(["HS256", "RS256"]), "typ": "JWT"}
        claims = {"sub": self.src.uuid(), "name": self.src.ident(2),
                  "iat": 1700000000 + self.rng.randint(0, 10 ** 7)}
        if self.rng.random() < 0.5:
            claims["scope"] = " ".join(self.rng.choices(WORDS, k=3))
        part = lambda obj: b64url(json.dumps(obj, separators=(",", ":")).encode())
        sig = b64url(self.rng.randbytes(32 if header["alg"] == "HS256" else 256))
        return "%s.%s.%s" % (part(header), part(claims), sig)

    def openai(self):
        prefix = self.rng.choice(["sk-proj-", "sk-", "sk-svcacct-"])
        return "%s%sT3BlbkFJ%s" % (prefix, self.src.chars(ALNUM, self.rng.choice([20, 20, 40, 64])),
                                   self.src.chars(ALNUM, self.rng.choice([20, 20, 40, 64])))

    def gitlab(self):
        return "glpat-" + self.src.chars(ALNUM, 20)

    def sendgrid(self):
        return "SG.%s.%s" % (self.src.chars(B64URL, 22), self.src.chars(B64URL, 43))

    def twilio(self):
        return "SK" + self.src.chars(HEX, 32)

    def url_password(self):
        scheme = self.rng.choice(["postgres", "postgresql", "mysql", "redis", "amqp", "mongodb"])
        port = {"postgres": 5432, "postgresql": 5432, "mysql": 3306, "redis": 6379,
                "amqp": 5672, "mongodb": 27017}[scheme]
        return "%s://%s:%s@%s-%d.db.internal:%d/%s" % (
            scheme, self.src.ident(1), self.src.chars(ALNUM, self.rng.randint(14, 28)),
            self.src.word(), self.rng.randint(1, 9), port, self.src.word())

    # Near misses: what a scanner should leave alone. Each is (the kind it imitates, text).
    def decoy(self):
        r = self.rng.randrange(19)
        src = self.src
        bad_check = lambda: "kg_%s_%s" % (self.rng.choice(["live", "test"]), src.chars(BASE62, 49))
        return [
            lambda: ("keygate", bad_check()),                      # checksum wrong
            lambda: ("keygate", bad_check()),
            lambda: ("keygate", self._mistyped_key()),             # one character changed
            lambda: ("keygate", "kg_live_" + src.chars(BASE62, 43)),  # too short
            lambda: ("aws", "AKIAIOSFODNN7EXAMPLE"),
            lambda: ("aws", "AKIAXXXXXXXXXXXXXXXX"),
            lambda: ("github", "ghp_" + "x" * 36),
            lambda: ("github", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
            lambda: ("github", "ghp_" + src.chars(ALNUM, 20)),      # too short
            lambda: ("stripe", "sk_live_" + "x" * 24),
            lambda: ("stripe", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
            lambda: ("slack", "xoxb-0000000000-0000000000-" + "x" * 24),
            lambda: ("private-key", "-----BEGIN RSA PRIVATE KEY-----"),  # code that names it
            lambda: ("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6"
                            "IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
            lambda: ("url-password", "postgres://app:${DB_PASSWORD}@db:5432/app"),
            lambda: ("url-password", "amqp://guest:guest@localhost:5672/"),
            lambda: ("gitlab", "glpat-" + "x" * 20),
            lambda: ("sendgrid", "SG.%s.%s" % ("x" * 22, "x" * 43)),
            lambda: ("openai", "sk-your-openai-key-here"),
        ][r]()

    def _mistyped_key(self):
        key = self.keygate()
        at = self.rng.randrange(8, len(key) - 6)
        other = self.rng.choice([c for c in BASE62 if c != key[at]])
        return key[:at] + other + key[at + 1:]


# --- rendering a secret into a file ----------------------------------------------------------

# Names a secret is assigned to, per kind.
NAMES = {
    "keygate": ["KEYGATE_API_KEY", "KEYGATE_TOKEN", "GATEWAY_KEY", "LLM_GATEWAY_KEY"],
    "aws": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    "github": ["GITHUB_TOKEN", "GH_TOKEN", "GITHUB_PAT", "CI_GITHUB_TOKEN"],
    "stripe": ["STRIPE_SECRET_KEY", "STRIPE_API_KEY", "STRIPE_KEY"],
    "slack": ["SLACK_BOT_TOKEN", "SLACK_TOKEN", "SLACK_WEBHOOK_URL"],
    "private-key": ["PRIVATE_KEY", "TLS_KEY", "SIGNING_KEY", "SSH_KEY"],
    "jwt": ["SERVICE_JWT", "AUTH_TOKEN", "BEARER_TOKEN", "ID_TOKEN"],
    "openai": ["OPENAI_API_KEY", "OPENAI_KEY"],
    "gitlab": ["GITLAB_TOKEN", "GITLAB_PAT", "CI_GITLAB_TOKEN"],
    "sendgrid": ["SENDGRID_API_KEY", "MAIL_API_KEY"],
    "twilio": ["TWILIO_API_KEY", "TWILIO_KEY_SID"],
    "url-password": ["DATABASE_URL", "REDIS_URL", "BROKER_URL", "MONGO_URL"],
}
CLIENTS = {"keygate": "Keygate", "aws": "boto3.client", "github": "Github", "stripe": "StripeClient",
           "slack": "WebClient", "jwt": "Session", "openai": "OpenAI", "gitlab": "Gitlab",
           "sendgrid": "SendGridAPIClient", "twilio": "TwilioClient", "url-password": "create_engine",
           "private-key": "load_pem"}


class Planter:
    """Renders a secret (or decoy) as the lines a file of a language would hold."""

    def __init__(self, src):
        self.src = src
        self.rng = src.rng

    def name(self, kind, value):
        if kind == "aws":
            return "AWS_SECRET_ACCESS_KEY" if len(value) == 40 else "AWS_ACCESS_KEY_ID"
        if kind == "slack" and value.startswith("https://"):
            return "SLACK_WEBHOOK_URL"
        names = NAMES.get(kind, ["API_KEY"])
        if kind == "slack":
            names = names[:2]
        return self.rng.choice(names)

    def render(self, lang, kind, value):
        """(lines, offset of the line the secret starts on, lines before it a finding may name,
        context)."""
        if isinstance(value, list):
            return self.pem(lang, kind, value)
        name = self.name(kind, value)
        r = self.rng.random()
        if lang == "py":
            options = [
                ("assign", ['%s = "%s"' % (name, value)]),
                ("dict", ["SETTINGS = {", '    "%s": "%s",' % (name.lower(), value), "}"]),
                ("call", ['client = %s(%s="%s")' % (CLIENTS.get(kind, "Client"), "token" if kind != "url-password" else "url", value)]),
                ("getenv", ['%s = os.environ.get("%s", "%s")' % (name, name, value)]),
                ("comment", ["# old %s, rotated? %s" % (name.lower(), value)]),
                ("header", ['HEADERS = {"Authorization": "Bearer %s"}' % value]),
            ]
        elif lang == "js":
            options = [
                ("assign", ["const %s = '%s';" % (self.src.camel(2), value)]),
                ("dict", ["module.exports = {", "  %s: '%s'," % (self.src.camel(2), value), "};"]),
                ("call", ["const client = new %s('%s');" % (CLIENTS.get(kind, "Client").split(".")[-1], value)]),
                ("getenv", ["const %s = process.env.%s || '%s';" % (self.src.camel(2), name, value)]),
                ("comment", ["// TODO: move to the vault: %s" % value]),
                ("header", ["headers: { Authorization: `Bearer %s` }," % value]),
            ]
        elif lang == "yaml":
            options = [
                ("assign", ["%s: %s" % (name.lower(), value)]),
                ("dict", ["%s: \"%s\"" % (name.lower(), value)]),
                ("env", ["env:", "- name: %s" % name, "  value: \"%s\"" % value]),
                ("comment", ["# %s: %s" % (name.lower(), value)]),
            ]
        elif lang == "env":
            options = [
                ("assign", ["%s=%s" % (name, value)]),
                ("dict", ['%s="%s"' % (name, value)]),
                ("getenv", ["export %s=%s" % (name, value)]),
            ]
        elif lang == "json":
            options = [("dict", ['  "%s": "%s",' % (self.src.camel(2), value)])]
        else:  # md
            options = [
                ("assign", ["```sh", "export %s=%s" % (name, value), "```"]),
                ("dict", ["Use `%s` as the %s." % (value, name.lower().replace("_", " "))]),
                ("header", ["```", "curl -H 'Authorization: Bearer %s' https://api.internal/v1/%s" % (value, self.src.word()), "```"]),
            ]
        if kind in ("aws", "url-password", "private-key"):
            options = [o for o in options if o[0] != "header"]
        if kind == "aws" and len(value) == 40:
            # A secret access key has no prefix: only the name it is given says what it is.
            options = {
                "py": [("assign", ['AWS_SECRET_ACCESS_KEY = "%s"' % value]),
                       ("dict", ["SETTINGS = {", '    "aws_secret_access_key": "%s",' % value, "}"]),
                       ("call", ['s3 = boto3.client("s3", aws_secret_access_key="%s")' % value]),
                       ("getenv", ['SECRET = os.environ.get("AWS_SECRET_ACCESS_KEY", "%s")' % value]),
                       ("comment", ["# aws_secret_access_key = %s" % value])],
                "js": [("assign", ["const awsSecretAccessKey = '%s';" % value]),
                       ("dict", ["module.exports = {", "  secretAccessKey: '%s'," % value, "};"]),
                       ("call", ["const s3 = new S3Client({ credentials: { accessKeyId, secretAccessKey: '%s' } });" % value]),
                       ("getenv", ["const secret = process.env.AWS_SECRET_ACCESS_KEY || '%s';" % value]),
                       ("comment", ["// secretAccessKey: '%s'" % value])],
                "json": [("dict", ['  "%s": "%s",' % (self.rng.choice(["aws_secret_access_key", "secretAccessKey"]), value)])],
                "md": [("assign", ["```sh", "export AWS_SECRET_ACCESS_KEY=%s" % value, "```"]),
                       ("dict", ["```ini", "aws_secret_access_key = %s" % value, "```"])],
            }.get(lang, options)
        context, lines = options[int(r * len(options))]
        at = next(i for i, line in enumerate(lines) if value in line)
        return lines, at, 0, context

    def pem(self, lang, kind, rows):
        name = self.name(kind, rows)
        r = self.rng.random()
        joined = "\\n".join(rows) + "\\n"
        if lang == "py":
            if r < 0.5:
                return ['%s = """%s' % (name, rows[0])] + rows[1:] + ['"""'], 0, 0, "multiline"
            return ['%s = "%s"' % (name, joined)], 0, 0, "escaped"
        if lang == "js":
            if r < 0.5:
                body = ["  '%s\\n' +" % row for row in rows[1:-1]] + ["  '%s\\n';" % rows[-1]]
                return ["const %s = '%s\\n' +" % (self.src.camel(2), rows[0])] + body, 0, 0, "concatenated"
            return ["const %s = '%s';" % (self.src.camel(2), joined)], 0, 0, "escaped"
        if lang == "yaml":
            if r < 0.6:
                return ["%s: |" % name.lower()] + ["  " + row for row in rows], 1, 1, "block"
            return ['%s: "%s"' % (name.lower(), joined)], 0, 0, "escaped"
        if lang == "env":
            return ['%s="%s"' % (name, joined)], 0, 0, "escaped"
        if lang == "json":
            return ['  "%s": "%s",' % (self.src.camel(2), joined)], 0, 0, "escaped"
        return ["```"] + rows + ["```"], 1, 0, "multiline"

    def decoy(self, lang, kind, value):
        """Lines holding a near miss, in the style of the language."""
        if kind == "private-key":
            if lang == "py":
                return ['    if text.startswith("%s"):' % value]
            if lang == "js":
                return ["  if (pem.startsWith('%s')) {" % value]
            if lang == "json":
                return ['  "%s": "%s",' % (self.src.camel(2), value)]
            if lang == "md":
                return ["Paste the key, from `%s` to the matching END line." % value]
            return ["# a key starts with %s" % value]
        lines, _, _, _ = self.render(lang, kind, value)
        return lines


# --- files -----------------------------------------------------------------------------------

class Writer:
    """Lines of one file, the secrets and decoys planted in it, and its size so far."""

    def __init__(self, path, lang):
        self.path, self.lang = path, lang
        self.lines, self.size = [], 0
        self.secrets, self.decoys = [], []

    def add(self, line):
        self.lines.append(line)
        self.size += len(line) + 1

    def plant(self, planter, secrets, kind):
        value = secrets.make(kind)
        if kind == "aws":
            _, value = value
        lines, at, before, context = planter.render(self.lang, kind, value)
        first = len(self.lines) + 1 + at
        span = len(value) - 1 if isinstance(value, list) and context != "escaped" else 0
        self.secrets.append({"path": self.path, "line": first,
                             "lines": [first - before, first + span], "kind": kind,
                             "context": context})
        for line in lines:
            self.add(line)
        return self.secrets[-1]

    def plant_decoy(self, planter, secrets):
        kind, value = secrets.decoy()
        lines = planter.decoy(self.lang, kind, value)
        at = next(i for i, line in enumerate(lines) if value in line)
        line = len(self.lines) + 1 + at
        self.decoys.append({"path": self.path, "line": line, "lines": [line, line],
                            "kind": kind, "what": value if len(value) < 40 or "EXAMPLE" in value else value[:12] + "…"})
        for text in lines:
            self.add(text)

    def text(self):
        return "\n".join(self.lines) + "\n"


class Filler:
    """Lines that look like each language, without secrets."""

    def __init__(self, src):
        self.src = src
        self.rng = src.rng
        self.ydepth, self.yneed = 0, False

    def py(self, w):
        s, rng = self.src, self.rng
        r = rng.random()
        if r < 0.08:
            w.add("")
            w.add("")
            w.add("class %s(%s):" % (s.cls(), rng.choice(["object", "BaseModel", "Exception", s.cls()])))
            w.add('    """%s."""' % s.sentence())
        elif r < 0.25:
            w.add("")
            args = ", ".join(s.ident(1) for _ in range(rng.randint(0, 4)))
            w.add("def %s(%s):" % (s.ident(), args))
            if rng.random() < 0.6:
                w.add('    """%s."""' % s.sentence(6, 20))
        elif r < 0.30:
            w.add(rng.choice(["import %s" % s.word(), "from %s.%s import %s" % (s.word(), s.word(), s.cls()),
                              "from .%s import %s, %s" % (s.ident(), s.ident(), s.cls())]))
        else:
            ind = "    " * rng.randint(1, 3)
            t = rng.random()
            if t < 0.25:
                w.add("%s%s = %s" % (ind, s.ident(), s.scalar()))
            elif t < 0.45:
                w.add("%s%s = %s(%s)" % (ind, s.ident(), s.ident(), ", ".join(s.ident(1) for _ in range(rng.randint(0, 3)))))
            elif t < 0.55:
                w.add("%sif %s is None:" % (ind, s.ident()))
                w.add("%s    return %s" % (ind, s.scalar()))
            elif t < 0.65:
                w.add("%sfor %s in %s.%s():" % (ind, s.word(), s.ident(), s.ident()))
            elif t < 0.75:
                w.add('%slogger.%s("%s %%s", %s)' % (ind, rng.choice(["info", "debug", "warning"]), s.sentence(), s.ident()))
            elif t < 0.83:
                w.add("%s# %s." % (ind, s.sentence(4, 18)))
            elif t < 0.9:
                w.add("%sreturn {%s}" % (ind, ", ".join('"%s": %s' % (s.word(), s.scalar()) for _ in range(rng.randint(1, 5)))))
            elif t < 0.95:
                w.add("%s%s = [%s]" % (ind, s.ident(), ", ".join(str(rng.randint(0, 99999)) for _ in range(rng.randint(5, 60)))))
            else:
                w.add("%sraise %sError(f\"%s {%s!r}\")" % (ind, s.cls(), s.sentence(), s.ident(1)))

    def js(self, w):
        s, rng = self.src, self.rng
        r = rng.random()
        if r < 0.05:
            w.add("import { %s, %s } from './%s';" % (s.camel(), s.camel(), s.camel()))
        elif r < 0.08:
            w.add("const %s = require('%s');" % (s.camel(), s.word()))
        elif r < 0.2:
            w.add("")
            w.add("export %sfunction %s(%s) {" % (rng.choice(["", "async "]), s.camel(), ", ".join(s.camel(1) for _ in range(rng.randint(0, 3)))))
        elif r < 0.28:
            w.add("}")
        else:
            ind = "  " * rng.randint(1, 3)
            t = rng.random()
            if t < 0.3:
                w.add("%sconst %s = %s;" % (ind, s.camel(), s.scalar().replace("True", "true").replace("None", "null")))
            elif t < 0.5:
                w.add("%sconst %s = await %s.%s(%s);" % (ind, s.camel(), s.camel(), s.camel(), ", ".join(s.camel(1) for _ in range(rng.randint(0, 3)))))
            elif t < 0.6:
                w.add("%sif (!%s) { return null; }" % (ind, s.camel()))
            elif t < 0.7:
                w.add("%s// %s." % (ind, s.sentence()))
            elif t < 0.8:
                w.add("%s%s: %s," % (ind, s.camel(), s.scalar().replace("True", "true").replace("None", "null")))
            elif t < 0.9:
                w.add("%slogger.%s(`%s ${%s}`);" % (ind, rng.choice(["info", "warn"]), s.sentence(), s.camel()))
            else:
                w.add("%sreturn %s.map((%s) => %s.%s).filter(Boolean);" % (ind, s.camel(), s.word(), s.word(), s.camel()))

    def js_min(self, w):
        """A minified bundle: lines of 2 to 60 KB."""
        s, rng = self.src, self.rng
        parts = []
        target = rng.randint(2000, 60000)
        n = 0
        while n < target:
            t = rng.random()
            if t < 0.4:
                p = "function %s(e,t){return e.%s(t)||%d}" % (s.chars(string.ascii_letters, 2), s.camel(), rng.randint(0, 999))
            elif t < 0.7:
                p = "var %s=\"%s\"" % (s.chars(string.ascii_letters, 2), s.sentence(2, 6).lower())
            elif t < 0.85:
                p = "%s.%s=%s" % (s.chars(string.ascii_letters, 1), s.camel(), rng.randint(0, 10 ** 6))
            else:
                p = "if(!%s)throw new Error(\"%s\")" % (s.chars(string.ascii_letters, 1), s.sentence(2, 5))
            parts.append(p)
            n += len(p) + 1
        w.add(";".join(parts) + ";")

    def yaml(self, w):
        """Valid YAML: mappings nested by two spaces, lists of name/value pairs, documents."""
        s, rng = self.src, self.rng
        ind = "  " * self.ydepth
        r = rng.random()
        if self.yneed or r < 0.45:
            w.add("%s%s: %s" % (ind, s.ident(), s.scalar().replace("True", "true").replace("None", "null")))
            self.yneed = False
        elif r < 0.6:
            w.add("%s%s:" % (ind, s.ident()))
            self.ydepth += 1
            self.yneed = True
        elif r < 0.7:
            w.add("%senv:" % ind)
            for _ in range(rng.randint(1, 4)):
                w.add("%s- name: %s" % (ind, rng.choice(ENV_NAMES)))
                w.add("%s  value: \"%s\"" % (ind, s.word()))
        elif r < 0.78:
            w.add("%s# %s" % (ind, s.sentence()))
        elif r < 0.97:
            self.ydepth = rng.randint(0, self.ydepth)
        else:
            w.add("---")
            w.add("apiVersion: %s" % rng.choice(["apps/v1", "v1", "batch/v1", "networking.k8s.io/v1"]))
            w.add("kind: %s" % rng.choice(["Deployment", "Service", "ConfigMap", "CronJob", "Ingress"]))
            w.add("metadata:")
            w.add("  name: %s" % s.ident().replace("_", "-"))
            w.add("spec:")
            self.ydepth, self.yneed = 1, True

    def env(self, w):
        s, rng = self.src, self.rng
        if rng.random() < 0.15:
            w.add("# %s" % s.sentence())
        else:
            w.add("%s=%s" % (rng.choice(ENV_NAMES + [s.const() for _ in range(3)]), rng.choice([s.word(), str(rng.randint(1, 65535)), "true", s.ident()])))

    def json_obj(self, w):
        s = self.src
        w.add('  "%s": %s,' % (s.camel(), s.scalar().replace("True", "true").replace("None", "null")))

    def json_record(self):
        s, rng = self.src, self.rng
        return ('{"id": "%s", "email": "%s.%s@mail.internal", "created": "2026-%02d-%02dT%02d:%02d:00Z", '
                '"balance": %d, "status": "%s", "tags": ["%s", "%s"], "checksum": "%s", "note": "%s"}') % (
            s.uuid(), s.word(), s.word(), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
            rng.randint(0, 59), rng.randint(0, 10 ** 7), s.word(), s.word(), s.word(),
            s.chars(HEX, 40), s.sentence(3, 12))

    def md(self, w):
        s, rng = self.src, self.rng
        r = rng.random()
        if r < 0.08:
            w.add("")
            w.add("%s %s" % ("#" * rng.randint(1, 3), s.sentence(2, 6)))
            w.add("")
        elif r < 0.6:
            w.add(" ".join(s.sentence() + "." for _ in range(rng.randint(1, 6))))
        elif r < 0.75:
            w.add("- %s" % s.sentence())
        elif r < 0.85:
            w.add("| %s | %s | %d |" % (s.word(), s.ident(), rng.randint(0, 999)))
        else:
            lang = rng.choice(["python", "sh", "yaml"])
            w.add("```" + lang)
            for _ in range(rng.randint(1, 6)):
                w.add(rng.choice(["pip install %s" % s.word(), "%s = %s" % (s.ident(), s.scalar()), "%s: %s" % (s.ident(), s.word())]))
            w.add("```")


def build_file(path, lang, size, src, secrets, planter, filler, n_secrets, n_decoys, edges=False):
    """One file's Writer: filler up to `size` bytes, with secrets and decoys spread through it
    (and, when `edges`, secrets starting at keygate's window edges)."""
    w = Writer(path, "js" if lang == "jsmin" else lang)
    fill = {"py": filler.py, "js": filler.js, "jsmin": filler.js_min, "yaml": filler.yaml,
            "env": filler.env, "json": filler.json_obj, "md": filler.md}[lang]
    rng = src.rng
    filler.ydepth, filler.yneed = 0, False
    # Where, by size, each secret and decoy goes.
    marks = sorted([(rng.random() * size, "s") for _ in range(n_secrets)] +
                   [(rng.random() * size, "d") for _ in range(n_decoys)])
    kinds = [rng.choice(KINDS) for _ in range(n_secrets)]
    targets = []
    if edges:
        k = 1
        while k * STEP < size:
            # Window k starts at k * STEP; its first CONTEXT bytes were scanned by window k - 1,
            # whose own window ends OVERLAP + CONTEXT bytes into it.
            for offset in (-1, CONTEXT - 3, CONTEXT, CONTEXT + 1, OVERLAP + CONTEXT - 10):
                targets.append(k * STEP + offset)
            k += 1
    if lang == "json":
        w.add("{")
        w.add('  "$source": "%s",' % path)
    else:
        w.add({"py": "# %s: generated for bench/scan.sh", "js": "// %s", "jsmin": "/*! %s */",
               "yaml": "# %s", "env": "# %s", "md": "# %s"}[lang] % path)
    pad = {"py": "# ", "js": "// ", "md": ""}.get(w.lang)
    si = 0
    while w.size < size or marks or targets:
        # Within reach of an edge (a minified line is up to 60 KB): pad up to it, then plant.
        if targets and targets[0] - w.size < 70000:
            target = targets.pop(0)
            kind = KINDS[len(w.secrets) % len(KINDS)]
            state = rng.getstate()
            value = secrets.make(kind)
            value = value[1] if kind == "aws" else value
            lines, at, _, _ = planter.render(w.lang, kind, value)
            rng.setstate(state)  # plant() below draws the same value and rendering
            first = value[0] if isinstance(value, list) else value
            prefix = sum(len(line) + 1 for line in lines[:at]) + lines[at].index(first)
            need = target - w.size - prefix - 1  # the pad line's newline
            if need >= len(pad) + 1:
                # Words of their own generator: this one must draw the value just probed.
                words = pad + " ".join(Source(random.Random(target)).sentence(30, 60)
                                       for _ in range(need // 200 + 1))
                w.add(words[:need].rstrip().ljust(need, "x"))
                w.plant(planter, secrets, kind)["edge"] = target
            continue
        if marks and w.size >= marks[0][0]:
            _, what = marks.pop(0)
            if what == "s":
                w.plant(planter, secrets, kinds[si])
                si += 1
            else:
                w.plant_decoy(planter, secrets)
            filler.ydepth, filler.yneed = 0, False
            continue
        if lang == "json" and size > 2 * 1024 * 1024:
            w.add('  "r%d": %s,' % (len(w.lines), filler.json_record()))
        else:
            fill(w)
    if lang == "json":
        w.add('  "$end": true')
        w.add("}")
    return w


# --- the tree --------------------------------------------------------------------------------

LANG_EXT = {"py": ".py", "js": ".js", "yaml": ".yaml", "json": ".json", "md": ".md", "env": ""}
SECRET_RATE = {"py": 0.10, "js": 0.10, "yaml": 0.30, "json": 0.25, "md": 0.12, "env": 0.5}


def plan_files(rng, src, total_bytes, big):
    """(path, lang, size) for a tree of about `total_bytes`, the big files included."""
    files = list(big)
    left = total_bytes - sum(size for _, _, size in big)
    services = [src.ident(1) + "-" + src.word() for _ in range(40)]
    used = set(path for path, _, _ in big)
    while left > 0:
        lang = rng.choices(["py", "js", "yaml", "json", "md", "env"], [34, 26, 12, 12, 10, 6])[0]
        size = int(min(max(rng.lognormvariate(9.6, 1.1), 300), 1_500_000))
        svc = rng.choice(services)
        if lang == "py":
            path = "services/%s/%s/%s.py" % (svc, rng.choice(["src", "src/" + src.word(), "tests"]), src.ident(2))
        elif lang == "js":
            path = "web/%s/src/%s/%s.js" % (svc, rng.choice(["components", "api", "store", "utils"]), src.camel(2))
        elif lang == "yaml":
            path = "deploy/%s/%s.yaml" % (svc, src.ident(1).replace("_", "-"))
        elif lang == "json":
            path = "services/%s/config/%s.json" % (svc, src.ident(2))
        elif lang == "md":
            path = "docs/%s/%s.md" % (svc, src.ident(2))
        else:
            path = "services/%s/%s" % (svc, rng.choice([".env", ".env.local", ".env.production", ".env.staging"]))
            size = min(size, 6000)
        if path in used:
            continue
        used.add(path)
        files.append((path, lang, size))
        left -= size
    return files


def secret_counts(rng, lang, size):
    if size > 2 * 1024 * 1024:
        return rng.randint(30, 60) * size // (10 * 1024 * 1024) + 1, rng.randint(20, 40)
    n = 0
    if rng.random() < SECRET_RATE[lang]:
        n = rng.randint(1, 3 + size // 100_000)
    d = rng.randint(1, 2) if rng.random() < SECRET_RATE[lang] * 0.6 else 0
    return n, d


def gen_tree(out, size_mb, seed):
    rng = random.Random(seed)
    src = Source(rng)
    secrets, planter, filler = Secrets(src), Planter(src), Filler(src)
    mb = 1024 * 1024
    # The large files take 85 MB of 200, and their share of a smaller tree.
    big = [(path, lang, size * mb * size_mb // 200) for path, lang, size in [
        ("data/fixtures/customers.json", "json", 22),
        ("web/dist/bundle.min.js", "jsmin", 16),
        ("services/core/src/generated/schema_pb2.py", "py", 14),
        ("deploy/rendered/all-manifests.yaml", "yaml", 12),
        ("docs/CHANGELOG.md", "md", 11),
        ("web/legacy/src/vendor/legacy.js", "js", 10)]]
    root = os.path.join(out, "tree")
    truth = {"seed": seed, "size_mb": size_mb, "files": 0, "bytes": 0, "secrets": [], "decoys": []}
    for path, lang, size in plan_files(rng, src, size_mb * mb, big):
        n, d = secret_counts(rng, lang if lang != "jsmin" else "js", size)
        w = build_file(path, lang, size, src, secrets, planter, filler, n, d,
                       edges=size > 4 * 1024 * 1024 and lang in ("py", "js", "jsmin", "md"))
        data = w.text().encode()
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        truth["files"] += 1
        truth["bytes"] += len(data)
        truth["secrets"] += w.secrets
        truth["decoys"] += w.decoys
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=0)
    print("tree: %d files, %.1f MB, %d secrets, %d decoys" % (
        truth["files"], truth["bytes"] / 1e6, len(truth["secrets"]), len(truth["decoys"])), file=sys.stderr)


# --- the history -----------------------------------------------------------------------------

class Version:
    """A file's content at one commit: its lines, and which start a secret (with its span)."""

    def __init__(self, path, lang, lines, secrets):
        self.path, self.lang = path, lang
        self.lines = lines
        # line index (0-based) -> (kind, lines before it a finding may name, lines after)
        self.secrets = secrets

    @classmethod
    def of(cls, w, lang):
        secrets = {}
        for s in w.secrets:
            secrets[s["line"] - 1] = (s["kind"], s["line"] - s["lines"][0], s["lines"][1] - s["line"], s["context"])
        return cls(w.path, lang, list(w.lines), secrets)

    def data(self):
        return ("\n".join(self.lines) + "\n").encode()

    def taken(self):
        """Line indices that belong to a secret (no edit goes inside one)."""
        out = set()
        for at, (_, before, after, _) in self.secrets.items():
            out.update(range(at - before, at + after + 1))
        return out

    def insert(self, at, new_lines, new_secrets=None):
        n = len(new_lines)
        moved = {(k + n if k >= at else k): v for k, v in self.secrets.items()}
        for k, v in (new_secrets or {}).items():
            moved[at + k] = v
        return Version(self.path, self.lang, self.lines[:at] + new_lines + self.lines[at:], moved)

    def delete(self, lo, hi):
        n = hi - lo
        kept = {}
        for k, v in self.secrets.items():
            if k < lo:
                kept[k] = v
            elif k >= hi:
                kept[k - n] = v
        return Version(self.path, self.lang, self.lines[:lo] + self.lines[hi:], kept)


def blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, root):
        self.root = root
        self.env = dict(os.environ, GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
                        GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@keygate.invalid",
                        GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@keygate.invalid")
        self.clock = 1_767_000_000

    def git(self, *args):
        return subprocess.run(["git", "-C", self.root, *args], env=self.env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def tick(self):
        """Each commit an hour after the one before: the order a scanner walks them in."""
        self.clock += 3600
        self.env["GIT_AUTHOR_DATE"] = self.env["GIT_COMMITTER_DATE"] = "@%d +0000" % self.clock

    def commit(self, message):
        self.tick()
        self.git("add", "-A")
        self.git("commit", "-q", "--no-verify", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


def gen_history(out, commits, size_mb, seed):
    rng = random.Random(seed)
    src = Source(rng)
    secrets, planter, filler = Secrets(src), Planter(src), Filler(src)
    mb = 1024 * 1024
    big = [("data/fixtures/orders.json", "json", 12 * mb * size_mb // 40),
           ("web/dist/app.min.js", "jsmin", 10 * mb * size_mb // 40)]
    root = os.path.join(out, "repo")
    if os.path.exists(root):
        raise SystemExit("%s exists" % root)
    os.makedirs(root)
    repo = Repo(root)
    repo.git("init", "-q", "-b", "main")

    tree = {}
    for path, lang, size in plan_files(rng, src, size_mb * mb, big):
        n, d = secret_counts(rng, lang if lang != "jsmin" else "js", size)
        w = build_file(path, lang, size, src, secrets, planter, filler, n, d)
        tree[path] = Version.of(w, "js" if lang == "jsmin" else lang)

    seen = set()
    found = []  # the truth: each secret of each blob, with the commit that first holds it
    stats = {"commits": 0, "blobs": 0, "bytes": 0, "secrets_removed": 0}

    def write(version):
        full = os.path.join(root, version.path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(version.data())

    def record(sha, changed):
        stats["commits"] += 1
        for version in changed:
            data = version.data()
            blob = blob_id(data)
            if blob in seen:
                continue
            seen.add(blob)
            stats["blobs"] += 1
            stats["bytes"] += len(data)
            for at, (kind, before, after, context) in sorted(version.secrets.items()):
                found.append({"commit": sha, "blob": blob, "path": version.path, "line": at + 1,
                              "lines": [at + 1 - before, at + 1 + after], "kind": kind,
                              "context": context})

    for version in tree.values():
        write(version)
    record(repo.commit("Initial import"), list(tree.values()))

    big_paths = {p for p, _, _ in big}

    def small_paths(state, avoid):
        return [p for p in state if p not in big_paths and p not in avoid]

    def change(state, avoid, touched):
        """One commit's worth of edits to `state`; returns the changed versions."""
        changed = {}
        for _ in range(rng.randint(1, 6)):
            path = rng.choice(small_paths(state, avoid))
            v = changed.get(path, state[path])
            taken = v.taken()
            spots = [i for i in range(1, len(v.lines) + 1) if i not in taken and i - 1 not in taken] or [len(v.lines)]
            at = rng.choice(spots)
            r = rng.random()
            w = Writer(path, v.lang)
            if r < 0.25:
                w.plant(planter, secrets, rng.choice(KINDS))
                s = w.secrets[0]
                new = {s["line"] - 1: (s["kind"], s["line"] - s["lines"][0], s["lines"][1] - s["line"], s["context"])}
                v = v.insert(at, w.lines, new)
            elif r < 0.45 and v.secrets:
                # A secret removed: its lines go, as a fix would take them out.
                k = rng.choice(sorted(v.secrets))
                _, before, after, _ = v.secrets[k]
                v = v.delete(k - before, k + after + 1)
                stats["secrets_removed"] += 1
            else:
                fill = {"py": filler.py, "js": filler.js, "yaml": filler.yaml, "env": filler.env,
                        "json": filler.json_obj, "md": filler.md}[v.lang]
                for _ in range(rng.randint(1, 30)):
                    fill(w)
                v = v.insert(at, w.lines)
            changed[path] = v
        if rng.random() < 0.3:
            path, lang, size = plan_files(rng, src, 1, [])[0]
            if path not in state and path not in avoid:
                n, d = secret_counts(rng, lang, size)
                w = build_file(path, lang, size, src, secrets, planter, filler, n, d)
                changed[path] = Version.of(w, lang)
        deleted = []
        if rng.random() < 0.1:
            candidates = small_paths(state, avoid | set(changed))
            if candidates:
                deleted.append(rng.choice(candidates))
        for path, v in changed.items():
            state[path] = v
            write(v)
            touched.add(path)
        for path in deleted:
            del state[path]
            os.remove(os.path.join(root, path))
            touched.add(path)
        return list(changed.values())

    def grow_big(state):
        path = rng.choice([p for p, _, _ in big])
        v = state[path]
        w = Writer(path, v.lang)
        for _ in range(200):
            if v.lang == "json":
                w.add("  \"n%d\": %s," % (rng.randrange(10 ** 9), filler.json_record()))
            else:
                filler.js_min(w)
        w.plant(planter, secrets, rng.choice(KINDS))
        s = w.secrets[0]
        at = len(v.lines) - 2 if v.lang == "json" else len(v.lines)
        state[path] = v.insert(at, w.lines, {s["line"] - 1: (s["kind"], 0, s["lines"][1] - s["line"], s["context"])})
        write(state[path])
        return [state[path]]

    branch_at, branch_len, merge_at = commits // 2, 15, commits * 3 // 4
    side_state, side_touched = None, set()
    main_touched = set()
    for n in range(2, commits + 1):
        if n == branch_at:
            # A side branch: its commits touch none of the files main changes until the merge.
            repo.git("branch", "feature/billing")
            side_state = dict(tree)
            main_touched = set()
            repo.git("checkout", "-q", "feature/billing")
            for i in range(branch_len):
                changed = change(side_state, main_touched, side_touched)
                record(repo.commit("billing: step %d" % (i + 1)), changed)
            repo.git("checkout", "-q", "main")
        if n == merge_at and side_state is not None:
            repo.tick()
            repo.git("merge", "-q", "--no-ff", "--no-edit", "feature/billing")
            for path in side_touched:
                if path in side_state:
                    tree[path] = side_state[path]
                else:
                    tree.pop(path, None)
            sha = repo.git("rev-parse", "HEAD")
            record(sha, [])
            side_state = None
            continue
        if n % 45 == 0:
            changed = grow_big(tree)
            record(repo.commit("Refresh generated bundle and fixtures"), changed)
            continue
        avoid = side_touched if side_state is not None else set()
        changed = change(tree, avoid, main_touched)
        record(repo.commit("%s: %s" % (src.word(), src.sentence(3, 8).lower())), changed)

    # A branch never merged: a leak that lives only there.
    repo.git("checkout", "-q", "-b", "experiment/old-config")
    state = dict(tree)
    for i in range(3):
        path = rng.choice(small_paths(state, set()))
        v = state[path]
        w = Writer(path, v.lang)
        w.plant(planter, secrets, rng.choice(KINDS))
        s = w.secrets[0]
        state[path] = v.insert(len(v.lines), w.lines, {s["line"] - 1: (s["kind"], s["line"] - s["lines"][0], s["lines"][1] - s["line"], s["context"])})
        write(state[path])
        record(repo.commit("experiment %d" % (i + 1)), [state[path]])
    repo.git("checkout", "-q", "main")
    if repo.git("status", "--porcelain"):
        raise SystemExit("the work tree differs from the model: %s" % repo.git("status", "--porcelain")[:500])
    for path, v in tree.items():
        with open(os.path.join(root, path), "rb") as f:
            if f.read() != v.data():
                raise SystemExit("%s differs from the model" % path)
    repo.git("gc", "-q")

    head_blobs = {blob_id(v.data()) for v in tree.values()}
    at_head = sum(1 for s in found if s["blob"] in head_blobs)
    truth = {"seed": seed, **stats, "secrets": found, "secrets_at_head": at_head}
    with open(os.path.join(out, "truth-history.json"), "w") as f:
        json.dump(truth, f, indent=0)
    print("history: %d commits, %d blobs, %.1f MB of blobs, %d secrets (%d in HEAD's blobs)" % (
        stats["commits"], stats["blobs"], stats["bytes"] / 1e6, len(found), at_head), file=sys.stderr)


def gen_keys(count, seed):
    rng = random.Random(seed)
    secrets = Secrets(Source(rng))
    for _ in range(count):
        print("valid " + secrets.keygate())
        print("mistyped " + secrets._mistyped_key())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    tree = sub.add_parser("tree")
    tree.add_argument("out")
    tree.add_argument("--size-mb", type=int, default=200)
    tree.add_argument("--seed", type=int, default=1)
    history = sub.add_parser("history")
    history.add_argument("out")
    history.add_argument("--commits", type=int, default=200)
    history.add_argument("--size-mb", type=int, default=40)
    history.add_argument("--seed", type=int, default=2)
    keys = sub.add_parser("keys")
    keys.add_argument("--count", type=int, default=100)
    keys.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    if args.what == "tree":
        gen_tree(args.out, args.size_mb, args.seed)
    elif args.what == "history":
        gen_history(args.out, args.commits, args.size_mb, args.seed)
    else:
        gen_keys(args.count, args.seed)


if __name__ == "__main__":
    main()
