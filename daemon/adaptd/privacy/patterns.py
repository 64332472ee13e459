"""Validated patterns that find personal data in a text: each kind is a cheap candidate regex and a
check that throws candidates out (Luhn for cards, ISO 13616 mod-97 for IBANs, ``ipaddress`` for
IPs, digit counts and date shapes for phones).

Pure and linear: every quantifier is bounded or runs over a character class with no nested
repetition, so a 100 kB token costs a scan, not a backtracking explosion. A regex alone would
flag every 16-digit order number as a card; the checksums are what keep precision up
(measured in ``bench/privacy``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

Kind = Literal["email", "phone", "url", "ip", "card", "iban"]
#: every kind this module detects; on overlapping spans of the same length the earlier kind wins
#: (a Luhn-valid card beats the phone pattern that also matches its digits)
KINDS: tuple[Kind, ...] = ("email", "url", "iban", "card", "ip", "phone")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    kind: Kind


# --------------------------------------------------------------------------- email

#: the local part, as the longest run of its characters ending right before an "@"
_EMAIL_LOCAL = re.compile(r"[\w.%+-]{1,64}$")
_EMAIL_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}[^\W\d_]{2,24}(?![\w-])")
_LOCAL_CHARS = re.compile(r"[\w.%+-]")


def _emails(text: str) -> Iterator[Span]:
    # Anchored at each "@" (found by str.find, in C): a regex that tries a local part at every
    # position of the text took most of the redaction time on tweets full of @mentions.
    at = text.find("@")
    while at != -1:
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at) if domain is not None else None
        if local is not None and domain is not None:
            start = local.start()
            part = local.group()
            whole = start == 0 or not _LOCAL_CHARS.match(text, start - 1)
            if whole and not (part.startswith(".") or part.endswith(".") or ".." in part):
                yield Span(start, domain.end(), "email")
        at = text.find("@", at + 1)


# --------------------------------------------------------------------------- url

_URL = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'`]+", re.IGNORECASE)
#: closing punctuation of the sentence around a URL, not part of it
_URL_TRAIL = ".,;:!?)]}'\"»"


def _urls(text: str) -> Iterator[Span]:
    lowered = text.lower()
    if "://" not in text and "www." not in lowered:
        return
    for m in _URL.finditer(text):
        end = m.end()
        while end > m.start() and text[end - 1] in _URL_TRAIL:
            # keep a closing parenthesis that has its opening one inside the URL (Wikipedia)
            if text[end - 1] == ")" and text.count("(", m.start(), end) >= text.count(
                ")", m.start(), end
            ):
                break
            end -= 1
        if end - m.start() > len("www.") + 2:
            yield Span(m.start(), end, "url")


# --------------------------------------------------------------------------- ip

_IPV4 = re.compile(r"(?<![\d.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?!\.?[0-9])")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?"
    r"(?:%[0-9A-Za-z]{1,16})?(?![\w:])"
)


def _ips(text: str) -> Iterator[Span]:
    if "." in text and any(d in text for d in "0123456789"):
        for m in _IPV4.finditer(text):
            try:
                ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            yield Span(m.start(), m.end(), "ip")
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            candidate = m.group().split("%", 1)[0]
            if not any(c.isalnum() for c in candidate):
                continue  # a bare "::" is valid IPv6 but mostly C++ or a smiley
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield Span(m.start(), m.end(), "ip")


# --------------------------------------------------------------------------- card

#: 12 (Maestro) to 19 digits, optionally in groups split by spaces or dashes
_CARD = re.compile(r"(?<![\d.,+-])[0-9](?:[ -]?[0-9]){11,18}(?![0-9]|[.,][0-9])")
#: one more group of a card's shape (at most 6 digits, Amex prints 4-6-5) after or before it
_GROUP_AFTER = re.compile(r"([ -])[0-9]{1,6}(?![0-9A-Za-z:.])")
_GROUP_BEFORE = re.compile(r"(?<![0-9A-Za-z:.-])[0-9]{1,6}([ -])$")
_CARD_MIN = 12
#: first digits of the issuers' ranges (ISO/IEC 7812 major industry identifiers 1-6: airlines'
#: UATP and JCB's 1800, Mastercard's 2-series, Amex/Diners/JCB, Visa, Mastercard/Maestro,
#: Discover/Maestro); 7-9 are not payment cards, nor is 0 but for Maestro UK's 0604
_CARD_FIRST = frozenset("123456")


def luhn_ok(digits: str) -> bool:
    """The Luhn check every payment card number passes (ISO/IEC 7812)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_at(text: str, start: int, end: int) -> Span | None:
    """The card number starting at ``start``: the longest prefix of the candidate, cut at a
    group boundary, that is a whole card-shaped run (one kind of separator, not continued by
    another group of its shape on either side) and passes the issuer and Luhn checks."""
    before = _GROUP_BEFORE.search(text, 0, start)
    cuts = [k for k in range(start + 1, end) if text[k] in " -"] + [end]
    for cut in reversed(cuts):
        raw = text[start:cut]
        digits = raw.replace(" ", "").replace("-", "")
        if len(digits) < _CARD_MIN:
            break
        sep = " " if " " in raw else "-" if "-" in raw else ""
        if " " in raw and "-" in raw:
            continue  # one kind of separator, as printed on cards and receipts
        if sep and before is not None and before.group(1) == sep:
            return None  # the end of a longer run ("4111 [1111 1111 1112]"): no card
        if sep and (after := _GROUP_AFTER.match(text, cut)) and after.group(1) == sep:
            continue  # goes on with another group of the same shape
        if digits[0] not in _CARD_FIRST and not digits.startswith("0604"):
            return None  # 0604: Maestro UK, the one issuer range starting with 0
        if len(set(digits)) > 1 and luhn_ok(digits):
            return Span(start, cut, "card")
    return None


