"""Turning an email's HTML into plain text a person (or a model) can read.

Mail HTML is often broken (unclosed tags, stray markup, Word output), so the
converter only ever makes the text worse, never fails: whatever the parser
cannot place is dropped, and a parser crash falls back to stripping tags.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

# Blocks that stand apart as paragraphs (a blank line around them) and blocks
# that only start a new line.
_PARAGRAPHS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr", "address", "figure",
}  # fmt: skip
_LINES = {
    "div", "tr", "li", "dt", "dd", "section", "article", "header", "footer", "nav", "main", "aside", "form",
    "fieldset", "center", "caption", "tbody", "thead", "tfoot", "body", "html", "figcaption", "details", "summary",
}  # fmt: skip
# Their content is code, styling or metadata, never part of the message.
_HIDDEN = {"script", "style", "title", "template", "head"}
_CELLS = {"td", "th"}

_WHITESPACE = re.compile(r"\s+")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_TOO_MANY_BLANK_LINES = re.compile(r"\n{4,}")
_TAG = re.compile(r"<[^>]*>")


def html_to_text(html: str) -> str:
    """Return the readable text of HTML: line breaks for blocks, "- " for list items, links as "text (url)"."""
    converter = _TextConverter()
    try:
        converter.feed(html)
        converter.close()
    except Exception:  # html.parser still has asserts on some markup; keep what it read
        converter.text_so_far = converter.text_so_far or _stripped(html)
    return _tidy(converter.text_so_far)


def _stripped(html: str) -> str:
    """The crude fallback: tags removed, entities decoded."""
    return unescape(_TAG.sub(" ", html))


def _tidy(text: str) -> str:
    """No spaces at line ends, at most two blank lines in a row, none at the start or end."""
    text = _TRAILING_SPACE.sub("\n", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _TOO_MANY_BLANK_LINES.sub("\n\n\n", text).strip("\n").strip()


class _TextConverter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._hidden: list[str] = []  # open tags whose content is dropped
        self._pre = 0
        self._lists = 0
        self._links: list[tuple[str, int]] = []  # (href, where the link text starts in _out)

    @property
    def text_so_far(self) -> str:
        return "".join(self._out)

    @text_so_far.setter
    def text_so_far(self, value: str) -> None:
        self._out = [value]

    # --- Output ------------------------------------------------------------------------

    def _ends_with(self) -> str:
        """The last few characters written, to decide about spaces and line breaks."""
        tail = ""
        for chunk in reversed(self._out):
            tail = chunk + tail
            if len(tail) >= 3:
                break
        return tail[-3:]

    def _write(self, text: str) -> None:
        if not text:
            return
        tail = self._ends_with()
        if not self._pre and (not tail or tail.endswith(("\n", " "))):
            text = text.lstrip(" ")
        if text:
            self._out.append(text)

    def _break(self, lines: int) -> None:
        """End the current line, leaving `lines` - 1 blank lines (no more than are already there)."""
        if not self._out:
            return
        while self._out and self._out[-1].endswith(" ") and not self._pre:
            self._out[-1] = self._out[-1].rstrip(" ")
            if not self._out[-1]:
                self._out.pop()
        existing = len(self._ends_with()) - len(self._ends_with().rstrip("\n"))
        if existing < lines:
            self._out.append("\n" * (lines - existing))

    # --- Parser callbacks --------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and "head" in self._hidden:
            # Browsers close an unclosed <head> at <body>; so do we, or the whole message vanishes.
            self._hidden = [open_tag for open_tag in self._hidden if open_tag != "head"]
        if tag in _HIDDEN:
            self._hidden.append(tag)
            return
        if self._hidden:
            return
        if tag == "br":
            self._out.append("\n")
        elif tag in ("ul", "ol"):
            self._break(1 if self._lists else 2)  # a nested list continues its item's list
            self._lists += 1
        elif tag in _PARAGRAPHS:
            self._break(2)
            if tag == "pre":
                self._pre += 1
        elif tag == "li":
            self._break(1)
            self._out.append("  " * max(self._lists - 1, 0) + "- ")
        elif tag in _LINES:
            self._break(1)
        elif tag in _CELLS:
            self._write(" ")
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self._out)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self._write(_WHITESPACE.sub(" ", alt))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>, <img/>: open and closed at once; a self-closed <script/> hides nothing.
        if tag not in _HIDDEN:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            if tag in self._hidden:
                # Close it and anything left open inside it.
                del self._hidden[len(self._hidden) - 1 - self._hidden[::-1].index(tag) :]
            return
        if self._hidden:
            return
        if tag in ("ul", "ol"):
            self._lists = max(self._lists - 1, 0)
            self._break(1 if self._lists else 2)
        elif tag in _PARAGRAPHS:
            if tag == "pre":
                self._pre = max(self._pre - 1, 0)
            self._break(2)
        elif tag in _LINES or tag == "li":
            self._break(1)
        elif tag == "a" and self._links:
            self._end_link(*self._links.pop())

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        self._write(data if self._pre else _WHITESPACE.sub(" ", data))

    def _end_link(self, href: str, start: int) -> None:
        href = href.strip()
        if not href or href.startswith(("#", "javascript:")):
            return
        text = "".join(self._out[start:]).strip()
        if not text:
            self._write(href)
        elif _bare(text) != _bare(href):
            self._write(f" ({href})")


def _bare(link: str) -> str:
    """A link or link text without scheme and trailing slash, so "example.com" matches "https://example.com/"."""
    return re.sub(r"^(?:https?://|mailto:|tel:)", "", link.strip(), flags=re.IGNORECASE).rstrip("/").lower()
