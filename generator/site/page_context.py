"""Template contexts: every number formatted and every token rendered here, so templates hold
only loops, boolean ``if``s and ``{{ value }}``. The lists a feature page repeats per item
(example lines, logit and neuron rows, links to other features) come as one ``Markup`` each:
a feature page is rendered for every feature, and a template loop costs per item."""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson
from markupsafe import Markup, escape

from saesite.site.plots import histogram_svg
from saesite.site.search_index import FLAG_DEAD, FLAG_DENSE, POSITION, ROW_FIELDS
from saesite.site.token_markup import (
    TokenDisplay,
    Window,
    escape_text,
    example_stub,
    format_value,
    page_window,
    shading_max,
)


def fmt_pct(fraction: float | None) -> str:
    """A fraction as a percentage with three significant digits: ``0.0312%``."""
    if fraction is None:
        return "–"
    return f"{100 * fraction:.3g}%"


def fmt_num(value: float | None) -> str:
    if value is None:
        return "–"
    return format_value(value)


def fmt_signed(value: float) -> str:
    return f"{value:+.3g}"


def config_text(config: Mapping | None) -> str:
    """A configuration as the pages print it: JSON, keys sorted, indented by two ("" for none)."""
    if not config:
        return ""
    return orjson.dumps(config, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode()


def fmt_int(value: int | None) -> str:
    return "–" if value is None else f"{int(value):,}"


def quoted(text: str) -> str:
    """A token for prose (descriptions): ``'·django'``."""
    return f"'{text}'"


@dataclass(frozen=True, kw_only=True)
class FeatureSummary:
    """What other pages need to know about a feature: where it is and how to name it."""

    index: int
    html: str
    records: str
    """Its folder's records file (``records_file``)."""
    json: str = ""
    """Its own JSON file, "" unless the site has them (``RenderConfig.feature_json``)."""
    label: str
    row: list
    """The feature's search-index row (see ``search_index.ROW_FIELDS``)."""
    headline: str = ""
    """One line saying what the feature does: its label, else ``headline.generated_headline``."""

    @property
    def hint(self) -> str:
        """A few words saying what the feature is: its label, else the token it fires on most."""
        if self.label:
            return self.label
        fires = self.row[POSITION["fires_on"]]
        return quoted(fires[0]) if fires else ""

    @functools.cached_property
    def hint_html(self) -> Markup:
        """``hint`` as link text: quotes need no escaping in text content (markupsafe would
        write &#39;). Worked out once: a page links to ~15 features."""
        return Markup(escape_text(self.hint))

    @functools.cached_property
    def place(self) -> tuple[str, str, Markup, Markup]:
        """``(folder, the folder's parent, href from its folder, href from a sibling folder)``
        of ``html``, for links to it (``_link``); the hrefs escaped for an attribute."""
        folder, name = self.html.rsplit("/", 1)
        sibling = f"../{posixpath.basename(folder)}/{name}"  # what relpath gives, at less cost
        return folder, posixpath.dirname(folder), escape(name), escape(sibling)


Link = tuple[Markup, int, Markup]
"""``(href, index, hint)`` of a link to a feature: its relative href (escaped for an attribute),
its index, its hint as HTML."""


def _link(
    summaries: Sequence[FeatureSummary], index: int, page_folder: tuple[str, str]
) -> Link | None:
    """A link from a feature page in ``page_folder`` (the folder and its parent) to feature
    ``index`` (relative, short)."""
    if not 0 <= index < len(summaries):
        return None
    summary = summaries[index]
    folder, parent, own_href, sibling_href = summary.place
    if page_folder[0] == folder:
        href = own_href
    elif page_folder[1] == parent:  # sibling folders
        href = sibling_href
    else:
        href = escape(posixpath.relpath(summary.html, page_folder[0]))
    return href, summary.index, summary.hint_html


def _link_items(items: Sequence[tuple[Link, str]]) -> Markup:
    """``<li>`` items of a list of links, a line each: ``(link, text after it)``, the text made
    of numbers formatted here (nothing to escape). End tags left out, as HTML allows."""
    return Markup(
        "".join(
            [
                f'<li><a href="{href}">{index}</a> {text} <small>{hint}</small>\n'
                for (href, index, hint), text in items
            ]
        )
    )


def flags_of(feature: Mapping) -> list[str]:
    return [name for name in ("dead", "dense") if feature.get(name)]


def describe(feature: Mapping, summary: FeatureSummary) -> str:
    """The one-line summary used for ``<meta name=description>`` and Open Graph: the headline,
    then the density."""
    parts = [f"Feature {summary.index}"]
    if summary.headline:
        parts.append(summary.headline)
    if not feature.get("dead"):
        parts.append(f"density {fmt_pct(feature.get('density'))}")
    return " · ".join(parts)


def _histogram(
    data: Mapping | None, x_label: str, y_label: str, bands: Sequence[tuple[float, float]] = ()
) -> Markup | None:
    if not data or not data.get("counts") or not any(data["counts"]):
        return None
    # the axis ends at the last non-empty bin (the stored bins run to a power of two)
    counts = list(data["counts"])
    last = max(i for i, c in enumerate(counts) if c) + 1
    edges = list(data["edges"])[: last + 1]
    return histogram_svg(edges, counts[:last], x_label=x_label, y_label=y_label, bands=bands)


def _lines(
    display: TokenDisplay,
    examples: Sequence[Mapping] | None,
    max_act: float,
    sep: str,
    window: Window | None = None,
) -> Markup:
    """Example lines as one block of HTML, a line each (empty when there are none)."""
    return display.lines(examples or [], max_act, sep, window)


def _stubs(
    examples: Sequence[Mapping] | None, shown: Mapping[tuple, int], window: Window
) -> Markup:
    """Example lines for ``static/examples.js`` to draw: ``<p data-t="k">`` for the k-th top
    example (drawn there already, copied; ``shown``: ``(seq, pos)`` of each top example to
    its k), else ``example_stub``."""
    lines = []
    for example in examples or []:
        k = shown.get((example["seq"], example["pos"])) if "seq" in example else None
        lines.append(f'<p data-t="{k}"></p>' if k is not None else example_stub(example, window))
    return Markup("\n".join(lines))


def distinct_windows(examples: Sequence[Mapping] | None) -> tuple[list[Mapping], int]:
    """The examples whose window (its tokens and the own token's place in it) was not shown by
    an earlier one, and how many repeats were folded."""
    seen: set = set()
    kept = []
    for example in examples or []:
        key = (tuple(example["tokens"]), example["pos"] - example["window_start"])
        if key not in seen:
            seen.add(key)
            kept.append(example)
    return kept, len(examples or []) - len(kept)


def _logit_rows(effects: Sequence[Mapping], display: TokenDisplay) -> Markup:
    """Rows of a logit table, ``<tr><td><code>token</code><td>+0.12`` a line each: end tags of
    rows and cells left out, as HTML allows (a feature page is mostly small rows)."""
    return Markup(
        "".join(
            [
                f"<tr><td>{display.token(e['token'], e.get('token_id'))}"
                f"<td>{fmt_signed(e['value'])}\n"
                for e in effects
            ]
        )
    )


def _neuron_rows(exposures: Sequence[Mapping]) -> Markup:
    """Rows of the neuron table, ``<tr><td>2,697<td>+0.125`` a line each (as ``_logit_rows``)."""
    return Markup(
        "".join(
            [f"<tr><td>{fmt_int(n['neuron'])}<td>{fmt_signed(n['weight'])}\n" for n in exposures]
        )
    )


def feature_context(
    feature: Mapping,
    summaries: Sequence[FeatureSummary],
    display: TokenDisplay,
    *,
    n_tokens: int | None,
    per_shard: int = 0,
    label_href: str | None = None,
) -> dict:
    """Everything ``feature.html`` shows, formatted. ``per_shard``: sequences per token-store
    shard (``token_store``), 0 when the site has no store (examples do not expand);
    ``label_href``: where the headline links (a toy latent's instance), relative to the root."""
    index = int(feature["index"])
    summary = summaries[index]
    max_act = feature.get("max_activation") or 0.0
    sep = feature.get("token_separator") or ""
    density = feature.get("density")
    fired = None if density is None or n_tokens is None else round(density * n_tokens)
    stats = [
        ("density", fmt_pct(density) + ("" if fired is None else f" ({fired:,} tokens)")),
        ("max activation", fmt_num(max_act)),
        ("mean activation", fmt_num(feature.get("mean_activation"))),
    ]
    if feature.get("encoder_decoder_cosine") is not None:
        stats.append(("encoder–decoder cosine", fmt_num(feature["encoder_decoder_cosine"])))
    if feature.get("neuron_share") is not None:
        stats.append(("share of ‖W_dec‖² in listed neurons", fmt_pct(feature["neuron_share"])))
    top, folded = distinct_windows(feature.get("top_examples"))
    quantiles = feature.get("quantile_examples") or []
    window = page_window([*top, *(e for q in quantiles for e in q.get("examples") or [])])
    intervals = []
    shown = {(e.get("seq"), e.get("pos")): k for k, e in enumerate(top)}
    for interval in quantiles:
        # with a token store the text of these lines is drawn from it in the browser: it is
        # most of a page's bytes (the top examples above stay in the page, for reading
        # without JavaScript)
        if per_shard:
            examples = _stubs(interval.get("examples"), shown, window)
        else:
            examples = _lines(display, interval.get("examples"), max_act, sep, window)
        if not examples:
            continue
        title = (
            f"{fmt_num(interval['lo'])} – {fmt_num(interval['hi'])} · "
            f"{fmt_pct(interval.get('fraction'))} of firings"
        )
        intervals.append((title, examples))
    intervals.reverse()  # highest activations first, like the top examples above them
    effects = feature.get("logit_effects") or {}
    page_folder = summary.place[:2]
    prev_link = _link(summaries, index - 1, page_folder)
    next_link = _link(summaries, index + 1, page_folder)
    neighbours = []
    for n in feature.get("neighbours") or []:
        link = _link(summaries, int(n["index"]), page_folder)
        if link:
            neighbours.append((link, fmt_num(n["cosine"])))
    cofiring = []
    for c in feature.get("cofiring") or []:
        link = _link(summaries, int(c["index"]), page_folder)
        if link:
            count = ("≈" if c.get("estimated") else "") + fmt_int(c["count"])
            cofiring.append((link, f"{fmt_num(c['jaccard'])} · {count}"))
    bands = [(q["lo"], q["hi"]) for q in feature.get("quantile_examples") or []]
    act_hist = _histogram(feature.get("histogram"), "activation", "tokens", bands)
    logit_hist = _histogram(feature.get("logit_histogram"), "effect on logit", "tokens")
    return {
        "index": index,
        "label": summary.label,
        "has_label": bool(summary.label),
        "headline": summary.headline,
        "has_generated_headline": bool(summary.headline) and not summary.label,
        "has_label_href": bool(label_href),
        "label_href": label_href or "",
        "page_title": f"Feature {index}" + (f": {summary.headline}" if summary.headline else ""),
        "description": describe(feature, summary),
        "dead": bool(feature.get("dead")),
        "flags": flags_of(feature),
        "stats": stats,
        "has_json": bool(summary.json),
        "json_href": summary.json.rsplit("/", 1)[-1],
        "records_href": summary.records.rsplit("/", 1)[-1],
        "has_prev": prev_link is not None,
        "prev_href": prev_link[0] if prev_link else "",
        "prev_index": prev_link[1] if prev_link else "",
        "has_next": next_link is not None,
        "next_href": next_link[0] if next_link else "",
        "next_index": next_link[1] if next_link else "",
        "has_act_histogram": act_hist is not None,
        "act_histogram": act_hist or "",
        "has_logit_histogram": logit_hist is not None,
        "logit_histogram": logit_hist or "",
        "top_examples": _lines(display, top, max_act, sep, window),
        "window_attr": f"{window[0]},{window[1]}",
        "folded": folded,
        "folded_text": f"{folded} repeated window{'s' if folded != 1 else ''} folded",
        "per_shard": per_shard,
        "range_from_store": bool(per_shard),
        "max_act_attr": shading_max(max_act),
        "intervals": intervals,
        "promotes": _logit_rows(effects.get("positive") or [], display),
        "suppresses": _logit_rows(effects.get("negative") or [], display),
        "neurons": _neuron_rows(feature.get("neuron_exposures") or []),
        "neighbours": _link_items(neighbours),
        "cofiring": _link_items(cofiring),
    }


def table_row(summary: FeatureSummary, root: str) -> dict:
    """One row of the feature table (static pages and the index's first page)."""
    row = dict(zip(ROW_FIELDS, summary.row, strict=False))  # rows may end before headline
    flags = row["flags"]
    return {
        "href": root + summary.html,
        "index": row["index"],
        "label": row["label"],
        "headline": summary.headline,
        "density": fmt_pct(row["density"]),
        "max_act": fmt_num(row["max_activation"]),
        "fires_on": row["fires_on"],
        "promotes": row["promotes"],
        "flags": " ".join(
            name for bit, name in ((FLAG_DEAD, "dead"), (FLAG_DENSE, "dense")) if flags & bit
        ),
    }


_METRICS = (
    ("l0", "L0 (features firing per token)", fmt_num),
    ("n_tokens_measured", "tokens L0, MSE and explained variance are over", fmt_int),
    ("l0_all_tokens", "L0 over every token, special ones included", fmt_num),
    ("explained_variance", "explained variance", fmt_num),
    ("mse", "MSE", fmt_num),
    ("ce_loss_recovered", "CE loss recovered", fmt_num),
    ("ce_loss_recovered_se", "CE loss recovered, standard error", fmt_num),
    ("ce_loss_tokens", "CE loss, predictions averaged", fmt_int),
    ("ce_loss_clean", "CE loss, clean", fmt_num),
    ("ce_loss_spliced", "CE loss, SAE spliced in", fmt_num),
    ("ce_loss_zero_ablated", "CE loss, zero-ablated", fmt_num),
    ("dead_count", "dead features", fmt_int),
    ("dense_count", "dense features", fmt_int),
)


def site_facts(site: Mapping) -> dict:
    """The index header: model, hook, SAE shape, tokens, global metrics, build config."""
    sae = site.get("sae") or {}
    shape = f"d_in {fmt_int(site.get('d_in'))} → d_sae {fmt_int(site.get('d_sae'))}"
    if sae.get("architecture"):
        shape = f"{sae['architecture']} · {shape}"
    tokens = fmt_int(site.get("n_tokens"))
    if site.get("n_seq") and site.get("seq_len"):
        tokens += f" ({fmt_int(site['n_seq'])} sequences × {fmt_int(site['seq_len'])})"
    facts = [
        ("model", str(site.get("model", "–"))),
        ("hook", str(site.get("hook", "–"))),
        ("SAE", shape),
        ("tokens", tokens),
    ]
    metrics = site.get("metrics") or {}
    shown = [
        (name, fmt(metrics[key])) for key, name, fmt in _METRICS if metrics.get(key) is not None
    ]
    density = site.get("density_histogram") or {}
    hist = None
    if density.get("counts") and any(density["counts"]):
        hist = histogram_svg(
            density["edges"], density["counts"], x_label="log10 firing density", y_label="features"
        )
    config = site.get("config")
    return {
        "facts": facts,
        "metrics": shown,
        "has_density_histogram": hist is not None,
        "density_histogram": hist or "",
        "dead_apart": fmt_int(density.get("dead", 0)),
        "has_config": bool(config),
        "config_text": config_text(config),
    }