def _cards(text: str) -> Iterator[Span]:
    pos = 0
    while (m := _CARD.search(text, pos)) is not None:
        # a candidate that is no card may hide one that starts at its next group
        # ("+55 93 0188-3761 6011 1259 6046 3049"): search again from the next character
        span = _card_at(text, m.start(), m.end())
        if span is not None:
            yield span
        pos = span.end if span is not None else m.start() + 1


# --------------------------------------------------------------------------- iban

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?![a-z0-9])")
#: shortest (Norway) and longest IBAN the standard allows
_IBAN_MIN, _IBAN_MAX = 15, 34
#: IBAN length per country (SWIFT's ISO 13616 registry). A checksum alone cannot tell where a
#: spaced IBAN ends when the next word is upper case too (1 prefix in 97 passes by chance);
#: countries missing here fall back to the longest prefix that passes.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_ok(compact: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    if not (_IBAN_MIN <= len(compact) <= _IBAN_MAX) or not compact.isascii():
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _ibans(text: str) -> Iterator[Span]:
    pos = 0
    while (m := _IBAN.search(text, pos)) is not None:
        raw = m.group()
        # positions of the significant characters, so a match that ran into the next words
        # ("... 0130 00 AND GB82...") is cut back to its country's length (or the longest
        # prefix passing the checksum), and the search goes on right after it
        where = [i for i, c in enumerate(raw) if c != " "]
        compact = raw.replace(" ", "")
        pos = m.start() + 1
        known = _IBAN_LENGTHS.get(compact[:2])
        lengths = [known] if known else range(min(len(compact), _IBAN_MAX), _IBAN_MIN - 1, -1)
        for n in lengths:
            if n > len(compact):
                break
            if iban_ok(compact[:n]):
                end = m.start() + where[n - 1] + 1
                yield Span(m.start(), end, "iban")
                pos = end
                break


# --------------------------------------------------------------------------- phone

_PHONE = re.compile(
    r"(?<![\w+/.:$€£¥-])"
    r"(?:\+|00)?[0-9(]"
    r"(?:[0-9]|[ .\-/](?=[0-9(])|\((?=[0-9])|\)(?=[ .\-0-9])){5,64}"
    r"(?:[0-9]|(?<=[0-9])\))"
    r"(?:\s?(?:x|ext\.?|#)\s?[0-9]{1,6})?"
    r"(?![\w])"
)
_EXTENSION = re.compile(r"\s?(?:x|ext\.?|#)\s?[0-9]{1,6}$")
_DATE = re.compile(
    r"^(?:[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{2,4})$"
)
_YEARS = re.compile(r"^(?:(?:1[89]|20)[0-9]{2}(?:\s*[-/]\s*|\s+))+(?:1[89]|20)[0-9]{2}$")
_THOUSANDS = re.compile(r"^[0-9]{1,3}(?:([ .,])[0-9]{3})(?:\1[0-9]{3})*$")
_GROUP = re.compile(r"\S*[0-9)]")
_PHONE_MAX_GROUPS = 16
#: E.164 allows 15 digits; fewer than 7 are extensions, years or prices
_PHONE_MIN_DIGITS, _PHONE_MAX_DIGITS = 7, 15


def _wrapped(part: str) -> bool:
    """Whether the first "(" of ``part`` is closed by its last character."""
    if not (part.startswith("(") and part.endswith(")")):
        return False
    depth = 0
    for k, c in enumerate(part):
        depth += (c == "(") - (c == ")")
        if depth == 0:
            return k == len(part) - 1
    return False


