"""Real-client tests: PyPI's `openai` and `ollama` packages against a live `steward serve`.

Tooling only (Python is never part of the product). scripts/test-clients creates the venv with the
pinned clients (scripts/clients-requirements.txt), starts the server and runs this file with
STEWARD_URL set, e.g. STEWARD_URL=http://127.0.0.1:41234. The server must serve
smollm2-135m-instruct (chat template ok) and all-minilm-l6-v2 (embeddings) with --ctx 1024.

Every expectation here comes from the APIs' documented behaviour (platform.openai.com API
reference, ollama's docs/api.md) or from consistency between two routes of the same server
(streamed vs not, OpenAI vs Ollama); nothing is a copied output of our own implementation.
"""

import concurrent.futures
import json
import math
import os
import threading
import unittest
import urllib.error
import urllib.request

import jsonschema
import ollama
import openai
import pydantic

URL = os.environ.get("STEWARD_URL", "http://127.0.0.1:8080").rstrip("/")
CHAT_MODEL = os.environ.get("STEWARD_CHAT_MODEL", "smollm2-135m-instruct")
EMBED_MODEL = os.environ.get("STEWARD_EMBED_MODEL", "all-minilm-l6-v2")
CTX = int(os.environ.get("STEWARD_CTX", "1024"))

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Name three primary colors."},
]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def check_weather_args(test, args):
    """The arguments satisfy WEATHER_TOOL's schema (checked by hand: no validator dependency)."""
    test.assertIsInstance(args, dict)
    test.assertIsInstance(args.get("city"), str)
    test.assertTrue(set(args) <= {"city", "unit"}, args)
    if "unit" in args:
        test.assertIn(args["unit"], ("celsius", "fahrenheit"))


def oai() -> openai.OpenAI:
    # max_retries=0: a retry would hide a transient server error the test should see.
    return openai.OpenAI(base_url=URL + "/v1", api_key="not-needed", max_retries=0, timeout=120)


def oll() -> ollama.Client:
    return ollama.Client(host=URL, timeout=120)


def cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


