"""Numbers, dates and names in an output that the source does not contain.

The rules, with their tolerance (docs/editorial.md repeats them for editors):

- **Numbers** in figures (``1,500``, ``3.2``, ``34th``, ``12%``, ``£4 billion``, ``3.2m``) and in
  words (``two`` to ``ninety-nine``, optionally with ``hundred``/``thousand``/``million``/
  ``billion``; ``one`` is not checked, it is too often a pronoun). Each must equal a number of
  the source, written either way (``four`` matches ``4``). With ``rounding`` an output number
  may also be the source's rounded to the output's precision: ``2,400`` or ``2.4 thousand`` for
  ``2,351``, ``51%`` for ``50.6%``, ``3 million`` for ``3,200,000``. Whole numbers under 1,000
  are never rounded: ``50`` does not match ``46``.
- **Dates**: an ISO date (``2025-03-04``) matches when the source has its year, its day and its
  month (by name or number); other date forms are checked as their parts, numbers and month or
  weekday names.
- **Names**: every capitalised word must appear in the source, as written or in lower case
  (so a Title Case headline passes on ordinary words). A word that starts a sentence is not
  checked: it is as likely an ordinary word as a name; in ``Lilla Varga said`` at a sentence
  start, ``Varga`` is. ``I`` is never checked.

Everything here is pure and cheap: the source is indexed once per text (cached), and an output
is scanned with a few compiled regular expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

_MULTIPLIERS = {
    "thousand": 1e3,
    "k": 1e3,
    "million": 1e6,
    "m": 1e6,
    "billion": 1e9,
    "bn": 1e9,
    "trillion": 1e12,
}
_NUMBER = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:st|nd|rd|th)?"
    r"(?:\s?(?:%|per ?cent|percent))?"
    r"(?:\s(thousand|million|billion|trillion)\b|(bn|m|k)\b)?",
    re.IGNORECASE,
)
_UNIT_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS_WORDS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALE_WORDS = {"hundred": 1e2, "thousand": 1e3, "million": 1e6, "billion": 1e9}
# Words in lower case, a hyphenated pair as one ("twenty-one"): spelled numbers are found
# among these with dictionary lookups, far faster than one big alternation over the text.
_LOWER_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)?")
_NUMBER_WORDS = {**_UNIT_WORDS, **_TENS_WORDS}
# Substrings every number word contains ("eleven", "seventeen" and "seventy" contain "even",
# "ten"...): none of them in a text means no number word in it.
_NUMBER_STEMS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "teen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "ninety",
)
_DIGIT = re.compile(r"\d")
# 0-99 in words, each way it may be written: 21 -> ("twenty-one", "twenty one").
_WORD_FORMS: dict[int, tuple[str, ...]] = {v: (w,) for w, v in _UNIT_WORDS.items()}
_WORD_FORMS.update({v: (w,) for w, v in _TENS_WORDS.items()})
_WORD_FORMS.update(
    {
        t + u: (f"{tw}-{uw}", f"{tw} {uw}")
        for tw, t in _TENS_WORDS.items()
        for uw, u in _UNIT_WORDS.items()
        if 0 < u < 10
    }
)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
# A word that starts with a capital (Latin script; other scripts are not checked for names).
_CAPITALISED = re.compile(r"(?<![\w'’\-])[A-ZÀ-ÖØ-ÞĀ-Ž][\w'’.\-]*")
_LOWER_WORDS = re.compile(r"[^\W\d_](?:[\w'’\-]*\w)?")
_SENTENCE_END = frozenset(".!?:;\n•*–—-")
_OPENERS = frozenset(" \t\"'“‘([")
_TRAILING = ".-'’"
_EPSILON = 1e-9


@dataclass(frozen=True)
class Number:
    """A number as written: its value and the precision it was written to (for rounding)."""

    text: str
    value: float
    precision: float


def _digits(match: re.Match[str]) -> Number:
    whole, decimals, long_scale, short_scale = match.groups()
    value = float(whole.replace(",", "") + (decimals or ""))
    scale = _MULTIPLIERS[(long_scale or short_scale).lower()] if long_scale or short_scale else 1.0
    if decimals:
        precision = 10.0 ** -(len(decimals) - 1) * scale
    elif scale > 1:
        precision = scale
    else:
        plain = whole.replace(",", "")
        zeros = len(plain) - len(plain.rstrip("0"))
        # Whole numbers under 1,000 are exact: "50" is not a rounding of 46.
        precision = 10.0**zeros if value >= 1000 and zeros else 1.0
    return Number(match.group(0).strip(), value * scale, precision)


def _spelled(text: str, *, spelled_one: bool) -> list[Number]:
    """Numbers in words: ``four``, ``twenty-one``, ``ninety two``, ``three million``."""
    lower = text.lower()
    if not any(word in lower for word in _NUMBER_STEMS):
        return []  # most texts: no number word at all (a few substring tests, no parsing)
    tokens = _LOWER_TOKEN.findall(lower)
    words = set(tokens)
    keys = _NUMBER_WORDS.keys() if spelled_one else _NUMBER_WORDS.keys() - {"one"}
    if not keys & words and not any(w.partition("-")[0] in _TENS_WORDS for w in words if "-" in w):
        return []  # a stem inside another word ("someone", "often")
    found: list[Number] = []
    skip = False
    for i, token in enumerate(tokens):
        if skip:
            skip = False
            continue
        head, _, tail = token.partition("-")
        value = _NUMBER_WORDS.get(head)
        if value is None:
            continue
        written = token
        if tail:
            unit = _UNIT_WORDS.get(tail)
            if head not in _TENS_WORDS or unit is None or not 0 < unit < 10:
                continue
            value += unit
        elif head in _TENS_WORDS and i + 1 < len(tokens):
            unit = _UNIT_WORDS.get(tokens[i + 1])
            if unit is not None and 0 < unit < 10:
                value += unit
                written = f"{token} {tokens[i + 1]}"
                skip = True
        if value == 1 and written == "one" and not spelled_one:
            continue
        scale = 1.0
        following = (
            tokens[i + 2 if skip else i + 1] if i + (2 if skip else 1) < len(tokens) else None
        )
        if following in _SCALE_WORDS:
            scale = _SCALE_WORDS[following]
            written = f"{written} {following}"
        found.append(Number(written, value * scale, scale))
    return found


def _masked(text: str, pattern: re.Pattern[str]) -> str:
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def numbers(text: str, *, spelled_one: bool = True) -> list[Number]:
    """Every number of ``text``, in figures and in words (ISO dates left out)."""
    if _ISO_DATE.search(text) is not None:
        text = _masked(text, _ISO_DATE)
    found = [_digits(m) for m in _NUMBER.finditer(text)] if _DIGIT.search(text) else []
    found.extend(_spelled(text, spelled_one=spelled_one))
    return found


class SourceIndex:
    """What a source offers: its text, and (read when first needed) its numbers, its words in
    lower case and its ISO dates. Most claims are found as written, with one substring test;
    the source is parsed only for those that are not (a rounding, a number in other words)."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def lower_text(self) -> str:
        """The source in lower case."""
        return self.text.lower()

    @cached_property
    def digit_values(self) -> tuple[float, ...]:
        """The numbers of the source written in figures (one regular expression)."""
        if _DIGIT.search(self.text) is None:
            return ()
        return tuple(_digits(m).value for m in _NUMBER.finditer(_masked(self.text, _ISO_DATE)))

    @cached_property
    def values(self) -> tuple[float, ...]:
        """Every number of the source, in figures and in words."""
        return (*self.digit_values, *(n.value for n in _spelled(self.text, spelled_one=True)))

    @cached_property
    def lower_words(self) -> frozenset[str]:
        """The source's words in lower case."""
        return frozenset(_LOWER_WORDS.findall(self.lower_text))

    @cached_property
    def iso_dates(self) -> frozenset[str]:
        """The ISO dates written in the source."""
        return frozenset(m.group(0) for m in _ISO_DATE.finditer(self.text))

    def _written(self, text: str, haystack: str) -> bool:
        """``text`` occurs in ``haystack`` as a number of its own (not inside a longer one)."""
        at = haystack.find(text)
        while at >= 0:
            before = haystack[at - 1] if at else " "
            end = at + len(text)
            after = haystack[end] if end < len(haystack) else " "
            inside = before.isalnum() or before in ",." or after.isdigit()
            inside = inside or (text[-1:].isalpha() and after.isalpha())
            if not inside and not (after in ",." and haystack[end + 1 : end + 2].isdigit()):
                return True
            at = haystack.find(text, at + 1)
        return False

    def has_number(self, number: Number, *, rounding: bool) -> bool:
        """Whether the source has ``number`` (or, with ``rounding``, a number it rounds).

        Cheapest first: the number as written; a small whole number in the other form
        (``4`` for ``four``, ``four`` for ``4``); the source's figures; only then its numbers
        in words, parsed once per source.
        """
        if self._written(number.text, self.text) or self._written(
            number.text.lower(), self.lower_text
        ):
            return True
        value = number.value
        small = value == int(value) and 0 <= value < 100 and number.precision == 1.0
        if small:
            forms = [str(int(value)), *_WORD_FORMS.get(int(value), ())]
            if any(self._written(form, self.lower_text) for form in forms):
                return True
        slack = number.precision / 2 + _EPSILON if rounding else _EPSILON
        if any(abs(v - value) <= slack for v in self.digit_values):
            return True
        if small:
            return False  # in words it could only have been one of the forms just looked for
        return any(abs(v - value) <= slack for v in self.values)

    def has_name(self, word: str) -> bool:
        """Whether the source has ``word`` as written, or in lower case as a word."""
        return word in self.text or word.lower() in self.lower_words

    def has_iso_date(self, year: str, month: str, day: str) -> bool:
        """An ISO date: the same text, or its year, day and month (name or number)."""
        if f"{year}-{month}-{day}" in self.iso_dates:
            return True
        values = set(self.values)
        index = int(month) - 1
        month_named = 0 <= index < 12 and _MONTHS[index] in self.lower_text
        return (
            float(year) in values
            and float(int(day)) in values
            and (month_named or float(int(month)) in values)
        )


