"""Tokens as compact, safe HTML: visible whitespace, marked invalid bytes, activation shading.

An example is one line: bare text for zero-activation tokens, an element per shaded token::

    <p data-x="seq,pos,window_start,length" data-a="2:.8,3.21"><var>3.21</var><span><span>def x
       <i class=a2><b>·</b>foo</i></span></span><span><u class=a8>(</u>)</span></p>

``aN`` (N = 1…8) buckets the activation relative to the feature's maximum; ``<u>`` marks the
example's own token. The size budget is 20 KB per feature, all files counted, so each byte per
token counts. In shaded tokens whitespace becomes ``·`` ``⏎`` ``→`` inside ``<b>`` (muted); in
bare text only spaces stay spaces (the page keeps them with ``pre-wrap``). Invisible and control
characters become ``U+XXXX`` and bytes that are not valid UTF-8 on their own ``\\xNN`` inside
``<kbd>``. Token text is always escaped: it is data nobody reviewed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from markupsafe import Markup

from saesite.lm.tokens import display_segments, joined_segments, parse_hex_bytes

N_BUCKETS = 8
EMPTY_MARK = "∅"
PART_MARK = "‸"
"""Shown by a token holding the first bytes of a character a later token completes."""
_WHITESPACE = {" ": "·", "\n": "⏎", "\t": "→", "\r": "↵"}
# Text content needs only & < > escaped; double-quoted attribute values also need ". Shorter
# than markupsafe's escape (which also turns ' into &#39;), and as safe in these two places.
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def escape_text(text: str) -> str:
    """Escape for HTML text content (not for attribute values)."""
    return text.translate(_TEXT)


def escape_attr(text: str) -> str:
    """Escape for a double-quoted HTML attribute value."""
    return text.translate(_ATTR)


def char_mark(char: str) -> str | None:
    """The visible stand-in for a whitespace, control or invisible character, else None."""
    mark = _WHITESPACE.get(char)
    if mark is not None:
        return mark
    if char.isprintable():
        return None
    return f"U+{ord(char):04X}"


def visible_text(text: str, raw: bytes | None = None) -> str:
    """Plain text of a token as pages show it (for titles, search results, descriptions)."""
    if raw is None and text.isprintable() and " " not in text:
        return text or EMPTY_MARK
    out = []
    for kind, segment in display_segments(text, raw):
        if kind == "byte":
            out.append(segment)
            continue
        out.extend(char_mark(c) or c for c in segment)
    return "".join(out) or EMPTY_MARK


def token_inner_html(text: str, raw: bytes | None = None, *, mark_spaces: bool = True) -> str:
    """Escaped HTML for a token's text: marks in ``<b>``, invalid bytes in ``<kbd>``.

    With ``mark_spaces=False`` spaces stay spaces (the page keeps them with ``pre-wrap``).
    """
    if raw is None and text.isprintable() and (" " not in text or not mark_spaces):
        return escape_text(text) if text else f"<b>{EMPTY_MARK}</b>"
    return segments_html(display_segments(text, raw), mark_spaces=mark_spaces)


def segments_html(segments: list[tuple[str, str]], *, mark_spaces: bool = True) -> str:
    """HTML of display segments (``lm.tokens``): ``text`` escaped with its whitespace marked,
    ``byte`` chips in ``<kbd>``, and ``part`` (bytes of a character the next tokens complete,
    ``joined_segments``) as a ``<kbd class=p>`` mark holding the bytes in ``data-b``."""
    parts: list[str] = []
    run: list[str] = []
    run_kind = ""

    def flush() -> None:
        if not run:
            return
        body = "".join(run)
        if run_kind == "text":
            parts.append(escape_text(body))
        elif run_kind == "mark":
            parts.append(f"<b>{escape_text(body)}</b>")
        else:
            parts.append(f"<kbd>{escape_text(body)}</kbd>")
        run.clear()

    for kind, segment in segments:
        if kind == "part":
            flush()
            run_kind = ""
            parts.append(f'<kbd class=p data-b="{escape_attr(segment)}">{PART_MARK}</kbd>')
            continue
        if kind == "byte":
            if run_kind != "byte":
                flush()
                run_kind = "byte"
            run.append(segment)
            continue
        for char in segment:
            mark = None if (char == " " and not mark_spaces) else char_mark(char)
            kind_now = "text" if mark is None else "mark"
            if kind_now != run_kind:
                flush()
                run_kind = kind_now
            run.append(char if mark is None else mark)
    flush()
    return "".join(parts) or f"<b>{EMPTY_MARK}</b>"


def format_value(value: float) -> str:
    """An activation for display: three significant digits."""
    return f"{value:.3g}"


def format_exact(value: float) -> str:
    """An activation in a tooltip: six significant digits (float32 holds about seven)."""
    return f"{value:.6g}"


def bucket(act: float, max_act: float) -> int:
    """Shade bucket 0…N_BUCKETS of an activation relative to the feature's maximum."""
    if not act > 0 or not max_act > 0:
        return 0
    return min(N_BUCKETS, max(1, math.ceil(N_BUCKETS * act / max_act)))


