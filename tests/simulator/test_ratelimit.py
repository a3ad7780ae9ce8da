"""Rate limits: headers on every answer, RPM and TPM 429s with the real body and retry hints."""

from __future__ import annotations

import openai
import pytest

from pipeline.simulator.ratelimit import Bucket, go_duration
from tests.simulator.conftest import MakeSim
from tests.simulator.support import sdk

HEADERS = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.006, "6ms"),
        (0.0004, "1ms"),
        (1, "1s"),
        (3.114, "3.114s"),
        (360, "6m0s"),
        (3725.5, "1h2m5.5s"),
        (0.644, "644ms"),
        (12.18, "12.18s"),
    ],
)
def test_go_durations(seconds: float, text: str) -> None:
    """Reset and retry times print like Go durations at millisecond precision."""
    assert go_duration(seconds) == text


def test_bucket_refills_continuously() -> None:
    """A 60/min bucket refills one unit per second and never above its limit."""
    bucket = Bucket(60, now=0.0)
    bucket.level = 0
    bucket.refill(2.5)
    assert bucket.level == pytest.approx(2.5)
    bucket.refill(1000)
    assert bucket.level == 60


def test_headers_are_present_and_decreasing(make_sim: MakeSim) -> None:
    """Each 200 carries the six headers; remaining counts go down by what was consumed."""
    sim = make_sim(model_rpm={"gpt-4.1-mini": 100}, model_tpm={"gpt-4.1-mini": 50_000})
    with sdk(sim) as client:
        first = client.responses.with_raw_response.create(
            model="gpt-4.1-mini", input="x", max_output_tokens=100
        )
        second = client.responses.with_raw_response.create(
            model="gpt-4.1-mini", input="x", max_output_tokens=100
        )
    for raw in (first, second):
        assert all(name in raw.headers for name in HEADERS)
    assert first.headers["x-ratelimit-limit-requests"] == "100"
    assert first.headers["x-ratelimit-limit-tokens"] == "50000"
    assert first.headers["x-ratelimit-remaining-requests"] == "99"
    assert second.headers["x-ratelimit-remaining-requests"] == "98"
    used = 100 + first.parse().usage.input_tokens  # type: ignore[union-attr]
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 50_000 - used
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 50_000 - 2 * used
    assert first.headers["x-ratelimit-reset-requests"] == "600ms"  # 1 of 100/min


def test_rpm_429_has_the_real_body_and_retry_hints(make_sim: MakeSim) -> None:
    """Over RPM: 429 type requests, 'Please try again in 20s', retry-after(-ms); then refills."""
    sim = make_sim(model_rpm={"gpt-4.1-mini": 3})
    with sdk(sim) as client:
        for _ in range(3):
            client.responses.create(model="gpt-4.1-mini", input="x", max_output_tokens=16)
        with pytest.raises(openai.RateLimitError) as caught:
            client.responses.create(model="gpt-4.1-mini", input="x", max_output_tokens=16)
        err = caught.value
        assert err.body == {
            "message": "Rate limit reached for gpt-4.1-mini in organization org-simulator on "
            "requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        assert err.response.headers["retry-after-ms"] == "20000"
        assert err.response.headers["retry-after"] == "20"
        assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
        sim.advance(20)
        client.responses.create(model="gpt-4.1-mini", input="x", max_output_tokens=16)
    counts = sim.ledger()["totals"]["requests"]
    assert (counts["completed"], counts["429"]) == (4, 1)


def test_tpm_429_counts_input_plus_max_output(make_sim: MakeSim) -> None:
    """Each request reserves input + max_output_tokens; the third one waits for the refill."""
    sim = make_sim(model_tpm={"o4-mini": 10_000})
    with sdk(sim) as client:
        first = client.responses.create(model="o4-mini", input="x", max_output_tokens=4000)
        assert first.usage is not None
        cost = first.usage.input_tokens + 4000
        client.responses.create(model="o4-mini", input="x", max_output_tokens=4000)
        with pytest.raises(openai.RateLimitError) as caught:
            client.responses.create(model="o4-mini", input="x", max_output_tokens=4000)
    used = 2 * cost
    wait_s = (cost - (10_000 - used)) / (10_000 / 60)
    assert caught.value.body["type"] == "tokens"  # type: ignore[index]
    assert caught.value.message.endswith(
        f"on tokens per min (TPM): Limit 10000, Used {used}, Requested {cost}. Please try again "
        f"in {go_duration(wait_s)}. Visit https://platform.openai.com/account/rate-limits to "
        "learn more."
    )
    assert int(caught.value.response.headers["retry-after-ms"]) == pytest.approx(
        wait_s * 1000, abs=1
    )


def test_default_output_estimate_applies_without_max_output_tokens(make_sim: MakeSim) -> None:
    """No max_output_tokens: 4096 tokens are reserved."""
    sim = make_sim(model_tpm={"gpt-4.1-mini": 1_000_000})
    with sdk(sim) as client:
        raw = client.responses.with_raw_response.create(model="gpt-4.1-mini", input="x")
    used = raw.parse().usage.input_tokens + 4096  # type: ignore[union-attr]
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(1_000_000 - used)


def test_request_larger_than_tpm_is_too_large(make_sim: MakeSim) -> None:
    """A single request above the whole TPM gets the 'Request too large' 429."""
    sim = make_sim(model_tpm={"gpt-4.1-mini": 5_000})
    with sdk(sim) as client, pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model="gpt-4.1-mini", input="x", max_output_tokens=8000)
    message = caught.value.body["message"]  # type: ignore[index]
    assert message.startswith("Request too large for gpt-4.1-mini in organization org-simulator")
    assert "Limit 5000, Requested 80" in message


def test_limits_are_per_model(make_sim: MakeSim) -> None:
    """Exhausting one model leaves another untouched; rejected requests are not billed."""
    sim = make_sim(model_rpm={"gpt-4.1-mini": 1})
    with sdk(sim) as client:
        client.responses.create(model="gpt-4.1-mini", input="x")
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="gpt-4.1-mini", input="x")
        client.responses.create(model="gpt-4.1", input="x")
    ledger = sim.ledger()
    assert ledger["models"]["gpt-4.1-mini"]["standard"]["requests"]["completed"] == 1
    limits = ledger["rate_limits"]
    assert limits["gpt-4.1-mini"]["requests_admitted"] == 1
    assert limits["gpt-4.1"]["requests_admitted"] == 1


def test_sdk_retry_honours_retry_after_ms(make_sim: MakeSim) -> None:
    """The SDK's own retry waits the hinted time and succeeds; the retry count is recorded."""
    sim = make_sim()
    sim.script("429:30")
    with sdk(sim, max_retries=2) as client:
        r = client.responses.create(model="gpt-4.1-mini", input="x")
    assert r.status == "completed"
    ledger = sim.ledger()
    assert ledger["retry_counts"] == {"0": 1, "1": 1}
    assert ledger["totals"]["requests"]["429"] == 1
