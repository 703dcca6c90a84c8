"""The token store: sequences written once per site, read back by ``saesite render``; tokens
whose bytes join their neighbours' into characters travel with their joined HTML."""

from __future__ import annotations

import copy

import orjson

from saesite.config import RenderConfig
from saesite.lm.model import invalid_token_bytes
from saesite.site.records_file import site_records
from saesite.site.render import rerender_site, write_site
from saesite.site.token_markup import TokenDisplay
from saesite.site.token_store import ExampleTokens, read_store, store_scripts
from tests.fixtures.sample_records import (
    ADVERSARIAL_TOKEN_BYTES,
    ADVERSARIAL_TOKENS,
    adversarial_site,
    sample_site,
    with_token_store,
)
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


def _examples(record: dict) -> list[dict]:
    examples = list(record["top_examples"])
    for interval in record["quantile_examples"]:
        examples.extend(interval["examples"])
    return examples


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_examples_detached_from_their_tokens_attach_back_to_the_same_record():
    site, features = with_token_store(*adversarial_site(6))
    tokens = ExampleTokens(site["dataset"], ADVERSARIAL_TOKEN_BYTES)
    for feature in features:
        detached = tokens.detach(feature)
        assert all("tokens" not in e and "token_ids" not in e for e in _examples(detached))
        assert tokens.attach(detached) == feature
    # windows with a lone UTF-8 byte keep their ids, the others never had them
    assert any("token_ids" in e for f in features for e in _examples(f))


def test_attach_to_the_top_examples_alone_leaves_the_quantile_examples_without_text():
    site, features = with_token_store(*adversarial_site(6))
    tokens = ExampleTokens(site["dataset"], ADVERSARIAL_TOKEN_BYTES)
    detached = tokens.detach(features[0])
    top_only = tokens.attach(detached, ("top_examples",))
    assert top_only["top_examples"] == features[0]["top_examples"]
    assert top_only["quantile_examples"] == detached["quantile_examples"]
    assert any(q["examples"] for q in top_only["quantile_examples"])
    assert all("tokens" not in e for q in top_only["quantile_examples"] for e in q["examples"])


def test_an_example_the_store_does_not_reproduce_keeps_its_tokens():
    site, features = with_token_store(*sample_site(4, seed=3))
    feature = copy.deepcopy(features[0])
    example = feature["top_examples"][0]
    example["tokens"] = ["not", "the", "store's"] + example["tokens"][3:]
    detached = ExampleTokens(site["dataset"]).detach(feature)
    assert detached["top_examples"][0]["tokens"] == example["tokens"]
    assert "tokens" not in detached["top_examples"][1]


def test_feature_json_holds_no_token_text_and_render_reads_it_back_from_the_store(tmp_path):
    site, features = with_token_store(*adversarial_site(6))
    out = write_site(site, copy.deepcopy(features), RenderConfig(out=str(tmp_path / "s")))
    written = site_records(out)[0]
    assert written["top_examples"] and all("tokens" not in e for e in _examples(written))
    assert ExampleTokens(read_store(out), ADVERSARIAL_TOKEN_BYTES).attach(written) == features[0]
    page = (out / "features/000/0.html").read_text()
    assert TokenDisplay(ADVERSARIAL_TOKEN_BYTES).token(ADVERSARIAL_TOKENS[2]) in page
    before = _files(out)
    rerender_site(out)
    assert _files(out) == before


def test_a_built_site_keeps_example_text_only_in_its_token_store(tiny_site, tmp_path):
    import shutil

    site = tmp_path / "site"
    shutil.copytree(tiny_site, site)
    meta = orjson.loads((site / "site.json").read_bytes())
    records = site_records(site)
    assert len(records) == len(meta["features"])
    examples = [e for r in records for e in _examples(r)]
    assert examples and all("tokens" not in e for e in examples)
    before = _files(site)
    rerender_site(site)
    assert _files(site) == before


def test_an_examples_own_token_from_the_store_is_the_one_its_attached_window_holds():
    site, features = with_token_store(*adversarial_site(6))
    tokens = ExampleTokens(site["dataset"], ADVERSARIAL_TOKEN_BYTES)
    detached = [e for feature in features for e in _examples(tokens.detach(feature))]
    assert detached
    for example in detached:
        full = tokens.attach({"top_examples": [example]})["top_examples"][0]
        j = example["pos"] - example["window_start"]
        assert tokens.own_token(example) == (
            full["tokens"][j],
            site["dataset"]["sequences"][example["seq"]][example["pos"]],
        )
        ids = full.get("token_ids")  # held tokens: the id only where the window holds ids
        assert tokens.own_token(full) == (full["tokens"][j], ids[j] if ids else None)
    outside = {**detached[0], "seq": len(site["dataset"]["sequences"])}
    assert tokens.own_token(outside) is None


def test_records_given_without_their_text_make_the_same_site_as_records_with_it(tmp_path):
    site, features = with_token_store(*adversarial_site(6))
    tokens = ExampleTokens(site["dataset"], ADVERSARIAL_TOKEN_BYTES)
    with_text = write_site(site, copy.deepcopy(features), RenderConfig(out=str(tmp_path / "a")))
    without = [tokens.detach(feature) for feature in features]
    assert not any("tokens" in e for f in without for e in _examples(f))
    stored = write_site(site, without, RenderConfig(out=str(tmp_path / "b")))
    assert _files(stored) == _files(with_text)
