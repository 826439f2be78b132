"""The word diff: bounded time for long texts (log_text(expected=...) must not stall training)."""

from __future__ import annotations

import random
import time

from flexlogger.experiment.textdiff import MAX_DIFF_PAIRS, diff_text, word_diff


def sides(ops: list[tuple[str, str]]) -> tuple[str, str]:
    return "".join(t for o, t in ops if o != "+"), "".join(t for o, t in ops if o != "-")


def test_a_long_diff_takes_bounded_time_and_gives_both_texts_back() -> None:
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "mat", "dog", "a", "big"]
    a = " ".join(rng.choice(words) for _ in range(20_000))
    b = " ".join(rng.choice(words) for _ in range(20_000))
    start = time.monotonic()
    ops = word_diff(a, b)  # difflib alone: minutes (10,000 words took 18 s)
    assert time.monotonic() - start < 2.0
    assert sides(ops) == (a, b)


def test_a_small_change_in_a_long_text_is_marked_where_it_is() -> None:
    rng = random.Random(1)
    lines = [" ".join(rng.choice(["the", "cat", "sat", "on"]) for _ in range(10)) for _ in range(3000)]
    a = "\n".join(lines)
    changed = list(lines)
    changed[1500] = "a completely new line"
    b = "\n".join(changed)
    assert len(a.split()) ** 2 > MAX_DIFF_PAIRS  # too long for a whole word diff
    start = time.monotonic()
    ops = word_diff(a, b)
    assert time.monotonic() - start < 2.0 and sides(ops) == (a, b)
    assert all(t in lines[1500] for o, t in ops if o == "-")  # only that line's words are marked
    assert "".join(t for o, t in ops if o == "+") == "acompletelynewline"  # the spaces between stay equal


def test_a_short_diff_is_still_word_by_word() -> None:
    assert diff_text(word_diff("the cat sat on the mat", "the dog sat on a mat")) == \
        "the [-cat-]{+dog+} sat on [-the-]{+a+} mat"
