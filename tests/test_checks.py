"""The checks wing: bounds, banned wording, schema, facts with their tolerance, grading."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.checks import (
    CheckSet,
    ChecksSpec,
    GraderSpec,
    banned_phrases,
    grade,
    names,
    numbers,
    run_checks,
    summary_text,
    text_of,
    unsupported,
)

ARTICLE = (
    "Title: Tennis: Varga saves four match points to reach Paris semi-final\n\n"
    "Hungary's Lilla Varga saved four match points to beat the second seed, Amelia Strand, "
    "on Saturday 1 November 2025. Varga, ranked 34th, won 4-6, 7-6 (9-7), 6-3 in two hours "
    "and 51 minutes in front of 2,351 fans. Ticket sales rose 50.6% to £3,200,000. "
    "The final is on 2025-11-09."
)


def checks(**kwargs: object) -> CheckSet:
    return CheckSet.from_spec(ChecksSpec.model_validate(kwargs))


def test_bounds_count_words_and_stripped_characters() -> None:
    """Word and character bounds report the count and the limit, passing or not."""
    report = run_checks(checks(max_words=3, min_chars=5), "  one two three four  ", source=None)
    by_name = {r.check: r for r in report.results}
    assert not by_name["max_words"].passed
    assert by_name["max_words"].reason == "4 words (at most 3)"
    assert (
        by_name["min_chars"].passed and by_name["min_chars"].reason == "18 characters (at least 5)"
    )
    assert [r.check for r in report.failures] == ["max_words"]


def test_banned_wording_matches_whole_words_in_any_case() -> None:
    """Phrases match as whole words, case-insensitively, across line breaks; not inside words."""
    c = checks(banned=["going forward", "stunning", "!"])
    assert run_checks(c, "Going\nforward, a STUNNING result!", source=None).failures[0].reason == (
        "uses banned wording 'going forward', 'stunning', '!'"
    )
    assert run_checks(c, "Outstunning forwards", source=None).passed


def test_banned_file_lines_and_comments() -> None:
    """A banned-words file has one phrase a line; blank lines and comments are skipped."""
    assert banned_phrases("# header\nshocking\n\n  in terms of  # officialese\n") == [
        "shocking",
        "in terms of",
    ]


def test_schema_check_reports_the_validation_error() -> None:
    """A task with a schema records whether the output matched it, with the reason."""
    c = checks(schema=True)
    bad = run_checks(c, "{}", source=None, schema_error="'points' is required", has_schema=True)
    assert [(r.check, r.passed) for r in bad.results] == [("schema", False)]
    assert "'points' is required" in bad.results[0].reason
    good = run_checks(c, "{}", source=None, has_schema=True)
    assert good.passed
    assert run_checks(checks(schema=False), "{}", source=None, has_schema=True).results == ()


def test_json_outputs_are_checked_on_their_strings() -> None:
    """The checks read a JSON output's string values, not its keys and punctuation."""
    text = text_of('{"points": ["a b", "c"], "n": 3}', {"points": ["a b", "c"], "n": 3})
    assert text == "a b\nc"


@pytest.mark.parametrize(
    "claim",
    [
        "Lilla Varga saved four match points.",
        "Varga won 4-6, 7-6 (9-7), 6-3 before 2,351 fans.",
        "She was ranked 34th and played for 2 hours and 51 minutes.",
        "About 2,400 fans watched.",  # 2,351 rounded to hundreds
        "Ticket sales rose 51% to £3.2m.",  # 50.6% to a whole percent, 3,200,000 in millions
        "Sales rose by 50.6 per cent to £3 million.",
        "The final is on 9 November 2025.",
        "The final is on 2025-11-09, after the semi-final on Saturday.",
        "Varga Saves Four Match Points To Reach Paris Semi-Final",  # Title Case: ordinary words
        "Meanwhile the crowd cheered.",  # a capitalised word starting a sentence
    ],
)
def test_claims_the_article_supports_pass(claim: str) -> None:
    """Figures, dates and names of the article pass, written either way or rounded."""
    assert unsupported(claim, ARTICLE) == []