class OpenAIClientTests(unittest.TestCase):
    def setUp(self):
        self.client = oai()

    def tearDown(self):
        self.client.close()

    def chat(self, **kw):
        args = dict(model=CHAT_MODEL, messages=MESSAGES, temperature=0, max_tokens=24)
        args.update(kw)
        return self.client.chat.completions.create(**args)

    def test_models_list(self):
        ids = [m.id for m in self.client.models.list()]
        self.assertIn(CHAT_MODEL, ids)
        self.assertIn(EMBED_MODEL, ids)

    def test_chat_non_streaming(self):
        r = self.chat()
        self.assertEqual(r.object, "chat.completion")
        self.assertEqual(r.model, CHAT_MODEL)
        self.assertEqual(len(r.choices), 1)
        c = r.choices[0]
        self.assertEqual(c.message.role, "assistant")
        self.assertIsInstance(c.message.content, str)
        self.assertTrue(c.message.content.strip(), "a greedy answer to a plain question is not empty")
        self.assertIn(c.finish_reason, ("stop", "length"))
        self.assertGreater(r.usage.prompt_tokens, 0)
        self.assertGreater(r.usage.completion_tokens, 0)
        self.assertLessEqual(r.usage.completion_tokens, 24)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)
        if c.finish_reason == "length":
            self.assertEqual(r.usage.completion_tokens, 24)
        # Greedy is deterministic: the same request gives the same answer.
        self.assertEqual(self.chat().choices[0].message.content, c.message.content)

    def test_chat_streaming_matches_non_streaming(self):
        whole = self.chat()
        stream = self.chat(stream=True, stream_options={"include_usage": True})
        pieces, finish, usage, roles = [], None, None, []
        chunks = 0
        for chunk in stream:
            chunks += 1
            self.assertEqual(chunk.object, "chat.completion.chunk")
            if chunk.usage is not None:
                usage = chunk.usage
                self.assertEqual(chunk.choices, [], "the usage chunk has no choices (OpenAI's include_usage)")
            for ch in chunk.choices:
                if ch.delta.role:
                    roles.append(ch.delta.role)
                if ch.delta.content:
                    pieces.append(ch.delta.content)
                if ch.finish_reason:
                    finish = ch.finish_reason
        self.assertGreater(chunks, 2, "streamed as several chunks")
        self.assertEqual(roles[:1], ["assistant"])
        self.assertEqual("".join(pieces), whole.choices[0].message.content)
        self.assertEqual(finish, whole.choices[0].finish_reason)
        self.assertIsNotNone(usage, "stream_options.include_usage gives a usage chunk")
        self.assertEqual(usage.prompt_tokens, whole.usage.prompt_tokens)
        self.assertEqual(usage.completion_tokens, whole.usage.completion_tokens)
        self.assertEqual(usage.total_tokens, whole.usage.total_tokens)

    def test_chat_streaming_without_usage_has_none(self):
        for chunk in self.chat(stream=True, max_tokens=4):
            self.assertIsNone(chunk.usage)

    def test_chat_logprobs(self):
        r = self.chat(logprobs=True, top_logprobs=3, max_tokens=12)
        c = r.choices[0]
        entries = c.logprobs.content
        self.assertEqual(len(entries), r.usage.completion_tokens)
        for e in entries:
            self.assertLessEqual(e.logprob, 0.0)
            self.assertEqual(len(e.top_logprobs), 3)
            tops = [t.logprob for t in e.top_logprobs]
            self.assertEqual(tops, sorted(tops, reverse=True), "top_logprobs most likely first")
            # Greedy picks the most likely token: its log-probability is the best one.
            self.assertAlmostEqual(e.logprob, tops[0], places=4)
            self.assertIsNotNone(e.bytes)
        # The tokens' bytes make up the answer.
        raw = b"".join(bytes(e.bytes) for e in entries)
        self.assertEqual(raw.decode("utf-8", errors="replace"), c.message.content)

    def test_chat_n_choices_with_seed(self):
        r = self.chat(n=2, temperature=0.9, seed=7, max_tokens=8)
        self.assertEqual([c.index for c in r.choices], [0, 1])
        again = self.chat(n=2, temperature=0.9, seed=7, max_tokens=8)
        self.assertEqual([c.message.content for c in r.choices], [c.message.content for c in again.choices],
                         "the same seed reproduces the response")

    def test_chat_stop_sequence(self):
        whole = self.chat(max_tokens=24).choices[0].message.content
        # Stop at a piece that occurs in the greedy answer: the text ends just before it.
        words = whole.split()
        self.assertGreaterEqual(len(words), 3, whole)
        stop = " " + words[2]
        r = self.chat(max_tokens=24, stop=[stop])
        self.assertEqual(r.choices[0].finish_reason, "stop")
        self.assertEqual(r.choices[0].message.content, whole[: whole.index(stop)])

    def test_chat_streaming_cancel_then_serve_again(self):
        # A client that drops a stream mid-way must not leave the server stuck or the slot taken.
        stream = self.chat(stream=True, max_tokens=200)
        got = 0
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got += 1
            if got >= 3:
                break
        stream.close()
        r = self.chat(max_tokens=4)
        self.assertTrue(r.choices[0].message.content)

    def test_concurrent_greedy_requests_match_serial(self):
        prompts = ["Say hello.", "What is 2 plus 2?", "Name a fruit.", "Describe the sky in one sentence."]
        serial = []
        for p in prompts:
            serial.append(self.client.chat.completions.create(
                model=CHAT_MODEL, messages=[{"role": "user", "content": p}], temperature=0, max_tokens=16
            ).choices[0].message.content)
        out = [None] * len(prompts)
        errors = []

        def work(i):
            c = oai()
            try:
                out[i] = c.chat.completions.create(
                    model=CHAT_MODEL, messages=[{"role": "user", "content": prompts[i]}], temperature=0, max_tokens=16
                ).choices[0].message.content
            except Exception as e:  # reported below, not swallowed
                errors.append(e)
            finally:
                c.close()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(out, serial)

    def test_completions_logprobs_echo(self):
        prompt = "The capital of France is"
        r = self.client.completions.create(model=CHAT_MODEL, prompt=prompt, max_tokens=6, temperature=0,
                                           logprobs=2, echo=True)
        self.assertEqual(r.object, "text_completion")
        c = r.choices[0]
        self.assertTrue(c.text.startswith(prompt), c.text)
        lp = c.logprobs
        n = r.usage.prompt_tokens + r.usage.completion_tokens
        self.assertEqual(len(lp.tokens), n)
        self.assertEqual(len(lp.token_logprobs), n)
        self.assertEqual(len(lp.top_logprobs), n)
        self.assertEqual(len(lp.text_offset), n)
        self.assertIsNone(lp.token_logprobs[0], "the first prompt token has nothing before it to be scored by")
        self.assertIsNone(lp.top_logprobs[0])
        for v in lp.token_logprobs[1:]:
            self.assertIsNotNone(v)
            self.assertLessEqual(v, 0.0)
        for t in lp.top_logprobs[1:]:
            self.assertLessEqual(len(t), 2)
            self.assertGreaterEqual(len(t), 1)
        self.assertEqual(lp.text_offset, sorted(lp.text_offset))
        self.assertEqual(lp.text_offset[0], 0)
        # Offsets point into the returned text at each token's piece.
        for tok, off in zip(lp.tokens, lp.text_offset):
            if tok and "\ufffd" not in tok:
                self.assertEqual(c.text[off: off + len(tok)], tok)
        # Generated tokens are greedy: each is its position's best candidate.
        for k in range(r.usage.prompt_tokens, n):
            self.assertAlmostEqual(lp.token_logprobs[k], max(lp.top_logprobs[k].values()), places=4)
        # The non-echoed completion is the same generated text.
        plain = self.client.completions.create(model=CHAT_MODEL, prompt=prompt, max_tokens=6, temperature=0)
        self.assertEqual(prompt + plain.choices[0].text, c.text)

    def test_completions_scoring_only(self):
        # Evaluation harnesses score a text with echo, logprobs and max_tokens 0.
        prompt = "The quick brown fox jumps over the lazy dog"
        r = self.client.completions.create(model=CHAT_MODEL, prompt=prompt, max_tokens=0, temperature=0,
                                           logprobs=1, echo=True)
        c = r.choices[0]
        self.assertEqual(c.text, prompt)
        self.assertEqual(r.usage.completion_tokens, 0)
        self.assertEqual(len(c.logprobs.tokens), r.usage.prompt_tokens)
        self.assertIsNone(c.logprobs.token_logprobs[0])
        total = sum(c.logprobs.token_logprobs[1:])
        self.assertLess(total, 0.0)
        # A scrambled sentence is less likely than the real one.
        s = self.client.completions.create(model=CHAT_MODEL, prompt="fox the over lazy jumps dog brown quick The",
                                           max_tokens=0, logprobs=1, echo=True)
        self.assertLess(sum(s.choices[0].logprobs.token_logprobs[1:]), total)

    def test_completions_streaming_matches_non_streaming(self):
        prompt = "Once upon a time"
        whole = self.client.completions.create(model=CHAT_MODEL, prompt=prompt, max_tokens=16, temperature=0)
        text = ""
        usage = None
        for chunk in self.client.completions.create(model=CHAT_MODEL, prompt=prompt, max_tokens=16, temperature=0,
                                                    stream=True, stream_options={"include_usage": True}):
            for ch in chunk.choices:
                text += ch.text
            if chunk.usage is not None:
                usage = chunk.usage
        self.assertEqual(text, whole.choices[0].text)
        self.assertEqual(usage.completion_tokens, whole.usage.completion_tokens)

    def test_embeddings(self):
        texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock markets fell sharply today."]
        # Explicit floats, and the client's default (it asks for base64 and decodes it).
        for fmt in ("float", None):
            kw = {"encoding_format": fmt} if fmt else {}
            r = self.client.embeddings.create(model=EMBED_MODEL, input=texts, **kw)
            self.assertEqual(r.model, EMBED_MODEL)
            self.assertEqual([d.index for d in r.data], [0, 1, 2])
            vecs = [d.embedding for d in r.data]
            for v in vecs:
                self.assertEqual(len(v), 384)
                # all-MiniLM-L6-v2's pipeline ends with a Normalize layer: unit vectors.
                self.assertAlmostEqual(math.sqrt(sum(x * x for x in v)), 1.0, places=3)
            self.assertGreater(cosine(vecs[0], vecs[1]), cosine(vecs[0], vecs[2]))
            self.assertGreater(r.usage.prompt_tokens, 0)
        one = self.client.embeddings.create(model=EMBED_MODEL, input=texts[0], encoding_format="float")
        self.assertEqual(len(one.data), 1)
        self.assertAlmostEqual(cosine(one.data[0].embedding, vecs[0]), 1.0, places=5)

    # Errors: the client maps the status to its exception classes; the body is OpenAI's shape.

    def test_unknown_model_is_not_found(self):
        with self.assertRaises(openai.NotFoundError) as cm:
            self.client.chat.completions.create(model="no-such-model", messages=MESSAGES, max_tokens=4)
        self.assertEqual(cm.exception.status_code, 404)
        self.assertIn("no-such-model", cm.exception.message)
        self.assertEqual(cm.exception.code, "model_not_found")

    def test_bad_parameter_is_bad_request(self):
        with self.assertRaises(openai.BadRequestError) as cm:
            self.chat(temperature=5)
        self.assertIn("temperature", cm.exception.message)
        self.assertEqual(cm.exception.param, "temperature")
        with self.assertRaises(openai.BadRequestError) as cm:
            self.chat(top_logprobs=50, logprobs=True)
        self.assertIn("top_logprobs", cm.exception.message)
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.chat.completions.create(model=CHAT_MODEL, messages=[], max_tokens=4)
        self.assertIn("messages", cm.exception.message)

    def test_wrong_model_kind_is_bad_request(self):
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.chat.completions.create(model=EMBED_MODEL, messages=MESSAGES, max_tokens=4)
        self.assertIn("embedding", cm.exception.message)
        # A chat model embeds too (pooled hidden states, L2-normalised); a bad pooling is refused.
        e = self.client.embeddings.create(model=CHAT_MODEL, input="hi").data[0].embedding
        self.assertAlmostEqual(math.sqrt(sum(x * x for x in e)), 1.0, places=3)
        with self.assertRaises(openai.BadRequestError):
            self.client.embeddings.create(model=CHAT_MODEL, input="hi", extra_body={"pooling": "max"})

    def test_context_overflow_is_bad_request(self):
        # max_tokens beyond the context: refused, never silently truncated.
        with self.assertRaises(openai.BadRequestError) as cm:
            self.chat(max_tokens=CTX + 10)
        self.assertEqual(cm.exception.code, "context_length_exceeded")
        self.assertIn(str(CTX), cm.exception.message)
        # A prompt longer than the context.
        long_prompt = "word " * (CTX * 2)
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.completions.create(model=CHAT_MODEL, prompt=long_prompt, max_tokens=4)
        self.assertEqual(cm.exception.code, "context_length_exceeded")
        with self.assertRaises(openai.BadRequestError):
            self.client.completions.create(model=CHAT_MODEL, prompt=long_prompt)
        # The server still works afterwards.
        self.assertTrue(self.chat(max_tokens=2).choices[0].message.content is not None)


    def test_tool_call_round_trip(self):
        # tool_choice "required": the answer is a call whose arguments (a JSON string) fit the schema.
        msgs = [{"role": "user", "content": "What's the weather in Paris?"}]
        r = self.chat(messages=msgs, tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False, max_tokens=80)
        choice = r.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        self.assertIsNone(choice.message.content)
        self.assertEqual(len(choice.message.tool_calls), 1)
        call = choice.message.tool_calls[0]
        self.assertEqual(call.type, "function")
        self.assertTrue(call.id.startswith("call_"))
        self.assertEqual(call.function.name, "get_weather")
        check_weather_args(self, json.loads(call.function.arguments))
        # Streamed: the same call, assembled from delta.tool_calls pieces.
        stream = self.chat(messages=msgs, tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False, max_tokens=80, stream=True)
        name, args, finish = None, "", None
        for chunk in stream:
            for c in chunk.choices:
                for tc in c.delta.tool_calls or []:
                    self.assertEqual(tc.index, 0)
                    if tc.function.name:
                        name = tc.function.name
                    args += tc.function.arguments or ""
                finish = c.finish_reason or finish
        # Not compared byte for byte with the call above: the engine's batched prompt pass and its
        # cache-reusing pass differ in the last float bits, which can flip a near-tie under greedy
        # decoding (seen here: with or without the optional "unit"). Both must be valid calls.
        self.assertEqual((name, finish), ("get_weather", "tool_calls"))
        check_weather_args(self, json.loads(args))
        # The result goes back as a tool message; the model answers.
        msgs += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 18, "sky": "sunny"})}]
        r2 = self.chat(messages=msgs, tools=[WEATHER_TOOL], max_tokens=40)
        c2 = r2.choices[0]
        self.assertIn(c2.finish_reason, ("stop", "length", "tool_calls"))
        if c2.finish_reason == "tool_calls":
            for tc in c2.message.tool_calls:
                check_weather_args(self, json.loads(tc.function.arguments))
        else:
            self.assertTrue(c2.message.content.strip())
        # A function that is not offered is refused.
        with self.assertRaises(openai.BadRequestError):
            self.chat(messages=msgs[:1], tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}})

