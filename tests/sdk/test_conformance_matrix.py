"""The conformance matrix: every inbound format (the official OpenAI and
Anthropic SDKs) × every provider kind (a mock speaking each wire format),
through the gateway, for plain chat, streaming, tool calls (single and
parallel, streamed and not, with the result sent back), an image input,
JSON mode, a mid-stream provider error, and usage numbers.

The mock answers "Mock reply: <the user's words>", one token per word, and
reads each image (in its own provider's shape) as the word "[image]"."""
import base64
import json

import anthropic
import openai
import pytest
from conftest import CLIENT_KEY, MATRIX_PROVIDERS

KINDS = list(MATRIX_PROVIDERS)
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
SCHEMA = {"type": "object", "properties": {"reply": {"type": "string"}}, "required": ["reply"], "additionalProperties": False}
OAI_TOOLS = [
    {"type": "function", "function": {"name": name, "description": name, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
    for name in ("lookup", "search")
]
ANT_TOOLS = [{"name": t["function"]["name"], "description": t["function"]["description"], "input_schema": t["function"]["parameters"]} for t in OAI_TOOLS]
BREAK_STREAM = {"x-mock-drop-after-chunks": "3", "x-mock-chunk-delay-ms": "5"}


@pytest.fixture
def oai(matrix_gateway):
    return openai.OpenAI(base_url=matrix_gateway + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def ant(matrix_gateway):
    return anthropic.Anthropic(base_url=matrix_gateway, api_key=CLIENT_KEY, max_retries=0)


# ---------------------------------------------------------------- OpenAI SDK


@pytest.mark.parametrize("kind", KINDS)
def test_openai_plain_and_usage(oai, kind):
    r = oai.chat.completions.create(model=f"m-{kind}", messages=[{"role": "user", "content": "hello matrix"}])
    assert r.choices[0].message.content == "Mock reply: hello matrix"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 4
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + 4


@pytest.mark.parametrize("kind", KINDS)
def test_openai_stream_and_usage(oai, kind):
    chunks = list(oai.chat.completions.create(
        model=f"m-{kind}", messages=[{"role": "user", "content": "stream matrix"}], stream=True, stream_options={"include_usage": True},
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Mock reply: stream matrix"
    assert chunks[-1].usage.completion_tokens == 4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("tools", [1, 2], ids=["single", "parallel"])
def test_openai_tool_calls_round_trip(oai, kind, streamed, tools):
    msgs = [{"role": "user", "content": "find it"}]
    args = dict(model=f"m-{kind}", messages=msgs, tools=OAI_TOOLS[:tools], tool_choice="required")
    if streamed:
        with oai.chat.completions.stream(**args) as s:
            for _ in s:
                pass
            r = s.get_final_completion()
    else:
        r = oai.chat.completions.create(**args)
    calls = r.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["lookup", "search"][:tools]
    assert all(json.loads(c.function.arguments) == {"q": "mock"} for c in calls)
    assert len({c.id for c in calls}) == tools
    assert r.choices[0].finish_reason == "tool_calls"
    # Every result goes back; the provider answers the turn.
    msgs.append(r.choices[0].message.model_dump(exclude_none=True, exclude={"parsed"}))
    msgs += [{"role": "tool", "tool_call_id": c.id, "content": f"found by {c.function.name}"} for c in calls]
    done = oai.chat.completions.create(model=f"m-{kind}", messages=msgs, tools=OAI_TOOLS[:tools])
    assert done.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("kind", KINDS)
def test_openai_image_input(oai, kind):
    r = oai.chat.completions.create(
        model=f"m-{kind}",
        messages=[{"role": "user", "content": [{"type": "text", "text": "what is"}, {"type": "image_url", "image_url": {"url": PNG}}]}],
    )
    assert r.choices[0].message.content == "Mock reply: what is [image]"


@pytest.mark.parametrize("kind", KINDS)
def test_openai_json_mode(oai, kind):
    r = oai.chat.completions.create(
        model=f"m-{kind}",
        messages=[{"role": "user", "content": "as json"}],
        response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}},
    )
    assert json.loads(r.choices[0].message.content) == {"reply": "Mock reply: as json"}


@pytest.mark.parametrize("kind", KINDS)
def test_openai_mid_stream_error(oai, kind):
    stream = oai.chat.completions.create(
        model=f"m-{kind}", messages=[{"role": "user", "content": "a b c d e f g"}], stream=True, extra_headers=BREAK_STREAM,
    )
    seen = ""
    with pytest.raises(openai.APIError):
        for c in stream:
            if c.choices:
                seen += c.choices[0].delta.content or ""
    assert "Mock reply: a b c d e f g".startswith(seen)


# ------------------------------------------------------------- Anthropic SDK


@pytest.mark.parametrize("kind", KINDS)
def test_anthropic_plain_and_usage(ant, kind):
    m = ant.messages.create(model=f"m-{kind}", max_tokens=100, messages=[{"role": "user", "content": "hello matrix"}])
    assert m.content[0].text == "Mock reply: hello matrix"
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == 4
    assert m.usage.input_tokens > 0


@pytest.mark.parametrize("kind", KINDS)
def test_anthropic_stream_and_usage(ant, kind):
    with ant.messages.stream(model=f"m-{kind}", max_tokens=100, messages=[{"role": "user", "content": "stream matrix"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Mock reply: stream matrix"
    assert final.usage.output_tokens == 4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("tools", [1, 2], ids=["single", "parallel"])
def test_anthropic_tool_use_round_trip(ant, kind, streamed, tools):
    msgs = [{"role": "user", "content": "find it"}]
    args = dict(model=f"m-{kind}", max_tokens=100, messages=msgs, tools=ANT_TOOLS[:tools], tool_choice={"type": "any"})
    if streamed:
        with ant.messages.stream(**args) as s:
            m = s.get_final_message()
    else:
        m = ant.messages.create(**args)
    uses = [b for b in m.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("lookup", {"q": "mock"}), ("search", {"q": "mock"})][:tools]
    assert len({u.id for u in uses}) == tools
    assert m.stop_reason == "tool_use"
    # Every result goes back in one user turn; the provider answers it.
    msgs += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": f"found by {u.name}"} for u in uses]}]
    done = ant.messages.create(model=f"m-{kind}", max_tokens=100, messages=msgs, tools=ANT_TOOLS[:tools])
    assert done.stop_reason == "end_turn"


@pytest.mark.parametrize("kind", KINDS)
def test_anthropic_image_input(ant, kind):
    data = PNG.split(",", 1)[1]
    m = ant.messages.create(
        model=f"m-{kind}", max_tokens=100,
        messages=[{"role": "user", "content": [{"type": "text", "text": "what is"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]}],
    )
    assert m.content[0].text == "Mock reply: what is [image]"


@pytest.mark.parametrize("kind", KINDS)
def test_anthropic_json_mode(ant, kind):
    m = ant.messages.create(
        model=f"m-{kind}", max_tokens=100, messages=[{"role": "user", "content": "as json"}],
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    )
    assert json.loads(m.content[0].text) == {"reply": "Mock reply: as json"}


@pytest.mark.parametrize("kind", KINDS)
def test_anthropic_mid_stream_error(ant, kind):
    with pytest.raises(anthropic.APIError):
        with ant.messages.stream(
            model=f"m-{kind}", max_tokens=100, messages=[{"role": "user", "content": "a b c d e f g"}], extra_headers=BREAK_STREAM,
        ) as s:
            for _ in s:
                pass
