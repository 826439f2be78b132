"""HTML from an untrusted source (a run record written by any program) made safe to show: :func:`safe_html`.

A run's own text windows (``log_text``, ``log_markdown``, the command and summary panes) are HTML that flexlogger
made, every piece of user text escaped (:mod:`flexlogger.experiment.textdiff`). A record read back for replay or
compare may have been written by anyone, so that HTML is re-made here: parsed, and written again with only the
tags and attributes those windows use, every piece of text escaped again. Our own windows come out as they went in
(``tests/test_replay_hostile.py`` checks it on each kind); a ``<script>``, an ``onerror=`` or a ``javascript:``
link does not survive.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["safe_html"]

# The tags of markdown-it's CommonMark output (with tables and strikethrough) and of textdiff's diffs.
_TAGS = frozenset({
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
})
_VOID = frozenset({"br", "hr", "img"})
_ATTRS: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}), "img": frozenset({"src", "alt", "title"}), "ol": frozenset({"start"}),
    "code": frozenset({"class"}),
}
_URL_ATTRS = frozenset({"href", "src"})
_SAFE_URL = re.compile(r"^(?:https?://|mailto:|#|/|\./|\.\./|[^:/?#]*(?:[/?#]|$))", re.IGNORECASE)
# The only inline styles our windows use: textdiff's <pre>, <del> and <ins>, and markdown-it's table alignment.
_STYLES = frozenset({
    "white-space:pre-wrap;margin:0",
    "color:#a00;background:#fdd;text-decoration:line-through",
    "color:#070;background:#dfd;text-decoration:none",
    "text-align:left", "text-align:right", "text-align:center",
})
_CLASS = re.compile(r"^language-[\w+#.-]{1,40}$")
_START = re.compile(r"^\d{1,9}$")


def _escape(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "&quot;")


class _Rewriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS:
            return
        kept = []
        for name, value in attrs:
            if value is None or not _allowed(tag, name, value):
                continue
            kept.append(f' {name}="{html.escape(value, quote=True)}"')
        self.out.append(f"<{tag}{''.join(kept)}{' /' if tag in _VOID else ''}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in _TAGS and tag not in _VOID:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(_escape(data))


def _allowed(tag: str, name: str, value: str) -> bool:
    if name == "style":
        return value in _STYLES
    if name not in _ATTRS.get(tag, ()):
        return False
    if name in _URL_ATTRS:
        return _SAFE_URL.match(value.strip()) is not None and "\\" not in value
    if name == "class":
        return _CLASS.match(value) is not None
    if name == "start":
        return _START.match(value) is not None
    return True


def safe_html(source: str) -> str:
    """``source`` with only the tags, attributes and styles flexlogger's own text windows use, its text escaped.

    Script, event handlers, ``<iframe>``, ``<style>``, unknown attributes and links other than http(s), mailto and
    relative ones are dropped; the text inside a dropped tag is kept as text (``<script>`` content included, shown,
    never run).

    Example:
        >>> safe_html('<p>hi <img src=x onerror="alert(1)"></p><script>alert(2)</script>')
        '<p>hi <img src="x" /></p>alert(2)'
    """
    rewriter = _Rewriter()
    rewriter.feed(source)
    rewriter.close()
    return "".join(rewriter.out)
