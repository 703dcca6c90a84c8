"""Token text: byte-level BPE pieces back to bytes, and bytes to something a page can show.

GPT-2 style byte-level BPE stores each byte as a printable stand-in character (`Ġ` for a space,
`Ċ` for a newline). ``piece_bytes`` undoes that mapping exactly, so a token that holds only part
of a UTF-8 character is known as its raw bytes, not as mojibake or U+FFFD. No torch here: the
renderer uses this module too.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars)}


@lru_cache(maxsize=1)
def unicode_to_byte() -> dict[str, int]:
    return {char: byte for byte, char in byte_to_unicode().items()}


def piece_bytes(piece: str) -> bytes | None:
    """Raw bytes of a byte-level BPE vocabulary piece, or None if it is not one."""
    table = unicode_to_byte()
    try:
        return bytes(table[char] for char in piece)
    except KeyError:
        return None


def is_valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def display_segments(text: str, raw: bytes | None = None) -> list[tuple[str, str]]:
    """Split a token into ``(kind, text)`` segments for display.

    ``kind`` is ``"text"`` for decodable text and ``"byte"`` for a byte that is not valid UTF-8
    on its own (shown as ``\\xNN``). When ``raw`` is None the text is shown as decoded.
    """
    if raw is None:
        return [("text", text)] if text else []
    segments: list[tuple[str, str]] = []
    start = 0
    while start < len(raw):
        try:
            chunk = raw[start:].decode("utf-8")
            segments.append(("text", chunk))
            break
        except UnicodeDecodeError as err:
            if err.start > 0:
                segments.append(("text", raw[start : start + err.start].decode("utf-8")))
            bad_end = start + err.end
            for byte in raw[start + err.start : bad_end]:
                segments.append(("byte", f"\\x{byte:02X}"))
            start = bad_end
    return segments


def _char_length(lead: int) -> int:
    """Bytes of the UTF-8 sequence a lead byte starts (1 for a byte that starts none)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 1


def joined_segments(raws: Sequence[bytes | None]) -> dict[int, list[tuple[str, str]]]:
    """Display segments of the tokens of a line whose bytes complete characters together.

    GPT-2 splits "’" (e2 80 99) into ``âĢ`` + ``Ļ``: neither is UTF-8 alone. ``raws`` holds the
    raw bytes of each token that is not valid UTF-8 on its own (None for the others); within
    each run of such tokens the bytes are read in order, and a character whose bytes span
    tokens is shown by the token holding its last byte, as ``("text", char)``. Each earlier
    token that holds some of its bytes shows ``("part", "e2 80")``: those bytes, so the token
    stays visible. Bytes that form no character stay ``("byte", "\\xNN")``. Returns
    ``{index: segments}`` for the tokens whose display changes (none if nothing joins).
    """
    out: dict[int, list[tuple[str, str]]] = {}
    index = 0
    while index < len(raws):
        if raws[index] is None:
            index += 1
            continue
        stop = index
        while stop < len(raws) and raws[stop] is not None:
            stop += 1
        if stop - index > 1:
            out.update(_join_run(raws, index, stop))
        index = stop
    return out


def _join_run(raws: Sequence[bytes | None], first: int, stop: int) -> dict:
    data = b"".join(raws[i] or b"" for i in range(first, stop))
    owner = [i for i in range(first, stop) for _ in raws[i] or b""]
    segments: dict[int, list[tuple[str, str]]] = {i: [] for i in range(first, stop)}
    spans = False
    at = 0
    while at < len(data):
        end = at + _char_length(data[at])
        try:
            char = data[at:end].decode("utf-8") if end <= len(data) else None
        except UnicodeDecodeError:
            char = None
        if char is None:
            segments[owner[at]].append(("byte", f"\\x{data[at]:02X}"))
            at += 1
            continue
        last = owner[end - 1]
        for token in sorted({owner[k] for k in range(at, end - 1)} - {last}):
            held = bytes(data[k] for k in range(at, end) if owner[k] == token)
            segments[token].append(("part", hex_bytes(held)))
            spans = True
        _append_text(segments[last], char)
        at = end
    return segments if spans else {}


def _append_text(segments: list[tuple[str, str]], text: str) -> None:
    if segments and segments[-1][0] == "text":
        segments[-1] = ("text", segments[-1][1] + text)
    else:
        segments.append(("text", text))


def parse_hex_bytes(hex_str: str) -> bytes:
    """Inverse of ``hex_bytes``."""
    return bytes.fromhex(hex_str)


def hex_bytes(raw: bytes) -> str:
    """``b'\\xe2\\x80'`` -> ``'e2 80'`` (the form stored in site.json ``token_bytes``)."""
    return raw.hex(" ")
