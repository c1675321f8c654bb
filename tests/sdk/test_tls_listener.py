"""The official OpenAI SDK against the gateway's HTTPS listener, trusting
only a test CA: over HTTP/1.1 and over HTTP/2, plain and streamed."""
import ssl

import openai
import pytest

from conftest import CLIENT_KEY


def sdk(tls_gateway, http2: bool) -> openai.OpenAI:
    base_url, ca_file = tls_gateway
    http = openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=ca_file), http2=http2)
    return openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, http_client=http, max_retries=0)


@pytest.mark.parametrize("http2", [False, True])
def test_chat_over_https(tls_gateway, http2):
    client = sdk(tls_gateway, http2)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello over tls"}]
    )
    assert raw.http_response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    answer = raw.parse()
    assert answer.choices[0].message.content == "Mock reply: hello over tls"
    assert raw.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize("http2", [False, True])
def test_streaming_over_https(tls_gateway, http2):
    client = sdk(tls_gateway, http2)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream over tls"}],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Mock reply: stream over tls"


def test_a_client_without_the_ca_is_refused(tls_gateway):
    base_url, _ = tls_gateway
    client = openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