class OllamaClientTests(unittest.TestCase):
    def setUp(self):
        self.client = oll()

    def tearDown(self):
        self.client.close()

    OPTIONS = {"temperature": 0, "num_predict": 20}

    def test_list(self):
        r = self.client.list()
        names = [m.model for m in r.models]
        self.assertIn(CHAT_MODEL, names)
        m = r.models[names.index(CHAT_MODEL)]
        self.assertGreater(m.size, 0)
        self.assertEqual(m.details.format, "gguf")
        self.assertIsNotNone(m.modified_at)
        self.assertTrue(m.digest)

    def test_show(self):
        r = self.client.show(CHAT_MODEL)
        self.assertEqual(r.details.family, "llama")
        self.assertEqual(r.modelinfo["general.architecture"], "llama")
        self.assertIn("chat", r.capabilities)
        self.assertIn("im_start", r.template, "SmolLM2's chat template is ChatML")
        with self.assertRaises(ollama.ResponseError) as cm:
            self.client.show("no-such-model")
        self.assertEqual(cm.exception.status_code, 404)

    def test_generate(self):
        r = self.client.generate(model=CHAT_MODEL, prompt="Name three primary colors.", options=self.OPTIONS, stream=False)
        self.assertTrue(r.done)
        self.assertIn(r.done_reason, ("stop", "length"))
        self.assertTrue(r.response.strip())
        self.assertGreater(r.eval_count, 0)
        self.assertLessEqual(r.eval_count, 20)
        self.assertGreater(r.prompt_eval_count, 0)
        self.assertGreater(r.total_duration, 0)
        parts = list(self.client.generate(model=CHAT_MODEL, prompt="Name three primary colors.", options=self.OPTIONS, stream=True))
        self.assertGreater(len(parts), 2)
        self.assertTrue(parts[-1].done)
        self.assertFalse(any(p.done for p in parts[:-1]))
        self.assertEqual("".join(p.response for p in parts), r.response)
        self.assertEqual(parts[-1].eval_count, r.eval_count)

    def test_generate_raw(self):
        r = self.client.generate(model=CHAT_MODEL, prompt="Once upon a time", raw=True, options=self.OPTIONS, stream=False)
        # Raw is a plain completion: the same text as /v1/completions greedy.
        o = oai()
        try:
            c = o.completions.create(model=CHAT_MODEL, prompt="Once upon a time", max_tokens=20, temperature=0)
        finally:
            o.close()
        self.assertEqual(r.response, c.choices[0].text)

    def test_chat(self):
        r = self.client.chat(model=CHAT_MODEL, messages=MESSAGES, options=self.OPTIONS, stream=False)
        self.assertTrue(r.done)
        self.assertEqual(r.message.role, "assistant")
        self.assertTrue(r.message.content.strip())
        parts = list(self.client.chat(model=CHAT_MODEL, messages=MESSAGES, options=self.OPTIONS, stream=True))
        self.assertTrue(parts[-1].done)
        self.assertEqual("".join(p.message.content for p in parts), r.message.content)
        # The same conversation through the OpenAI route (same template, greedy) gives the same answer.
        o = oai()
        try:
            c = o.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, temperature=0, max_tokens=20)
        finally:
            o.close()
        self.assertEqual(c.choices[0].message.content, r.message.content)

    def test_chat_tools(self):
        # Ollama has no tool_choice: the model decides (constrained once it opens a call).
        msgs = [{"role": "user", "content": "What's the weather in Paris? Use the tool."}]
        r = self.client.chat(model=CHAT_MODEL, messages=msgs, tools=[WEATHER_TOOL], options={"temperature": 0, "num_predict": 80}, stream=False)
        self.assertTrue(r.done)
        if r.message.tool_calls:
            for tc in r.message.tool_calls:
                self.assertEqual(tc.function.name, "get_weather")
                check_weather_args(self, dict(tc.function.arguments))
            call_args = dict(r.message.tool_calls[0].function.arguments)
        else:
            self.assertTrue(r.message.content.strip())
            call_args = {"city": "Paris"}
        # History in Ollama's shape (arguments as an object, a tool message) flows back.
        msgs += [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": call_args}}]},
                 {"role": "tool", "content": "18 C and sunny", "tool_name": "get_weather"}]
        r2 = self.client.chat(model=CHAT_MODEL, messages=msgs, tools=[WEATHER_TOOL], options={"temperature": 0, "num_predict": 40}, stream=False)
        self.assertTrue(r2.done)
        self.assertTrue(r2.message.content.strip() or r2.message.tool_calls)

    def test_embed(self):
        r = self.client.embed(model=EMBED_MODEL, input=["A cat sits on the mat.", "Stock markets fell sharply today."])
        self.assertEqual(len(r.embeddings), 2)
        self.assertEqual(len(r.embeddings[0]), 384)
        o = oai()
        try:
            e = o.embeddings.create(model=EMBED_MODEL, input="A cat sits on the mat.", encoding_format="float")
        finally:
            o.close()
        self.assertAlmostEqual(cosine(r.embeddings[0], e.data[0].embedding), 1.0, places=5)

    def test_ps(self):
        r = self.client.ps()
        self.assertIn(CHAT_MODEL, [m.model for m in r.models])

    def test_version(self):
        # ollama-python has no version() method; ask /api/version over the client's own HTTP session.
        r = self.client._client.get("/api/version")
        self.assertEqual(r.status_code, 200)
        self.assertTrue(r.json().get("version"))

    def test_errors(self):
        with self.assertRaises(ollama.ResponseError) as cm:
            self.client.generate(model="no-such-model", prompt="hi", stream=False)
        self.assertEqual(cm.exception.status_code, 404)
        with self.assertRaises(ollama.ResponseError) as cm:
            self.client.chat(model=CHAT_MODEL, messages=MESSAGES, options={"num_predict": CTX * 4}, stream=False)
        self.assertEqual(cm.exception.status_code, 400)


