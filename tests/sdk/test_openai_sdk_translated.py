"""The official OpenAI SDK talking to models served by Anthropic- and
Gemini-format providers (the mock), through the gateway's translation."""
import json

import openai
import pytest
from conftest import CLIENT_KEY

TOOLS = [{
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}]


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway, api_key=CLIENT_KEY, max_retries=0)


def test_claude_alias_answers_in_openai_shape(client):
    r = client.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello over there"}],
    )
    assert r.choices[0].message.content == "Mock reply: hello over there"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (2 + 4 + 3, 5)


def test_claude_stream_with_usage(client):
    chunks = list(client.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply: stream please"
    assert chunks[-1].usage.completion_tokens == 4


def test_streamed_tool_calls_accumulate_with_the_sdk_helper(client):
    with client.chat.completions.stream(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "find it"}],
        tools=TOOLS,
        tool_choice="required",
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"q": "mock"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_unsupported_parameter_is_a_clear_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="claude-sonnet-4-5", temperature=1.9, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.code == "unsupported_parameter"
    assert e.value.param == "temperature"


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.5-flash"])
def test_every_translated_provider_streams_tool_calls_to_the_sdk(client, model):
    with client.chat.completions.stream(
        model=model, messages=[{"role": "user", "content": "find it"}], tools=TOOLS, tool_choice="required",
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == {"q": "mock"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_gemini_alias_answers_with_usage(client):
    r = client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hello gemini"}])
    assert r.choices[0].message.content == "Mock reply: hello gemini"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (6, 4)
