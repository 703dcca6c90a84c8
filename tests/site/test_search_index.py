import orjson

from saesite.site.search_index import (
    FLAG_DEAD,
    FLAG_DENSE,
    GLOBAL,
    fires_on,
    index_row,
    logit_tokens,
    shard_scripts,
)
from saesite.site.token_markup import TokenDisplay


def _example(tokens, own, ids=None):
    return {
        "act": 1.0,
        "seq": 0,
        "pos": 10 + own,
        "window_start": 10,
        "tokens": tokens,
        "token_ids": ids or list(range(len(tokens))),
        "acts": [0.0] * len(tokens),
    }


def test_fires_on_ranks_tokens_at_the_examples_own_position_by_frequency():
    feature = {
        "top_examples": [
            _example(["a", " django", "b"], 1),
            _example(["x", "y", " flask"], 2),
            _example([" django", "q"], 0),
            _example(["z", " flask"], 1),
            _example(["w", " flask"], 1),
        ]
    }
    assert fires_on(feature, TokenDisplay()) == ["·flask", "·django"]


def test_fires_on_shows_invalid_bytes_as_marked_hex():
    feature = {"top_examples": [_example(["\ufffd"], 0, ids=[7])]}
    assert fires_on(feature, TokenDisplay({"7": "e2 80"})) == ["\\xE2\\x80"]


def test_logit_tokens_take_the_first_entries_in_order():
    feature = {
        "logit_effects": {
            "positive": [{"token": f" t{i}", "token_id": i, "value": 1.0} for i in range(8)],
            "negative": [],
        }
    }
    assert logit_tokens(feature, "positive", TokenDisplay(), n=3) == ["·t0", "·t1", "·t2"]
    assert logit_tokens(feature, "negative", TokenDisplay()) == []
    assert logit_tokens({"logit_effects": None}, "positive", TokenDisplay()) == []


def test_index_row_flags_dead_and_dense_and_rounds_numbers():
    dead = index_row(
        {"index": 3, "density": 0.0, "max_activation": 0.0, "dead": True, "dense": False},
        "",
        TokenDisplay(),
    )
    dense = index_row(
        {"index": 4, "density": 0.123456, "max_activation": 3.14159, "dead": False, "dense": True},
        "lbl",
        TokenDisplay(),
    )
    assert dead[:4] == [3, 0.0, 0.0, FLAG_DEAD]
    assert dense[:5] == [4, 0.123, 3.14, FLAG_DENSE, "lbl"]


def _payload(script: str) -> dict:
    prefix = f"(window.{GLOBAL}=window.{GLOBAL}||{{shards:[]}}).shards.push("
    assert script.startswith(prefix) and script.endswith(");\n")
    return orjson.loads(script[len(prefix) : -3])


def test_shards_split_rows_and_record_where_each_starts():
    rows = [[i, 0.1, 1.0, 0, "", [], [], []] for i in range(10)]
    shards = shard_scripts(rows, shard_size=4)
    assert [path for path, _ in shards] == [
        "search/index-0.js",
        "search/index-1.js",
        "search/index-2.js",
    ]
    payloads = [_payload(text) for _, text in shards]
    assert [p["start"] for p in payloads] == [0, 4, 8]
    assert [r for p in payloads for r in p["rows"]] == rows


def test_shard_text_cannot_close_a_script_or_break_a_string():
    hostile = '</script><img src=x onerror="window.__pwned=1"><!-- \u2028\u2029 &amp;'
    rows = [[0, 0.1, 1.0, 0, hostile, [hostile], [], []]]
    ((_, text),) = shard_scripts(rows)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert _payload(text)["rows"][0][4] == hostile


def test_an_empty_site_still_gets_one_shard():
    ((path, text),) = shard_scripts([])
    assert path == "search/index-0.js"
    assert _payload(text)["rows"] == []
