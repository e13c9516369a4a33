"""The official OpenAI and Anthropic Python SDKs against the gateway, with only their base URL
changed. Run by crates/proxy/tests/api/sdk.rs, which starts the gateway in front of two mock
upstreams (an OpenAI-kind and an Anthropic-kind one) and passes:

    OPENAI_BASE_URL     the gateway's /v1 root
    ANTHROPIC_BASE_URL  the gateway's root (the SDK adds /v1/messages)
    OPENAI_MODEL, ANTHROPIC_MODEL

Each check prints one line; the script exits non-zero when one fails.
"""

import os
import sys

import anthropic
import openai

import checks

OPENAI_MODEL = os.environ["OPENAI_MODEL"]
ANTHROPIC_MODEL = os.environ["ANTHROPIC_MODEL"]

oa = openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="unused", max_retries=0)
an = anthropic.Anthropic(
    base_url=os.environ["ANTHROPIC_BASE_URL"], api_key="unused", max_retries=0
)


def responses_create():
    r = oa.responses.create(model=OPENAI_MODEL, input="Say something about gateways.")
    assert r.status == "completed", r.status
    assert r.output_text, "no text"
    u = r.usage
    assert u.input_tokens > 0 and u.output_tokens == len(r.output_text.split()), u
    assert u.total_tokens == u.input_tokens + u.output_tokens, u


def responses_stream_reads_the_final_usage():
    # A long shared prefix twice: the second answer reads it from the prompt cache.
    instructions = "You answer briefly. " * 220
    usage = None
    for _ in range(2):
        stream = oa.responses.create(
            model=OPENAI_MODEL,
            instructions=instructions,
            input="Stream something.",
            reasoning={"effort": "low"},
            stream=True,
        )
        text, final = "", None
        for event in stream:
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type == "response.completed":
                final = event.response
        assert final is not None, "no response.completed"
        assert final.output_text == text, (final.output_text, text)
        usage = final.usage
        words = len(text.split())
        assert usage.output_tokens_details.reasoning_tokens == words, usage
        assert usage.output_tokens == 2 * words, usage
    assert usage.input_tokens_details.cached_tokens == 1024, usage


def responses_continue_and_retrieve():
    first = oa.responses.create(model=OPENAI_MODEL, input="Remember the number 7.")
    again = oa.responses.create(
        model=OPENAI_MODEL, input="Which number?", previous_response_id=first.id
    )
    assert again.previous_response_id == first.id
    assert again.usage.input_tokens > first.usage.total_tokens
    got = oa.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text
    items = oa.responses.input_items.list(first.id)
    assert items.data, "no input items"
    oa.responses.delete(first.id)
    try:
        oa.responses.retrieve(first.id)
    except openai.NotFoundError:
        return
    raise AssertionError("a deleted response was found")


def messages_create():
    m = an.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=32,
        messages=[{"role": "user", "content": "Say something."}],
    )
    assert m.type == "message" and m.content[0].type == "text", m
    assert m.usage.input_tokens == 10, m.usage
    assert m.usage.output_tokens == len(m.content[0].text.split()), m.usage


def messages_stream():
    system = [
        {
            "type": "text",
            "text": "You are a careful assistant. " * 160,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    usages = []
    for _ in range(2):
        with an.messages.stream(
            model=ANTHROPIC_MODEL,
            max_tokens=32,
            system=system,
            messages=[{"role": "user", "content": "Stream something."}],
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert final.content[0].text == text
        assert final.usage.output_tokens == len(text.split()), final.usage
        usages.append(final.usage)
    assert usages[0].cache_creation_input_tokens > 0, usages[0]
    assert usages[1].cache_read_input_tokens == usages[0].cache_creation_input_tokens, usages


def messages_count_tokens():
    counted = an.messages.count_tokens(
        model=ANTHROPIC_MODEL,
        messages=[{"role": "user", "content": "Say something."}],
    )
    assert counted.input_tokens == 10, counted


def an_unknown_model_raises_not_found():
    try:
        an.messages.create(
            model="claude-no-such-model",
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
        )
    except anthropic.NotFoundError as e:
        assert e.status_code == 404
        assert e.body["error"]["type"] == "not_found_error", e.body
    else:
        raise AssertionError("no anthropic.NotFoundError")
    try:
        oa.responses.create(model="gpt-no-such-model", input="hi")
    except openai.NotFoundError as e:
        assert e.code == "model_not_found", e.code
    else:
        raise AssertionError("no openai.NotFoundError")


CHECKS = [
    responses_create,
    responses_stream_reads_the_final_usage,
    responses_continue_and_retrieve,
    messages_create,
    messages_stream,
    messages_count_tokens,
    an_unknown_model_raises_not_found,
]


if __name__ == "__main__":
    sys.exit(checks.run("sdk", CHECKS))
