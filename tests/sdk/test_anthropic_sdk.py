"""The official Anthropic SDK as a client of the gateway's /v1/messages, in
front of every provider kind (the mock speaks each wire format)."""
import anthropic
import pytest
from conftest import CLIENT_KEY

MODELS = ["claude-sonnet-4-5", "gpt-4o-mini", "gemini-2.5-flash"]
TOOL = {
    "name": "lookup",
    "description": "Look something up",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
}


@pytest.fixture
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.removesuffix("/v1"), api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_messages_create(client, model):
    m = client.messages.create(
        model=model, max_tokens=100, system="be brief", messages=[{"role": "user", "content": "hello anthropic sdk"}]
    )
    assert m.content[0].text == "Mock reply: hello anthropic sdk"
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == 5
    assert m.usage.input_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_messages_stream_helper(client, model):
    with client.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": "stream this"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Mock reply: stream this"
    assert final.usage.output_tokens == 4
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_use_accumulates(client, model):
    with client.messages.stream(
        model=model,
        max_tokens=100,
        tools=[TOOL],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "find it"}],
    ) as s:
        final = s.get_final_message()
    tool_use = next(b for b in final.content if b.type == "tool_use")
    assert tool_use.name == "lookup"
    assert tool_use.input == {"q": "mock"}
    assert final.stop_reason == "tool_use"


def test_errors_are_anthropic_exceptions(gateway):
    bad = anthropic.Anthropic(base_url=gateway.removesuffix("/v1"), api_key="sk-sy-wrong-0000000000000", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "x"}])
