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
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from saesite.records.rounding import round_significant
from saesite.records.schema import example_record
from saesite.stats.windows import Window

if TYPE_CHECKING:
    from torch import Tensor

    from saesite.lm.model import Tokenizer


class ExampleWriter:
    """Turns (act, global token index, window activations) into example dicts."""

    def __init__(
        self,
        tokens: np.ndarray,
        seq_start: int,
        tokenizer: Tokenizer,
        window: Window,
        *,
        stored_text: bool = False,
    ):
        self.tokens, self.seq_start = tokens, seq_start
        self.seq_len = tokens.shape[1]
        self.window = window
        self.tokenizer = tokenizer
        self.stored_text = stored_text
        """Leave ``tokens`` and ``token_ids`` out: the site's token store holds them."""
        self.byte_ids: set[int] = set()
        """Ids whose raw bytes are not valid UTF-8 on their own (shown as marked bytes)."""
        self._text: dict[int, str] = {}

    def text(self, token_id: int) -> str:
        text = self._text.get(token_id)
        if text is None:
            text = self._text[token_id] = self.tokenizer.decode_token(token_id)
            if self.tokenizer.invalid_utf8_bytes(token_id) is not None:
                self.byte_ids.add(token_id)
        return text

    def texts(self, ids: np.ndarray) -> np.ndarray:
        """The token strings of an integer array, as an object array of the same shape."""
        unique = np.unique(ids)
        lookup = np.empty(int(unique.max()) + 1 if unique.size else 1, dtype=object)
        for token_id in unique.tolist():
            lookup[token_id] = self.text(token_id)
        return lookup[ids]

    def examples(
        self,
        values: Tensor,
        index: Tensor,
        windows: Tensor,
        ablation: Tensor | None = None,
        next_logit: Tensor | None = None,
    ) -> list[list[dict]]:
        """Per row, the examples whose index is >= 0 (rows of [rows, n] and [rows, n, width]).

        ``ablation`` [rows, n, width], when given, adds each example's ``ablation`` list;
        ``next_logit`` [rows, n] its ``next_logit`` where it is not NaN.
        """
        valid_t = index >= 0
        idx = torch.where(valid_t, index, self.seq_start * self.seq_len)
        seq_t, pos_t = idx // self.seq_len, idx % self.seq_len
        start_t, length_t = self.window.bounds(pos_t, self.seq_len)
        columns = self.window.columns(pos_t, self.seq_len).numpy()
        valid, seq, pos = valid_t.numpy(), seq_t.numpy(), pos_t.numpy()
        start, length = start_t.numpy(), length_t.numpy()
        row = seq - self.seq_start
        # Zeros as the integer 0 ("0", not "0.0"): most of a window does not fire, and this is
        # the largest single saving in a feature's JSON.
        acts_l = [
            [value if value else 0 for value in row]
            for row in round_significant(windows.float().numpy()[valid]).tolist()
        ]
        fields = zip(
            round_significant(values.float().numpy()[valid], 7).tolist(),
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
            effects = round_significant(next_logit.float().numpy()[valid]).tolist()
            for example, effect in zip(flat, effects, strict=True):
                if not math.isnan(effect):
                    example["next_logit"] = effect
        if ablation is not None:
            effects = round_significant(ablation.float().numpy()[valid]).tolist()
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
            if not self.byte_ids.isdisjoint(token_ids[:n]):
                example["token_ids"] = token_ids[:n]
        return flat
