"""The official OpenAI Python SDK, unchanged, against keygate's gateway.

crates/keygate/tests/openai_sdk.rs starts keygate with a mock OpenAI, Anthropic and Gemini
upstream, then runs this suite with:

- KEYGATE_BASE_URL: the gateway, such as http://127.0.0.1:PORT/v1
- KEYGATE_KEY: a keygate key with the scope `models:*`
- KEYGATE_NARROW_KEY: a keygate key with the scope `models:embed` only
- KEYGATE_SPENT_KEY: a keygate key whose quota (one use a day) is spent

and these model aliases, served by the OpenAI mock: `chat` (text answers), `tools` (parallel
calls of get_weather and get_time), `embed` (embeddings), `limited` (the upstream always
answers 429) and `broken` (the upstream stream breaks off after two chunks); and served by the
Anthropic and Gemini mocks, so every request and answer is translated: `claude` and `gemini`
(text), `claude-tools` and `gemini-tools` (the same two parallel calls), `claude-broken` (an
`error` event after two text deltas) and `gemini-broken` (the connection closes after two).

Every client has `max_retries=0`, so each error the SDK raises is keygate's first answer.
"""

import asyncio
import json
import os
import unittest

import openai
from openai import AsyncOpenAI, OpenAI

BASE_URL = os.environ["KEYGATE_BASE_URL"]
KEY = os.environ["KEYGATE_KEY"]
NARROW_KEY = os.environ["KEYGATE_NARROW_KEY"]
SPENT_KEY = os.environ["KEYGATE_SPENT_KEY"]

ALIASES = [
    "broken",
    "chat",
    "claude",
    "claude-broken",
    "claude-tools",
    "embed",
    "gemini",
    "gemini-broken",
    "gemini-tools",
    "limited",
    "tools",
]
HELLO = [{"role": "user", "content": "Say hello"}]
WEATHER = [{"role": "user", "content": "Weather and time in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The current time in a time zone.",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string"}},
                "required": ["timezone"],
            },
        },
    },
]
EXPECTED_CALLS = [
    ("get_weather", {"city": "Paris"}),
    ("get_time", {"timezone": "Europe/Paris"}),
]


def client(key=KEY):
    """A client as an application would make one, pointed at keygate; no retries, so a
    failure is never hidden by a second attempt, and a timeout so nothing hangs the suite."""
    return OpenAI(base_url=BASE_URL, api_key=key, max_retries=0, timeout=30.0)


def assert_calls(test, calls):
    """`calls`: (id, name, arguments text) in order."""
    test.assertEqual(len(calls), 2, calls)
    for (call_id, name, arguments), (want_name, want_args) in zip(calls, EXPECTED_CALLS):
        test.assertTrue(call_id)
        test.assertEqual(name, want_name)
        test.assertEqual(json.loads(arguments), want_args)
    test.assertNotEqual(calls[0][0], calls[1][0])