def _trim_parens(start: int, end: int, text: str) -> tuple[int, int]:
    """Drop an unbalanced leading "(" or trailing ")", and a pair wrapping the whole number
    ("(0148476329)" in a sentence: the parentheses are the sentence's)."""
    while start < end:
        part = text[start:end]
        opened, closed = part.count("("), part.count(")")
        if _wrapped(part):
            start, end = start + 1, end - 1
        elif part[0] == "(" and opened > closed:
            start += 1
        elif part[-1] == ")" and closed > opened:
            end -= 1
        else:
            break
    return start, end


def _phone_ok(body: str) -> bool:
    body = _EXTENSION.sub("", body)
    digits = sum(c.isdigit() for c in body)
    if not (_PHONE_MIN_DIGITS <= digits <= _PHONE_MAX_DIGITS):
        return False
    opened = body.find("(")
    if body.count("(") != body.count(")") or body.count("(") > 1 or body.find(")") < opened:
        return False  # one area code in parentheses at most, opened before it is closed
    if {c for c in body if c.isdigit()} == {"0"}:
        return False  # 0000 0000: a placeholder
    if _DATE.match(body) or _YEARS.match(body) or _THOUSANDS.match(body):
        return False
    # a decimal number (3.14159265), not a dotted phone number
    return not ("." in body and body.count(".") == 1 and not any(c in body for c in " -()+"))


def _may_split(left: str, right: str) -> bool:
    """Whether one number may end between two space-separated groups of a phone-shaped run that
    is too long to be one number: at parentheses or a +, before a national trunk prefix 0, after
    or before a group formatted on its own ("957-551-7594 831-826-3791"), or next to a group
    long enough to be a whole number; never inside plain short groups ("4111 1111 1111 1112").
    """
    if left.endswith(")") or right.startswith(("(", "+", "0")):
        return True
    if any(c in left for c in "-./") or any(c in right for c in "-./"):
        return True
    return max(sum(c.isdigit() for c in left), sum(c.isdigit() for c in right)) >= 7


def _phones(text: str) -> Iterator[Span]:
    """Phone-shaped runs, split where one number ends and the next begins: "call 957-551-7594
    (888)518-2028" is one run of 20 digits but two numbers. From each place a number may begin
    the longest valid number is taken, then the search goes on after it."""
    for m in _PHONE.finditer(text):
        groups = [(g.start() + m.start(), g.end() + m.start()) for g in _GROUP.finditer(m.group())]
        words = [text[a:b] for a, b in groups]
        starts = [0] + [k for k in range(1, len(words)) if _may_split(words[k - 1], words[k])]
        ends = {k - 1 for k in starts[1:]} | {len(words) - 1}
        at = 0
        for i in starts:
            if i < at:
                continue
            # every group holds a digit: more than this many never make one number
            for j in range(min(len(groups) - 1, i + _PHONE_MAX_GROUPS), i - 1, -1):
                if j not in ends:
                    continue
                start, end = _trim_parens(groups[i][0], groups[j][1], text)
                if start < end and _phone_ok(text[start:end]):
                    yield Span(start, end, "phone")
                    at = j + 1
                    break


# --------------------------------------------------------------------------- registry

FINDERS: dict[Kind, Callable[[str], Iterator[Span]]] = {
    "email": _emails,
    "url": _urls,
    "iban": _ibans,
    "card": _cards,
    "ip": _ips,
    "phone": _phones,
}


#: fewest digits a text must hold for each kind to be looked for (IPv6 may have none)
_MIN_DIGITS: dict[Kind, int] = {
    "email": 0,
    "url": 0,
    "iban": 2,
    "card": _CARD_MIN,
    "ip": 0,
    "phone": _PHONE_MIN_DIGITS,
}
_RANK: dict[Kind, int] = {kind: i for i, kind in enumerate(KINDS)}
_DIGITS = "0123456789"


def find(text: str, kinds: tuple[Kind, ...] = KINDS) -> list[Span]:
    """Non-overlapping spans of personal data in ``text``, in text order.

    Of overlapping spans the longer wins, then the earlier kind in :data:`KINDS`: a URL that
    holds an email is one URL, an email at ``www.`` one email, a card's digits not a phone.
    """
    # Most texts hold too few digits for a card or a phone number, most prose none at all: ten
    # substring tests (in C) skip those finders, the slow ones, for most texts.
    digits = sum(map(str.isdigit, text)) if any(d in text for d in _DIGITS) else 0
    found = [span for kind in kinds if digits >= _MIN_DIGITS[kind] for span in FINDERS[kind](text)]
    if not found:
        return []
    found.sort(key=lambda s: (s.start - s.end, _RANK[s.kind], s.start))
    kept: list[Span] = []
    for span in found:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    kept.sort(key=lambda s: s.start)
    return kept
