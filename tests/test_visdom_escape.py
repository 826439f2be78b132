"""User strings in Visdom messages: escaped where Plotly or Visdom would read them as markup; env names Visdom
rewrites or cannot show refused. The browser test (tests/test_browser.py) checks the same in Chromium."""

from __future__ import annotations

import pickle

import pytest

from flexlogger.errors import ConfigError
from flexlogger.sinks.base import Update
from flexlogger.sinks.visdom import render
from flexlogger.sinks.visdom.legible import text_page
from flexlogger.sinks.visdom.rules import check_env
from flexlogger.sinks.visdom.sender import VisdomSink
from flexlogger.sinks.visdom.transport import Transport
from flexlogger.tools.server import find_free_port

MARKUP = "a<b>&</b>"
SHOWN = "a&lt;b&gt;&amp;&lt;/b&gt;"


@pytest.fixture(scope="module")
def builder() -> object:
    return render.make_builder("http://localhost", 8097, "e")


def test_line_title_axes_and_legend_are_escaped(builder: object) -> None:
    update = Update(MARKUP, "line", 0, {MARKUP: 1.0}, {"xlabel": MARKUP, "ylabel": MARKUP})
    msg = render.RENDERERS["line"](builder, "w", "e", update)
    assert msg["data"][0]["name"] == SHOWN
    title = msg["layout"]["title"]  # a dict where the title is placed or sized to fit (legible.py)
    assert (title["text"] if isinstance(title, dict) else title) == SHOWN
    assert msg["layout"]["xaxis"]["title"] == SHOWN and msg["layout"]["yaxis"]["title"] == SHOWN
    assert msg["opts"]["title"] == MARKUP  # the pane's title bar: drawn by React as text, so as given


def test_the_lines_template_is_escaped_once(builder: object) -> None:
    template = render.trace_template(builder, "w", "e", "p", "line", {}, MARKUP)
    assert template is not None and template["data"][0]["name"] == SHOWN


@pytest.mark.parametrize("kind, data, opts", [
    ("heatmap", {"m": [[1.0, 2.0], [3.0, 4.0]]}, {"rownames": [MARKUP, "b"], "columnnames": [MARKUP, "d"]}),
    ("bar", {MARKUP: 1.0, "y": 2.0}, {}),
    ("bar", {MARKUP: [1.0, 2.0], "y": [2.0, 3.0]}, {}),
])
def test_category_labels_and_legends_are_escaped(builder: object, kind: str, data: dict[str, object],
                                                 opts: dict[str, object]) -> None:
    msg = render.RENDERERS[kind](builder, "w", "e", Update(MARKUP, kind, 0, data, opts))
    texts = [v for t in msg["data"] for key in ("x", "y", "name") for v in (
        t.get(key) if isinstance(t.get(key), list) else [t.get(key)]) if isinstance(v, str)]
    assert SHOWN in texts and MARKUP not in texts
    assert msg["layout"]["title"] == SHOWN


def test_text_cells_are_escaped(builder: object) -> None:
    msg = render.RENDERERS["text"](builder, "w", "e", Update("notes", "text", 0, {MARKUP: MARKUP + "\nx"}, {}))
    assert msg["data"][0]["content"] == text_page(f"<table><tr><td><b>{SHOWN}</b></td><td>{SHOWN}<br>x</td></tr>"
                                                  "</table>")


@pytest.mark.parametrize("env, bad", [("a/b", "'/'"), ("a\\b", "'\\\\\\\\'"), ("<img>", "'<', '>'"),
                                      ("it's", "\"'\""), ("a\nb", "'\\\\n'"), ("x&y", "'&'")])
def test_env_names_visdom_cannot_show_are_refused(env: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=rf"^expected `env` to be a Visdom env name without {bad} \(Visdom "
                                          r"rewrites / and \\ and line breaks, and cannot show < > & or quotes in its "
                                          r"env list\), but got "):
        check_env(env)
    with pytest.raises(ConfigError, match=r"expected `env` to be a Visdom env name"):
        VisdomSink(port=find_free_port(), env=env)


@pytest.mark.parametrize("env", ["main", "exp 1: lr=0.1 (seed 3)", "run_2026-11-30", "é"])
def test_ordinary_env_names_pass(env: str) -> None:
    check_env(env)


def test_the_transport_never_shows_the_password() -> None:
    transport = Transport("http://localhost:1", 1.0, username="u", password="hunter2")
    try:
        assert transport.username == "u"
        assert "hunter2" not in repr(vars(transport))
        with pytest.raises(TypeError, match=r"a Visdom login is not copied or pickled"):
            pickle.dumps(transport._login)
    finally:
        transport.close()
