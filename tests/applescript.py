"""A small AppleScript tokenizer for tests, independent of the code under test.

It reads generated scripts back as code, string literals (decoded) and
comments, and fails on anything malformed, so tests can compare what a
script does (`skeleton`) and what its literals hold (`literals`), and
says what a literal keeps of a value (`as_applescript_keeps`).
"""

from __future__ import annotations

from dataclasses import dataclass

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class Token:
    kind: str  # "code", "string" or "comment"
    raw: str
    value: str = ""


def tokenize(script: str) -> list[Token]:
    """Split AppleScript source into code, string literals (decoded) and comments; fail on anything malformed."""
    tokens, code, i = [], [], 0
    while i < len(script):
        char = script[i]
        if char == '"':
            end, value = _string(script, i)
        elif script.startswith("--", i) or char == "#":
            end = _line_end(script, i)
        elif script.startswith("(*", i):
            end = _block_comment_end(script, i)
        elif char in "|«":
            closing = "|" if char == "|" else "»"
            end = script.index(closing, i + 1) + 1
        else:
            code.append(char)
            i += 1
            continue
        if code:
            tokens.append(Token("code", "".join(code)))
            code = []
        raw = script[i:end]
        if char == '"':
            tokens.append(Token("string", raw, value))
        elif char in "|«":
            tokens.append(Token("code", raw))
        else:
            tokens.append(Token("comment", raw))
        i = end
    if code:
        tokens.append(Token("code", "".join(code)))
    return tokens


def _string(script: str, start: int) -> tuple[int, str]:
    value, i = [], start + 1
    while True:
        if i >= len(script):
            raise AssertionError("A string literal is not closed.")
        char = script[i]
        if char == '"':
            return i + 1, "".join(value)
        if char == "\\":
            escaped = script[i + 1 : i + 2]
            assert escaped in _ESCAPES, f"Unknown escape \\{escaped!r} in a literal"
            value.append(_ESCAPES[escaped])
            i += 2
        else:
            value.append(char)
            i += 1


def _line_end(script: str, start: int) -> int:
    ends = [index for index in (script.find("\n", start), script.find("\r", start)) if index >= 0]
    return min(ends) if ends else len(script)


def _block_comment_end(script: str, start: int) -> int:
    depth, i = 0, start
    while i < len(script):
        if script.startswith("(*", i):
            depth, i = depth + 1, i + 2
        elif script.startswith("*)", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise AssertionError("A block comment is not closed.")


def skeleton(script: str) -> str:
    """The script with every literal replaced by one placeholder: what it does, whatever the values."""
    return "".join('"…"' if token.kind == "string" else token.raw for token in tokenize(script))


def literals(script: str) -> list[str]:
    """The values of the script's string literals, in order."""
    return [token.value for token in tokenize(script) if token.kind == "string"]


def as_applescript_keeps(value: str) -> str:
    """The documented normalisation: NEL and the Unicode line separators become LF; other controls U+FFFD."""
    out = []
    for char in value:
        code = ord(char)
        if char in "\x85\u2028\u2029":
            out.append("\n")
        elif char in "\t\n\r":
            out.append(char)
        elif code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out)