class Chat(unittest.TestCase):
    def test_completion(self):
        completion = client().chat.completions.create(model="chat", messages=HELLO)
        self.assertEqual(completion.object, "chat.completion")
        self.assertIsInstance(completion.model, str)
        self.assertTrue(completion.model)
        self.assertEqual(len(completion.choices), 1)
        choice = completion.choices[0]
        self.assertEqual(choice.finish_reason, "stop")
        self.assertEqual(choice.message.role, "assistant")
        self.assertTrue(choice.message.content)
        self.assertIsNotNone(completion.usage)
        self.assertGreater(completion.usage.prompt_tokens, 0)
        self.assertGreater(completion.usage.completion_tokens, 0)
        self.assertEqual(
            completion.usage.total_tokens,
            completion.usage.prompt_tokens + completion.usage.completion_tokens,
        )

    def test_stream(self):
        stream = client().chat.completions.create(model="chat", messages=HELLO, stream=True)
        content, finish_reasons, chunks = [], [], 0
        for chunk in stream:
            chunks += 1
            self.assertEqual(chunk.object, "chat.completion.chunk")
            # keygate asks the upstream for usage on its own account; a client that did not
            # ask must not get the extra chunk without choices (`chunk.choices[0]` would fail).
            self.assertEqual(len(chunk.choices), 1, chunk)
            self.assertIsNone(chunk.usage)
            delta = chunk.choices[0].delta
            if delta.content:
                content.append(delta.content)
            if chunk.choices[0].finish_reason:
                finish_reasons.append(chunk.choices[0].finish_reason)
        self.assertGreater(chunks, 1)
        self.assertTrue("".join(content).strip())
        self.assertEqual(finish_reasons, ["stop"])

    def test_stream_with_usage(self):
        stream = client().chat.completions.create(
            model="chat",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        self.assertGreater(len(chunks), 2)
        last = chunks[-1]
        self.assertEqual(last.choices, [])
        self.assertIsNotNone(last.usage)
        self.assertGreater(last.usage.prompt_tokens, 0)
        self.assertGreater(last.usage.completion_tokens, 0)
        self.assertTrue(all(chunk.usage is None for chunk in chunks[:-1]))
        content = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
        self.assertTrue(content.strip())

    def test_stream_helper(self):
        # The SDK's own accumulator (`chat.completions.stream`) builds the final completion.
        with client().chat.completions.stream(model="chat", messages=HELLO) as stream:
            events = [event.type for event in stream]
            final = stream.get_final_completion()
        self.assertIn("content.delta", events)
        self.assertIn("content.done", events)
        self.assertTrue(final.choices[0].message.content)
        self.assertEqual(final.choices[0].finish_reason, "stop")

    def test_json_object_response_format(self):
        completion = client().chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "Answer in JSON"}],
            response_format={"type": "json_object"},
        )
        self.assertTrue(completion.choices[0].message.content)

    def test_async_stream(self):
        async def run():
            async with AsyncOpenAI(
                base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=30.0
            ) as aclient:
                stream = await aclient.chat.completions.create(
                    model="chat", messages=HELLO, stream=True
                )
                return [chunk async for chunk in stream]

        chunks = asyncio.run(run())
        content = "".join(c.choices[0].delta.content or "" for c in chunks)
        self.assertTrue(content.strip())
        self.assertEqual(chunks[-1].choices[0].finish_reason, "stop")


class Tools(unittest.TestCase):
    def test_parallel_calls(self):
        completion = client().chat.completions.create(
            model="tools",
            messages=WEATHER,
            tools=TOOLS,
            tool_choice="auto",
            parallel_tool_calls=True,
        )
        choice = completion.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        calls = choice.message.tool_calls
        self.assertTrue(all(call.type == "function" for call in calls))
        assert_calls(self, [(c.id, c.function.name, c.function.arguments) for c in calls])

    def test_parallel_calls_streamed(self):
        stream = client().chat.completions.create(
            model="tools",
            messages=WEATHER,
            tools=TOOLS,
            tool_choice="auto",
            parallel_tool_calls=True,
            stream=True,
        )
        calls, finish_reasons = {}, []
        for chunk in stream:
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
        self.assertEqual(sorted(calls), [0, 1])
        self.assertEqual(finish_reasons, ["tool_calls"])
        assert_calls(self, [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())])

    def test_parallel_calls_stream_helper(self):
        with client().chat.completions.stream(
            model="tools", messages=WEATHER, tools=TOOLS, parallel_tool_calls=True
        ) as stream:
            done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
            final = stream.get_final_completion()
        self.assertEqual([e.name for e in done], ["get_weather", "get_time"])
        calls = final.choices[0].message.tool_calls
        assert_calls(self, [(c.id, c.function.name, c.function.arguments) for c in calls])


