import re

import pytest

from saesite.site.token_markup import (
    EMPTY_MARK,
    TokenDisplay,
    bucket,
    example_stub,
    page_window,
    shading_max,
    token_inner_html,
    visible_label,
    visible_text,
)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (" django", "·django"),
        ("\n", "⏎"),
        ("\t", "→"),
        ("", EMPTY_MARK),
        ("\u202eevil", "U+202Eevil"),
        ("\x00", "U+0000"),
        ("a\u2028b", "aU+2028b"),
        ("plain", "plain"),
    ],
)
def test_visible_text_marks_whitespace_and_invisible_characters(text, shown):
    assert visible_text(text) == shown


def test_visible_text_shows_invalid_bytes_from_byte_level_bpe_as_hex():
    assert visible_text("\ufffd", b"\xe2\x80") == "\\xE2\\x80"
    assert visible_text(" \ufffd", b" \xf0") == "·\\xF0"


def test_plain_gives_visible_text_every_time_it_is_asked_whatever_was_asked_before():
    # plain is cached: a byte token's id, the same text with and without an id, and one id
    # under two texts (a hand-made record) must each keep their own answer
    display = TokenDisplay({"7": "e2 80"})
    asks = [("\ufffd", 7), (" 7", None), ("7", None), (" 7", 3), ("\ufffd", None), ("", 3)]
    expected = [
        visible_text("\ufffd", b"\xe2\x80"),
        "·7",
        "7",
        "·7",
        visible_text("\ufffd"),
        EMPTY_MARK,
    ]
    for _ in range(2):
        assert [display.plain(text, token_id) for text, token_id in asks] == expected
    assert expected[0] == "\\xE2\\x80" and expected[4] == "\ufffd"


def test_token_html_escapes_markup_and_keeps_the_text_literal():
    html = token_inner_html('</script><img src=x onerror="x()">&amp;')
    assert "<img" not in html and "</script>" not in html
    assert html == '&lt;/script&gt;&lt;img<b>·</b>src=x<b>·</b>onerror="x()"&gt;&amp;amp;'


def test_token_html_marks_bytes_in_kbd_and_whitespace_in_b():
    assert token_inner_html("\ufffd", b"\xe2\x80") == "<kbd>\\xE2\\x80</kbd>"
    assert token_inner_html("\n  x") == "<b>⏎··</b>x"
    assert token_inner_html("\n  x", mark_spaces=False) == "<b>⏎</b>  x"
    assert token_inner_html("") == f"<b>{EMPTY_MARK}</b>"


def test_bucket_scales_activation_to_eight_shades_and_zero_for_non_positive():
    assert bucket(0.0, 2.0) == 0
    assert bucket(-1.0, 2.0) == 0
    assert bucket(1e-9, 2.0) == 1
    assert bucket(2.0, 2.0) == 8
    assert bucket(5.0, 2.0) == 8
    assert bucket(1.0, 0.0) == 0


def _example(tokens, acts, own, ids=None):
    return {
        "act": acts[own],
        "seq": 0,
        "pos": 5 + own,
        "window_start": 5,
        "tokens": tokens,
        "token_ids": ids or list(range(len(tokens))),
        "acts": acts,
    }


def test_example_line_shades_firing_tokens_and_marks_the_own_token():
    tokens = ["a", " z", " b", " c", "d"]
    line = TokenDisplay().example(_example(tokens, [0.0, 0.0, 0.5, 1.0, 0.0], 3), 1.0)
    # seq, pos, no logit, window start and length; the non-zero activations as a run from 2
    assert line.startswith('<p data-x="0,8,,5,5" data-a="2:0.5,1"><var>1</var>')
    assert "<var>1</var><span><span>a z<i" in line  # zero tokens: plain text, plain spaces
    assert "<i class=a4><b>·</b>b</i>" in line
    assert "<u class=a8><b>·</b>c</u>" in line
    assert line.endswith("d</span></p>")


def test_a_token_is_shaded_from_the_value_the_page_shows_as_the_script_shades_it():
    # 3.0004 of 8 is past 3/8 (shade 4), but the page shows 3 (data-a="0:3"), which
    # static/examples.js shades 3 when it draws the line; the page's own line agrees
    line = TokenDisplay().example(_example(["x", "y"], [3.0004, 6.00001], 1), 8.00004)
    assert 'data-a="0:3,6"' in line
    assert "<i class=a3>x</i>" in line and "<u class=a6>y</u>" in line
    assert shading_max(8.00004) == "8"


def test_example_line_splits_at_the_own_token_so_pages_can_align_it():
    tokens = ["a", "b", "c", "d"]
    line = TokenDisplay().example(_example(tokens, [0.0, 0.0, 1.0, 0.0], 2), 1.0)
    before, after = line.split("<var>1</var>")[1].split("</span></span>")
    assert before == "<span><span>ab"
    assert after.startswith("<span><u class=a8") and after.endswith("d</span></p>")


def test_a_separator_goes_escaped_between_every_token_plain_or_shaded():
    line = TokenDisplay().example(_example(["f0", "f1", "f2"], [0.0, 1.0, 0.0], 1), 1.0, "&")
    assert line == (
        '<p data-x="0,6,,5,3" data-a="1:1"><var>1</var><span><span>f0&amp;</span></span>'
        "<span><u class=a8>f1</u>&amp;f2</span></p>"
    )


