"""The official OpenAI Python SDK as a real client of the gateway."""
import os
import openai
import pytest
from conftest import CLIENT_KEY


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway, api_key=CLIENT_KEY, max_retries=0)


def test_non_streaming_completion(client):
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello from the sdk"}],
    )
    assert r.choices[0].message.content == "Mock reply: hello from the sdk"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "gpt-4o-mini"
    # 4 + 2 (system) + 4 + 4 (user) prompt words; 6 reply words.
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (14, 6, 20)


def test_streaming_completion_with_usage(client):
    stream = client.chat.completions.create(
        model="openai/gpt-4.1",
        messages=[{"role": "user", "content": "stream me three words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply: stream me three words"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert (usage.prompt_tokens, usage.completion_tokens) == (8, 6)
    assert all(c.model == "gpt-4.1" for c in chunks)


def test_max_tokens_truncates(client):
    r = client.chat.completions.create(
        model="gpt-4o-mini", max_tokens=3, messages=[{"role": "user", "content": "a b c d e"}]
    )
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


def test_models_lists_the_aliases_and_routers(client):
    ids = sorted(m.id for m in client.models.list())
    assert ids == ["auto", "claude-sonnet-4-5", "gemini-2.5-flash", "gpt-4o-mini"]


def test_the_router_answers_through_the_sdk(client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Write a Python function that reverses a string."}],
    )
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert raw.headers["x-switchyard-route"].startswith("auto/")
    if os.environ.get("SWITCHYARD_REQUIRE_MODEL") == "1":
        # The quickstart sends confident code prompts to Claude.
        assert raw.headers["x-switchyard-route"] == "auto/code"
        assert raw.headers["x-switchyard-route-alias"] == "claude-sonnet-4-5"
    else:
        assert raw.headers["x-switchyard-route-classifier"] in ("unavailable", "computed", "cached")


def test_a_summary_request_routes_to_the_summaries_rule(client):
    article = (
        "Rivers shape the land they cross. Over thousands of years the Colorado River carved the Grand "
        "Canyon, cutting through layers of rock that record almost two billion years of history."
    )
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": f"Summarize this article about rivers in two sentences: {article}"}],
    )
    assert raw.parse().choices[0].message.content
    if os.environ.get("SWITCHYARD_REQUIRE_MODEL") == "1":
        assert raw.headers["x-switchyard-route"] == "auto/summaries"
        assert raw.headers["x-switchyard-route-label"].startswith("summarize;")


def test_bad_key_is_an_authentication_error(gateway):
    bad = openai.OpenAI(base_url=gateway, api_key="sk-sy-wrong-key-0000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 401
    assert e.value.code == "invalid_api_key"
    assert e.value.response.headers["x-request-id"].startswith("req_")


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-99", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"


def test_oversized_body_is_413(client):
    huge = "x" * (33 * 1024 * 1024)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": huge}])
    assert e.value.status_code == 413
    assert e.value.code == "request_too_large"


def test_provider_rate_limit_reaches_the_client_as_429(client):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": "429", "x-mock-retry-after": "1"},
        )
    assert e.value.response.headers["retry-after"] == "1"
