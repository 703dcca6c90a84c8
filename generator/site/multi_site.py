"""A site of several SAEs: each SAE's pages under ``sae/<id>/``, shared files once. No torch.

    index.html  site.json  static/  tokens/            the overview, static files, token store
    search/saes.js                                     where each SAE's pages are (for search)
    sae/<id>/index.html  site.json  table/  search/  features/   one SAE, laid out as a
                                                       single-SAE site (its site.json too)
    compare/<a>--<b>.html                              per pair of SAEs on one hook

Every page has the SAE switcher (``components/sae_switcher.html``); feature pages list the
closest features of the related SAEs (``records/cross.py``). The overview's search scans every
SAE's search shards (``static/multi/sae-tag.js`` marks each with its SAE) and says which SAE a
result is from. Pages link with the site root as ``root``; an SAE's own pages add
``sae_prefix``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import saesite
from saesite.config import RenderConfig
from saesite.records.cross import CrossRecords
from saesite.site.compare_page import compare_context, overview_context
from saesite.site.intake import feature_paths, folder_width
from saesite.site.page_context import fmt_num
from saesite.site.render import (
    check_features_per_folder,
    make_environment,
    render_page,
    site_title,
    write_sae_pages,
    write_shared_files,
)
from saesite.site.search_index import SHARD_SIZE
from saesite.site.token_markup import TokenDisplay
from saesite.site.writer import SiteWriter, dumps_json, json_for_script


@dataclass(frozen=True, kw_only=True)
class SaeSite:
    """One SAE's records, as a single-SAE build writes them, and its folder name."""

    id: str
    site: dict
    features: Collection[Mapping]


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where every SAE's pages are, for links between them."""

    ids: list[str]
    n_features: list[int]
    features_per_folder: int

    def prefix(self, sae: int) -> str:
        return f"sae/{self.ids[sae]}/"

    def width(self, sae: int) -> int:
        return folder_width(self.n_features[sae], self.features_per_folder)

    def feature(self, sae: int, index: int) -> str:
        """The page of feature ``index`` of SAE ``sae``, from the site root."""
        html, _ = feature_paths(index, self.features_per_folder, self.width(sae))
        return self.prefix(sae) + html

    def compare(self, a: int, b: int) -> str:
        return f"compare/{self.ids[a]}--{self.ids[b]}.html"


def relative(target: str, page: str) -> str:
    """Link from the page at ``page`` to ``target`` (both from the site root)."""
    return posixpath.relpath(target, posixpath.dirname(page) or ".")


def switcher(saes: Sequence[SaeSite], current: int | None) -> list[dict]:
    """The switcher's entries: each SAE's overview, the current one marked."""
    return [
        {
            "name": sae.id,
            "href": f"sae/{sae.id}/index.html",
            "current": k == current,
            "title": f"{sae.site.get('hook', '?')} · {sae.site.get('d_sae', '?')} features",
        }
        for k, sae in enumerate(saes)
    ]


def cross_links(cross: CrossRecords, layout: Layout, sae: int, index: int, page: str) -> list[dict]:
    """The feature page's cross-SAE section: per related SAE its closest features (and the
    features this one splits into)."""
    groups = []
    for pair in cross.links_of(sae):
        b = pair.b

        def link(g: int, cosine: float, b: int = b) -> dict:
            return {
                "href": relative(layout.feature(b, g), page),
                "index": g,
                "value": fmt_num(cosine),
            }

        links = [link(g, c) for g, c in zip(pair.indices[index], pair.cosines[index])]
        children = [link(g, c) for g, c in (pair.splits[index] if pair.splits else [])]
        groups.append(
            {
                "sae_name": layout.ids[b],
                "sae_href": relative(layout.prefix(b) + "index.html", page),
                "relation": pair.relation,
                "links": links,
                "splits": children,
                "n_splits": len(children),
            }
        )
    return groups


