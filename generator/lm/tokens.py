"""Token text: byte-level BPE pieces back to bytes, and bytes to something a page can show.

GPT-2 style byte-level BPE stores each byte as a printable stand-in character (`Ġ` for a space,
`Ċ` for a newline). ``piece_bytes`` undoes that mapping exactly, so a token that holds only part
of a UTF-8 character is known as its raw bytes, not as mojibake or U+FFFD. No torch here: the
renderer uses this module too.
"""

from __future__ import annotations

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


def parse_hex_bytes(hex_str: str) -> bytes:
    """Inverse of ``hex_bytes``."""
    return bytes.fromhex(hex_str)


def hex_bytes(raw: bytes) -> str:
    """``b'\\xe2\\x80'`` -> ``'e2 80'`` (the form stored in site.json ``token_bytes``)."""
    return raw.hex(" ")
