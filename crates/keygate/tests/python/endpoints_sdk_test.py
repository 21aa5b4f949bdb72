"""The official OpenAI Python SDK's helpers for OpenAI's endpoints beyond chat, unchanged,
against keygate's gateway: legacy completions, moderations, image generation, speech,
transcription, and embeddings served by Gemini.

crates/keygate/tests/openai_sdk.rs starts keygate with mock upstreams and runs this suite with
KEYGATE_BASE_URL, KEYGATE_KEY (scope `models:*`) and KEYGATE_NARROW_KEY (scope
`models:embed`). The aliases: `instruct` (gpt-3.5-turbo-instruct), `moderation`
(omni-moderation-latest), `image` (gpt-image-1), `dalle` (dall-e-3), `speech` (tts-1), `voice`
(gpt-4o-mini-tts), `whisper` (whisper-1) and `transcribe` (gpt-4o-mini-transcribe) are served
by the OpenAI mock, whose name is `up`; `claude` by the Anthropic mock, which serves none of
these; `gemini-embed` (gemini-embedding-001) by the Gemini mock.
"""

import base64
import os
import unittest

import openai
from openai import OpenAI

BASE_URL = os.environ["KEYGATE_BASE_URL"]
KEY = os.environ["KEYGATE_KEY"]
NARROW_KEY = os.environ["KEYGATE_NARROW_KEY"]

# The mock's image: a 1x1 PNG.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def client(key=KEY):
    """No retries, so each error the SDK raises is keygate's first answer."""
    return OpenAI(base_url=BASE_URL, api_key=key, max_retries=0, timeout=30.0)


def speech_audio(text):
    """The audio the mock speaks for `text` (see keygate-testkit's `speech_audio`)."""
    audio = bytearray(b"ID3\x04\x00\x00\x00\x00\x00\x00")
    while len(audio) < 48 * 1024:
        audio += text.encode() + b"\n"
    return bytes(audio[: 48 * 1024])