@pytest.mark.parametrize(
    ("claim", "missing"),
    [
        ("Varga saved five match points.", ["five (number)"]),
        ("About 50 fans watched.", ["50 (number)"]),  # under 1,000: never a rounding of 46
        ("Attendance was 2,500.", ["2,500 (number)"]),
        ("It ends on 2025-11-10.", ["2025-11-10 (date)"]),
        ("She beat Serena Williams.", ["'Serena' (name)", "'Williams' (name)"]),
        ("Angela Merkel watched.", ["'Merkel' (name)"]),  # a sentence's first word: unchecked
        ("Sales rose 51.4%.", ["51.4% (number)"]),
        ("Fourteen fans.", ["fourteen (number)"]),  # "four" in the article is not 14
    ],
)
def test_claims_the_article_lacks_are_named(claim: str, missing: list[str]) -> None:
    """A changed figure, a made-up date or a name not in the article is reported."""
    assert unsupported(claim, ARTICLE) == missing


def test_rounding_can_be_turned_off() -> None:
    """Without the rounding tolerance only exact figures pass."""
    assert unsupported("About 2,400 fans.", ARTICLE, rounding=False) == ["2,400 (number)"]


def test_number_and_name_readers() -> None:
    """Numbers carry their value and precision; sentence-initial single words are not names."""
    found = [(n.text, n.value, n.precision) for n in numbers("2.4 million, twenty-one, 1,000")]
    assert found == [
        ("2.4 million", 2_400_000.0, 100_000.0),
        ("1,000", 1000.0, 1000.0),
        ("twenty-one", 21.0, 1.0),
    ]
    # "Berg's" starts a sentence alone: as likely an ordinary word as a name, not checked.
    assert names("Police said Anna Berg left. Berg's car was found by Tom.") == [
        "Anna",
        "Berg",
        "Tom",
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(ARTICLE.split()), min_size=1, max_size=30))
def test_text_made_of_the_articles_words_is_always_supported(words: list[str]) -> None:
    """Property: whatever is copied from the article, word for word, never fails the check."""
    assert unsupported(" ".join(words), ARTICLE) == []


def test_facts_check_without_an_article_passes_and_says_why() -> None:
    """A request that does not carry the article (previous_response_id chains) is not failed."""
    report = run_checks(checks(facts=True), "5 fans", source=None)
    assert report.passed and "no article" in report.results[0].reason


def test_correction_message_names_each_failure_and_its_fix() -> None:
    """A retry's message lists what failed and what to do, so the model can act on it."""
    report = run_checks(
        checks(max_words=5, facts=True), "Varga beat Serena in five long sets", source=ARTICLE
    )
    message = report.correction()
    assert "7 words (at most 5). Rewrite it in at most 5 words." in message
    assert "'Serena' (name)" in message and "only figures, dates and names" in message
    assert summary_text(report.as_json()) == "FAIL max_words,facts"
    assert summary_text([]) == "-"


def test_spec_refuses_bad_bounds_and_unknown_keys() -> None:
    """min above max, an empty phrase or an unknown key is a validation error."""
    for bad in ({"min_words": 5, "max_words": 3}, {"banned": [" "]}, {"max_word": 3}):
        with pytest.raises(ValidationError):
            ChecksSpec.model_validate(bad)
    assert checks(on_fail="retry", max_retries=2).retries == 2
    assert checks(on_fail="flag", max_retries=2).retries == 0


def test_grade_flags_below_the_threshold_and_treats_missing_verdicts_as_failed() -> None:
    """A grader's criteria become check results; the share passing decides the flag."""
    verdict = {
        "accurate": {"pass": True, "reason": "all in the article"},
        "attributed": {"pass": False, "reason": "the claim lost its source"},
    }
    report, flagged = grade(GraderSpec(), verdict)
    assert [(r.check, r.passed) for r in report.results] == [
        ("accurate", True),
        ("attributed", False),
        ("neutral", False),
    ]
    assert report.results[2].reason == "the grader gave no verdict"
    assert flagged
    _, lenient = grade(GraderSpec(threshold=0.3), verdict)
    assert not lenient
