"""A webhook receiver as a keygate user would write one, checking every delivery with the
`standardwebhooks` package (the Standard Webhooks reference library).

    webhook_receiver.py PORT SECRET_FILE [--fail-first N]

Listens on 127.0.0.1:PORT. The signing secret is read from SECRET_FILE at each request (the
test writes it once the endpoint exists). The first N requests are answered 500; after that a
verified delivery is answered 204 and a refused one 401. One JSON line per request goes to
standard output:

    {"status": 204, "id": "msg_…", "type": "key.suspended", "data": {…},
     "duplicate": false, "tampered_refused": true, "replay_refused": true}

`tampered_refused` says the package refused the same delivery with one byte of its body
changed; `replay_refused` that it refused the delivery presented again ten minutes later.
"""

import datetime
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import standardwebhooks.webhooks as sw

port = int(sys.argv[1])
secret_file = sys.argv[2]
fail_first = int(sys.argv[sys.argv.index("--fail-first") + 1]) if "--fail-first" in sys.argv else 0
seen = set()
requests = 0


class Later(datetime.datetime):
    """The clock ten minutes from now: a delivery replayed that late must be refused."""

    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.now(tz) + datetime.timedelta(minutes=10)


def refused(secret, body, headers):
    try:
        sw.Webhook(secret).verify(body, headers)
    except sw.WebhookVerificationError:
        return True
    return False


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global requests
        requests += 1
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        line = {"id": headers.get("webhook-id")}
        if requests <= fail_first:
            line["status"] = 500
        else:
            with open(secret_file) as f:
                secret = f.read().strip()
            try:
                payload = sw.Webhook(secret).verify(body, headers)
            except sw.WebhookVerificationError as err:
                line.update(status=401, error=str(err))
            else:
                line.update(
                    status=204,
                    type=payload["type"],
                    data=payload["data"],
                    duplicate=line["id"] in seen,
                    tampered_refused=refused(secret, body + b" ", headers),
                )
                seen.add(line["id"])
                real = sw.datetime
                sw.datetime = Later
                try:
                    line["replay_refused"] = refused(secret, body, headers)
                finally:
                    sw.datetime = real
        self.send_response(line["status"])
        self.send_header("content-length", "0")
        self.end_headers()
        # One request at a time (the clock patch above is global), one whole line each.
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", port), Handler).serve_forever()