# Schemas for structured output: nested objects, arrays, enums, anyOf, $ref, formats, patterns.
# Each is checked by PyPI jsonschema (with its format checker), not by steward's grammar.
STRUCTURED_SCHEMAS = [
    ("person", "Invent a person.", {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 24},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "email": {"type": "string", "format": "email"},
            "role": {"enum": ["admin", "user", "guest"]},
        },
        "required": ["name", "age", "role"],
        "additionalProperties": False,
    }),
    ("points", "List a few points.", {
        "$defs": {"pt": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -9, "maximum": 9},
                                                          "y": {"type": "number"}},
                         "required": ["x", "y"], "additionalProperties": False}},
        "type": "array", "items": {"$ref": "#/$defs/pt"}, "minItems": 1, "maxItems": 3,
    }),
    ("status", "Report a status.", {
        "anyOf": [
            {"type": "object", "properties": {"ok": {"const": True}, "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}},
             "required": ["ok", "code"], "additionalProperties": False},
            {"type": "object", "properties": {"ok": {"const": False}, "when": {"type": "string", "format": "date"},
                                              "id": {"type": "string", "format": "uuid"}},
             "required": ["ok", "when", "id"], "additionalProperties": False},
        ]
    }),
    ("tree", "Describe a small tree of numbers.", {
        "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer", "minimum": 0, "maximum": 99},
                                                            "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
                           "required": ["v"], "additionalProperties": False}},
        "$ref": "#/$defs/node",
    }),
]