class Translated:
    """Chat and tools through an upstream of another format. A subclass names its aliases and
    the upstream mock's name, which the default answer contains."""

    TEXT: str
    TOOLS: str
    BROKEN: str
    UPSTREAM: str

    def assert_usage(self, usage):
        self.assertIsNotNone(usage)
        self.assertGreater(usage.prompt_tokens, 0)
        self.assertGreater(usage.completion_tokens, 0)
        self.assertEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)

    def test_completion(self):
        completion = client().chat.completions.create(
            model=self.TEXT,
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi, I am Ada."},
                {"role": "assistant", "content": "Hello Ada."},
                {"role": "user", "content": "Say hello again"},
            ],
            max_tokens=64,
        )
        self.assertEqual(completion.object, "chat.completion")
        self.assertTrue(completion.id)
        self.assertEqual(len(completion.choices), 1)
        choice = completion.choices[0]
        self.assertEqual(choice.index, 0)
        self.assertEqual(choice.finish_reason, "stop")
        self.assertEqual(choice.message.role, "assistant")
        self.assertIn(f"Hello from {self.UPSTREAM}", choice.message.content)
        self.assertIsNone(choice.message.tool_calls)
        self.assert_usage(completion.usage)

    def test_stream(self):
        stream = client().chat.completions.create(model=self.TEXT, messages=HELLO, stream=True)
        content, finish_reasons, chunks = [], [], 0
        for chunk in stream:
            chunks += 1
            self.assertEqual(chunk.object, "chat.completion.chunk")
            self.assertEqual(len(chunk.choices), 1, chunk)
            self.assertIsNone(chunk.usage)
            if chunk.choices[0].delta.content:
                content.append(chunk.choices[0].delta.content)
            if chunk.choices[0].finish_reason:
                finish_reasons.append(chunk.choices[0].finish_reason)
        self.assertGreater(chunks, 1)
        self.assertIn(f"Hello from {self.UPSTREAM}", "".join(content))
        self.assertEqual(finish_reasons, ["stop"])

    def test_stream_with_usage(self):
        # `max_completion_tokens` is the newer name of `max_tokens`; the Rust side checks that
        # it reached the upstream as that upstream's own limit.
        stream = client().chat.completions.create(
            model=self.TEXT,
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=48,
        )
        chunks = list(stream)
        self.assertGreater(len(chunks), 2)
        last = chunks[-1]
        self.assertEqual(last.choices, [])
        self.assert_usage(last.usage)
        self.assertTrue(all(chunk.usage is None for chunk in chunks[:-1]))
        self.assertTrue(all(len(chunk.choices) == 1 for chunk in chunks[:-1]))
        content = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
        self.assertIn(f"Hello from {self.UPSTREAM}", content)
        self.assertEqual(chunks[-2].choices[0].finish_reason, "stop")
        self.assertEqual(len({chunk.id for chunk in chunks}), 1)

    def test_stream_helper(self):
        with client().chat.completions.stream(model=self.TEXT, messages=HELLO) as stream:
            events = [event.type for event in stream]
            final = stream.get_final_completion()
        self.assertIn("content.done", events)
        self.assertIn(f"Hello from {self.UPSTREAM}", final.choices[0].message.content)
        self.assertEqual(final.choices[0].finish_reason, "stop")

    def test_parallel_calls(self):
        completion = client().chat.completions.create(
            model=self.TOOLS,
            messages=WEATHER,
            tools=TOOLS,
            tool_choice="auto",
            parallel_tool_calls=True,
        )
        choice = completion.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        calls = choice.message.tool_calls
        self.assertTrue(all(call.type == "function" for call in calls))
        assert_calls(self, [(c.id, c.function.name, c.function.arguments) for c in calls])
        self.assert_usage(completion.usage)

    def test_parallel_calls_streamed(self):
        stream = client().chat.completions.create(
            model=self.TOOLS,
            messages=WEATHER,
            tools=TOOLS,
            parallel_tool_calls=True,
            stream=True,
            stream_options={"include_usage": True},
        )
        calls, finish_reasons, usage = {}, [], None
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
        self.assertEqual(sorted(calls), [0, 1])
        self.assertEqual(finish_reasons, ["tool_calls"])
        assert_calls(
            self, [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]
        )
        self.assert_usage(usage)

    def test_parallel_calls_stream_helper(self):
        with client().chat.completions.stream(
            model=self.TOOLS, messages=WEATHER, tools=TOOLS
        ) as stream:
            done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
            final = stream.get_final_completion()
        self.assertEqual([e.name for e in done], ["get_weather", "get_time"])
        self.assertEqual([json.loads(e.arguments) for e in done], [a for _, a in EXPECTED_CALLS])
        calls = final.choices[0].message.tool_calls
        assert_calls(self, [(c.id, c.function.name, c.function.arguments) for c in calls])

    def test_tool_results(self):
        asked = client().chat.completions.create(model=self.TOOLS, messages=WEATHER, tools=TOOLS)
        calls = asked.choices[0].message.tool_calls
        answers = {"get_weather": "18C and sunny", "get_time": "14:05"}
        conversation = [
            *WEATHER,
            asked.choices[0].message.model_dump(exclude_none=True),
            *[
                {"role": "tool", "tool_call_id": c.id, "content": answers[c.function.name]}
                for c in calls
            ],
        ]
        completion = client().chat.completions.create(
            model=self.TEXT, messages=conversation, tools=TOOLS
        )
        self.assertEqual(completion.choices[0].finish_reason, "stop")
        self.assertIn(f"Hello from {self.UPSTREAM}", completion.choices[0].message.content)

    def test_stream_broken_off(self):
        stream = client().chat.completions.create(model=self.BROKEN, messages=HELLO, stream=True)
        received = []
        with self.assertRaises(openai.APIError) as caught:
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        err = caught.exception
        # Raised from an event in the stream, not from a status: a plain APIError.
        self.assertNotIsInstance(err, openai.APIStatusError)
        self.assertNotIsInstance(err, openai.APIConnectionError)
        self.assertTrue(err.code, err.body)
        self.assertTrue(err.message)
        self.assertTrue("".join(received).strip(), received)
        return err