def write_multi_site(
    saes: Sequence[SaeSite],
    cross: CrossRecords,
    cfg: RenderConfig,
    *,
    inputs: Sequence[str | Path] = (),
) -> Path:
    """Render every SAE's records, the overview and the comparison pages into ``cfg.out``,
    atomically, in one site. Returns the output folder."""
    fpf = cfg.features_per_folder
    check_features_per_folder(fpf, cfg.feature_json)
    first = saes[0].site
    dataset = first.get("dataset")
    display = TokenDisplay(first.get("token_bytes"))
    layout = Layout(
        ids=[s.id for s in saes],
        n_features=[len(s.features) for s in saes],
        features_per_folder=fpf,
    )
    title = cfg.title or f"{first.get('model', 'SAEs')} · {len(saes)} SAEs"
    top_nav = [("index.html", "All SAEs")]
    env = make_environment()
    with SiteWriter(cfg.out, replace_folder=cfg.replace_folder, inputs=inputs) as writer:
        write_shared_files(writer, dataset, display, multi=True)
        for k, sae in enumerate(saes):
            prefix = layout.prefix(k)
            site = sae.site  # its dataset: examples refer to the one token store written above

            def extra(index: int, page: str, k: int = k) -> dict:
                return {"cross_sae": cross_links(cross, layout, k, index, page)}

            write_sae_pages(
                writer,
                site,
                sae.features,
                cfg,
                has_store=dataset is not None,
                prefix=prefix,
                nav=[
                    *top_nav,
                    (prefix + "index.html", "Overview"),
                    (prefix + "index.html#features", "Features"),
                ],
                page_extra={"saes": switcher(saes, k)},
                feature_extra=extra,
                title=f"{site_title(site, cfg)} · {sae.id}",  # two SAEs may share a hook
                labels_sae=sae.id,  # cfg.labels holds every SAE's, by id
            )

        def page(template: str, rel_path: str, context: dict) -> None:
            context = {**context, "saes": switcher(saes, None)}
            writer.write(
                rel_path, render_page(env, template, rel_path, context, title=title, nav=top_nav)
            )

        for comparison in cross.comparisons:
            a, b = comparison["a"], comparison["b"]
            rel_path = layout.compare(a, b)
            page("compare.html", rel_path, compare_context(comparison, layout, rel_path))
        shards = [
            [f"{layout.prefix(k)}search/index-{n}.js" for n in range(shard_count(len(s.features)))]
            for k, s in enumerate(saes)
        ]
        page("multi_index.html", "index.html", overview_context(saes, cross, layout, shards))
        writer.write("search/saes.js", saes_script(layout))
        writer.write("site.json", dumps_json(site_json(saes, cross, layout)))
        return writer.commit()


def shard_count(n_features: int) -> int:
    """Search shards ``search_index.shard_scripts`` writes for ``n_features`` rows."""
    return max(1, -(-n_features // SHARD_SIZE))


def saes_script(layout: Layout) -> str:
    """``search/saes.js``: where each SAE's feature pages are, for the overview's search."""
    saes = [
        {
            "name": sae_id,
            "prefix": layout.prefix(k),
            "per_folder": layout.features_per_folder,
            "width": layout.width(k),
        }
        for k, sae_id in enumerate(layout.ids)
    ]
    return f"window.SAESITE_SAES={json_for_script(saes)};\n"


def site_json(saes: Sequence[SaeSite], cross: CrossRecords, layout: Layout) -> dict:
    """The overview's site.json: the SAEs (each one's own site.json is in its folder), the
    comparisons and layer matches."""
    first = saes[0].site
    return {
        "saesite_version": saesite.__version__,
        "model": first.get("model"),
        "n_tokens": first.get("n_tokens"),
        "n_seq": first.get("n_seq"),
        "seq_len": first.get("seq_len"),
        "saes": [
            {
                "id": sae.id,
                "folder": layout.prefix(k),
                "hook": sae.site.get("hook"),
                "d_in": sae.site.get("d_in"),
                "d_sae": sae.site.get("d_sae"),
                "metrics": sae.site.get("metrics"),
            }
            for k, sae in enumerate(saes)
        ],
        "comparisons": [
            {
                **c,
                "a": layout.ids[c["a"]],
                "b": layout.ids[c["b"]],
                "page": layout.compare(c["a"], c["b"]),
            }
            for c in cross.comparisons
        ],
        "layer_matches": [
            {**m, "lower": layout.ids[m["lower"]], "upper": layout.ids[m["upper"]]}
            for m in cross.layer_matches
        ],
    }