class StructuredOutputTests(unittest.TestCase):
    """response_format json_schema at temperature 1: every complete output validates."""

    def setUp(self):
        self.client = oai()

    def tearDown(self):
        self.client.close()

    def test_sampled_outputs_validate_with_jsonschema(self):
        # About a thousand outputs (STEWARD_STRUCTURED_SAMPLES), 4 requests in flight so the
        # server's continuous batching serves them together; every complete one must validate.
        wanted = int(os.environ.get("STEWARD_STRUCTURED_SAMPLES", "1000"))
        per_request = 4
        seeds = max(1, wanted // (per_request * len(STRUCTURED_SCHEMAS)))
        jobs = [(name, ask, schema, seed) for name, ask, schema in STRUCTURED_SCHEMAS for seed in range(seeds)]

        def ask_one(job):
            name, ask, schema, seed = job
            client = oai()
            try:
                r = client.chat.completions.create(
                    model=CHAT_MODEL, temperature=1, max_tokens=96, seed=1000 + seed, n=per_request,
                    messages=[{"role": "user", "content": ask + " Answer in JSON."}],
                    response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}})
                return name, schema, [(c.finish_reason, c.message.content) for c in r.choices]
            finally:
                client.close()

        total = complete = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            for name, schema, choices in pool.map(ask_one, jobs):
                validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
                for finish, content in choices:
                    total += 1
                    if finish == "length":
                        continue   # cut by max_tokens: reported as such, not as a complete answer
                    self.assertEqual(finish, "stop")
                    complete += 1
                    errors = [e.message for e in validator.iter_errors(json.loads(content))]
                    self.assertEqual(errors, [], f"{name}: {content!r}")
        print(f"\nstructured output: {complete} of {total} sampled outputs complete, all valid", flush=True)
        self.assertGreaterEqual(total, min(wanted, 200))
        self.assertGreaterEqual(complete / total, 0.7, f"{complete}/{total} complete")

    def test_streamed_json_schema_validates(self):
        _, _, schema = STRUCTURED_SCHEMAS[0]
        stream = self.client.chat.completions.create(
            model=CHAT_MODEL, temperature=1, seed=5, max_tokens=96, stream=True,
            messages=[{"role": "user", "content": "Invent a person. Answer in JSON."}],
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
        text, finish = "", None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        self.assertEqual(finish, "stop")
        jsonschema.validate(json.loads(text), schema, format_checker=jsonschema.FormatChecker())

    def test_pydantic_parse(self):
        class Pet(pydantic.BaseModel):
            name: str
            legs: int
            kind: str

        r = self.client.chat.completions.parse(
            model=CHAT_MODEL, temperature=0, max_tokens=80,
            messages=[{"role": "user", "content": "Describe a pet as JSON with name, legs and kind."}],
            response_format=Pet)
        pet = r.choices[0].message.parsed
        self.assertIsInstance(pet, Pet)
        self.assertIsInstance(pet.legs, int)

    def test_unsupported_schema_feature_is_400(self):
        with self.assertRaises(openai.BadRequestError) as ctx:
            self.client.chat.completions.create(
                model=CHAT_MODEL, max_tokens=8, messages=MESSAGES,
                response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "integer", "multipleOf": 2}}})
        self.assertIn("multipleOf", str(ctx.exception))

    def test_ollama_format_schema(self):
        _, _, schema = STRUCTURED_SCHEMAS[0]
        r = oll().chat(model=CHAT_MODEL, messages=[{"role": "user", "content": "Invent a person. Answer in JSON."}],
                       format=schema, options={"temperature": 1, "seed": 9, "num_predict": 96})
        if r.done_reason == "stop":
            jsonschema.validate(json.loads(r.message.content), schema, format_checker=jsonschema.FormatChecker())