class ServedByAnthropic(Translated, unittest.TestCase):
    TEXT = "claude"
    TOOLS = "claude-tools"
    BROKEN = "claude-broken"
    UPSTREAM = "anthropic"


class ServedByGemini(Translated, unittest.TestCase):
    TEXT = "gemini"
    TOOLS = "gemini-tools"
    BROKEN = "gemini-broken"
    UPSTREAM = "gemini"

    def test_stream_broken_off(self):
        err = super().test_stream_broken_off()
        self.assertEqual(err.code, "upstream_stream_interrupted", err.body)


class Embeddings(unittest.TestCase):
    def assert_vectors(self, response, count):
        self.assertEqual(response.object, "list")
        self.assertEqual(len(response.data), count)
        lengths = {len(item.embedding) for item in response.data}
        self.assertEqual(len(lengths), 1, lengths)
        self.assertGreater(lengths.pop(), 0)
        for index, item in enumerate(response.data):
            self.assertEqual(item.index, index)
            self.assertTrue(all(isinstance(x, float) for x in item.embedding))
        self.assertGreater(response.usage.prompt_tokens, 0)

    def test_default_encoding(self):
        # Without `encoding_format` the SDK asks for base64 and decodes it into floats itself.
        response = client().embeddings.create(model="embed", input=["a", "b"])
        self.assert_vectors(response, 2)

    def test_float_encoding(self):
        floats = client().embeddings.create(
            model="embed", input=["a", "b"], encoding_format="float"
        )
        self.assert_vectors(floats, 2)
        decoded = client().embeddings.create(model="embed", input=["a", "b"])
        for f, d in zip(floats.data, decoded.data):
            for x, y in zip(f.embedding, d.embedding):
                self.assertAlmostEqual(x, y, places=6)

    def test_narrow_key(self):
        response = client(NARROW_KEY).embeddings.create(model="embed", input="one text")
        self.assert_vectors(response, 1)


class Models(unittest.TestCase):
    def test_list(self):
        ids = [model.id for model in client().models.list()]
        self.assertEqual(ids, ALIASES)

    def test_list_narrow(self):
        ids = [model.id for model in client(NARROW_KEY).models.list()]
        self.assertEqual(ids, ["embed"])

    def test_retrieve(self):
        model = client().models.retrieve("chat")
        self.assertEqual(model.id, "chat")
        self.assertEqual(model.object, "model")
        self.assertIsInstance(model.created, int)
        self.assertTrue(model.owned_by)

    def test_retrieve_unknown(self):
        with self.assertRaises(openai.NotFoundError):
            client().models.retrieve("no-such-model")

    def test_retrieve_not_allowed(self):
        # A key learns nothing of the models it may not use.
        with self.assertRaises(openai.NotFoundError):
            client(NARROW_KEY).models.retrieve("chat")


