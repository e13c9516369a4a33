"""The official OpenAI and Anthropic Python SDKs against a gateway with client keys. Run by
crates/proxy/tests/api/sdk.rs, which passes OPENAI_BASE_URL, ANTHROPIC_BASE_URL,
OPENAI_MODEL, ANTHROPIC_MODEL, CLIENT_KEY (a configured key) and LIMITED_KEY (one with a
limit of two requests per minute).

Each check prints one line; the script exits non-zero when one fails.
"""

import os
import sys

import anthropic
import openai

import checks

OPENAI_MODEL = os.environ["OPENAI_MODEL"]
ANTHROPIC_MODEL = os.environ["ANTHROPIC_MODEL"]
KEY = os.environ["CLIENT_KEY"]
LIMITED = os.environ["LIMITED_KEY"]


def openai_client(key):
    return openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key=key, max_retries=0)


def anthropic_client(key):
    return anthropic.Anthropic(
        base_url=os.environ["ANTHROPIC_BASE_URL"], api_key=key, max_retries=0
    )


def hi():
    return [{"role": "user", "content": "Say something about keys."}]


def a_request_without_a_known_key_raises_authentication_error():
    try:
        openai_client("sk-not-a-configured-key").chat.completions.create(
            model=OPENAI_MODEL, messages=hi()
        )
    except openai.AuthenticationError as e:
        assert e.status_code == 401, e.status_code
        assert e.code == "invalid_api_key", e.code
        assert "sk-not-a-configured-key" not in str(e), "the key is echoed"
    else:
        raise AssertionError("an unknown key was let through")


def a_keyed_request_works_and_exposes_both_request_ids():
    raw = openai_client(KEY).chat.completions.with_raw_response.create(
        model=OPENAI_MODEL, messages=hi(), max_tokens=16
    )
    completion = raw.parse()
    assert completion.choices[0].message.content, completion
    assert completion.usage.total_tokens > 0, completion.usage
    # The SDK's request id is the provider's; the gateway's own is beside it.
    assert raw.request_id and raw.request_id.startswith("req_"), raw.request_id
    assert raw.headers["x-mcp-request-id"] != raw.request_id


def anthropics_sdk_authenticates_with_x_api_key():
    message = anthropic_client(KEY).messages.create(
        model=ANTHROPIC_MODEL, max_tokens=32, messages=hi()
    )
    assert message.usage.output_tokens > 0, message.usage
    try:
        anthropic_client("sk-ant-not-configured").messages.create(
            model=ANTHROPIC_MODEL, max_tokens=32, messages=hi()
        )
    except anthropic.AuthenticationError as e:
        assert e.status_code == 401, e.status_code
    else:
        raise AssertionError("an unknown key was let through")


def a_key_over_its_limit_raises_rate_limit_error_with_its_headers():
    client = openai_client(LIMITED)
    for _ in range(2):
        client.chat.completions.create(model=OPENAI_MODEL, messages=hi(), max_tokens=8)
    try:
        client.chat.completions.create(model=OPENAI_MODEL, messages=hi(), max_tokens=8)
    except openai.RateLimitError as e:
        assert e.code == "rate_limit_exceeded", e.code
        headers = e.response.headers
        assert headers["x-ratelimit-limit-requests"] == "2", dict(headers)
        assert headers["x-ratelimit-remaining-requests"] == "0", dict(headers)
        assert int(headers["retry-after"]) >= 1, dict(headers)
    else:
        raise AssertionError("the third request in the minute was let through")


CHECKS = [
    a_request_without_a_known_key_raises_authentication_error,
    a_keyed_request_works_and_exposes_both_request_ids,
    anthropics_sdk_authenticates_with_x_api_key,
    a_key_over_its_limit_raises_rate_limit_error_with_its_headers,
]


if __name__ == "__main__":
    sys.exit(checks.run("sdk keys", CHECKS))