STEWARD_BIN = os.environ.get("STEWARD_BIN")


class OwnServer:
    """A second `steward serve` with a STEWARD_HOME of its own (the models linked in): `prepare`
    runs steward commands in it before the server starts (keys, collections)."""

    @classmethod
    def start(cls, serve_args, prepare):
        import subprocess
        import tempfile
        import time
        cls.home = tempfile.mkdtemp(prefix="steward-own-")
        os.chmod(cls.home, 0o700)
        # The models stay where they were fetched; only keys and the database are new.
        models = os.path.join(os.environ.get("STEWARD_HOME", os.path.expanduser("~/.cache/steward")), "models")
        os.symlink(models, os.path.join(cls.home, "models"))
        env = dict(os.environ, STEWARD_HOME=cls.home)

        def steward(*args):
            return subprocess.run([STEWARD_BIN, *args], env=env, check=True, capture_output=True, text=True).stdout.strip()

        prepare(steward)
        cls.log = open(os.path.join(cls.home, "serve.log"), "w+")
        cls.server = subprocess.Popen([STEWARD_BIN, "serve", *serve_args, "--host", "127.0.0.1", "--port", "0"],
                                      env=env, stdout=cls.log, stderr=subprocess.STDOUT)
        cls.url = None
        deadline = time.time() + 120
        while time.time() < deadline and cls.server.poll() is None:
            cls.log.seek(0)
            text = cls.log.read()
            if cls.url is None and "listening on " in text:
                cls.url = text.split("listening on ", 1)[1].split()[0]
            if cls.url:
                try:
                    with urllib.request.urlopen(cls.url + "/health", timeout=2) as r:
                        if r.status == 200:
                            return
                except urllib.error.HTTPError as e:
                    e.close()  # 503 while the model loads
                except OSError:
                    pass
            time.sleep(0.1)
        cls.tearDownClass()
        raise RuntimeError("the server did not become ready")

    @classmethod
    def tearDownClass(cls):
        import shutil
        if cls.server.poll() is None:
            cls.server.terminate()
            cls.server.wait(timeout=10)
        cls.log.close()
        shutil.rmtree(cls.home, ignore_errors=True)


