"""The official Anthropic Python SDK, unchanged, against keygate's gateway.

crates/keygate/tests/anthropic_sdk.rs starts keygate with a mock Anthropic, OpenAI and Gemini
upstream, then runs this suite with:

- KEYGATE_ORIGIN: the gateway, such as http://127.0.0.1:PORT (the SDK appends /v1/messages)
- KEYGATE_KEY: a keygate key with the scope `models:*`
- KEYGATE_NARROW_KEY: a keygate key with the scope `models:gpt` only
- KEYGATE_REFUSED_MARKER: text to put only in requests keygate must refuse; the Rust side
  checks that no upstream saw it

The model aliases come in three families, one per upstream: `claude*` (Anthropic), `gpt*`
(OpenAI) and `gemini*` (Gemini). In each, the bare name answers "Hello from <upstream> ...",
`-tools` answers with two parallel tool calls (get_weather, get_time), `-maxtokens` stops at
max_tokens (not for OpenAI, whose mock has no such model) and `-broken` breaks its stream off
(`claude-broken` with an `error` event, the others by closing the connection). `claude-cut`
also closes the connection mid-stream, and `claude-limited` and `claude-limited-stream` are
always rate limited upstream.

Every client has `max_retries=0`, so each error the SDK raises is keygate's first answer.
"""

import asyncio
import os
import unittest

import anthropic
from anthropic import Anthropic, AsyncAnthropic

ORIGIN = os.environ["KEYGATE_ORIGIN"]
KEY = os.environ["KEYGATE_KEY"]
NARROW_KEY = os.environ["KEYGATE_NARROW_KEY"]
REFUSED_MARKER = os.environ["KEYGATE_REFUSED_MARKER"]

ALIASES = sorted(
    [
        "claude",
        "claude-broken",
        "claude-cut",
        "claude-limited",
        "claude-limited-stream",
        "claude-maxtokens",
        "claude-tools",
        "gemini",
        "gemini-broken",
        "gemini-maxtokens",
        "gemini-tools",
        "gpt",
        "gpt-broken",
        "gpt-tools",
    ]
)
SYSTEM = "Answer in one short sentence."
HELLO = [{"role": "user", "content": "Say hello"}]
WEATHER = [{"role": "user", "content": "Weather and time in Paris?"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    {
        "name": "get_time",
        "description": "The current time in a time zone.",
        "input_schema": {
            "type": "object",
            "properties": {"timezone": {"type": "string"}},
            "required": ["timezone"],
        },
    },
]
EXPECTED_CALLS = [
    ("get_weather", {"city": "Paris"}),
    ("get_time", {"timezone": "Europe/Paris"}),
]
# A 1x1 PNG.
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
    "RU5ErkJggg=="
)


def client(key=KEY):
    """A client as an application would make one, pointed at keygate; no retries, so a
    failure is never hidden by a second attempt, and a timeout so nothing hangs the suite."""
    return Anthropic(base_url=ORIGIN, api_key=key, max_retries=0, timeout=30.0)


def keygate_code(err):
    """keygate's stable code, beside Anthropic's `type` in the `error` object."""
    body = err.body if isinstance(err.body, dict) else {}
    return (body.get("error") or {}).get("code")


