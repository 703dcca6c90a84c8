"""Byte-level BPE pieces decode to their bytes; invalid UTF-8 is marked, never mojibake."""

from __future__ import annotations

from saesite.lm.tokens import byte_to_unicode, display_segments, hex_bytes, piece_bytes


def test_byte_to_unicode_is_a_bijection_over_all_256_bytes():
    table = byte_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256


def test_gpt2_space_and_newline_markers_decode_to_bytes():
    assert piece_bytes("Ġhello") == b" hello"
    assert piece_bytes("Ċ") == b"\n"
    assert piece_bytes("hello") == b"hello"


def test_a_piece_outside_the_byte_alphabet_is_not_byte_level():
    assert piece_bytes("▁hello") is None  # sentencepiece marker


def test_half_of_a_utf8_character_is_shown_as_marked_bytes():
    euro = "€".encode()  # e2 82 ac
    piece = "".join(byte_to_unicode()[b] for b in euro[:2])
    raw = piece_bytes(piece)
    assert raw == euro[:2]
    assert display_segments("\ufffd", raw) == [("byte", "\\xE2"), ("byte", "\\x82")]
    assert hex_bytes(raw) == "e2 82"


def test_valid_text_around_an_invalid_byte_is_kept_as_text():
    raw = b"ab\xffcd"
    assert display_segments("", raw) == [("text", "ab"), ("byte", "\\xFF"), ("text", "cd")]


def test_a_complete_emoji_is_text():
    assert display_segments("🙂", "🙂".encode()) == [("text", "🙂")]


def gpt2_line():
    """(ids, raw bytes of the tokens that are not UTF-8 alone) of SPLIT_TEXT, real GPT-2 ids."""
    from saesite.lm.model import Tokenizer
    from tests.fixtures.gpt2 import SPLIT_TEXT, gpt2_tokenizer

    tokenizer = Tokenizer(gpt2_tokenizer())
    ids = tokenizer.encode(SPLIT_TEXT)
    raws = [tokenizer.invalid_utf8_bytes(i) for i in ids]
    return ids, [bytes.fromhex(r) if r else None for r in raws], tokenizer


def test_characters_gpt2_splits_across_tokens_are_shown_by_the_token_completing_them():
    from saesite.lm.tokens import joined_segments

    ids, raws, tokenizer = gpt2_line()
    assert ids[:4] == [732, 447, 247, 303]  # we âĢ Ļ ve: tiktoken's ids
    joined = joined_segments(raws)
    assert joined[1] == [("part", "e2 80")] and joined[2] == [("text", "’")]
    shown = "".join(
        "".join(text for kind, text in joined[j] if kind == "text")
        if j in joined
        else tokenizer.decode_token(token_id)
        for j, token_id in enumerate(ids)
    )
    from tests.fixtures.gpt2 import SPLIT_TEXT

    assert shown == SPLIT_TEXT  # every character whole, none lost or doubled
    assert not any(kind == "byte" for segments in joined.values() for kind, _ in segments)
    emoji = next(j for j, segments in joined.items() if ("text", "🦜") in segments)
    assert joined[emoji - 2] == [("text", " "), ("part", "f0 9f")]  # ĠðŁ ¦ ľ
    assert joined[emoji - 1] == [("part", "a6")]


def test_bytes_that_complete_no_character_stay_byte_chips():
    from saesite.lm.tokens import joined_segments

    # a window that starts inside "’" and ends inside "🙂": nothing to join
    assert joined_segments([b"\x99", None, b"\xf0\x9f"]) == {}
    # a lone continuation byte before a joined pair keeps its chip
    joined = joined_segments([b"\x99", b"\xe2\x80", b"\x9d"])
    assert joined == {0: [("byte", "\\x99")], 1: [("part", "e2 80")], 2: [("text", "”")]}