class Completions(unittest.TestCase):
    def test_a_completion(self):
        completion = client().completions.create(
            model="instruct", prompt="Say this is a test", max_tokens=16
        )
        self.assertEqual(completion.object, "text_completion")
        self.assertEqual(completion.model, "gpt-3.5-turbo-instruct")
        self.assertIn("Completed by up.", completion.choices[0].text)
        self.assertEqual(completion.choices[0].finish_reason, "stop")
        self.assertGreater(completion.usage.prompt_tokens, 0)
        self.assertGreater(completion.usage.completion_tokens, 0)

    def test_a_streamed_completion(self):
        stream = client().completions.create(
            model="instruct",
            prompt=["Say this", "is a test"],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        self.assertEqual(text, " Completed by up.")
        self.assertGreater(len([c for c in chunks if c.choices]), 1)
        self.assertIsNotNone(chunks[-1].usage)
        self.assertGreater(chunks[-1].usage.completion_tokens, 0)

    def test_without_usage_asked_none_is_sent(self):
        stream = client().completions.create(model="instruct", prompt="Hi", stream=True)
        chunks = list(stream)
        self.assertTrue(all(c.usage is None for c in chunks), chunks)
        self.assertTrue(all(c.choices for c in chunks))

    def test_a_provider_without_the_endpoint_is_a_clear_400(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().completions.create(model="claude", prompt="Hi")
        error = caught.exception.body
        self.assertEqual(error["code"], "unsupported_endpoint")
        self.assertEqual(error["param"], "model")
        self.assertIn("anthropic deployments do not serve /v1/completions", error["message"])


class Moderations(unittest.TestCase):
    def test_text_is_moderated(self):
        result = client().moderations.create(
            model="moderation", input=["a quiet afternoon", "graphic violence"]
        )
        self.assertEqual(result.model, "omni-moderation-latest")
        self.assertEqual(len(result.results), 2)
        self.assertFalse(result.results[0].flagged)
        self.assertTrue(result.results[1].flagged)
        self.assertTrue(result.results[1].categories.violence)
        self.assertGreater(result.results[1].category_scores.violence, 0.9)

    def test_a_moderation_does_not_stream(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().moderations.create(
                model="moderation", input="hi", extra_body={"stream": True}
            )
        self.assertEqual(caught.exception.body["param"], "stream")


class Images(unittest.TestCase):
    def test_an_image_as_base64_with_usage(self):
        image = client().images.generate(model="image", prompt="a lighthouse at dawn")
        self.assertEqual(image.data[0].b64_json, PNG_1X1)
        self.assertTrue(base64.b64decode(image.data[0].b64_json).startswith(b"\x89PNG"))
        self.assertGreater(image.usage.input_tokens, 0)
        self.assertGreater(image.usage.output_tokens, 0)

    def test_images_as_urls(self):
        images = client().images.generate(
            model="dalle", prompt="a lighthouse", n=2, response_format="url"
        )
        self.assertEqual(len(images.data), 2)
        self.assertTrue(images.data[0].url.startswith("https://"))
        self.assertIn("drawn by up", images.data[0].revised_prompt)

    def test_partial_images_stream(self):
        stream = client().images.generate(
            model="image", prompt="a lighthouse", stream=True, partial_images=2
        )
        events = list(stream)
        kinds = [e.type for e in events]
        self.assertEqual(
            kinds,
            [
                "image_generation.partial_image",
                "image_generation.partial_image",
                "image_generation.completed",
            ],
        )
        self.assertEqual(events[1].partial_image_index, 1)
        self.assertEqual(events[-1].b64_json, PNG_1X1)
        self.assertGreater(events[-1].usage.total_tokens, 0)

    def test_what_the_upstream_refuses_comes_back_as_it_said(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().images.generate(model="dalle", prompt="x", n=11)
        self.assertEqual(caught.exception.body["param"], "n")


class Speech(unittest.TestCase):
    def test_audio_streams_back_whole(self):
        text = "The quick brown fox jumped over the lazy dog."
        with client().audio.speech.with_streaming_response.create(
            model="speech", voice="alloy", input=text
        ) as response:
            self.assertEqual(response.headers["content-type"], "audio/mpeg")
            pieces = list(response.iter_bytes())
        self.assertEqual(b"".join(pieces), speech_audio(text))

    def test_another_format(self):
        audio = client().audio.speech.create(
            model="speech", voice="nova", input="Hello", response_format="wav"
        )
        self.assertEqual(audio.response.headers["content-type"], "audio/wav")
        self.assertEqual(audio.content, speech_audio("Hello"))

    def test_audio_as_events(self):
        text = "Events, please."
        with client().audio.speech.with_streaming_response.create(
            model="voice", voice="coral", input=text, stream_format="sse"
        ) as response:
            body = response.read().decode()
        events = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
        self.assertGreater(len(events), 2)
        self.assertIn('"speech.audio.done"', events[-1])

    def test_a_bad_voice_is_the_upstreams_400(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().audio.speech.create(model="speech", voice="robot", input="Hi")
        self.assertEqual(caught.exception.body["param"], "voice")

    def test_a_narrow_key_is_refused(self):
        with self.assertRaises(openai.PermissionDeniedError) as caught:
            client(NARROW_KEY).audio.speech.create(model="speech", voice="alloy", input="Hi")
        self.assertEqual(caught.exception.body["code"], "scope_denied")


class Transcriptions(unittest.TestCase):
    AUDIO = bytes(range(256)) * 300

    def test_a_transcript(self):
        transcript = client().audio.transcriptions.create(
            model="transcribe", file=("hello.wav", self.AUDIO), language="en"
        )
        self.assertEqual(transcript.text, f"Heard {len(self.AUDIO)} bytes of hello.wav at up.")
        self.assertEqual(transcript.usage.type, "tokens")
        self.assertGreater(transcript.usage.input_tokens, 0)

    def test_a_transcript_as_text_and_as_subtitles(self):
        text = client().audio.transcriptions.create(
            model="whisper", file=("hello.mp3", self.AUDIO), response_format="text"
        )
        self.assertEqual(text.strip(), f"Heard {len(self.AUDIO)} bytes of hello.mp3 at up.")
        srt = client().audio.transcriptions.create(
            model="whisper", file=("hello.mp3", self.AUDIO), response_format="srt"
        )
        self.assertTrue(srt.startswith("1\n00:00:00,000"), srt)
        verbose = client().audio.transcriptions.create(
            model="whisper", file=("hello.mp3", self.AUDIO), response_format="verbose_json"
        )
        self.assertEqual(verbose.segments[0].id, 0)

    def test_a_streamed_transcript(self):
        stream = client().audio.transcriptions.create(
            model="transcribe", file=("hello.wav", self.AUDIO), stream=True
        )
        events = list(stream)
        deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
        done = events[-1]
        self.assertEqual(done.type, "transcript.text.done")
        self.assertEqual(deltas, done.text)
        self.assertGreater(done.usage.input_tokens, 0)

    def test_an_unsupported_file_is_the_upstreams_400(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().audio.transcriptions.create(model="whisper", file=("notes.txt", b"hello"))
        self.assertEqual(caught.exception.body["param"], "file")

    def test_a_provider_without_the_endpoint_is_a_clear_400(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().audio.transcriptions.create(model="claude", file=("a.wav", b"RIFF"))
        self.assertEqual(caught.exception.body["code"], "unsupported_endpoint")


class GeminiEmbeddings(unittest.TestCase):
    def test_embeddings_in_the_sdks_default_base64(self):
        result = client().embeddings.create(model="gemini-embed", input=["hello", "world"])
        self.assertEqual(result.object, "list")
        self.assertEqual([d.index for d in result.data], [0, 1])
        self.assertEqual(len(result.data[0].embedding), 8)
        self.assertTrue(all(isinstance(v, float) for v in result.data[0].embedding))
        self.assertGreater(result.usage.prompt_tokens, 0)

    def test_embeddings_as_floats_with_dimensions(self):
        result = client().embeddings.create(
            model="gemini-embed", input="hello", dimensions=4, encoding_format="float"
        )
        self.assertEqual(len(result.data[0].embedding), 4)

    def test_token_arrays_are_a_clear_400(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            client().embeddings.create(model="gemini-embed", input=[[1, 2, 3]])
        self.assertEqual(caught.exception.body["param"], "input")
        self.assertEqual(caught.exception.body["code"], "unsupported_feature")


if __name__ == "__main__":
    unittest.main()
