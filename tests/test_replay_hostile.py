"""A run record is untrusted input: replay, replay --follow and compare check its lines as a user's spec is checked,
skip each bad line with a warning naming it (file and line), and draw the rest."""

from __future__ import annotations

import json
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import visdom

import flexlogger
from flexlogger import FlexLogger
from flexlogger.experiment.textdiff import diff_html, markdown_html, pre, word_diff
from flexlogger.sinks.record import read_record
from flexlogger.sinks.safe_html import safe_html
from flexlogger.tools.follow import RecordFollower
from flexlogger.tools.server import VisdomServer

HEADER = '{"run": {"env": "e", "uid": "u", "windows": "u", "format": 2}}'
XSS = "<img src=x onerror=alert(1)><script>alert(2)</script><a href='javascript:alert(3)'>x</a>"


def write_record(tmp_path: Path, lines: list[str]) -> Path:
    run = tmp_path / "e" / "u"
    run.mkdir(parents=True)
    (run / "points.jsonl").write_text("\n".join(lines) + "\n")
    return run


def read_both(run: Path) -> tuple[list[Any], list[str], list[Any], list[str]]:
    """The updates and warnings of read_record and of RecordFollower on the same record."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = read_record(run)
    read_warnings = [str(w.message) for w in caught]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        followed = RecordFollower(run).poll()
    return record.updates, read_warnings, followed, [str(w.message) for w in caught]


def events(markup: str) -> list[tuple[str, Any]]:
    """What a browser builds from ``markup``: tags with attributes, and text (entities decoded)."""
    out: list[tuple[str, Any]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            out.append(("start", (tag, sorted(attrs))))

        def handle_endtag(self, tag: str) -> None:
            out.append(("end", tag))

        def handle_data(self, data: str) -> None:
            if out and out[-1][0] == "data":
                out[-1] = ("data", out[-1][1] + data)
            else:
                out.append(("data", data))

    parser = Collect(convert_charrefs=True)
    parser.feed(markup)
    parser.close()
    return out


def test_a_recorded_html_text_plot_is_re_made_safe(tmp_path: Path) -> None:
    run = write_record(tmp_path, [HEADER, '{"plot": "notes", "kind": "text", "opts": {"html": true}}',
                                  json.dumps({"seq": 1, "plot": "notes", "step": 0, "data": {"notes": XSS}})])
    for updates in read_both(run)[::2]:
        (update,) = updates
        shown = update.data["notes"]
        assert "onerror" not in shown and "<script" not in shown and "javascript:" not in shown
        assert events(shown) == [("start", ("img", [("src", "x")])), ("end", "img"), ("data", "alert(2)"),
                                 ("start", ("a", [])), ("data", "x"), ("end", "a")]


@pytest.mark.parametrize("opts, rule", [
    ('{"html": true}', r"opts.html: expected no `html`.*kind 'line'"),
    ('{"html": "yes"}', r"opts.html: expected no `html`"),
    ('["html", true]', r"opts: expected a mapping of Visdom options, but got \['html', True\]"),
    ('{"legend": ["a"]}', r"opts.legend: expected no `legend`"),
    ('{"markersize": -3}', r"Visdom's client rejects"),
    ('{"title": ' + "[" * 40 + "]" * 40 + "}", "nested deeper than 16"),
    ('{"title": "' + "x" * 70000 + '"}', "70013 characters as JSON; expected at most 65536"),
])
def test_a_declaration_with_opts_a_spec_could_not_have_is_skipped_with_its_updates(tmp_path: Path, opts: str,
                                                                                   rule: str) -> None:
    kind = "text" if "yes" in opts else "line"
    run = write_record(tmp_path, [HEADER, f'{{"plot": "bad", "kind": "{kind}", "opts": {opts}}}',
                                  '{"plot": "loss", "kind": "line", "opts": {}}',
                                  '{"seq": 1, "plot": "bad", "step": 0, "data": {"a": 1}}',
                                  '{"seq": 2, "plot": "loss", "step": 0, "data": {"train": 0.5}}'])
    read, read_warnings, followed, follow_warnings = read_both(run)
    for updates, messages in ((read, read_warnings), (followed, follow_warnings)):
        assert [(u.plot, dict(u.data)) for u in updates] == [("loss", {"train": 0.5})]
        (message,) = messages  # the declaration is named once; its update is skipped quietly
        assert message.startswith(f"{run / 'points.jsonl'}:2: skipping plot 'bad' and its updates: ")
        assert re.search(rule, message), message


BAD_LINES = {
    "100k-deep nesting": '{"seq": 1, "plot": "loss", "step": 0, "data": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a 5,000-digit seq": '{"seq": ' + "9" * 5000 + ', "plot": "loss", "step": 0, "data": {"train": 1}}',
    "a value beyond float range": '{"seq": 1, "plot": "loss", "step": 0, "data": {"train": ' + "9" * 400 + "}}",
    "a step beyond float range": '{"seq": 1, "plot": "loss", "step": ' + "9" * 400 + ', "data": {"train": 1}}',
    "step 1e999": '{"seq": 1, "plot": "loss", "step": 1e999, "data": {"train": 1}}',
    "step NaN": '{"seq": 1, "plot": "loss", "step": NaN, "data": {"train": 1}}',
    'step "nan"': '{"seq": 1, "plot": "loss", "step": "nan", "data": {"train": 1}}',
    "a seq beyond int64": '{"seq": 99999999999999999999, "plot": "loss", "step": 0, "data": {"train": 1}}',
    "a plot name that is a list": '{"seq": 1, "plot": ["loss"], "step": 0, "data": {"train": 1}}',
    "a vector of strings": '{"seq": 1, "plot": "vec", "step": 0, "data": {"v": ["a", "b"]}}',
    "a vector beyond int64": '{"seq": 1, "plot": "vec", "step": 0, "data": {"v": [' + "9" * 30 + "]}}",
    "a header that is a list": '{"run": ["e"]}',
}


@pytest.mark.parametrize("bad", BAD_LINES, ids=list(BAD_LINES))
def test_one_bad_line_is_skipped_with_one_warning_naming_it_and_the_rest_is_read(tmp_path: Path, bad: str) -> None:
    run = write_record(tmp_path, [HEADER, '{"plot": "loss", "kind": "line", "opts": {}}',
                                  '{"plot": "vec", "kind": "bar", "opts": {}}',
                                  '{"seq": 1, "plot": "loss", "step": 0, "data": {"train": 0.5}}', BAD_LINES[bad],
                                  '{"seq": 2, "plot": "loss", "step": 1, "data": {"train": 0.25}}'])
    read, read_warnings, followed, follow_warnings = read_both(run)
    for updates, messages in ((read, read_warnings), (followed, follow_warnings)):
        assert [(u.step, u.data["train"]) for u in updates] == [(0, 0.5), (1, 0.25)]
        (message,) = messages
        assert message.startswith(f"{run / 'points.jsonl'}:5: skipping "), message
        assert len(message) < 400


def test_our_own_html_windows_come_out_of_safe_html_as_they_went_in() -> None:
    own = [
        pre(diff_html(word_diff("the <b>old</b> & 'quoted' text\n", "the <i>new</i> & \"quoted\" text\n"))),
        markdown_html("# T\n\n*a* **b** `c` ~~d~~ [l](http://x \"t\") ![i](a.png \"q\") <b>x</b>\n\n3. z\n\n> q\n\n"
                      "---\n\n| a | b | c |\n|:-|-:|:-:|\n| 1 | 2 | 3 |\n\n```py\ncode <x>\n```\n\nline  \nbreak\n"),
    ]
    for markup in own:
        assert events(safe_html(markup)) == events(markup)


def test_replay_draws_our_own_markdown_and_a_hostile_record_safely(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                                     tmp_path: Path, env: str) -> None:
    with FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                    uid="own", server=None, log_dir=tmp_path) as stat:
        stat.log_markdown("notes", "**bold** and <script>alert(1)</script>", step=0)
    flexlogger.replay(tmp_path / env / "own", port=visdom_server.port)
    content = json.loads(viz.get_window_data("own_notes", env))["content"]
    assert "<strong>bold</strong>" in content and "&lt;script&gt;" in content and "<script" not in content

    hostile = tmp_path / env / "evil"
    hostile.mkdir()
    (hostile / "points.jsonl").write_text("\n".join([
        json.dumps({"run": {"env": env, "uid": "evil", "windows": "evil", "format": 2}}),
        '{"plot": "notes", "kind": "text", "opts": {"html": true}}',
        json.dumps({"seq": 1, "plot": "notes", "step": 0, "data": {"notes": XSS}}),
        '{"plot": "loss", "kind": "line", "opts": {}}',
        '{"seq": 2, "plot": "loss", "step": 0, "data": {"train": 1.0}}',
        '{"seq": 3, "plot": "loss", "step": 1e999, "data": {"train": 2.0}}',
        '{"seq": 4, "plot": "loss", "step": 2, "data": {"train": 3.0}}']) + "\n")
    with pytest.warns(RuntimeWarning, match=r"points.jsonl:6: skipping .*expected step to be a finite number"):
        result = flexlogger.replay(hostile, port=visdom_server.port, timeout=30)
    assert result.points == 2
    content = json.loads(viz.get_window_data("evil_notes", env))["content"]
    assert "onerror" not in content and "<script" not in content and "javascript:" not in content
    line = json.loads(viz.get_window_data("evil_loss", env))["content"]["data"][0]
    assert (line["x"], line["y"]) == ([0, 2], [1.0, 3.0])


def test_a_record_of_an_unknown_format_is_read_with_a_warning(tmp_path: Path) -> None:
    run = write_record(tmp_path, ['{"run": {"env": "e", "uid": "u", "windows": "u", "format": 99}}',
                                  '{"plot": "loss", "kind": "line", "opts": {}}',
                                  '{"seq": 1, "plot": "loss", "step": 0, "data": {"train": 0.5}}'])
    read, read_warnings, followed, follow_warnings = read_both(run)
    for updates, messages in ((read, read_warnings), (followed, follow_warnings)):
        assert len(updates) == 1
        assert messages == [f"{run / 'points.jsonl'}: the record says format 99; this flexlogger reads formats 1 to 2 "
                            "and reads it as format 2: lines it does not know are skipped (a newer flexlogger may "
                            "read them)"]


def test_the_follower_reads_in_pieces_and_skips_a_line_longer_than_any_record_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flexlogger.tools import follow

    monkeypatch.setattr(follow, "READ_CHUNK", 7)  # lines cross many pieces
    monkeypatch.setattr(follow, "MAX_LINE", 120)
    long = '{"seq": 9, "plot": "loss", "step": 5, "data": {"train": 1, "pad": "' + "x" * 300 + '"}}'
    run = write_record(tmp_path, [HEADER, '{"plot": "loss", "kind": "line", "opts": {}}',
                                  '{"seq": 1, "plot": "loss", "step": 0, "data": {"train": 0.5}}', long,
                                  '{"seq": 2, "plot": "loss", "step": 1, "data": {"train": 0.25}}'])
    follower = RecordFollower(run)
    with pytest.warns(RuntimeWarning) as caught:
        updates = follower.poll()
    assert [(u.step, u.data["train"]) for u in updates] == [(0, 0.5), (1, 0.25)]
    assert [str(w.message) for w in caught] == [f"{run / 'points.jsonl'}:4: skipping a line longer than 120 bytes"]
    assert follower.damaged == 1 and follower.lines == 5
