"""Seeded sampling, n choices and logprobs through the real stack (runtime + wrangler dev) with the
official `openai` client: the same request gives the same bytes every time, under concurrency and from
the cache, and logprobs are identical on a miss and a hit, plain and streamed."""

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.contract import check_answer, check_stream

pytestmark = pytest.mark.e2e

MODEL = "gemma-3-270m-q4_k_m"


@pytest.fixture(scope="module")
def client(stack, api_key):
    return openai.OpenAI(base_url=f"{stack.worker_url}/v1", api_key=api_key, max_retries=0)


def sampled_chat(unique_prompt, topic: str, **extra) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": unique_prompt(topic)}],
        "max_tokens": 12,
        "temperature": 0.7,
        "seed": 5,
        **extra,
    }


def test_seeded_sampling_gives_identical_text_ten_times_concurrently_and_from_the_cache(
    client, stack, unique_prompt
):
    request = sampled_chat(unique_prompt, "tides")
    # No cache: ten fresh decodes, eight of them at once (they share decode steps in the runtime).
    fresh = no_store(client)
    first = fresh.chat.completions.create(**request).choices[0].message.content
    sequential = [fresh.chat.completions.create(**request).choices[0].message.content for _ in range(1)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda _: fresh.chat.completions.create(**request), range(8)))
    texts = [first, *sequential, *(answer.choices[0].message.content for answer in concurrent)]
    assert len(texts) == 10 and set(texts) == {first}
    # The seed decides: at a high temperature, five seeds give more than one text.
    hot = {**request, "temperature": 2.0}
    texts_by_seed = {
        fresh.chat.completions.create(**{**hot, "seed": s}).choices[0].message.content for s in range(5)
    }
    assert len(texts_by_seed) > 1, "five seeds gave one text: the seed is not used"

    miss = client.chat.completions.with_raw_response.create(**request)
    hit = client.chat.completions.with_raw_response.create(**request)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert hit.content == miss.content and miss.parse().choices[0].message.content == first


def test_n_choices_are_deterministic_and_cached(client, unique_prompt):
    request = {
        "model": MODEL,
        "prompt": unique_prompt("meadows"),
        "max_tokens": 10,
        "temperature": 1.0,
        "seed": 9,
    }
    single = client.completions.create(**request).choices[0].text
    miss = client.completions.with_raw_response.create(**request, n=3)
    hit = client.completions.with_raw_response.create(**request, n=3)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert hit.content == miss.content
    check_answer("/v1/completions", miss.text)
    choices = miss.parse().choices
    assert [choice.index for choice in choices] == [0, 1, 2]
    assert choices[0].text == single
    fresh = no_store(client)
    assert [c.text for c in fresh.completions.create(**request, n=3).choices] == [c.text for c in choices]
    # Streamed, the choices come one after another: a hit replays the live stream's bytes.
    cache, replayed = stream_bytes(client.completions, {**request, "n": 3})
    _, live = stream_bytes(fresh.completions, {**request, "n": 3})
    assert (cache, replayed) == ("HIT", live)
    events = check_stream("/v1/completions", live.decode())
    texts = [
        "".join(e["choices"][0]["text"] for e in events if e["choices"] and e["choices"][0]["index"] == i)
        for i in range(3)
    ]
    assert texts == [choice.text for choice in choices]


def stream_bytes(resource, request: dict) -> tuple[str, bytes]:
    """The X-Cache header and the exact bytes of a streamed answer (`resource`: a completions resource)."""
    with resource.with_streaming_response.create(**request, stream=True) as response:
        return response.headers["x-cache"], response.read()


def no_store(client: openai.OpenAI) -> openai.OpenAI:
    return client.with_options(default_headers={"Cache-Control": "no-store"})


@pytest.mark.parametrize("streamed_first", [False, True], ids=["plain-first", "streamed-first"])
def test_chat_logprobs_are_identical_on_a_miss_and_a_hit_plain_and_streamed(
    client, unique_prompt, streamed_first
):
    request = sampled_chat(unique_prompt, "beacons", logprobs=True, top_logprobs=3)
    create = client.chat.completions
    if streamed_first:
        cache, live = stream_bytes(create, request)
        assert cache == "MISS"
        plain = create.with_raw_response.create(**request)
        assert plain.headers["x-cache"] == "HIT"
        replayed_cache, replayed = stream_bytes(create, request)
        assert (replayed_cache, replayed) == ("HIT", live)
    else:
        plain = create.with_raw_response.create(**request)
        assert plain.headers["x-cache"] == "MISS"
        cache, replayed = stream_bytes(create, request)
        assert cache == "HIT"
        _, live = stream_bytes(no_store(client).chat.completions, request)
        assert replayed == live
    answer = plain.parse()
    check_answer("/v1/chat/completions", plain.text)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens
    assert all(len(entry.top_logprobs) == 3 for entry in content)
    events = check_stream("/v1/chat/completions", live.decode())
    streamed = [
        e for event in events[1:] if event["choices"] for e in event["choices"][0]["logprobs"]["content"]
    ]
    assert streamed == [entry.model_dump() for entry in content]
    again = create.with_raw_response.create(**request)
    assert again.headers["x-cache"] == "HIT" and again.content == plain.content


def test_completion_logprobs_are_identical_on_a_miss_and_a_hit(client, unique_prompt):
    request = {"model": MODEL, "prompt": unique_prompt("lighthouses"), "max_tokens": 10, "logprobs": 5}
    miss = client.completions.with_raw_response.create(**request)
    hit = client.completions.with_raw_response.create(**request)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert hit.content == miss.content
    logprobs = miss.parse().choices[0].logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == miss.parse().usage.completion_tokens
    cache, streamed_hit = stream_bytes(client.completions, request)
    _, live = stream_bytes(no_store(client).completions, request)
    assert (cache, streamed_hit) == ("HIT", live)


@pytest.mark.parametrize(
    ("create", "extra", "field"),
    [
        ("chat", {"n": 5}, "n"),
        ("chat", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("chat", {"top_logprobs": 2}, "top_logprobs"),
        ("chat", {"temperature": 3}, "temperature"),
        ("completion", {"logprobs": 6}, "logprobs"),
        ("completion", {"top_p": 0}, "top_p"),
        ("completion", {"presence_penalty": 2.5}, "presence_penalty"),
        ("completion", {"top_k": -1}, "top_k"),
    ],
)
def test_bad_sampling_input_is_a_400_naming_the_field(client, unique_prompt, create, extra, field):
    # A small max_tokens: the Worker's stream_required check must not answer first. extra_body: the
    # client has no `top_k` parameter.
    if create == "chat":
        call = client.chat.completions.create
        request = {"model": MODEL, "messages": [{"role": "user", "content": unique_prompt("rain")}]}
    else:
        call = client.completions.create
        request = {"model": MODEL, "prompt": unique_prompt("rain")}
    with pytest.raises(openai.BadRequestError) as refused:
        call(**request, max_tokens=8, extra_body=extra)
    error = refused.value.body
    assert error["field"] == field and error["message"].startswith(f"{field}: ")
