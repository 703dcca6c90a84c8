"""Feature pages over feature ranges: one picklable job that a forked worker or a Ray task runs.

    job = PageJob(...)                        # what every range needs: summaries, settings, tokens
    job.ranges(n_chunks)                      # whole folders of features, in index order
    job.files(start, stop, sources)           # [(path, bytes)] of features start..stop-1

``PageJob`` is a frozen, torch-free value: the local runner (``write_pages``, forked processes,
``site/parallel.py``) and the Ray runner (``saesite.ray_pages``) call the same ``files`` on it,
so a page's bytes do not depend on where it was rendered. A range is whole folders
(``features/NNN/``), so a file kept per folder belongs to exactly one range. No torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from saesite.site.intake import folder_files, folder_ranges
from saesite.site.page import render_page, shared_environment
from saesite.site.page_context import FeatureSummary, feature_context
from saesite.site.parallel import map_ranges
from saesite.site.token_markup import TokenDisplay
from saesite.site.token_store import EXAMPLE_LISTS, ExampleTokens
from saesite.site.writer import SiteWriter

FeatureJson = tuple[bytes, bool]
"""A feature's JSON bytes, and whether its folder's data files are in the site folder already
(written at intake, past ``intake.HELD_JSON_BYTES``) or still to be written with its pages."""

Source = Callable[[int, int], list[FeatureJson]]
"""The JSON of features ``start..stop-1``, in index order."""


@dataclass(frozen=True, kw_only=True)
class PageJob:
    """Everything a range of feature pages needs but their JSON; one value for all ranges."""

    summaries: Sequence[FeatureSummary]
    """Every feature's summary, in index order (pages link to their neighbours by it)."""
    features_per_folder: int
    display: TokenDisplay
    tokens: ExampleTokens
    """The token store: examples' text, attached to each record as it is rendered."""
    n_tokens: int | None
    per_shard: int
    """Sequences per token-store script (0: the site has no store)."""
    label_hrefs: Mapping[int, str] = field(default_factory=dict)
    """Where a feature's label links (a toy latent's instance), by index."""
    title: str
    nav: Sequence[tuple[str, str]]
    base_url: str | None
    extra_context: Mapping = field(default_factory=dict)
    """Context every page of a multi-SAE site's SAE adds (``sae_prefix``, the switcher)."""
    feature_extra: Callable[[int, str], dict] | None = None
    """Per feature ``(index, page path) -> context`` (multi-SAE sites: related features)."""

    def ranges(self, n_chunks: int) -> list[tuple[int, int]]:
        """The features cut into at most ``n_chunks`` ranges of whole folders."""
        return folder_ranges(len(self.summaries), self.features_per_folder, n_chunks)

    def files(
        self, start: int, stop: int, sources: Sequence[FeatureJson]
    ) -> Iterator[tuple[str, bytes]]:
        """The files of features ``start..stop-1`` (whole folders): each folder's data files
        (``intake.folder_files``) unless written, and each page."""
        env = shared_environment()
        summaries, fpf = self.summaries[start:stop], self.features_per_folder
        for first in range(0, len(summaries), fpf):
            folder = sources[first : first + fpf]
            if not folder[0][1]:
                yield from folder_files(summaries[first : first + fpf], [d for d, _ in folder])
        # with a token store the quantile examples' lines are drawn in the browser: only the
        # top examples need their text here
        lists = ("top_examples",) if self.per_shard else EXAMPLE_LISTS
        for summary, (data, _) in zip(summaries, sources, strict=True):
            context = feature_context(
                self.tokens.attach(orjson.loads(data), lists),
                self.summaries,
                self.display,
                n_tokens=self.n_tokens,
                per_shard=self.per_shard,
                label_href=self.label_hrefs.get(summary.index),
            )
            if self.feature_extra is not None:
                context.update(self.feature_extra(summary.index, summary.html))
            html = render_page(
                env,
                "feature.html",
                summary.html,
                {**context, **self.extra_context},
                title=self.title,
                nav=self.nav,
                base_url=self.base_url,
            )
            yield summary.html, html.encode("utf-8")


PageRunner = Callable[[PageJob, SiteWriter, Source], Iterator[int]]
"""Writes every feature's files of ``job`` through ``writer``; yields features done per range."""


@runtime_checkable
class FolderRunner(Protocol):
    """A page runner that also builds the records where it renders (``ray_pages.RayPages``);
    the local runner's are forked workers of its own (``intake.local_folders``)."""

    def map_folders(
        self, job: Callable[[int, int], Any], n: int, features_per_folder: int
    ) -> Iterator[Any]:
        """``intake.MapFolders``: ``job`` over ranges of whole folders, in completion order."""
        ...


@dataclass(frozen=True, kw_only=True)
class LocalPages:
    """The pages in ``workers`` forked processes on this machine (inline for one), each
    writing its ranges' files into the writer's temporary folder."""

    workers: int
    chunks_per_worker: int = 8

    def __call__(self, job: PageJob, writer: SiteWriter, source: Source) -> Iterator[int]:
        def write_range(start: int, stop: int) -> tuple[int, int, int]:
            mark = writer.mark()
            for rel_path, data in job.files(start, stop, source(start, stop)):
                writer.write(rel_path, data)
            return writer.written_since(mark)

        # inline: one folder at a time, so memory holds one folder's JSON read back
        n_chunks = self.workers * self.chunks_per_worker if self.workers > 1 else len(job.summaries)
        chunks = job.ranges(n_chunks)
        for done, written in map_ranges(write_range, chunks, self.workers):
            writer.count(written)
            yield done