class Family:
    """The cases every upstream must pass, whatever speaks to it. A subclass names its aliases
    and the upstream mock's name, which the default answer contains."""

    TEXT: str
    TOOLS: str
    UPSTREAM: str

    def assert_greeting(self, message):
        self.assertEqual(message.type, "message")
        self.assertEqual(message.role, "assistant")
        self.assertTrue(message.id)
        self.assertIsInstance(message.model, str)
        self.assertTrue(message.model)
        self.assertEqual([block.type for block in message.content], ["text"], message)
        self.assertIn(f"Hello from {self.UPSTREAM}", message.content[0].text)
        self.assertEqual(message.stop_reason, "end_turn")
        self.assertGreater(message.usage.input_tokens, 0)
        self.assertGreater(message.usage.output_tokens, 0)

    def assert_tool_calls(self, message):
        self.assertEqual(message.stop_reason, "tool_use", message)
        calls = [block for block in message.content if block.type == "tool_use"]
        self.assertEqual(
            [(call.name, call.input) for call in calls], EXPECTED_CALLS, message.content
        )
        ids = [call.id for call in calls]
        self.assertTrue(all(ids), ids)
        self.assertEqual(len(set(ids)), 2, ids)
        return calls

    def test_create(self):
        message = client().messages.create(model=self.TEXT, max_tokens=64, messages=HELLO)
        self.assert_greeting(message)

    def test_system_prompt_and_several_turns(self):
        message = client().messages.create(
            model=self.TEXT,
            max_tokens=64,
            system=SYSTEM,
            messages=[
                {"role": "user", "content": "Hi, I am Ada."},
                {"role": "assistant", "content": "Hello Ada."},
                {"role": "user", "content": [{"type": "text", "text": "Say hello again"}]},
            ],
        )
        self.assert_greeting(message)

    def test_system_prompt_as_blocks(self):
        message = client().messages.create(
            model=self.TEXT,
            max_tokens=64,
            system=[{"type": "text", "text": SYSTEM}],
            messages=HELLO,
        )
        self.assert_greeting(message)

    def test_raw_stream_events_in_order(self):
        stream = client().messages.create(
            model=self.TEXT, max_tokens=64, messages=HELLO, stream=True
        )
        events = list(stream)
        kinds = [event.type for event in events]
        self.assertEqual(kinds[0], "message_start", kinds)
        self.assertEqual(kinds[-2:], ["message_delta", "message_stop"], kinds)
        self.assertEqual(kinds[1], "content_block_start", kinds)
        self.assertIn("content_block_delta", kinds)
        self.assertEqual(kinds.count("content_block_start"), kinds.count("content_block_stop"))
        self.assertLess(kinds.index("content_block_stop"), kinds.index("message_delta"))
        start = events[0].message
        self.assertEqual(start.role, "assistant")
        self.assertEqual(start.content, [])
        self.assertTrue(start.id)
        delta = events[-2]
        self.assertEqual(delta.delta.stop_reason, "end_turn")
        self.assertGreater(delta.usage.output_tokens, 0)

    def test_stream_helper(self):
        with client().messages.stream(
            model=self.TEXT, max_tokens=64, system=SYSTEM, messages=HELLO
        ) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        self.assertGreater(len(pieces), 1, pieces)
        self.assert_greeting(final)
        self.assertEqual("".join(pieces), final.content[0].text)

    def test_tools(self):
        message = client().messages.create(
            model=self.TOOLS,
            max_tokens=256,
            messages=WEATHER,
            tools=TOOLS,
            tool_choice={"type": "auto"},
        )
        self.assert_tool_calls(message)

    def test_tools_streamed(self):
        # The helper joins each call's `partial_json` pieces into its `input`.
        with client().messages.stream(
            model=self.TOOLS, max_tokens=256, messages=WEATHER, tools=TOOLS
        ) as stream:
            events = list(stream)
            final = stream.get_final_message()
        kinds = [event.type for event in events]
        self.assertIn("input_json", kinds)
        self.assertEqual(kinds[-1], "message_stop")
        calls = self.assert_tool_calls(final)
        stops = [e for e in events if e.type == "content_block_stop"]
        done = [e.content_block for e in stops if e.content_block.type == "tool_use"]
        self.assertEqual([(c.name, c.input) for c in done], [(c.name, c.input) for c in calls])

    def test_tool_results(self):
        calls = client().messages.create(
            model=self.TOOLS, max_tokens=256, messages=WEATHER, tools=TOOLS
        )
        self.assert_tool_calls(calls)
        answers = {"get_weather": "18C and sunny", "get_time": "14:05"}
        results = [
            {"type": "tool_result", "tool_use_id": block.id, "content": answers[block.name]}
            for block in calls.content
            if block.type == "tool_use"
        ]
        # As the SDK's documentation does: the assistant turn is the answer's content as is.
        message = client().messages.create(
            model=self.TEXT,
            max_tokens=64,
            tools=TOOLS,
            messages=[
                *WEATHER,
                {"role": "assistant", "content": calls.content},
                {"role": "user", "content": results},
            ],
        )
        self.assert_greeting(message)

    def test_tool_results_as_blocks_streamed(self):
        with client().messages.stream(
            model=self.TOOLS, max_tokens=256, messages=WEATHER, tools=TOOLS
        ) as stream:
            calls = self.assert_tool_calls(stream.get_final_message())
        assistant = [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in calls
        ]
        results = [
            {
                "type": "tool_result",
                "tool_use_id": calls[0].id,
                "content": [{"type": "text", "text": "18C and sunny"}],
            },
            {
                "type": "tool_result",
                "tool_use_id": calls[1].id,
                "content": "no clock here",
                "is_error": True,
            },
        ]
        with client().messages.stream(
            model=self.TEXT,
            max_tokens=64,
            tools=TOOLS,
            messages=[
                *WEATHER,
                {"role": "assistant", "content": assistant},
                {"role": "user", "content": results},
            ],
        ) as stream:
            final = stream.get_final_message()
        self.assert_greeting(final)

    def test_image(self):
        message = client().messages.create(
            model=self.TEXT,
            max_tokens=64,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                        },
                        {"type": "text", "text": "What is in this picture?"},
                    ],
                }
            ],
        )
        self.assert_greeting(message)

    def test_count_tokens(self):
        # Exact from an Anthropic deployment, estimated for the others: a count either way.
        count = client().messages.count_tokens(
            model=self.TEXT, system="Be brief.", messages=HELLO
        )
        self.assertGreater(count.input_tokens, 0)

    def test_async(self):
        async def run():
            async with AsyncAnthropic(
                base_url=ORIGIN, api_key=KEY, max_retries=0, timeout=30.0
            ) as aclient:
                message = await aclient.messages.create(
                    model=self.TEXT, max_tokens=64, messages=HELLO
                )
                async with aclient.messages.stream(
                    model=self.TOOLS, max_tokens=256, messages=WEATHER, tools=TOOLS
                ) as stream:
                    texts = [text async for text in stream.text_stream]
                    final = await stream.get_final_message()
                return message, texts, final

        message, texts, final = asyncio.run(run())
        self.assert_greeting(message)
        self.assertEqual(texts, [])
        self.assert_tool_calls(final)


