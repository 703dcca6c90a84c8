"""The dataset's tokens, stored once per site, for examples expanded to their whole sequence.

Browsers block ``fetch`` on ``file://``, so the store is classic-script ``.js`` files that a page
loads on demand (``static/examples.js`` adds a ``<script src>``)::

    tokens/vocab.js     window.SAESITE_TOKENS.vocab = {"<id>": [inner html, visible text], …}
    tokens/seq-K.js     window.SAESITE_TOKENS.shards[K] = [[id, id, …], …]   (sequences of shard K)
                        and, where a character's bytes span tokens (GPT-2's "’" = âĢ + Ļ),
                        window.SAESITE_TOKENS.joins[K] = {"<row>": {"<pos>": inner html}}: those
                        tokens as lines draw them (``TokenDisplay.joined_html``)

Shard K holds sequences ``K·per_shard … (K + 1)·per_shard − 1``, about ``TOKENS_PER_SHARD``
tokens. A vocabulary entry is a token as example lines show it (``token_markup``: escaped, with
whitespace marks), so the expanded view draws tokens exactly as the lines do; it goes through
``json_for_script``, so no token can end the script. Feature pages keep only positions and
activations per example.

Input (``site["dataset"]``, not written to site.json): ``{"sequences": [[id, …], …],
"texts": {"<id>": text}}``. ``read_store`` reads a built site's files back (``saesite render``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

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
        vocab[key] = [str(html), display.plain(texts[key], token_id)]
    return vocab


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