def test_example_line_marks_its_own_token_even_at_zero_activation():
    line = TokenDisplay().example(_example(["a", "b"], [0.0, 0.0], 1), 1.0)
    assert "<u>b</u>" in line


def test_example_line_escapes_quotes_and_tags():
    line = TokenDisplay().example(_example(['"><script>'], [1.0], 0), 1.0)
    assert "<u class=a8>&quot;&gt;&lt;script&gt;</u>" in line or "&lt;script&gt;" in line
    assert "<script>" not in line


def test_example_uses_token_bytes_by_token_id():
    display = TokenDisplay({"9": "f0 9f"})
    line = display.example(_example(["x", "\ufffd"], [0.0, 2.0], 1, ids=[1, 9]), 2.0)
    assert "<kbd>\\xF0\\x9F</kbd>" in line
    assert "\ufffd" not in line


def test_adjacent_whitespace_marks_share_one_element():
    line = TokenDisplay().example(_example(["\n", "\n", "x"], [0.0, 0.0, 1.0], 2), 1.0)
    assert "<b>⏎⏎</b>" in line
    assert len(re.findall("<b>", line)) == 1


def test_labels_keep_spaces_but_show_control_characters():
    assert visible_label("two words") == "two words"
    assert visible_label("a\u202eb\x00") == "aU+202EbU+0000"
    assert visible_label(None) == ""


def test_an_example_line_shows_gpt2_split_characters_whole_with_the_parts_still_marked():
    from saesite.lm.model import invalid_token_bytes
    from tests.lm.test_tokens import gpt2_line

    ids, _, tokenizer = gpt2_line()
    display = TokenDisplay(invalid_token_bytes(tokenizer, set(ids)))
    example = {
        "act": 1.0,
        "pos": 2,
        "window_start": 0,
        "tokens": [tokenizer.decode_token(i) for i in ids],
        "token_ids": ids,
        "acts": [1.0 if j == 2 else 0.5 if j % 2 else 0.0 for j in range(len(ids))],
    }
    html = str(display.example(example, 1.0))
    text = re.sub(r"<[^>]+>", "", html)
    for whole in ("we‸’ve", "“", "”", "‸‸🦜", "日", "本", "語", "文", "章"):
        assert whole in text, whole
    assert "\\x" not in text and "�" not in text
    assert html.count("<kbd class=p") == 11  # one per token holding a character's first bytes
    assert '<u class=a8><kbd class=p data-b="e2 80">‸</kbd></u>' not in html  # own token: ’
    assert "<u class=a8>’</u>" in html


def test_window_activations_are_runs_of_non_zero_values_after_the_next_logit_effect():
    example = _example(list("abcdefgh"), [0.5, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.25], 4)
    line = TokenDisplay().example({**example, "next_logit": -0.04123}, 2.0)
    assert line.startswith('<p data-x="0,9,-0.0412,5,8" data-a="0:0.5;3:1,2;7:0.25">')
    zeros = TokenDisplay().example(_example(list("ab"), [0.0, 0.0], 0), 1.0)
    assert zeros.startswith('<p data-x="0,5,,5,2" data-a="">')


def test_a_line_whose_window_is_the_pages_context_does_not_repeat_where_its_window_is():
    # own token at 9: 4 before and 3 after it (window 5..12)
    example = _example(list("abcdefgh"), [0.0] * 4 + [1.0] + [0.0] * 3, 4)
    assert page_window([example]) == (4, 3)
    assert (
        TokenDisplay()
        .example(example, 1.0, window=(4, 3))
        .startswith('<p data-x="0,9" data-a="4:1">')
    )
    assert example_stub(example, (4, 3)) == '<p data-x="0,9" data-a="4:1"></p>'
    # a wider page context: the window is not the page's, so it is given
    assert example_stub(example, (6, 3)) == '<p data-x="0,9,,5,8" data-a="4:1"></p>'
    # cut by the start of its sequence: max(0, pos - before)
    early = {**example, "pos": 2, "window_start": 0, "acts": [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]}
    assert example_stub({**early, "next_logit": 0.5}, (4, 3)) == (
        '<p data-x="0,2,+0.5" data-a="2:1"></p>'
    )


def test_a_block_of_lines_is_each_examples_line_joined_by_newlines():
    from tests.fixtures.sample_records import ADVERSARIAL_TOKEN_BYTES, adversarial_site

    _, features = adversarial_site(6)
    examples = [e for f in features for e in f["top_examples"]]
    # negative and zero activations, an own token at zero and one past the window
    examples += [
        {**examples[0], "acts": [-1.0, 0.0, *examples[0]["acts"][2:]], "pos": 100},
        {**examples[1], "acts": [0.0] * len(examples[1]["acts"])},
    ]
    display = TokenDisplay(ADVERSARIAL_TOKEN_BYTES)
    for separator in ("", " <&> "):
        block = display.lines(examples, 2.5, separator, (3, 2))
        lines = [display.example(e, 2.5, separator, (3, 2)) for e in examples]
        assert block == "\n".join(lines)
        assert "<script>" not in block and "\\x" in block