def shading_max(max_act: float) -> str:
    """The feature's maximum as pages carry it (``data-max``) for shading: lines are shaded
    from the values a page shows (``format_value``) against this, so a line drawn by
    ``static/examples.js`` from ``data-a`` is shaded exactly as the page's own lines are."""
    return f"{float(max_act):.4g}"


Window = tuple[int, int]
"""Tokens before and after an example's own token in a page's windows (``page_window``)."""


class TokenDisplay:
    """Renders tokens and example lines; caches each token id's HTML and tooltip text.

    ``token_bytes`` is site.json's ``{"<token id>": "e2 80"}`` for tokens whose bytes are not
    valid UTF-8 on their own.
    """

    def __init__(self, token_bytes: Mapping[str, str] | None = None):
        self.raw = {int(k): parse_hex_bytes(v) for k, v in (token_bytes or {}).items()}
        self._html: dict[int | str, tuple[str, str, str]] = {}
        self._code: dict[int | str, Markup] = {}
        self._plain: dict[tuple[str, int | None], str] = {}

    def _get(self, token_id: int | None, text: str) -> tuple[str, str, str]:
        """``(html with marked spaces, html with plain spaces, escaped tooltip text)``."""
        # an id always decodes to the same text, so the id alone is the key when there is one
        key = text if token_id is None else token_id
        hit = self._html.get(key)
        if hit is None:
            raw = self.raw.get(token_id) if token_id is not None else None
            hit = (
                token_inner_html(text, raw),
                token_inner_html(text, raw, mark_spaces=False),
                escape_attr(visible_text(text, raw)),
            )
            self._html[key] = hit
        return hit

    def _joined(self, ids) -> dict[int, list[tuple[str, str]]]:
        """Display segments of the tokens of a line whose bytes join into characters."""
        if not self.raw or ids is None:
            return {}
        raw = self.raw
        if sum(1 for token_id in ids if token_id in raw) < 2:
            return {}
        return joined_segments([raw.get(token_id) for token_id in ids])

    def _segments_hit(self, segments: list[tuple[str, str]]) -> tuple[str, str, str]:
        return (segments_html(segments), segments_html(segments, mark_spaces=False), "")

    def joined_html(self, ids) -> dict[int, str]:
        """``{position: inner html}`` of the tokens of a sequence whose display joins their
        neighbours' bytes (the expanded view draws them instead of the vocabulary's)."""
        return {j: segments_html(seg) for j, seg in self._joined(ids).items()}

    def plain(self, text: str, token_id: int | None = None) -> str:
        """The visible text of one token (unescaped), cached by its arguments: every
        feature's headline and search row read it for each of its examples' own tokens."""
        key = (text, token_id)
        hit = self._plain.get(key)
        if hit is None:
            raw = self.raw.get(token_id) if token_id is not None else None
            hit = self._plain[key] = visible_text(text, raw)
        return hit

    def token(self, text: str, token_id: int | None = None) -> Markup:
        """One token as an inline ``<code>`` element (logit tables, summaries)."""
        key = text if token_id is None else token_id  # as in _get
        code = self._code.get(key)
        if code is None:
            code = self._code[key] = Markup(f"<code>{self._get(token_id, text)[0]}</code>")
        return code

    def example(
        self, example: Mapping, max_act: float, separator: str = "", window: Window | None = None
    ) -> Markup:
        """One example as a ``<p>`` line of tokens shaded by activation (``window``: the
        page's, see ``page_window``).

        Runs of zero-activation tokens are plain text with plain spaces (their boundaries are
        not drawn): an element per token would double the size of a feature page. Shaded tokens
        mark every whitespace character, so it is clear what they hold. ``separator`` (escaped)
        goes between tokens whose text is not text, such as a toy model's feature names.
        """
        return Markup(self._line(example, _shown_max(max_act), escape_text(separator), window))

    def lines(
        self,
        examples: Iterable[Mapping],
        max_act: float,
        separator: str = "",
        window: Window | None = None,
    ) -> Markup:
        """``example`` lines as one block of HTML, a line each."""
        shown_max, sep = _shown_max(max_act), escape_text(separator)
        return Markup("\n".join([self._line(e, shown_max, sep, window) for e in examples]))

    def _line(self, example: Mapping, shown_max: float, sep: str, window: Window | None) -> str:
        """``example``'s line; ``sep``: the separator escaped."""
        acts = example["acts"]
        tokens = example["tokens"][: len(acts)]  # as many as activations (zip's length)
        ids = example.get("token_ids") or None
        own = example["pos"] - example["window_start"]
        # this runs for every token of a site: each token's HTML is read from the cache in one
        # comprehension, and zero tokens (most of them) are their plain HTML, untouched below
        cache, get = self._html, self._get
        if ids is None:
            hits = [cache.get(text) or get(None, text) for text in tokens]
        else:
            hits = [cache.get(i) or get(i, text) for i, text in zip(ids, tokens)]
            for j, segments in self._joined(ids).items():  # a character split over tokens:
                if j < len(hits):  # shown where it completes
                    hits[j] = self._segments_hit(segments)
        parts = [hit[1] for hit in hits]
        values = [format_value(a) if a else "" for a in acts]
        n = len(hits)
        shaded = [j for j, a in enumerate(acts) if a > 0 and j < n]
        if 0 <= own < n and not acts[own] > 0:
            parts[own] = f"<u>{hits[own][0]}</u>"  # the own token, not shaded
        for j in shaded:
            level = bucket(float(values[j]), shown_max)  # as shown
            if level or j == own:
                cls = f" class=a{level}" if level else ""
                tag = "u" if j == own else "i"
                # no title: the line's data-a holds the activations, and static/examples.js
                # shows them (the k-th element is the k-th non-zero token, or the own token)
                parts[j] = f"<{tag}{cls}>{hits[j][0]}</{tag}>"
        # adjacent whitespace marks of neighbouring tokens share one element
        before = sep.join(parts[:own]).replace("</b><b>", "")
        after = sep.join(parts[own:]).replace("</b><b>", "")
        if own > 0 and sep:
            before += sep
        # two columns meet at the example's own token, so it sits at one x down the list: the
        # context before is right-aligned in its own column (clipped on the left)
        return (
            f"<p{_example_data(example, window, values)}><var>{format_value(example['act'])}"
            f"</var><span><span>{before}</span></span><span>{after}</span></p>"
        )


