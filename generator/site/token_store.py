"""The dataset's tokens, stored once per site, for examples expanded to their whole sequence.

Browsers block ``fetch`` on ``file://``, so the store is classic-script ``.js`` files that a page
loads on demand (``static/examples.js`` adds a ``<script src>``)::

    tokens/vocab.js     window.SAESITE_TOKENS.vocab = {"<id>": [html, visible text(, text)], …}
    tokens/seq-K.js     window.SAESITE_TOKENS.shards[K] = [[id, id, …], …]   (sequences of shard K)
                        and, where a character's bytes span tokens (GPT-2's "’" = âĢ + Ļ),
                        window.SAESITE_TOKENS.joins[K] = {"<row>": {"<pos>": inner html}}: those
                        tokens as lines draw them (``TokenDisplay.joined_html``)

Shard K holds sequences ``K·per_shard … (K + 1)·per_shard − 1``, about ``TOKENS_PER_SHARD``
tokens. A vocabulary entry is a token as example lines show it (``token_markup``: escaped, with
whitespace marks), so the expanded view draws tokens exactly as the lines do, plus the decoded
text where it differs from the visible one; it goes through ``json_for_script``, so no token can
end the script.

The store is the only copy of the dataset's text: a feature's JSON keeps only ``seq``, ``pos``,
``window_start`` and ``acts`` per example (a build's records are made so,
``records/examples.py``; others go through ``ExampleTokens.detach``), and whoever reads it back
takes the tokens from the store (``ExampleTokens.attach``), so ``saesite render`` and the page
workers see the records the build made. Headlines and search rows need only each example's own
token (``ExampleTokens.own_token``).

Input (``site["dataset"]``, not written to site.json): ``{"sequences": [[id, …], …],
"texts": {"<id>": text}}``. ``read_store`` reads a built site's files back (``saesite render``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import orjson

from saesite.site.headline import held_token
from saesite.site.token_markup import TokenDisplay
from saesite.site.writer import json_for_script

TOKENS_PER_SHARD = 8192
GLOBAL = "SAESITE_TOKENS"
_HEAD = f"(window.{GLOBAL}=window.{GLOBAL}||{{shards:{{}}}})"


def sequences_per_shard(seq_len: int) -> int:
    return max(1, TOKENS_PER_SHARD // max(1, seq_len))


def vocabulary(dataset: Mapping, display: TokenDisplay) -> dict[str, list[str]]:
    """``{"<id>": [inner html, visible text]}``: from ``texts``, or as read back (``vocab``)."""
    if "vocab" in dataset:
        return dict(dataset["vocab"])
    texts: Mapping[str, str] = dataset["texts"]
    vocab = {}
    for key in sorted(texts, key=int):
        token_id = int(key)
        html = display.token(texts[key], token_id)[len("<code>") : -len("</code>")]
        visible = display.plain(texts[key], token_id)
        entry = [str(html), visible]
        if texts[key] != visible:
            entry.append(texts[key])
        vocab[key] = entry
    return vocab


def token_texts(dataset: Mapping) -> dict[int, str]:
    """Each stored id's decoded text: ``texts``, or a read-back vocabulary's last field."""
    if "texts" in dataset:
        return {int(k): v for k, v in dataset["texts"].items()}
    return {int(k): v[-1] for k, v in dataset["vocab"].items()}


_TOKEN_FIELDS = ("tokens", "token_ids")
EXAMPLE_LISTS = ("top_examples", "quantile_examples")
"""A record's example lists: ``top_examples`` a list of examples, ``quantile_examples`` a list
of intervals, each with its ``examples``."""


class ExampleTokens:
    """Examples' token text from the store, so a feature's JSON need not repeat it.

    ``token_ids`` are attached where the build attaches them (records/build.py): to windows that
    hold a byte-level token not valid UTF-8 on its own (``byte_ids``, site.json's
    ``token_bytes``).
    """

    def __init__(self, dataset: Mapping | None, byte_ids: Iterable[int | str] = ()):
        self.sequences = dataset["sequences"] if dataset is not None else None
        self.texts = token_texts(dataset) if dataset is not None else {}
        self.byte_ids = {int(i) for i in byte_ids}

    def _fields(self, example: Mapping) -> dict | None:
        """``tokens`` (and ``token_ids``) of an example as the store gives them, else None."""
        seq, start, n = example.get("seq"), example.get("window_start"), len(example["acts"])
        if self.sequences is None or seq is None or not 0 <= seq < len(self.sequences):
            return None
        window = self.sequences[seq][start : start + n]
        # an array row's tolist() gives Python ints at once (int() per numpy scalar was a
        # quarter of writing the records at GPT-2 scale)
        ids = window.tolist() if hasattr(window, "tolist") else [int(t) for t in window]
        if len(ids) != n or start < 0:
            return None
        tokens = list(map(self.texts.get, ids))
        if None in tokens:  # an id the store has no text for
            return None
        fields: dict = {"tokens": tokens}
        if not self.byte_ids.isdisjoint(ids):
            fields["token_ids"] = ids
        return fields

    def own_token(self, example: Mapping) -> tuple[str, int] | tuple[str, None] | None:
        """The text and id of the example's own token (at ``pos``; ``headline.OwnToken``): from
        the tokens it holds, else from the store where ``attach`` gives it its tokens. Reads
        one token, not the window: the headline and search row of every feature need it."""
        if "tokens" in example or self.sequences is None:
            return held_token(example)
        seq, start, n = example.get("seq"), example.get("window_start"), len(example["acts"])
        if seq is None or not 0 <= seq < len(self.sequences) or start < 0:
            return None
        j = example["pos"] - start
        row = self.sequences[seq]
        if not 0 <= j < n or start + n > len(row):
            return None
        token_id = int(row[start + j])
        text = self.texts.get(token_id)
        return None if text is None else (text, token_id)

    def _map(self, record: Mapping, change, keys: Sequence[str] = EXAMPLE_LISTS) -> dict:
        out = dict(record)
        for key in keys:
            if key not in out:
                continue
            if key == "top_examples":
                out[key] = [change(e) for e in out[key]]
            else:
                out[key] = [
                    {**interval, "examples": [change(e) for e in interval["examples"]]}
                    for interval in out[key]
                ]
        return out

    def detach(self, record: Mapping) -> Mapping:
        """The record without the examples' tokens that ``attach`` gives back exactly."""
        if self.sequences is None:
            return record

        def strip(example: Mapping) -> Mapping:
            if "tokens" not in example:  # nothing to strip (records/examples.py built it so)
                return example
            fields = self._fields(example)
            held = {k: example[k] for k in _TOKEN_FIELDS if k in example}
            if fields is None or fields != held:
                return example
            return {k: v for k, v in example.items() if k not in _TOKEN_FIELDS}

        return self._map(record, strip)

    def attach(self, record: Mapping, keys: Sequence[str] = EXAMPLE_LISTS) -> Mapping:
        """The record with each example's tokens (those it holds kept as they are), in the
        example lists ``keys`` (``EXAMPLE_LISTS``; the others as they are)."""
        if self.sequences is None:
            return record

        def fill(example: Mapping) -> Mapping:
            if "tokens" in example:
                return example
            fields = self._fields(example)
            return example if fields is None else {**example, **fields}

        return self._map(record, fill, keys)


