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
