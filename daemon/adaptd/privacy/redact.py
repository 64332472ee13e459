"""Replace personal data in a text with typed placeholders (``<EMAIL>``, ``<PHONE>``, ...).

Placeholders are ASCII words in angle brackets that no pattern matches, so redacting twice gives
the same text: a row redacted at serving time and again before training is unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from adaptd.privacy.patterns import KINDS, Kind, find

PLACEHOLDERS: Mapping[Kind, str] = {kind: f"<{kind.upper()}>" for kind in KINDS}


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    #: placeholders written, by kind (only kinds that occurred)
    counts: Mapping[Kind, int]


def redact(text: str, kinds: tuple[Kind, ...] = KINDS) -> Redacted:
    spans = find(text, kinds)
    if not spans:
        return Redacted(text, {})
    parts: list[str] = []
    at = 0
    for span in spans:
        parts.append(text[at : span.start])
        parts.append(PLACEHOLDERS[span.kind])
        at = span.end
    parts.append(text[at:])
    return Redacted("".join(parts), Counter(span.kind for span in spans))