@unittest.skipUnless(STEWARD_BIN, "STEWARD_BIN (the steward binary) is needed to start a keyed server")
class KeyedServerTests(OwnServer, unittest.TestCase):
    """A second server with its own STEWARD_HOME holding one API key: the clients' api_key is
    sent as the Bearer token; a wrong or missing key is the client's authentication error."""

    @classmethod
    def setUpClass(cls):
        def prepare(steward):
            cls.key = steward("keys", "create", "--name", "python-clients", "--scopes", "chat,completions")
        cls.start(["--model", CHAT_MODEL, "--ctx", "512", "--parallel", "1"], prepare)

    def client(self, key):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=120)

    def test_openai_with_the_key(self):
        with self.client(self.key) as c:
            self.assertIn(CHAT_MODEL, [m.id for m in c.models.list()])
            r = c.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, temperature=0, max_tokens=4)
            self.assertGreater(r.usage.completion_tokens, 0)

    def test_openai_wrong_or_missing_key(self):
        wrong = self.key[:-4] + ("AAAA" if not self.key.endswith("AAAA") else "BBBB")
        for key in (wrong, "not-needed"):
            with self.client(key) as c:
                with self.assertRaises(openai.AuthenticationError) as cm:
                    c.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=2)
                self.assertEqual(cm.exception.status_code, 401)
                self.assertNotIn(key, str(cm.exception))

    def test_openai_scope(self):
        # The key has chat and completions, not embeddings: 403 is the client's PermissionDeniedError.
        with self.client(self.key) as c:
            with self.assertRaises(openai.PermissionDeniedError):
                c.embeddings.create(model=CHAT_MODEL, input="hi")

    def test_ollama_with_and_without_the_key(self):
        keyed = ollama.Client(host=self.url, timeout=120, headers={"Authorization": "Bearer " + self.key})
        r = keyed.generate(model=CHAT_MODEL, prompt="Hi", stream=False, options={"num_predict": 2, "temperature": 0})
        self.assertTrue(r.done)
        with self.assertRaises(ollama.ResponseError) as cm:
            ollama.Client(host=self.url, timeout=120).generate(model=CHAT_MODEL, prompt="Hi", stream=False)
        self.assertEqual(cm.exception.status_code, 401)


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "rag", "docs")