def store_scripts(dataset: Mapping, display: TokenDisplay) -> list[tuple[str, str]]:
    """``(relative path, script text)`` of ``tokens/vocab.js`` and every ``tokens/seq-K.js``."""
    sequences: Sequence[Sequence[int]] = dataset["sequences"]
    vocab = json_for_script(vocabulary(dataset, display))
    scripts = [("tokens/vocab.js", f"{_HEAD}.vocab={vocab};\n")]
    per = sequences_per_shard(len(sequences[0]) if len(sequences) else 1)
    for number, start in enumerate(range(0, len(sequences), per)):
        rows = [list(map(int, row)) for row in sequences[start : start + per]]
        script = f"{_HEAD}.shards[{number}]={json_for_script(rows)};"
        joins = {}
        for r, row in enumerate(rows):
            by_pos = display.joined_html(row)
            if by_pos:
                joins[str(r)] = {str(j): html for j, html in by_pos.items()}
        if joins:
            script += f"({_HEAD}.joins||(window.{GLOBAL}.joins={{}}))[{number}]="
            script += f"{json_for_script(joins)};"
        scripts.append((f"tokens/seq-{number}.js", script + "\n"))
    return scripts


def _payload(text: str, prefix: str) -> object:
    if not text.startswith(prefix) or not text.endswith(";\n"):
        raise ValueError("not a saesite token store file")
    return orjson.loads(text[len(prefix) : -2])


def read_store(site_dir: Path) -> dict | None:
    """The ``dataset`` a built site's ``tokens/`` files hold, or None when it has none."""
    folder = site_dir / "tokens"
    vocab_file = folder / "vocab.js"
    if not vocab_file.is_file():
        return None
    vocab = _payload(vocab_file.read_text(encoding="utf-8"), f"{_HEAD}.vocab=")
    sequences: list = []
    number = 0
    while (folder / f"seq-{number}.js").is_file():
        text = (folder / f"seq-{number}.js").read_text(encoding="utf-8")
        text = text.split(";", 1)[0] + ";\n"  # the rows (ids hold no ;), not the joins
        sequences.extend(_payload(text, f"{_HEAD}.shards[{number}]="))
        number += 1
    return {"sequences": sequences, "vocab": vocab}
