"""Examples as records: (activation, global token index, window activations) -> example dicts.

An example is a token where a feature fired and its context window (``stats/windows.Window``):
``seq`` and ``pos`` locate the token, ``window_start`` the window, ``tokens`` its text, ``acts``
the feature's activations on it (4 significant digits; 0 as the integer 0, the largest single
saving in a feature's JSON), ``act`` the token's activation (7 digits) and, where a window
holds a byte-level token that is not UTF-8 on its own, ``token_ids``.

With ``stored_text`` (a build's records: the site's token store holds the dataset's text,
``site/token_store.py``) examples leave ``tokens`` and ``token_ids`` out, exactly as a written
record does; ``ExampleTokens.attach`` gives them back. Building the text only to strip it again
was a third of the records stage at GPT-2 scale.

numpy only, and texts from a table decoded beforehand (``TokenTexts``): the renderer builds the
records in forked workers, where neither torch nor the tokenizer may run (site/intake.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from jaxtyping import Float, Int

from saesite.records.rounding import round_significant
from saesite.records.schema import example_record
from saesite.stats.windows import Window

if TYPE_CHECKING:
    from saesite.lm.model import Tokenizer


@dataclass(frozen=True)
class TokenTexts:
    """The text of every id a feature's records can show, decoded once in the main process.

    Records are built in forked workers (site/intake.py): they look texts up here and never call
    the tokenizer (a Hugging Face ``tokenizers`` one runs Rust threads, which, like torch's, do
    not survive a fork).
    """

    text: Mapping[int, str]
    """Each id's text exactly as the tokenizer decodes it."""
    byte_ids: frozenset[int]
    """Ids whose raw bytes are not valid UTF-8 on their own (site.json ``token_bytes``)."""

    @classmethod
    def decoded(
        cls, tokenizer: Tokenizer, ids: Iterable[int], byte_ids: Iterable[int | str]
    ) -> TokenTexts:
        """The texts of ``ids`` (``byte_ids``: those of them with invalid UTF-8 bytes)."""
        return cls(
            {i: tokenizer.decode_token(i) for i in sorted(ids)}, frozenset(map(int, byte_ids))
        )


class ExampleWriter:
    """Turns (act, global token index, window activations) into example dicts; numpy only."""

    def __init__(
        self,
        tokens: np.ndarray,
        seq_start: int,
        texts: TokenTexts,
        window: Window,
        *,
        stored_text: bool = False,
    ):
        self.tokens, self.seq_start = tokens, seq_start
        self.seq_len = tokens.shape[1]
        self.window = window
        self.token_texts = texts
        self.stored_text = stored_text
        """Leave ``tokens`` and ``token_ids`` out: the site's token store holds them."""

    def text(self, token_id: int) -> str:
        return self.token_texts.text[token_id]

    def texts(self, ids: np.ndarray) -> np.ndarray:
        """The token strings of an integer array, as an object array of the same shape."""
        unique = np.unique(ids)
        lookup = np.empty(int(unique.max()) + 1 if unique.size else 1, dtype=object)
        for token_id in unique.tolist():
            lookup[token_id] = self.text(token_id)
        return lookup[ids]

    def examples(
        self,
        values: Float[np.ndarray, "rows n"],
        index: Int[np.ndarray, "rows n"],
        windows: Float[np.ndarray, "rows n width"],
        ablation: Float[np.ndarray, "rows n width"] | None = None,
        next_logit: Float[np.ndarray, "rows n"] | None = None,
    ) -> list[list[dict]]:
        """Per row, the examples whose index is >= 0 (rows of [rows, n] and [rows, n, width]).

        ``ablation`` [rows, n, width], when given, adds each example's ``ablation`` list;
        ``next_logit`` [rows, n] its ``next_logit`` where it is not NaN.
        """
        valid = index >= 0
        idx = np.where(valid, index, self.seq_start * self.seq_len)
        seq, pos = idx // self.seq_len, idx % self.seq_len
        start, length = self.window.bounds(pos, self.seq_len)
        columns = self.window.columns(pos, self.seq_len)
        row = seq - self.seq_start
        # Zeros as the integer 0 ("0", not "0.0"): most of a window does not fire, and this is
        # the largest single saving in a feature's JSON.
        acts_l = [
            [value if value else 0 for value in row]
            for row in round_significant(_float32(windows)[valid]).tolist()
        ]
        fields = zip(
            round_significant(_float32(values)[valid], 7).tolist(),
            seq[valid].tolist(),
            pos[valid].tolist(),
            start[valid].tolist(),
            length[valid].tolist(),
            acts_l,
            strict=True,
        )
        if self.stored_text:
            flat = [
                example_record(act=act, seq=s, pos=p, window_start=w, acts=window[:n])
                for act, s, p, w, n, window in fields
            ]
        else:
            flat = self._with_text(fields, self.tokens[row[..., None], columns][valid])
        if next_logit is not None:
            effects = round_significant(_float32(next_logit)[valid]).tolist()
            for example, effect in zip(flat, effects, strict=True):
                if not math.isnan(effect):
                    example["next_logit"] = effect
        if ablation is not None:
            effects = round_significant(_float32(ablation)[valid]).tolist()
            for example, effect in zip(flat, effects, strict=True):
                example["ablation"] = effect[: len(example["acts"])]
        rows, cursor = [], 0
        for count in valid.sum(1).tolist():
            rows.append(flat[cursor : cursor + count])
            cursor += count
        return rows

    def _with_text(self, fields: Iterator[tuple], ids: np.ndarray) -> list[dict]:
        """Examples with their ``tokens`` (``ids``: [n, width], padded past each window)."""
        texts_l, ids_l = self.texts(ids).tolist(), ids.tolist()
        flat = [
            example_record(act=act, seq=s, pos=p, window_start=w, tokens=text[:n], acts=window[:n])
            for (act, s, p, w, n, window), text in zip(fields, texts_l, strict=True)
        ]
        # token_ids only where the text alone is ambiguous: a window holding a byte-level token
        # that is not valid UTF-8 by itself (its text decodes to U+FFFD). Everywhere else the
        # ids are left out to keep a feature's JSON small (40 KB per feature, all files counted).
        for example, token_ids in zip(flat, ids_l, strict=True):
            n = len(example["acts"])
            if not self.token_texts.byte_ids.isdisjoint(token_ids[:n]):
                example["token_ids"] = token_ids[:n]
        return flat


def _float32(values: np.ndarray) -> np.ndarray:
    """The values at float32, as the statistics are shown (float16 windows widen exactly)."""
    return np.asarray(values, dtype=np.float32)
