"""Regular expressions for whole values, the same to msgspec and to OpenAPI readers.

In Python's ``re`` (msgspec checks patterns with ``search``) a final ``$`` also matches
before a trailing newline, so ``"kadis_16.71\\n"`` passed as a username and made a
look-alike account. ``\\Z`` would mean something else in the JSON Schema dialect
OpenAPI uses; a lookahead refusing the newline reads the same in both. For the same
reason digits are ``[0-9]``: Python's ``\\d`` also takes other scripts' digits.
"""

from __future__ import annotations

import re


def whole(body: str) -> str:
    """A pattern the entire value must match, without a trailing newline."""
    return rf"^(?:{body})(?!\n)$"


#: What each pattern a caller may meet asks for, in words (``described``, ``in_words``).
_WORDS: dict[str, str] = {}


def described(pattern: str, words: str) -> str:
    """``pattern``, remembered with what it asks for (``words`` completes "Expected ...")."""
    _WORDS[pattern] = words
    return pattern


def in_words(message: str) -> str:
    """A msgspec validation message with the patterns it quotes said in words: "Expected
    `str` matching regex '^(?:[0-9]{2}\\.[0-9]{2})(?!\\n)$'" tells a district head little."""
    if "matching regex" not in message:
        return message
    for pattern, words in _WORDS.items():
        message = message.replace(f"`str` matching regex {pattern!r}", words)
    return message


#: Characters that show nothing, beside the spaces ``\s`` takes: controls, the soft
#: hyphen, zero-width and joining marks, direction marks, fillers, variation selectors
#: and the byte-order mark. Python's ``str.strip`` keeps these, so a reason of one
#: zero-width space read as given.
_SHOWS_NOTHING = (
    r"\x01-\x1f\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    r"\u2028-\u202e\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    # Beyond the first plane: format controls (Egyptian, shorthand, musical), the tag
    # characters and the supplementary variation selectors.
    r"\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    r"\U000e0020-\U000e007f\U000e0100-\U000e01ef"
)

#: Text with something visible in it and no NUL (PostgreSQL text cannot hold one): a
#: name or reason of spaces or invisible characters alone names nothing. Written to
#: match in linear time (the leading class and the visible one share no character): the
#: obvious ``^[^\x00]*[^\x00\s][^\x00]*$`` backtracks quadratically on a long text
#: ending in a NUL (16 ms of CPU for 2,000 characters).
VISIBLE_TEXT = described(
    rf"^[\s{_SHOWS_NOTHING}]*[^\x00\s{_SHOWS_NOTHING}][^\x00]*$",
    "text with something visible in it (not only spaces, zero-width or control "
    "characters) and no NUL",
)
#: Any text PostgreSQL can hold.
NO_NUL = described(r"^[^\x00]*$", "text without a NUL character")


_VISIBLE = re.compile(VISIBLE_TEXT)


def shows_text(text: str) -> bool:
    """Whether ``text`` passes ``VISIBLE_TEXT``, for a text a schema lets through blank."""
    return _VISIBLE.search(text) is not None
