"""Search keeps pace with typing at 65,536 features, from file:// (no server).

The index is written directly (shards + the real index template), without 65,536 pages.
Timings on a shared machine are noisy, so the assertions are ratios measured in the same browser
and the same minute:

- each keystroke is answered (scored, ranked and shown) in at most KEYSTROKE_VS_SCAN times the
  time the page takes for one naive substring scan over every row (lowercasing each token as it
  goes), the least any search without a server can do;
- the index page loads in at most LOAD_VS_DATA times the time a bare page takes that loads the
  same search shards and nothing else (the fastest of LOAD_REPEATS interleaved loads each).

The absolute figures (issue 7 asked for < 50 ms per keystroke and < 2 s to load) are written to
test-artifacts/search-latency.json with the ratios.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics

import pytest

from saesite.site.intake import feature_paths, records_path
from saesite.site.page_context import FeatureSummary
from saesite.site.render import (
    STATIC_DIR,
    index_context,
    make_environment,
    render_page,
)
from saesite.site.search_index import shard_scripts
from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

N_FEATURES = 65536
QUERIES = ("django", "12345", "dead", "e", " the", "zzzq", "self.", "label 7")
REPEATS = 3
LOAD_REPEATS = 6
"""Page loads are noisier than keystrokes: the fastest of more of them."""
KEYSTROKE_VS_SCAN = 1.5
LOAD_VS_DATA = 2.0
"""Measured 1.3x when first set to 2.0 (cd8ea21); 1.8x once the multi-SAE search came (2.006x
once under the suite's two workers, so it was raised to 2.5); 1.41-1.43x since the search's
haystacks are built after the page has loaded (static/search.js ``prepare``), against 1.81x
before in the same minute. 2.0 leaves that noise room and catches load-time work coming back."""

# the baseline: one pass over every row, lowercasing and searching each token and the label
NAIVE_SCAN = """(q) => {
  const rows = window.SAESITE_INDEX.rows, t0 = performance.now();
  let hits = 0;
  for (const row of rows) {
    let hit = row[4].toLowerCase().indexOf(q) >= 0;
    for (let f = 5; f < 8 && !hit; f++) {
      for (const tok of row[f]) if (tok.toLowerCase().indexOf(q) >= 0) { hit = true; break; }
    }
    if (hit) hits++;
  }
  return [performance.now() - t0, hits];
}"""


def _rows(n: int, seed: int = 0) -> list[list]:
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgk"
    vocab = [
        ("·" if rng.random() < 0.6 else "")
        + "".join(rng.choice(letters) for _ in range(rng.randint(1, 8)))
        for _ in range(4000)
    ] + ["·django", "⏎", "self", "."]
    rows = []
    for index in range(n):
        flags = 1 if rng.random() < 0.03 else (2 if rng.random() < 0.01 else 0)
        label = f"label {index}" if rng.random() < 0.05 else ""
        rows.append(
            [
                index,
                round(10 ** rng.uniform(-5, -1), 6),
                round(rng.uniform(0, 10), 2),
                flags,
                label,
                rng.sample(vocab, 5),
                rng.sample(vocab, 5),
                rng.sample(vocab, 5),
            ]
        )
    return rows


@pytest.fixture(scope="module")
def big_index(tmp_path_factory):
    out = tmp_path_factory.mktemp("big-index")
    rows = _rows(N_FEATURES)
    shards = shard_scripts(rows)
    for rel, text in shards:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    shutil.copytree(STATIC_DIR, out / "static")
    summaries = [
        FeatureSummary(
            index=row[0],
            html=feature_paths(row[0], 500, 3)[0],
            records=records_path(row[0], 500, 3),
            label=row[4],
            row=row,
        )
        for row in rows
    ]
    site = {
        "model": "synthetic",
        "hook": "blocks.0.mlp.hook_post",
        "d_in": 512,
        "d_sae": N_FEATURES,
    }
    context = index_context(
        site, summaries, [rel for rel, _ in shards], features_per_folder=500, folder_width=3
    )
    page = render_page(
        make_environment(),
        "index.html",
        "index.html",
        context,
        title="65,536 synthetic features",
        nav=[("index.html", "Overview")],
    )
    (out / "index.html").write_text(page)
    # the same shards, parsed and flattened, and nothing else: the floor of the index load
    scripts = "".join(f'<script src="{rel}"></script>' for rel, _ in shards)
    (out / "data-only.html").write_text(
        f"<!doctype html><meta charset=utf-8><title>data</title><div id=search hidden></div>"
        f'{scripts}<script src="static/index-data.js"></script>'
    )
    size = sum(p.stat().st_size for p in (out / "search").iterdir())
    return out, size


def test_search_answers_each_keystroke_within_a_naive_scan_at_65536_features(browser, big_index):
    out, index_bytes = big_index
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    # like the keystrokes below: the fastest of LOAD_REPEATS loads, the slowest reported too
    navigation = "performance.getEntriesByType('navigation')[0].loadEventEnd"
    loads, data_loads = [], []
    for _ in range(LOAD_REPEATS):  # interleaved, so a busy moment hits both alike
        page.goto((out / "data-only.html").as_uri())
        page.wait_for_function("() => window.SAESITE_INDEX && window.SAESITE_INDEX.rows")
        data_loads.append(page.evaluate(navigation))
        page.goto((out / "index.html").as_uri())
        page.wait_for_selector("#q", state="visible")
        loads.append(page.evaluate(navigation))
    load_ms, data_load_ms = min(loads), min(data_loads)
    # each query typed REPEATS times; per keystroke the fastest of the repeats counts, so a
    # moment when the shared 2-core machine is busy elsewhere does not decide the test (the
    # raw maximum is reported too)
    per_query, scan_ms, raw_max = {}, {}, 0.0
    for query in QUERIES:
        runs = []
        for _ in range(REPEATS):
            page.fill("#q", "")
            before = page.evaluate("window.saesiteSearchTimes.length")
            page.locator("#q").press_sequentially(query)
            times = page.evaluate("window.saesiteSearchTimes")[before:]
            assert len(times) == len(query)
            runs.append(times)
        per_query[query] = [round(min(ts), 2) for ts in zip(*runs)]
        raw_max = max(raw_max, *(t for ts in runs for t in ts))
        scans = [page.evaluate(NAIVE_SCAN, query.lower()) for _ in range(REPEATS)]
        assert len({hits for _, hits in scans}) == 1
        scan_ms[query] = round(min(ms for ms, _ in scans), 2)
    assert page.locator("#results li").count() > 0
    all_times = [t for times in per_query.values() for t in times]
    figures = {
        "features": N_FEATURES,
        "index_bytes": index_bytes,
        "index_load_ms": round(load_ms, 1),
        "index_load_ms_raw_max": round(max(loads), 1),
        "keystroke_ms_median": round(statistics.median(all_times), 2),
        "keystroke_ms_max": round(max(all_times), 2),
        "keystroke_ms_max_raw": round(raw_max, 2),
        "per_query_ms": per_query,
        "naive_scan_ms": scan_ms,
        "data_only_load_ms": round(data_load_ms, 1),
        "load_vs_data": round(load_ms / data_load_ms, 2),
        "keystroke_vs_scan": {q: round(max(per_query[q]) / scan_ms[q], 2) for q in QUERIES},
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "search-latency.json").write_text(json.dumps(figures, indent=2))
    context.close()
    assert errors == []
    for query in QUERIES:
        assert max(per_query[query]) <= KEYSTROKE_VS_SCAN * scan_ms[query], (query, figures)
    assert load_ms <= LOAD_VS_DATA * data_load_ms, figures