@lru_cache(maxsize=256)
def source_index(source: str) -> SourceIndex:
    """The index of one source text (cached: several tasks read the same article)."""
    return SourceIndex(source)


def _sentence_start(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in _OPENERS:
        i -= 1
    return i < 0 or text[i] in _SENTENCE_END


def _clean(word: str) -> str:
    for suffix in ("'s", "’s"):
        if word.endswith(suffix):
            word = word[: -len(suffix)]
    return word.rstrip(_TRAILING)


def names(text: str) -> list[str]:
    """The capitalised words of ``text`` that count as names (see the module docstring)."""
    found: list[str] = []
    for match in _CAPITALISED.finditer(text):
        word = match.group(0)
        if not word[0].isupper() or word == "I" or _sentence_start(text, match.start()):
            continue
        cleaned = _clean(word)
        if cleaned and cleaned != "I":
            found.append(cleaned)
    return found


def unsupported(output: str, source: str, *, rounding: bool = True) -> list[str]:
    """What ``output`` states that ``source`` does not: numbers, ISO dates and names, in order
    of appearance, each once (``"2,500 (number)"``, ``"'Smith' (name)"``)."""
    index = source_index(source)
    missing: dict[str, None] = {}
    for m in _ISO_DATE.finditer(output):
        if not index.has_iso_date(*m.groups()):
            missing[f"{m.group(0)} (date)"] = None
    for number in numbers(output, spelled_one=False):
        if not index.has_number(number, rounding=rounding):
            missing[f"{number.text} (number)"] = None
    for name in names(output):
        if not index.has_name(name):
            missing[f"'{name}' (name)"] = None
    return list(missing)
