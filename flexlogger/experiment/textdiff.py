"""Text as a window shows it: a word-level diff (HTML and plain text) and safe Markdown.

Every piece of user text is escaped before it becomes HTML: ``<script>`` in a text, an expected text, a markdown
source or a table cell is shown as written, never run.

Example:
    >>> diff_text(word_diff("the cat sat", "the dog sat"))
    'the [-cat-]{+dog+} sat'
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["DiffOp", "diff_html", "diff_text", "fenced", "markdown_html", "markdown_table", "word_diff"]

DiffOp = tuple[str, str]
"""``(op, text)``: ``' '`` text in both, ``'-'`` text only in the expected (deleted), ``'+'`` only in the actual
text (inserted)."""

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)  # words, runs of whitespace, single punctuation marks

# the marks: plain text as wdiff writes them; HTML as <del>/<ins> with colours that read without the legend
DEL_STYLE = "color:#a00;background:#fdd;text-decoration:line-through"
INS_STYLE = "color:#070;background:#dfd;text-decoration:none"


def tokens(text: str) -> list[str]:
    """``text`` cut into words, whitespace runs and punctuation marks (joined, they give ``text`` back)."""
    return _TOKENS.findall(text)


MAX_DIFF_PAIRS = 1_000_000
"""The most token pairs (tokens of one side times tokens of the other) diffed word by word: difflib takes
quadratic time, and a ``log_text(expected=...)`` must not stall training. Longer changed parts are diffed line by
line (each changed run of lines again word by word when small enough); past the budget again, the changed middle is
shown as one deletion and one insertion. The common start and end are always found, whatever the length."""


def word_diff(expected: str, actual: str) -> list[DiffOp]:
    """The word-level diff that turns ``expected`` into ``actual``: equal runs, deletions and insertions.

    A replaced run gives its deletion first, then its insertion. Whitespace counts as a token, so a changed line
    break is shown too. Takes bounded time: see :data:`MAX_DIFF_PAIRS`.
    """
    ops: list[DiffOp] = []
    _diff(tokens(expected), tokens(actual), ops, by_lines=True)
    merged: list[DiffOp] = []
    for op, text in ops:
        if not text:
            continue
        if merged and merged[-1][0] == op and op == " ":
            merged[-1] = (op, merged[-1][1] + text)
        else:
            merged.append((op, text))
    return merged


def _diff(a: list[str], b: list[str], ops: list[DiffOp], by_lines: bool) -> None:
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end = 0
    while end < len(a) - start and end < len(b) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    ops.append((" ", "".join(a[:start])))
    mid_a, mid_b = a[start:len(a) - end], b[start:len(b) - end]
    if len(mid_a) * len(mid_b) <= MAX_DIFF_PAIRS:
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False).get_opcodes():
            if tag == "equal":
                ops.append((" ", "".join(mid_a[i1:i2])))
                continue
            ops.append(("-", "".join(mid_a[i1:i2])))
            ops.append(("+", "".join(mid_b[j1:j2])))
    elif not (by_lines and _diff_lines(mid_a, mid_b, ops)):
        ops += [("-", "".join(mid_a)), ("+", "".join(mid_b))]
    ops.append((" ", "".join(a[len(a) - end:])))


def _diff_lines(a: list[str], b: list[str], ops: list[DiffOp]) -> bool:
    """Diff ``a`` and ``b`` line by line, each changed run of lines again word by word; False (nothing added to
    ``ops``) when they have too many lines for that too."""
    lines_a, lines_b = _lines(a), _lines(b)
    if len(lines_a) * len(lines_b) > MAX_DIFF_PAIRS:
        return False
    matcher = difflib.SequenceMatcher(None, ["".join(x) for x in lines_a], ["".join(x) for x in lines_b],
                                      autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        block_a = [t for line in lines_a[i1:i2] for t in line]
        block_b = [t for line in lines_b[j1:j2] for t in line]
        if tag == "equal":
            ops.append((" ", "".join(block_a)))
        else:
            _diff(block_a, block_b, ops, by_lines=False)
    return True


def _lines(toks: list[str]) -> list[list[str]]:
    """Tokens grouped into lines, each ending with the whitespace token that holds its line break."""
    out: list[list[str]] = [[]]
    for t in toks:
        out[-1].append(t)
        if "\n" in t:
            out.append([])
    return [line for line in out if line]


def diff_text(ops: Iterable[DiffOp]) -> str:
    """The diff as plain text, marked as wdiff does: ``[-deleted-]`` and ``{+inserted+}``."""
    marks = {" ": "{}", "-": "[-{}-]", "+": "{{+{}+}}"}
    return "".join(marks[op].format(text) for op, text in ops)


def diff_html(ops: Iterable[DiffOp]) -> str:
    """The diff as HTML: deletions in ``<del>``, insertions in ``<ins>``, every piece of text escaped."""
    out = []
    for op, text in ops:
        safe = html.escape(text)
        if op == "-":
            out.append(f'<del style="{DEL_STYLE}">{safe}</del>')
        elif op == "+":
            out.append(f'<ins style="{INS_STYLE}">{safe}</ins>')
        else:
            out.append(safe)
    return "".join(out)


def pre(body_html: str) -> str:
    """HTML text shown with its spaces and line breaks kept."""
    return f'<pre style="white-space:pre-wrap;margin:0">{body_html}</pre>'


def markdown_html(source: str) -> str:
    """Markdown as HTML (CommonMark with tables and strikethrough), safe to show: raw HTML in the source is
    escaped as text (``<script>`` is shown, not run) and links to ``javascript:``/``vbscript:``/``file:`` URLs
    are not made (markdown-it-py's link validation)."""
    return _markdown().render(source)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; cells are shown as written (``|``, ``*``, backticks, brackets escaped; line breaks become
    spaces), ``None`` is shown as ``-``."""

    def cell(value: Any) -> str:
        text = "-" if value is None else str(value)
        text = _MARKUP.sub(lambda m: "\\" + m[0], text)  # shown as written: no emphasis, code or link
        return text.replace("\n", " ").replace("\r", " ") or " "

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fenced(text: str, lang: str = "") -> str:
    """``text`` as a Markdown code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


_MARKUP = re.compile(r"[\\|*`\[\]~]")
_MD: Any = None


def _markdown() -> Any:
    global _MD
    if _MD is None:
        from markdown_it import MarkdownIt  # imported on first use: only runs that log markdown need it

        _MD = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    return _MD
