"""Stress: a 65,536-feature random SAE on the demo model, built into a site, opened in Chromium.

    .venv/bin/python benchmarks/stress.py [--d-sae 65536] [--n-tokens 65536] [--out DIR]

Reports build time, peak RSS of the build, site size, the index page's load time in headless
Chromium over file://, and search latency per keystroke. The SAE's encoder biases are set so
that the mean L0 is about 100, which fires most features over 65k tokens.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
from saesite.lm.model import DEMO_MODEL, load_model
from saesite.pipeline import build_site, hook_width
from saesite.sae.model import SAE, SaeConfig, init_sae_, save_sae

HOOK = "blocks.0.mlp.hook_post"


def random_sae(d_in: int, d_sae: int, target_l0: float, seed: int = 0) -> SAE:
    """Random unit directions; b_enc puts each pre-activation's (x·W_enc) above 0 for ~L0."""
    gen = torch.Generator().manual_seed(seed)
    sae = init_sae_(SAE(SaeConfig(d_in=d_in, d_sae=d_sae, hook_name=HOOK)), generator=gen)
    loaded = load_model(None)
    tokens = torch.from_numpy(__import__("numpy").load(DEMO_MODEL / "demo_tokens.npy")[:16]).long()
    with torch.no_grad():
        _, cache = loaded.model.run_with_cache(tokens, names_filter=HOOK)
        x = cache[HOOK].reshape(-1, d_in)
        pre = x @ sae.W_enc  # [tok, d_sae]
        # per-feature threshold at the quantile that gives density target_l0 / d_sae
        q = 1.0 - target_l0 / d_sae
        sae.b_enc.copy_(-torch.quantile(pre[:, :4096], q, dim=0).mean().expand(d_sae))
    return sae


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS of this process, or of the largest waited-for child (page workers)."""
    return resource.getrusage(who).ru_maxrss / 1024


def browser_timings(site: Path) -> dict:
    """Index load time and per-keystroke search time (the page records each search's duration
    in ``window.saesiteSearchTimes``), in headless Chromium over file://."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.goto((site / "index.html").as_uri(), wait_until="load")
        load_ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        times: list[float] = []
        for query in ("1234", "dead", "self", "return", "import"):
            page.fill("#q", "")
            before = page.evaluate("window.saesiteSearchTimes.length")
            page.locator("#q").press_sequentially(query)
            times += page.evaluate("window.saesiteSearchTimes")[before:]
        browser.close()
    return {
        "index_load_s": round(load_ms / 1000, 3),
        "keystrokes": len(times),
        "search_ms_median": round(statistics.median(times), 2),
        "search_ms_max": round(max(times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-sae", type=int, default=65536)
    parser.add_argument("--n-tokens", type=int, default=65536)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--site", type=Path, help="only time the browser on this built site")
    args = parser.parse_args()
    if args.site is not None:
        print(json.dumps(browser_timings(args.site), indent=2))
        return
    work = Path(tempfile.mkdtemp(prefix="saesite-stress-"))
    out = args.out or work / "site"
    loaded = load_model(None)
    sae = random_sae(hook_width(loaded.model, HOOK), args.d_sae, target_l0=100)
    save_sae(sae, work / "sae")
    del loaded, sae
    started = time.perf_counter()
    build_site(
        BuildConfig(
            sae=str(work / "sae"),
            data=DataConfig(n_tokens=args.n_tokens),
            stats=StatsConfig(ce_loss=False),
            render=RenderConfig(out=str(out)),
        )
    )
    build_s = time.perf_counter() - started
    site = json.loads((out / "site.json").read_text())
    files = [p for p in out.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    result = {
        "d_sae": args.d_sae,
        "n_tokens": site["n_tokens"],
        "live_features": sum(not f["dead"] for f in site["features"]),
        "l0": site["metrics"]["l0"],
        "build_s": round(build_s, 1),
        "peak_rss_mib": round(peak_rss_mib()),
        # forked workers share the parent's pages copy-on-write; RSS counts those shared pages
        "peak_rss_mib_largest_worker": round(peak_rss_mib(resource.RUSAGE_CHILDREN)),
        "files": len(files),
        "site_mb": round(size / 1e6, 1),
        "kb_per_feature": round(size / 1e3 / args.d_sae, 1),
        "max_entries_per_folder": max(len(list(d.iterdir())) for d in out.rglob("*") if d.is_dir()),
    }
    result.update(browser_timings(out))
    print(json.dumps(result, indent=2))
    if args.out is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
