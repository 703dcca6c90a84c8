"""The renderer: records in, a static site out. No torch here.

``write_site`` turns ``site.json`` fields and per-feature records (docs/schema.md) into::

    index.html  site.json  .nojekyll  static/  search/index-K.js  table/page-K.html
    tokens/vocab.js  tokens/seq-K.js        (the dataset's tokens once, see token_store.py)
    features/NNN/<index>.html              (NNN = index // features_per_folder, zero-padded)
    features/NNN/records.jsonl.gz          (the folder's feature records, records_file.py)
    features/NNN/<index>.json              (only with RenderConfig.feature_json)

Records come in once, in index order (``site/intake.py``; a build's are built and taken in the
local worker processes, a range of whole folders each): each becomes its JSON and a summary
(path, label, search row); the site-wide pages follow, then every folder's records file and
feature pages, rendered from its JSON by ranges of whole folders (``site/feature_pages.py``: in
local worker processes, or as Ray tasks), so memory holds summaries and JSON bytes, not
records. Everything goes into a temporary folder swapped in at the end
(``site_writer.SiteWriter``). ``rerender_site`` redoes this from a built site's records files
alone.

Security: Jinja autoescapes everything; the Content-Security-Policy (``site/page.py``) forbids
any request but same-origin scripts, styles and images, and pages have no inline script or
style. Data for scripts goes through ``site_writer.json_for_script``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path

import orjson
from tqdm import tqdm

import saesite
from saesite.config import RenderConfig, normalise_base_url
from saesite.errors import SaesiteError
from saesite.site import toy_page, training_page
from saesite.site.feature_pages import (
    FeatureJson,
    FolderRunner,
    LocalPages,
    PageJob,
    PageRunner,
)
from saesite.site.intake import Intake, folder_width, local_folders, take_records
from saesite.site.labels import Labels
from saesite.site.out_folder import MANIFEST
from saesite.site.page import STATIC_DIR, render_page, shared_environment
from saesite.site.page import make_environment as make_environment  # imported from here
from saesite.site.page_context import FeatureSummary, site_facts, table_row
from saesite.site.parallel import worker_count
from saesite.site.records_file import read_records, unpack
from saesite.site.search_index import shard_scripts
from saesite.site.site_json import check_feature, check_site
from saesite.site.token_markup import TokenDisplay
from saesite.site.token_store import (
    ExampleTokens,
    read_store,
    sequences_per_shard,
    store_scripts,
)
from saesite.site.writer import SiteWriter, dumps_json, is_saesite_build

log = logging.getLogger(__name__)

TABLE_PAGE_SIZE = 500
INDEX_TABLE_ROWS = 100
MAX_FOLDER_ENTRIES = 1000
PARALLEL_MIN_FEATURES = 256
"""Below this many features the pages render in-process (forking costs more than it saves)."""


def table_pages(n_features: int) -> int:
    """Pages of the feature table (``TABLE_PAGE_SIZE`` rows each; at least one)."""
    return max(1, -(-n_features // TABLE_PAGE_SIZE))


def site_title(site: Mapping, cfg: RenderConfig) -> str:
    """``--title``, else the title the site was built with, else "model · hook"."""
    if cfg.title:
        return cfg.title
    previous = ((site.get("config") or {}).get("render") or {}).get("title")
    if previous:
        return str(previous)
    return f"{site.get('model', 'SAE')} · {site.get('hook', 'features')}"


def _base_url(site: Mapping, cfg: RenderConfig) -> str | None:
    """``cfg.base_url``, else the one the site was built with (site.json ``config.render``)."""
    if cfg.base_url:
        return cfg.base_url
    previous = ((site.get("config") or {}).get("render") or {}).get("base_url")
    return normalise_base_url(str(previous)) if previous else None


def _extra_pages(site: Mapping) -> list[tuple[str, str, str, dict]]:
    """``(key, relative path, template, context)`` of the pages beyond index and features:
    the training page when the site has a training log, the toy pages on a toy site."""
    pages = []
    for key, page_list in (("training", training_page.pages), ("toy", toy_page.pages)):
        if site.get(key):
            pages.extend((key, *page) for page in page_list(site))
    return pages


def index_context(
    site: Mapping,
    summaries: Sequence[FeatureSummary],
    shards: Sequence[str],
    *,
    features_per_folder: int,
    folder_width: int,
) -> dict:
    """What ``index.html`` shows: site facts, density histogram, search, the first table rows."""
    n = len(summaries)
    return {
        **site_facts(site),
        "n_features": n,
        "description": f"{n:,} SAE features of {site.get('model', '?')} at "
        f"{site.get('hook', '?')}: search, density, top examples",
        "shards": list(shards),
        "features_per_folder": features_per_folder,
        "folder_width": folder_width,
        "rows": [table_row(s, "") for s in summaries[:INDEX_TABLE_ROWS]],
        "more_rows": n > INDEX_TABLE_ROWS,
        "n_table_pages": table_pages(n),
    }


def write_site(
    site: dict,
    features: Collection[Mapping],
    cfg: RenderConfig,
    *,
    inputs: Sequence[str | Path] = (),
    pages: PageRunner | None = None,
) -> Path:
    """Render ``site`` (site.json fields but ``features``) and per-feature records into
    ``cfg.out``, atomically. Returns the output folder. ``inputs``: paths the build read, which
    the output folder must not hold (the labels file is added here). ``pages``: what renders
    the feature pages (default: local worker processes; ``ray_pages.RayPages``: Ray tasks).

    ``features`` is read once: a list (sorted here) or any sized iterable in index order, such
    as ``records.build.FeatureRecords`` (built a range at a time in the local workers). Each
    record becomes JSON as it arrives, and its page is rendered from that JSON once every
    summary (which links and search need) exists, so memory holds summaries and JSON bytes
    (see ``intake.HELD_JSON_BYTES``), not records.
    """
    check_features_per_folder(cfg.features_per_folder, cfg.feature_json)
    display = TokenDisplay(site.get("token_bytes"))
    inputs = [*inputs, cfg.labels] if cfg.labels else list(inputs)
    with SiteWriter(cfg.out, replace_folder=cfg.replace_folder, inputs=inputs) as writer:
        write_shared_files(writer, site.get("dataset"), display)
        has_store = site.get("dataset") is not None
        write_sae_pages(writer, site, features, cfg, has_store=has_store, pages=pages)
        return writer.commit()


def check_features_per_folder(fpf: int, feature_json: bool = False) -> None:
    """A folder holds ``fpf`` pages, its records file and, with ``feature_json``, ``fpf`` JSON
    files: at most ``MAX_FOLDER_ENTRIES`` entries."""
    per_feature = 2 if feature_json else 1
    if not 0 < per_feature * fpf + 1 <= MAX_FOLDER_ENTRIES:
        files = "an .html and a .json file" if feature_json else "an .html file"
        raise SaesiteError(
            f"features_per_folder is {fpf}; expected 1–{(MAX_FOLDER_ENTRIES - 1) // per_feature} "
            f"(each feature has {files}, each folder a records file; GitHub lists at most "
            f"{MAX_FOLDER_ENTRIES} entries per folder)"
        )


def write_shared_files(
    writer: SiteWriter, dataset: Mapping | None, display: TokenDisplay, *, multi: bool = False
) -> None:
    """What every page of a site shares, once: static files (``static/multi/`` only in a
    multi-SAE site) and the token store."""
    writer.copy_tree(STATIC_DIR, "static", {".css", ".js", ".svg"}, () if multi else ("multi",))
    writer.write(".nojekyll", b"")
    if dataset is not None:
        for rel_path, text in store_scripts(dataset, display):
            writer.write(rel_path, text)


def write_sae_pages(
    writer: SiteWriter,
    site: dict,
    features: Collection[Mapping],
    cfg: RenderConfig,
    *,
    has_store: bool,
    prefix: str = "",
    nav: Sequence[tuple[str, str]] | None = None,
    page_extra: Mapping | None = None,
    feature_extra: Callable[[int, str], dict] | None = None,
    title: str | None = None,
    pages: PageRunner | None = None,
    labels_sae: str | None = None,
) -> list[FeatureSummary]:
    """One SAE's pages and data (site.json, index, table, search shards, features) under
    ``prefix`` (``""``: the site root; ``sae/<id>/`` in a multi-SAE site, whose pages also get
    ``nav``, ``page_extra``, per feature ``feature_extra(index, page path)`` and their own
    ``title``). ``pages`` runs the feature pages (default: ``cfg.workers`` local processes).
    ``labels_sae``: the SAE's id, whose labels ``cfg.labels`` holds among several SAEs'."""
    fpf = cfg.features_per_folder
    if isinstance(features, Sequence):
        features = sorted(features, key=lambda f: int(f["index"]))
    n = len(features)
    width = folder_width(n, fpf)
    labels = Labels(site, cfg.labels, n, sae=labels_sae)
    display = TokenDisplay(site.get("token_bytes"))
    title = title or site_title(site, cfg)
    base_url = _base_url(site, cfg)
    env = shared_environment()
    extra_context = {**(page_extra or {}), "sae_prefix": prefix} if prefix else {}

    tokens = ExampleTokens(site.get("dataset"), (site.get("token_bytes") or {}).keys())
    intake = Intake(
        labels,
        display,
        features_per_folder=fpf,
        folder_width=width,
        tokens=tokens,
        prefix=prefix,
        feature_json=cfg.feature_json,
    )
    workers = worker_count(cfg.workers, n, PARALLEL_MIN_FEATURES)
    t0 = time.perf_counter()
    # 1. records: each feature's JSON, and what other pages need of it; built and taken where
    # the pages are rendered, a range of whole folders each: in the local workers (forked), or
    # as the page runner's tasks (``map_folders``: Ray's, whose driver must not fork; not for
    # records read back from this machine's files, which another node would not have)
    map_folders = None
    if isinstance(pages, FolderRunner) and not isinstance(features, _FeatureFiles):
        map_folders = pages.map_folders
    elif pages is None and workers > 1:
        map_folders = local_folders(workers)
    summaries, entries, held = take_records(features, intake, writer, map_folders)
    if len(summaries) != n:
        raise SaesiteError(f"{len(summaries)} feature records for {n} features; expected {n}")
    log.debug(
        "feature records and JSON for %d features in %.1f s (%s)",
        n,
        time.perf_counter() - t0,
        f"{workers} workers" if pages is None else repr(pages),
    )
    t1 = time.perf_counter()

    # 2. site-wide files
    site_out = {k: v for k, v in site.items() if k not in ("features", "dataset")}
    site_out.setdefault("saesite_version", saesite.__version__)
    if base_url and isinstance(site_out.get("config"), dict):
        # kept for the next `saesite render`, as a build records it
        config = site_out["config"]
        site_out["config"] = {
            **config,
            "render": {**(config.get("render") or {}), "base_url": base_url},
        }
    site_out["labels"] = {str(e["index"]): e["label"] for e in entries if e["label"]}
    site_out["features"] = entries
    shards = shard_scripts([s.row for s in summaries])
    extra = [(key, prefix + path, *rest) for key, path, *rest in _extra_pages(site)]
    if nav is None:
        # one feature table: the index's (sort, page and query in its URL); table/page-K.html
        # stay as its no-JavaScript view, linked from it
        nav = [("index.html", "Overview"), ("index.html#features", "Features")]
    nav = list(nav)
    seen_keys = set()
    for key, rel_path, _, _ in extra:
        if key not in seen_keys:
            nav.append((rel_path, key.title()))
            seen_keys.add(key)

    def render(template: str, rel_path: str, context: dict) -> str:
        context = {**context, **extra_context}
        return render_page(
            env, template, rel_path, context, title=title, nav=nav, base_url=base_url
        )

    index = index_context(
        site_out,
        summaries,
        [prefix + path for path, _ in shards],
        features_per_folder=fpf,
        folder_width=width,
    )
    writer.write(prefix + "site.json", dumps_json(site_out))
    for rel_path, text in shards:
        writer.write(prefix + rel_path, text)
    per_shard = sequences_per_shard(int(site_out.get("seq_len") or 1)) if has_store else 0
    writer.write(prefix + "index.html", render("index.html", prefix + "index.html", index))
    for page in range(table_pages(n)):
        rel_path = f"{prefix}table/page-{page}.html"
        writer.write(rel_path, render("table.html", rel_path, _table_context(summaries, page)))

    # 3. feature pages, each from its record's JSON, by ranges of whole folders: in local
    # worker processes, or as Ray tasks (`pages`, saesite.ray_pages)
    job = PageJob(
        summaries=summaries,
        features_per_folder=fpf,
        display=display,
        tokens=tokens,
        n_tokens=site_out.get("n_tokens"),
        per_shard=per_shard,
        label_hrefs=toy_page.latent_instances(site),  # toy latents link their label back
        title=title,
        nav=tuple(nav),
        base_url=base_url,
        extra_context=extra_context,
        feature_extra=feature_extra,
    )

    def source(start: int, stop: int) -> list[FeatureJson]:
        """The JSON of whole folders: held, or (past the memory budget) read back from the
        records files written at intake."""
        out: list[FeatureJson] = []
        for first in range(start, stop, fpf):
            folder = summaries[first : min(first + fpf, stop)]
            if folder[0].index in held:
                out.extend((held[s.index], False) for s in folder)
            else:
                out.extend((line, True) for line in unpack(writer.read(folder[0].records)))
        return out

    log.debug("site-wide pages in %.1f s", time.perf_counter() - t1)
    t2 = time.perf_counter()
    pages = pages or LocalPages(workers=workers)
    with tqdm(total=n, desc="pages", unit="feature", disable=None, leave=False) as bar:
        for done in pages(job, writer, source):
            bar.update(done)
    log.debug("%d feature pages in %.1f s (%r)", n, time.perf_counter() - t2, pages)
    for _, rel_path, template, context in extra:
        writer.write(rel_path, render(template, rel_path, context))
    return summaries


def _table_context(summaries: Sequence[FeatureSummary], page: int) -> dict:
    """One page of the feature table (``TABLE_PAGE_SIZE`` rows)."""
    n = len(summaries)
    n_table_pages = table_pages(n)
    start = page * TABLE_PAGE_SIZE
    chunk = summaries[start : start + TABLE_PAGE_SIZE]
    return {
        "page": page,
        "first": start,
        "last": start + max(len(chunk), 1) - 1,
        "n_features": n,
        "rows": [table_row(s, "../") for s in chunk],
        "pages": [
            {
                # labelled by the feature ids they hold, which count from 0 as pages do not
                "number": f"{p * TABLE_PAGE_SIZE}–{min(n, (p + 1) * TABLE_PAGE_SIZE) - 1}",
                "href": f"page-{p}.html",
                "current": p == page,
            }
            for p in range(n_table_pages)
        ],
        "has_prev": page > 0,
        "prev_href": f"page-{page - 1}.html",
        "has_next": page + 1 < n_table_pages,
        "next_href": f"page-{page + 1}.html",
    }


def rerender_site(
    site_dir: str | Path,
    labels: str | None = None,
    title: str | None = None,
    workers: int | None = None,
    base_url: str | None = None,
    feature_json: bool = False,
    pages: PageRunner | None = None,
) -> Path:
    """Re-render a built site from its ``site.json`` and feature records files (no model); a
    new ``title`` or ``base_url`` is kept in site.json for the next render, as is
    ``feature_json`` (per-feature JSON files are written when it is given or the site has
    them). ``pages``: as in ``write_site``."""
    site_dir = Path(site_dir)
    if not is_saesite_build(site_dir):
        raise SaesiteError(
            f"{str(site_dir)!r} is not a saesite site (no {MANIFEST}); expected a folder "
            "`saesite build` wrote"
        )
    site_path = site_dir / "site.json"
    try:
        site = orjson.loads(site_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise SaesiteError(f"{site_path}: missing or not valid JSON ({err})") from None
    if "saes" in site:
        raise SaesiteError(
            f"{str(site_dir)!r} is a site of {len(site['saes'])} SAEs; `saesite render` "
            "re-renders single-SAE sites; expected `saesite build --sae … --sae …` to rebuild it"
        )
    check_site(site, str(site_path))
    dataset = read_store(site_dir)
    if dataset is not None:
        site["dataset"] = dataset  # the token store, read back (not part of site.json)
    entries = sorted(site.get("features") or [], key=lambda e: e["index"])
    features = _FeatureFiles(site_dir, entries)
    render_cfg = (site.get("config") or {}).get("render") or {}
    fpf = render_cfg.get("features_per_folder") or RenderConfig().features_per_folder
    cfg = RenderConfig(
        out=str(site_dir),
        labels=labels,
        title=title,
        features_per_folder=int(fpf),
        workers=workers,
        base_url=base_url,
        feature_json=feature_json or bool(render_cfg.get("feature_json")) or _has_json(entries),
    )
    for key in ("title", "base_url", "feature_json"):
        value = getattr(cfg, key)
        if value and isinstance(render_cfg, dict) and "config" in site:
            render_cfg = site["config"]["render"] = {**render_cfg, key: value}
    try:
        return write_site(site, features, cfg, pages=pages)
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as err:
        # a value check_site / check_feature do not cover (docs/schema.md has them all)
        raise SaesiteError(
            f"{str(site_dir)!r}: site.json or a feature file holds a value of the wrong type or "
            f"misses a field ({type(err).__name__}: {err}); expected the layout of docs/schema.md"
        ) from None


def _has_json(entries: Sequence[Mapping]) -> bool:
    """The site has per-feature JSON files: built with ``--feature-json``, or before the
    records files (whose entries name only ``json``)."""
    return any("json" in e for e in entries)


class _FeatureFiles:
    """A built site's feature records (``records_file.read_records``), checked and read one
    folder at a time as they are iterated, or a range at a time (``intake.RangeRecords``: in
    the renderer's workers)."""

    def __init__(self, site_dir: Path, entries: Sequence[Mapping]):
        self.site_dir, self.entries = site_dir, entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[dict]:
        return self.build_range(0, len(self))

    def build_range(self, start: int, stop: int) -> Iterator[dict]:
        """The records of entries ``start..stop-1``, from line k of the first one's records
        file when the k entries before it share that file."""
        entries, rel = self.entries, self.entries[start].get("records") if start < stop else None
        skip = 0
        while rel is not None and skip < start and entries[start - skip - 1].get("records") == rel:
            skip += 1
        for where, record in read_records(self.site_dir, entries[start:stop], skip):
            check_feature(record, where)
            yield record
