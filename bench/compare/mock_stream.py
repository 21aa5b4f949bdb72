"""A mock OpenAI upstream whose streams are as long as the request asks, for bench/compare.sh.

keygate-mock-upstream always streams the same five chunks; to price one more chunk the
comparison needs streams of two lengths from one upstream. A request whose text holds
`chunks=N` is answered with N content chunks (then the finish chunk, the usage chunk and
`[DONE]`, as the Rust mock does); without it, five. A request without `"stream": true` gets
the Rust mock's JSON answer. The whole answer goes out in one write, so the gateway in front
of it sees every chunk at once, as with the Rust mock. `GET /answers` tells how many chat
requests it has answered, so that a benchmark can count requests in the middle of a run.

Usage: python3 bench/compare/mock_stream.py 127.0.0.1:9200
"""

import asyncio
import re
import socket
import sys

STREAMED = re.compile(rb'"stream"\s*:\s*true')
CHUNKS = re.compile(rb"chunks=(\d+)")
MAX_CHUNKS = 10_000

COMPLETION = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello! How can I help you today?","refusal":null},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,'
    b'"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0}},'
    b'"system_fingerprint":"fp_bench"}'
)

CHUNK_HEAD = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{'
)


def stream_body(chunks: int) -> bytes:
    words = [b"Hello!", b" How", b" can", b" I", b" help?"]
    parts = []
    for i in range(chunks):
        role = b'"role":"assistant",' if i == 0 else b""
        word = words[i % len(words)]
        parts.append(
            CHUNK_HEAD + role + b'"content":"' + word + b'"},"finish_reason":null}],"usage":null}\n\n'
        )
    parts.append(CHUNK_HEAD + b'},"finish_reason":"stop"}],"usage":null}\n\n')
    parts.append(
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":'
        + str(chunks).encode()
        + b',"total_tokens":'
        + str(12 + chunks).encode()
        + b"}}\n\n"
    )
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


answered = 0


def answer(method: bytes, target: bytes, body: bytes) -> bytes:
    global answered
    if method == b"GET" and target == b"/answers":
        return response(b"200 OK", b"text/plain", str(answered).encode())
    if method != b"POST":
        # Any answer tells a start-up probe that the port is open.
        return response(b"405 Method Not Allowed", b"text/plain", b"")
    answered += 1
    if not STREAMED.search(body):
        return response(b"200 OK", b"application/json", COMPLETION)
    found = CHUNKS.search(body)
    chunks = min(int(found.group(1)), MAX_CHUNKS) if found else 5
    return response(b"200 OK", b"text/event-stream", stream_body(chunks))


class Http(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and pipelining; request bodies by length or chunked."""

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.buffer += data
        out = []
        while True:
            parsed = self.parse()
            if parsed is None:
                break
            out.append(parsed)
        if out:
            self.transport.write(b"".join(out))

    def parse(self):
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buffer[:end].split(b"\r\n")
        method, target = (head[0].split(b" ") + [b"", b""])[:2]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        rest = self.buffer[end + 4 :]
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            body, used = self.dechunk(rest)
            if body is None:
                return None
        else:
            length = int(headers.get(b"content-length", b"0"))
            if len(rest) < length:
                return None
            body, used = rest[:length], length
        self.buffer = rest[used:]
        return answer(method, target, body)

    @staticmethod
    def dechunk(data):
        body, pos = [], 0
        while True:
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                return None, 0
            size = int(data[pos:line_end].split(b";", 1)[0], 16)
            start = line_end + 2
            if size == 0:
                trailer_end = data.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None, 0
                return b"".join(body), trailer_end + 4
            if len(data) < start + size + 2:
                return None, 0
            body.append(data[start : start + size])
            pos = start + size + 2


async def main():
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9200").rpartition(":")
    server = await asyncio.get_running_loop().create_server(Http, host, int(port), backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