@unittest.skipUnless(STEWARD_BIN, "STEWARD_BIN (the steward binary) is needed to start a server with collections")
class RAGClientTests(OwnServer, unittest.TestCase):
    """Grounded answers through the openai client: `collections` sent with extra_body, the
    `citations` extension read from the response; a key sees only its granted collections."""

    @classmethod
    def setUpClass(cls):
        def prepare(steward):
            steward("rag", "ingest", "--collection", "nature", DOCS)
            steward("rag", "ingest", "--collection", "secret", os.path.join(DOCS, "bees.md"))
            cls.key = steward("keys", "create", "--name", "reader", "--collections", "nature")
        cls.start(["--model", CHAT_MODEL, "--model", EMBED_MODEL, "--ctx", "2048", "--parallel", "1"], prepare)

    def client(self):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.key, max_retries=0, timeout=120)

    QUESTION = [{"role": "user", "content": "How do honey bees tell each other where flowers are?"}]

    def test_chat_with_collections_cites_sources(self):
        with self.client() as c:
            r = c.chat.completions.create(model=CHAT_MODEL, messages=self.QUESTION, temperature=0, max_tokens=24,
                                          extra_body={"collections": ["nature"]})
            self.assertTrue(r.choices[0].message.content)
            citations = r.model_extra["citations"]
            self.assertEqual(citations[0]["file"], "bees.md")
            self.assertEqual(citations[0]["index"], 1)
            self.assertEqual(citations[0]["collection"], "nature")
            self.assertIsInstance(citations[0]["cited"], bool)

    def test_streamed_chat_with_collections_ends_with_citations(self):
        with self.client() as c:
            stream = c.chat.completions.create(model=CHAT_MODEL, messages=self.QUESTION, temperature=0, max_tokens=16,
                                               stream=True, extra_body={"collections": ["nature"]})
            chunks = list(stream)
            ends = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
            self.assertEqual(len(ends), 1)
            self.assertEqual(ends[0].model_extra["citations"][0]["file"], "bees.md")

    def test_ungranted_collection_is_not_found(self):
        with self.client() as c:
            with self.assertRaises(openai.NotFoundError) as cm:
                c.chat.completions.create(model=CHAT_MODEL, messages=self.QUESTION, max_tokens=4, extra_body={"collections": ["secret"]})
            self.assertEqual(cm.exception.body.get("code"), "collection_not_found")

    def test_rag_query_endpoint(self):
        with self.client() as c:
            r = c.post("/rag/query", cast_to=object, body={"collection": "nature", "query": "How do honey bees tell each other where flowers are?",
                                                           "model": CHAT_MODEL, "max_tokens": 24})
            self.assertTrue(r["found"])
            self.assertTrue(r["answer"])
            self.assertEqual(r["citations"][0]["file"], "bees.md")
            listed = c.get("/rag/collections", cast_to=object)
            self.assertEqual([x["name"] for x in listed["data"]], ["nature"])


class PlainHTTPTests(unittest.TestCase):
    def test_health(self):
        with urllib.request.urlopen(URL + "/health", timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(json.load(r)["status"], "ok")


if __name__ == "__main__":
    unittest.main(verbosity=2)