def _shown_max(max_act: float) -> float:
    """The maximum lines are shaded against: ``shading_max``'s, as the page carries it."""
    return float(shading_max(max_act)) if max_act else 0.0


def page_window(examples: Iterable[Mapping]) -> Window:
    """The most tokens before and after their own token that the windows of ``examples``
    hold: the build's context, found on the page itself (``data-window`` on its ``<main>``),
    so a line whose window is that context, cut only by its sequence's start, need not say
    where its window is."""
    before = after = 0
    for example in examples:
        if "seq" in example:
            start, pos = int(example["window_start"]), int(example["pos"])
            before = max(before, pos - start)
            after = max(after, start + len(example["acts"]) - 1 - pos)
    return before, after


def example_stub(example: Mapping, window: Window | None = None) -> Markup:
    """An example line without its tokens or value, which ``static/examples.js`` draws from
    the token store as ``TokenDisplay.example`` would (the value from its own token's entry in
    ``data-a``): where it sits and its activations."""
    return Markup(f"<p{_example_data(example, window)}></p>")


def _example_data(
    example: Mapping, window: Window | None = None, values: list[str] | None = None
) -> str:
    """Where an example sits and its window's activations, for the expanded view and the
    tooltip (static/examples.js): `` data-x="seq,pos[,logit[,window_start,length]]"
    data-a="2:2.53,0.7;9:1.1"``. ``logit`` (may be empty): the feature's direct effect on the
    logit of the token that came next; the window is left out when it is the page's
    ``window`` (``max(0, pos - before)`` to ``pos + after``); ``data-a``: the non-zero
    activations as runs ``offset:value,value,…`` joined by ``;`` (a window is mostly zeros)."""
    if "seq" not in example:
        return ""
    acts = [format_value(a) if a else "" for a in example["acts"]] if values is None else values
    runs, first = [], None
    for offset, value in enumerate(acts):
        if value:
            if first is None:
                first = offset
        elif first is not None:
            runs.append(f"{first}:" + ",".join(acts[first:offset]))
            first = None
    if first is not None:
        runs.append(f"{first}:" + ",".join(acts[first:]))
    start, pos, logit = int(example["window_start"]), int(example["pos"]), example.get("next_logit")
    where = [str(int(example["seq"])), str(pos), "" if logit is None else f"{float(logit):+.3g}"]
    end = start + len(acts)
    if window is None or (start, end) != (max(0, pos - window[0]), pos + window[1] + 1):
        where += [str(start), str(len(acts))]
    return f' data-x="{",".join(where).rstrip(",")}" data-a="{";".join(runs)}"'


def visible_label(label: str | None) -> str:
    """A label as pages show it: spaces kept, control and invisible characters as ``U+XXXX``."""
    if not label:
        return ""
    if label.isprintable():
        return label
    return "".join(c if c.isprintable() or c == " " else f"U+{ord(c):04X}" for c in label)
