"""The official OpenAI Python SDK's Responses API (`client.responses`), unchanged, against
keygate's gateway.

crates/keygate/tests/openai_sdk.rs starts keygate with mock OpenAI, Anthropic and Gemini
upstreams and runs this suite with KEYGATE_BASE_URL, KEYGATE_KEY (scope `models:*`) and
KEYGATE_NARROW_KEY (scope `models:embed`), and KEYGATE_OTHER_KEY, a key of another project. The aliases: `chat` and `tools` are served by the
OpenAI mock's own Responses API (the request passed on as sent); `compat` and `compat-tools` by
the same mock as a chat-only OpenAI-compatible server, and `claude`, `claude-tools`, `gemini`
and `gemini-tools` by the Anthropic and Gemini mocks — all three translated. A `*-tools`
upstream answers with parallel calls of get_weather and get_time.
"""

import json
import os
import unittest

import openai
from openai import OpenAI

BASE_URL = os.environ["KEYGATE_BASE_URL"]
KEY = os.environ["KEYGATE_KEY"]
NARROW_KEY = os.environ["KEYGATE_NARROW_KEY"]
OTHER_KEY = os.environ["KEYGATE_OTHER_KEY"]

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    {
        "type": "function",
        "name": "get_time",
        "description": "The current time in a time zone.",
        "parameters": {
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
CONVERSATION = [
    {"role": "user", "content": "Hi, I am Ada."},
    {"role": "assistant", "content": "Hello Ada."},
    {"role": "user", "content": [{"type": "input_text", "text": "Say hello again"}]},
]


def client(key=KEY):
    """No retries, so each error the SDK raises is keygate's first answer."""
    return OpenAI(base_url=BASE_URL, api_key=key, max_retries=0, timeout=30.0)


class Served:
    """Text, multi-turn input, tools and their outputs, streamed and not, through one kind of
    deployment. A subclass names its aliases and the upstream mock's name, which its default
    answer contains."""

    TEXT: str
    TOOLS: str
    UPSTREAM: str
    # Whether the upstream reports usage in its streams (a chat-only server is not asked to).
    STREAM_USAGE = True

    def assert_usage(self, usage):
        self.assertIsNotNone(usage)
        self.assertGreater(usage.input_tokens, 0)
        self.assertGreater(usage.output_tokens, 0)
        self.assertEqual(usage.total_tokens, usage.input_tokens + usage.output_tokens)

    def assert_calls(self, response):
        calls = [item for item in response.output if item.type == "function_call"]
        self.assertEqual(len(calls), 2, response.output)
        for call, (name, arguments) in zip(calls, EXPECTED_CALLS):
            self.assertTrue(call.call_id)
            self.assertTrue(call.id)
            self.assertEqual(call.name, name)
            self.assertEqual(json.loads(call.arguments), arguments)
        self.assertNotEqual(calls[0].call_id, calls[1].call_id)
        return calls

    def test_text(self):
        response = client().responses.create(
            model=self.TEXT, instructions="Be brief.", input="Say hello", store=False
        )
        self.assertEqual(response.object, "response")
        self.assertTrue(response.id.startswith("resp_"), response.id)
        self.assertEqual(response.status, "completed")
        self.assertIn(f"Hello from {self.UPSTREAM}", response.output_text)
        messages = [item for item in response.output if item.type == "message"]
        self.assertEqual(len(messages), 1)
        self.assertEqual(messages[0].role, "assistant")
        self.assertEqual(messages[0].content[0].type, "output_text")
        self.assert_usage(response.usage)

    def test_multi_turn_input(self):
        response = client().responses.create(
            model=self.TEXT, input=CONVERSATION, max_output_tokens=64, store=False
        )
        self.assertEqual(response.status, "completed")
        # The Rust side checks that every turn reached the upstream.
        self.assertIn(f"Hello from {self.UPSTREAM}", response.output_text)

    def test_tools_and_their_outputs(self):
        ask = [{"role": "user", "content": "Weather and time in Paris?"}]
        first = client().responses.create(model=self.TOOLS, input=ask, tools=TOOLS, store=False)
        calls = self.assert_calls(first)
        self.assertEqual(first.output_text, "")
        # The calls go back as they came, each answered by its output.
        follow_up = ask + [
            {"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments}
            for c in calls
        ]
        follow_up += [
            {"type": "function_call_output", "call_id": c.call_id, "output": f"{c.name}: fine"}
            for c in calls
        ]
        second = client().responses.create(
            model=self.TEXT, input=follow_up, tools=TOOLS, store=False
        )
        self.assertEqual(second.status, "completed")
        self.assertIn(f"Hello from {self.UPSTREAM}", second.output_text)

    def test_stream(self):
        with client().responses.stream(model=self.TEXT, input="Say hello", store=False) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_response()
        self.assertEqual(kinds[0], "response.created")
        self.assertEqual(kinds[-1], "response.completed")
        self.assertGreater(kinds.count("response.output_text.delta"), 1, kinds)
        for kind in ["response.output_item.added", "response.output_text.done", "response.output_item.done"]:
            self.assertIn(kind, kinds)
        self.assertIn(f"Hello from {self.UPSTREAM}", final.output_text)
        if self.STREAM_USAGE:
            self.assert_usage(final.usage)
        else:
            self.assertIsNone(final.usage)

    def test_stream_of_tool_calls(self):
        with client().responses.stream(
            model=self.TOOLS, input="Weather and time in Paris?", tools=TOOLS, store=False
        ) as stream:
            deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
            final = stream.get_final_response()
        self.assertGreaterEqual(len(deltas), 2)
        self.assert_calls(final)

    def test_raw_event_stream(self):
        events = client().responses.create(
            model=self.TEXT, input="Say hello", stream=True, store=False
        )
        numbers, text = [], []
        for event in events:
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                text.append(event.delta)
        self.assertEqual(numbers, sorted(numbers))
        self.assertIn(f"Hello from {self.UPSTREAM}", "".join(text))


class ServedByOpenAi(Served, unittest.TestCase):
    TEXT = "chat"
    TOOLS = "tools"
    UPSTREAM = "up"

    def test_previous_response_id_is_keygates(self):
        # keygate keeps the answer and sends the whole conversation: OpenAI gets no id.
        first = client().responses.create(model=self.TEXT, input="Hi, I am Ada.")
        second = client().responses.create(
            model=self.TEXT, input="Say hello again", previous_response_id=first.id
        )
        self.assertEqual(second.status, "completed")
        self.assertIn("Say hello again", second.output_text)
        with self.assertRaises(openai.BadRequestError) as caught:
            client().responses.create(
                model=self.TEXT, input="Again", previous_response_id="resp_unknown"
            )
        self.assertEqual(caught.exception.param, "previous_response_id")
        self.assertEqual(caught.exception.code, "previous_response_not_found")

    def test_reasoning_items_pass_through(self):
        response = client().responses.create(
            model=self.TEXT,
            input=[
                {"role": "user", "content": "Hi"},
                {"type": "reasoning", "id": "rs_earlier", "summary": []},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Say hello"},
            ],
            store=False,
        )
        self.assertEqual(response.status, "completed")
        self.assertIn("reasoning", [item.type for item in response.output])

    def test_the_providers_own_refusals_reach_the_client(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().responses.create(model=self.TEXT, input="Hi", max_output_tokens=5)
        self.assertEqual(caught.exception.status_code, 400)
        self.assertEqual(caught.exception.param, "max_output_tokens")


class ServedByChatOnly(Served, unittest.TestCase):
    TEXT = "compat"
    TOOLS = "compat-tools"
    UPSTREAM = "up"
    STREAM_USAGE = False


class ServedByAnthropic(Served, unittest.TestCase):
    TEXT = "claude"
    TOOLS = "claude-tools"
    UPSTREAM = "anthropic"


class ServedByGemini(Served, unittest.TestCase):
    TEXT = "gemini"
    TOOLS = "gemini-tools"
    UPSTREAM = "gemini"


class Stored(unittest.TestCase):
    """Answers keygate keeps (`store` not false), per project: a conversation goes on with
    `previous_response_id` on any provider, even another than the one that answered first."""

    def test_a_conversation_goes_on_across_providers(self):
        first = client().responses.create(model="claude", input="Hi, I am Ada.")
        second = client().responses.create(
            model="gemini", input="What is my name?", previous_response_id=first.id
        )
        self.assertEqual(second.status, "completed")
        third = client().responses.create(
            model="chat", input="Say hello again", previous_response_id=second.id, store=False
        )
        self.assertEqual(third.status, "completed")
        # Not kept: `store` was false.
        with self.assertRaises(openai.NotFoundError):
            client().responses.retrieve(third.id)

    def test_streamed_answers_are_kept_too(self):
        # Translated (Anthropic's events) and passed on (OpenAI's own), each kept as it ended.
        for model, then in [("claude", "chat"), ("chat", "gemini")]:
            with self.subTest(model=model):
                with client().responses.stream(model=model, input="Hi, I am Ada.") as stream:
                    final = stream.get_final_response()
                kept = client().responses.retrieve(final.id)
                self.assertEqual(kept.output_text, final.output_text)
                follow = client().responses.create(
                    model=then, input="Again", previous_response_id=final.id, store=False
                )
                self.assertEqual(follow.status, "completed")

    def test_input_items_of_a_kept_answer(self):
        first = client().responses.create(model="claude", input="Hi, I am Ada.")
        second = client().responses.create(
            model="gemini", input="What is my name?", previous_response_id=first.id
        )
        items = client().responses.input_items.list(second.id)
        # Newest first: the question, the first answer, the first turn.
        self.assertEqual(len(items.data), 3, items.data)
        self.assertEqual(items.data[0].type, "message")
        self.assertEqual(items.data[0].role, "user")
        self.assertEqual(items.data[0].content[0].text, "What is my name?")
        self.assertEqual(items.data[1].role, "assistant")
        self.assertEqual(items.data[2].content[0].text, "Hi, I am Ada.")
        # Paged by id, in either order, through the SDK's own iteration.
        ascending = list(client().responses.input_items.list(second.id, order="asc", limit=1))
        self.assertEqual([i.id for i in ascending], [i.id for i in reversed(items.data)])
        with self.assertRaises(openai.NotFoundError):
            client(OTHER_KEY).responses.input_items.list(second.id)
        with self.assertRaises(openai.BadRequestError) as caught:
            client().responses.input_items.list(second.id, limit=1000)
        self.assertEqual(caught.exception.param, "limit")

    def test_retrieve_and_delete(self):
        created = client().responses.create(model="claude", input="Say hello")
        kept = client().responses.retrieve(created.id)
        self.assertEqual(kept.id, created.id)
        self.assertEqual(kept.output_text, created.output_text)
        # A key without the alias's scope, and another project's key, see nothing of it.
        for key in [NARROW_KEY, OTHER_KEY]:
            with self.assertRaises(openai.NotFoundError):
                client(key).responses.retrieve(created.id)
            with self.assertRaises(openai.NotFoundError):
                client(key).responses.delete(created.id)
        with self.assertRaises(openai.NotFoundError) as caught:
            client(OTHER_KEY).responses.retrieve(created.id)
        self.assertEqual(caught.exception.code, "response_not_found")
        with self.assertRaises(openai.BadRequestError) as caught:
            client(OTHER_KEY).responses.create(
                model="claude", input="Go on", previous_response_id=created.id
            )
        self.assertEqual(caught.exception.code, "previous_response_not_found")
        self.assertEqual(caught.exception.param, "previous_response_id")
        client().responses.delete(created.id)
        with self.assertRaises(openai.NotFoundError):
            client().responses.retrieve(created.id)
        with self.assertRaises(openai.BadRequestError):
            client().responses.create(
                model="claude", input="Go on", previous_response_id=created.id
            )


class Errors(unittest.TestCase):
    def assert_status(self, err, status, code):
        self.assertEqual(err.status_code, status)
        self.assertEqual(err.code, code, err.body)
        self.assertTrue(err.body.get("message"))

    def test_unknown_model(self):
        with self.assertRaises(openai.NotFoundError) as caught:
            client().responses.create(model="no-such-model", input="Hi")
        self.assert_status(caught.exception, 404, "model_not_found")

    def test_a_model_outside_the_scopes_is_denied(self):
        with self.assertRaises(openai.PermissionDeniedError) as caught:
            client(NARROW_KEY).responses.create(model="chat", input="Hi")
        self.assert_status(caught.exception, 403, "scope_denied")

    def test_what_another_provider_cannot_say_is_refused_by_name(self):
        cases = [
            # A hosted tool merely offered is left out; one the request requires is refused.
            ("claude", {"tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}},
             "tool_choice.type"),
            ("compat", {"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}},
             "text.format.type"),
        ]
        for model, extra, param in cases:
            with self.subTest(model=model), self.assertRaises(openai.BadRequestError) as caught:
                client().responses.create(model=model, input="Hi", **extra)
            self.assert_status(caught.exception, 400, "unsupported_feature")
            self.assertEqual(caught.exception.param, param)

    def test_a_hosted_tool_merely_offered_is_left_out(self):
        response = client().responses.create(
            model="claude", input="Say hello", tools=[{"type": "web_search"}] + TOOLS, store=False
        )
        self.assertEqual(response.status, "completed")

    def test_input_is_required(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().post("/responses", body={"model": "chat"}, cast_to=object)
        self.assertEqual(caught.exception.param, "input")


if __name__ == "__main__":
    unittest.main()
