"""The token store: sequences written once per site, read back by ``saesite render``; tokens
whose bytes join their neighbours' into characters travel with their joined HTML."""

from __future__ import annotations

import orjson

from saesite.lm.model import invalid_token_bytes
from saesite.site.token_markup import TokenDisplay
from saesite.site.token_store import read_store, store_scripts
from tests.lm.test_tokens import gpt2_line


def test_sequences_with_split_characters_carry_their_joined_tokens_and_read_back(tmp_path):
    ids, _, tokenizer = gpt2_line()
    plain = [tokenizer.encode(" café and tea")[0]] * len(ids)
    dataset = {
        "sequences": [plain, ids],
        "texts": {str(i): tokenizer.decode_token(i) for i in set(ids) | set(plain)},
    }
    display = TokenDisplay(invalid_token_bytes(tokenizer, set(ids)))
    scripts = dict(store_scripts(dataset, display))
    seq = scripts["tokens/seq-0.js"]
    rows, _, joins = seq.partition(";(")
    assert rows.endswith(f"={orjson.dumps([plain, ids]).decode()}")
    joined = orjson.loads(joins[joins.index("]=") + 2 : -2])
    assert list(joined) == ["1"]  # only the second sequence has split characters
    assert joined["1"]["1"] == '<kbd class=p data-b="e2 80">‸</kbd>'
    assert joined["1"]["2"] == "’"
    (tmp_path / "tokens").mkdir()
    for rel, text in scripts.items():
        (tmp_path / rel).write_text(text, encoding="utf-8")
    assert read_store(tmp_path)["sequences"] == [plain, ids]


def test_a_store_without_split_characters_keeps_its_one_statement_files():
    dataset = {"sequences": [[1, 2, 3]], "texts": {"1": "a", "2": "b", "3": "c"}}
    seq = dict(store_scripts(dataset, TokenDisplay({})))["tokens/seq-0.js"]
    assert (
        seq == "(window.SAESITE_TOKENS=window.SAESITE_TOKENS||{shards:{}}).shards[0]=[[1,2,3]];\n"
    )