class Errors(unittest.TestCase):
    def assert_status(self, err, status, code):
        self.assertEqual(err.status_code, status)
        # The SDK reads `code`, `type` and `param` from the `error` object of the body.
        self.assertEqual(err.code, code, err.body)
        self.assertIsInstance(err.body, dict)
        self.assertTrue(err.body.get("message"))
        self.assertTrue(err.type)

    def test_wrong_key_fails_checksum(self):
        forged = "kg_live_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y"
        self.assertEqual(len(forged), len("kg_live_") + 49)
        with self.assertRaises(openai.AuthenticationError) as caught:
            client(forged).chat.completions.create(model="chat", messages=HELLO)
        self.assertEqual(caught.exception.status_code, 401)
        self.assertTrue(caught.exception.code)

    def test_garbage_key(self):
        for key in ["sk-not-a-keygate-key", "kg_live_short"]:
            with self.subTest(key=key), self.assertRaises(openai.AuthenticationError):
                client(key).models.list()

    def test_a_model_outside_the_scopes_is_denied(self):
        with self.assertRaises(openai.PermissionDeniedError) as caught:
            client(NARROW_KEY).chat.completions.create(model="chat", messages=HELLO)
        self.assert_status(caught.exception, 403, "scope_denied")
        self.assertEqual(caught.exception.param, "model")

    def test_unknown_model(self):
        with self.assertRaises(openai.NotFoundError) as caught:
            client().chat.completions.create(model="no-such-model", messages=HELLO)
        self.assert_status(caught.exception, 404, "model_not_found")

    def test_a_spent_quota_is_refused_at_once(self):
        # The quota is whole again only tomorrow: keygate says `x-should-retry: false`, and the
        # SDK raises at once even with retries allowed (the server counts one attempt).
        retrying = OpenAI(base_url=BASE_URL, api_key=SPENT_KEY, max_retries=3, timeout=30.0)
        with self.assertRaises(openai.RateLimitError) as caught:
            retrying.chat.completions.create(model="chat", messages=HELLO)
        self.assert_status(caught.exception, 429, "quota_exhausted")
        headers = caught.exception.response.headers
        self.assertEqual(headers.get("x-should-retry"), "false")
        self.assertIsNotNone(headers.get("retry-after"))

    def test_rate_limited(self):
        with self.assertRaises(openai.RateLimitError) as caught:
            client().chat.completions.create(model="limited", messages=HELLO)
        self.assert_status(caught.exception, 429, "upstream_rate_limited")
        self.assertIsNotNone(caught.exception.response.headers.get("retry-after"))

    def test_unsupported_by_the_target(self):
        # Refused by name before anything is sent, rather than dropped.
        cases = [
            ("claude", {"n": 2}, "n"),
            ("gemini-tools", {"tools": TOOLS, "parallel_tool_calls": False}, "parallel_tool_calls"),
        ]
        for model, extra, param in cases:
            with self.subTest(model=model), self.assertRaises(openai.BadRequestError) as caught:
                client().chat.completions.create(model=model, messages=HELLO, **extra)
            self.assert_status(caught.exception, 400, "unsupported_feature")
            self.assertEqual(caught.exception.param, param)

    def test_stream_broken_off(self):
        stream = client().chat.completions.create(model="broken", messages=HELLO, stream=True)
        received = []
        with self.assertRaises(openai.APIError) as caught:
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        err = caught.exception
        # Raised from an event in the stream, not from a status: a plain APIError.
        self.assertNotIsInstance(err, openai.APIStatusError)
        self.assertNotIsInstance(err, openai.APIConnectionError)
        self.assertEqual(err.code, "upstream_stream_interrupted", err.body)
        self.assertTrue(err.message)
        # The chunks before the break reached the client.
        self.assertEqual(len(received), 2, received)
        self.assertTrue("".join(received).strip())


if __name__ == "__main__":
    unittest.main(verbosity=2)
