"""A reason must say something: not empty, not a placeholder, not a keyboard mash."""

from __future__ import annotations

import re

MIN_LENGTH = 10
MAX_LENGTH = 2000
_PLACEHOLDERS = {
    "test", "testing", "tbd", "todo", "n/a", "na", "none", "asdf", "qwerty", "foo", "bar", "foobar", "xxx", "reason",
    "because", "fix", "fixing", "stuff", "access", "admin", "need access", "pls", "please", "placeholder",
    "lorem ipsum", "no reason", "dunno", "idk", "-", ".", "...",
}


class ReasonRejected(ValueError):
    pass


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ReasonRejected("a reason is required")
    text = " ".join(reason.split())
    if len(text) > MAX_LENGTH:
        raise ReasonRejected(f"the reason is longer than {MAX_LENGTH} characters")
    words = re.findall(r"[a-z0-9]+", text.lower())
    letters = sum(ch.isalpha() for ch in text)
    normalised = " ".join(words)
    if text.lower().strip(" .!?") in _PLACEHOLDERS or normalised in _PLACEHOLDERS:
        raise ReasonRejected("the reason is a placeholder; say what you will do and why")
    if words and all(w in _PLACEHOLDERS for w in words):
        raise ReasonRejected("the reason is a placeholder; say what you will do and why")
    if len(set(text.lower().replace(" ", ""))) <= 3:
        raise ReasonRejected("the reason is a placeholder; say what you will do and why")
    if len(text) < MIN_LENGTH or letters < MIN_LENGTH // 2:
        raise ReasonRejected(f"the reason must explain why, in at least {MIN_LENGTH} characters")
    return text