class MaxTokens:
    """For upstreams whose mock has a model that stops at max_tokens."""

    MAXTOKENS: str

    def test_max_tokens(self):
        message = client().messages.create(model=self.MAXTOKENS, max_tokens=3, messages=HELLO)
        self.assertEqual(message.stop_reason, "max_tokens", message)
        self.assertTrue(message.content[0].text)

    def test_max_tokens_streamed(self):
        with client().messages.stream(
            model=self.MAXTOKENS, max_tokens=3, messages=HELLO
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        self.assertTrue(text)
        self.assertEqual(final.stop_reason, "max_tokens", final)


class ServedByAnthropic(Family, MaxTokens, unittest.TestCase):
    TEXT = "claude"
    TOOLS = "claude-tools"
    MAXTOKENS = "claude-maxtokens"
    UPSTREAM = "anthropic"


class ServedByOpenAi(Family, unittest.TestCase):
    TEXT = "gpt"
    TOOLS = "gpt-tools"
    UPSTREAM = "openai"


class ServedByGemini(Family, MaxTokens, unittest.TestCase):
    TEXT = "gemini"
    TOOLS = "gemini-tools"
    MAXTOKENS = "gemini-maxtokens"
    UPSTREAM = "gemini"


class Models(unittest.TestCase):
    def test_list(self):
        ids = [model.id for model in client().models.list()]
        self.assertEqual(ids, ALIASES)

    def test_list_narrow(self):
        ids = [model.id for model in client(NARROW_KEY).models.list()]
        self.assertEqual(ids, ["gpt"])

    def test_retrieve(self):
        model = client().models.retrieve("claude")
        self.assertEqual(model.id, "claude")
        self.assertEqual(model.type, "model")
        self.assertTrue(model.display_name)

    def test_retrieve_unknown(self):
        with self.assertRaises(anthropic.NotFoundError):
            client().models.retrieve("no-such-model")


class Errors(unittest.TestCase):
    def assert_error(self, err, status, kind, code):
        self.assertEqual(err.status_code, status)
        self.assertIsInstance(err.body, dict, err.body)
        self.assertEqual(err.body.get("type"), "error", err.body)
        self.assertEqual(err.type, kind, err.body)
        self.assertEqual(keygate_code(err), code, err.body)
        self.assertTrue(err.api_message, err.body)

    def test_forged_key(self):
        forged = "kg_live_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y"
        with self.assertRaises(anthropic.AuthenticationError) as caught:
            client(forged).messages.create(model="claude", max_tokens=16, messages=HELLO)
        self.assertEqual(caught.exception.status_code, 401)
        self.assertEqual(caught.exception.type, "authentication_error")
        self.assertTrue(keygate_code(caught.exception))

    def test_garbage_key(self):
        for key in ["sk-ant-not-a-keygate-key", "kg_live_short"]:
            with self.subTest(key=key), self.assertRaises(anthropic.AuthenticationError):
                client(key).messages.create(model="claude", max_tokens=16, messages=HELLO)

    def test_key_in_x_api_key(self):
        # This SDK sends `api_key` as a bearer token; others send it in `x-api-key`.
        message = client().messages.create(
            model="claude",
            max_tokens=16,
            messages=HELLO,
            extra_headers={"Authorization": anthropic.omit, "x-api-key": KEY},
        )
        self.assertEqual(message.stop_reason, "end_turn")

    def test_unknown_model(self):
        with self.assertRaises(anthropic.NotFoundError) as caught:
            client().messages.create(model="no-such-model", max_tokens=16, messages=HELLO)
        self.assert_error(caught.exception, 404, "not_found_error", "model_not_found")

    def test_a_model_outside_the_scopes_is_denied(self):
        with self.assertRaises(anthropic.PermissionDeniedError) as caught:
            client(NARROW_KEY).messages.create(model="claude", max_tokens=16, messages=HELLO)
        self.assert_error(caught.exception, 403, "permission_error", "scope_denied")

    def test_narrow_key_on_its_model(self):
        message = client(NARROW_KEY).messages.create(model="gpt", max_tokens=16, messages=HELLO)
        self.assertEqual(message.stop_reason, "end_turn")

    def test_rate_limited(self):
        with self.assertRaises(anthropic.RateLimitError) as caught:
            client().messages.create(model="claude-limited", max_tokens=16, messages=HELLO)
        self.assert_error(caught.exception, 429, "rate_limit_error", "upstream_rate_limited")
        self.assertIsNotNone(caught.exception.response.headers.get("retry-after"))

    def test_rate_limited_stream(self):
        # Refused before the first event: raised when the stream opens, with the status.
        with self.assertRaises(anthropic.RateLimitError) as caught:
            with client().messages.stream(
                model="claude-limited-stream", max_tokens=16, messages=HELLO
            ) as stream:
                stream.get_final_message()
        self.assert_error(caught.exception, 429, "rate_limit_error", "upstream_rate_limited")

    def test_document_to_gemini(self):
        with self.assertRaises(anthropic.BadRequestError) as caught:
            client().messages.create(
                model="gemini",
                max_tokens=16,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {
                                    "type": "text",
                                    "media_type": "text/plain",
                                    "data": REFUSED_MARKER,
                                },
                            },
                            {"type": "text", "text": "Summarise this"},
                        ],
                    }
                ],
            )
        self.assert_error(caught.exception, 400, "invalid_request_error", "unsupported_feature")
        self.assertIn("document", caught.exception.api_message)

    def test_top_k_to_openai(self):
        # This SDK version has no `top_k` argument; the API still takes the field.
        with self.assertRaises(anthropic.BadRequestError) as caught:
            client().messages.create(
                model="gpt",
                max_tokens=16,
                messages=[{"role": "user", "content": REFUSED_MARKER}],
                extra_body={"top_k": 5},
            )
        self.assert_error(caught.exception, 400, "invalid_request_error", "unsupported_feature")
        self.assertIn("top_k", caught.exception.api_message)

    def assert_broken_stream(self, model, code=None):
        """Reads a stream that breaks off: the SDK raises from the `error` event keygate ends
        it with, after the text that came before."""
        received = []
        with self.assertRaises(anthropic.APIError) as caught:
            with client().messages.stream(model=model, max_tokens=64, messages=HELLO) as stream:
                for text in stream.text_stream:
                    received.append(text)
        err = caught.exception
        # Raised from an event of a stream that opened with 200, not from a status.
        self.assertIsInstance(err, anthropic.APIStatusError)
        self.assertEqual(err.status_code, 200)
        self.assertNotIsInstance(err, anthropic.APIConnectionError)
        self.assertIsInstance(err.body, dict, err.body)
        self.assertEqual(err.body.get("type"), "error", err.body)
        self.assertTrue(err.api_message, err.body)
        if code is not None:
            self.assertEqual(keygate_code(err), code, err.body)
        self.assertEqual(len(received), 2, received)
        self.assertTrue("".join(received).strip())
        return err

    def test_stream_error_event_from_anthropic(self):
        err = self.assert_broken_stream("claude-broken")
        self.assertEqual(err.type, "overloaded_error", err.body)

    def test_stream_cut_at_anthropic(self):
        self.assert_broken_stream("claude-cut", "upstream_stream_interrupted")

    def test_stream_cut_at_openai(self):
        self.assert_broken_stream("gpt-broken", "upstream_stream_interrupted")

    def test_stream_cut_at_gemini(self):
        self.assert_broken_stream("gemini-broken", "upstream_stream_interrupted")

    def test_raw_stream_cut(self):
        stream = client().messages.create(
            model="gpt-broken", max_tokens=64, messages=HELLO, stream=True
        )
        kinds = []
        with self.assertRaises(anthropic.APIStatusError) as caught:
            for event in stream:
                kinds.append(event.type)
        self.assertEqual(keygate_code(caught.exception), "upstream_stream_interrupted")
        self.assertEqual(kinds[0], "message_start", kinds)
        self.assertNotIn("message_stop", kinds)

    def test_async_stream_cut(self):
        async def run():
            async with AsyncAnthropic(
                base_url=ORIGIN, api_key=KEY, max_retries=0, timeout=30.0
            ) as aclient:
                async with aclient.messages.stream(
                    model="gpt-broken", max_tokens=64, messages=HELLO
                ) as stream:
                    async for _ in stream.text_stream:
                        pass

        with self.assertRaises(anthropic.APIStatusError) as caught:
            asyncio.run(run())
        self.assertEqual(keygate_code(caught.exception), "upstream_stream_interrupted")


if __name__ == "__main__":
    unittest.main(verbosity=2)
