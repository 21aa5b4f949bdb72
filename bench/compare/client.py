"""A one-connection HTTP client for bench/compare.sh, for what wrk cannot do.

  client.py first-chunk URL TOKEN MODEL N
      Sends N streamed chat requests one after another on one kept-alive connection and times
      each from the send to the end of the first `data:` line of its answer (wrk times only
      whole answers). Reads each stream to `[DONE]`. Prints `p50_us p99_us`.

  client.py send URL TOKEN MODEL N [stream]
      Sends exactly N chat requests (streamed with `stream`) one after another, reading every
      answer whole; for counts per request where wrk's fixed duration will not do. Prints N.

Any answer other than 200 ends the run with an error.
"""

import http.client
import json
import sys
import time
import urllib.parse


class Client:
    def __init__(self, url, token, model, stream):
        parts = urllib.parse.urlsplit(url)
        self.url, self.path = url, parts.path
        self.body = json.dumps(
            {
                "model": model,
                "messages": [{"role": "user", "content": "Hello there, how are you today?"}],
                "temperature": 0.7,
                **({"stream": True} if stream else {}),
            },
            separators=(",", ":"),
        ).encode()
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def send(self):
        self.conn.request("POST", self.path, self.body, self.headers)
        resp = self.conn.getresponse()
        if resp.status != 200:
            sys.exit(f"client: {self.url} answered {resp.status}: {resp.read()[:300]!r}")
        return resp


def first_chunk(client, count):
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        resp = client.send()
        while True:
            line = resp.readline()
            if not line:
                sys.exit(f"client: {client.url} ended its stream before a data line")
            if line.startswith(b"data:"):
                samples.append(time.perf_counter() - start)
                break
        if b"[DONE]" not in line + resp.read():
            sys.exit(f"client: {client.url} ended its stream without [DONE]")
    samples.sort()
    p50 = samples[len(samples) // 2]
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{p50 * 1e6:.0f} {p99 * 1e6:.0f}")


def send(client, count):
    for _ in range(count):
        client.send().read()
    print(count)


def main():
    if len(sys.argv) < 6 or sys.argv[1] not in ("first-chunk", "send"):
        sys.exit(__doc__)
    command, url, token, model, count = sys.argv[1:6]
    if command == "first-chunk":
        first_chunk(Client(url, token, model, stream=True), int(count))
    else:
        stream = len(sys.argv) > 6 and sys.argv[6] == "stream"
        send(Client(url, token, model, stream), int(count))


if __name__ == "__main__":
    main()
