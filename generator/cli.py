"""Command line -> configs -> the pipeline. The only module that wires stages together.

    saesite build        one streaming pass over the tokens, then a static site
                         (--shard I/N --state-out DIR: one shard's state; --ray: shards on Ray)
    saesite merge        shard states -> the site (docs/distributed.md)
    saesite render       re-render a built site from its JSON (no model), e.g. with new labels
    saesite train-model  a BPE tokenizer and a tiny transformer on local text
    saesite train-sae    an SAE on a hook's activations (SAELens folder format)
    saesite toy          toy models of superposition, SAEs on them, and their site

User errors print one line and exit with code 2 (a traceback only with --debug).
Heavy libraries (torch, transformer_lens) are imported inside the commands that use them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from saesite.config import (
    BuildConfig,
    DataConfig,
    RenderConfig,
    StatsConfig,
    ToyConfig,
    TrainModelConfig,
    TrainSaeConfig,
)
from saesite.errors import SaesiteError
from saesite.options import add_options, from_args, option
from saesite.threads import sleep_when_waiting

log = logging.getLogger("saesite")
EXIT_USAGE = 2


@dataclass(frozen=True, kw_only=True)
class CommandOptions:
    """Options of every command, before its name."""

    debug: bool = False
    """Show tracebacks."""
    quiet: bool = option(False, aliases=("-q",))
    """Only warnings and errors."""


@dataclass(frozen=True, kw_only=True)
class LegacyOptions:
    """Options kept so that old scripts still run."""

    force: bool = False
    """No effect, kept for old scripts: a site saesite wrote is replaced without it (its own
    files only; others are kept), and a folder it did not write needs --replace-folder."""


@dataclass(frozen=True, kw_only=True)
class ReplaceFilesOptions:
    """``train-model`` / ``train-sae``: whether their own files in --out may be replaced."""

    force: bool = False
    """Replace the files this command writes in --out (nothing else there)."""


@dataclass(frozen=True, kw_only=True)
class ShardOptions:
    """``build``: how the tokens are split across processes (docs/distributed.md)."""

    shard: str | None = option(None, metavar="I/N")
    """Compute only token shard I of 0..N-1 and write its state to --state-out."""
    state_out: str | None = option(None, metavar="DIR")
    """Folder for the --shard state."""
    feature_shard: str | None = option(None, metavar="J/M")
    """With --shard: only the features of feature shard J of 0..M-1 (very wide SAEs)."""
    ray: str | None = option(None, const="local", metavar="ADDRESS")
    """Token shards as Ray tasks: on a cluster's ADDRESS, or a local instance."""
    shards: int | None = None
    """--ray: number of token shards. None: one per CPU."""
    feature_shards: int = option(1, metavar="M")
    """--ray: split each token shard's features over M tasks (very wide SAEs)."""
    max_retries: int = 3
    """--ray: retries of a task whose worker died."""

    def __post_init__(self) -> None:
        if (self.shard is None) != (self.state_out is None):
            raise SaesiteError("--shard and --state-out go together; expected both or neither")
        if self.shard is not None and self.ray is not None:
            raise SaesiteError("--shard and --ray exclude each other; expected one of them")
        if self.shards is not None and (self.ray is None or self.shards < 1):
            raise SaesiteError(f"--shards {self.shards}; expected a positive count with --ray")
        if self.feature_shard is not None and self.shard is None:
            raise SaesiteError("--feature-shard goes with --shard I/N; expected both")
        if self.feature_shards != 1 and (self.ray is None or self.feature_shards < 1):
            raise SaesiteError(
                f"--feature-shards {self.feature_shards}; expected a positive count with --ray"
            )


@dataclass(frozen=True, kw_only=True)
class MergeInputs:
    """``merge``: the shard states."""

    states: tuple[str, ...] = option(positional=True)
    """Folders written by build --shard I/N --state-out."""


@dataclass(frozen=True, kw_only=True)
class RenderInputs:
    """``render``: the site to re-render."""

    site: str = option("site", positional=True)
    """A folder written by saesite build."""


def _warn_force(args: argparse.Namespace) -> None:
    if args.force:
        log.warning(
            "--force has no effect: only the files of a previous site are replaced, and a "
            "folder saesite did not write needs --replace-folder PATH"
        )


def cmd_build(args: argparse.Namespace) -> None:
    saes = args.sae or []  # --sae repeats: several SAEs, one site (saesite/multi.py)
    several = len(saes) > 1 or args.instance == "all"
    config = from_args(
        BuildConfig,
        args,
        sae=saes[0] if saes else None,
        instance=None if several else args.instance,
    )
    _warn_force(args)
    shards = from_args(ShardOptions, args)
    if several:
        _build_several(config, saes, args.instance, shards)
    elif shards.shard is not None:
        from saesite.shards import build_shard, parse_shard

        feature_shard = (
            parse_shard(shards.feature_shard, "--feature-shard")
            if shards.feature_shard is not None
            else None
        )
        build_shard(config, *parse_shard(shards.shard), shards.state_out, feature_shard)
    elif shards.ray is not None:
        from saesite.ray_build import ray_build

        ray_build(
            config,
            shards.ray,
            shards.shards,
            max_retries=shards.max_retries,
            n_feature_shards=shards.feature_shards,
        )
    else:
        from saesite.pipeline import build_site
        from saesite.threads import use_available_cpus

        use_available_cpus()
        build_site(config)


def _build_several(
    config: BuildConfig, saes: list[str], instance: int | str | None, shards: ShardOptions
) -> None:
    if shards.shard is not None or shards.ray is not None:
        raise SaesiteError("--shard and --ray build one SAE; expected a single --sae with them")
    if not saes:
        raise SaesiteError("--instance all needs --sae FILE; expected an ARENA state dict")
    from saesite.multi import build_many
    from saesite.threads import use_available_cpus

    use_available_cpus()
    build_many(config, [(path, None if instance == "all" else instance) for path in saes])


def cmd_merge(args: argparse.Namespace) -> None:
    from saesite.shards import merge_states

    _warn_force(args)
    merge_states(list(args.states), from_args(RenderConfig, args))


def cmd_render(args: argparse.Namespace) -> None:
    from saesite.site.render import rerender_site

    rerender_site(
        args.site,
        labels=args.labels,
        title=args.title,
        workers=args.workers,
        base_url=args.base_url,
        feature_json=args.feature_json,
    )


def cmd_train_model(args: argparse.Namespace) -> None:
    from saesite.output_files import MODEL_FILES, check_files_free
    from saesite.preflight import check_device
    from saesite.train.model import train_model

    check_files_free(args.out, MODEL_FILES, force=args.force)
    check_device(args.device)
    summary = train_model(from_args(TrainModelConfig, args))
    print(" ".join(f"{k}={v}" for k, v in summary.items()))


def cmd_train_sae(args: argparse.Namespace) -> None:
    config = from_args(TrainSaeConfig, args)
    from saesite.output_files import SAE_FILES, check_files_free
    from saesite.pipeline import train_sae_command
    from saesite.preflight import check_device
    from saesite.threads import use_available_cpus

    check_files_free(args.out, SAE_FILES, force=args.force)
    check_device(args.device)
    use_available_cpus()
    summary = train_sae_command(
        model=args.model,
        data=from_args(DataConfig, args),
        config=config,
        model_batch_size=args.batch_size,
    )
    print(" ".join(f"{k}={v}" for k, v in summary.items()))


def cmd_toy(args: argparse.Namespace) -> None:
    from saesite.preflight import check_device
    from saesite.toy.site import build_toy_site

    _warn_force(args)
    check_device(args.device)
    build_toy_site(from_args(ToyConfig, args), replace_folder=args.replace_folder)


OptionGroups = tuple[tuple[type, tuple[str, ...] | None], ...]
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], str, OptionGroups]] = {
    "build": (
        cmd_build,
        "compute feature statistics and write a static site",
        ((BuildConfig, None), (ShardOptions, None), (LegacyOptions, None)),
    ),
    "merge": (
        cmd_merge,
        "merge shard states (build --shard) and write the site",
        ((MergeInputs, None), (RenderConfig, None), (LegacyOptions, None)),
    ),
    "render": (
        cmd_render,
        "re-render a built site from its JSON (no model)",
        (
            (RenderInputs, None),
            (RenderConfig, ("labels", "title", "workers", "base_url", "feature_json")),
        ),
    ),
    "train-model": (
        cmd_train_model,
        "train a BPE tokenizer and a tiny transformer",
        ((TrainModelConfig, None), (ReplaceFilesOptions, None)),
    ),
    "train-sae": (
        cmd_train_sae,
        "train an SAE on a hook's activations",
        (
            (TrainSaeConfig, None),
            (DataConfig, None),
            (BuildConfig, ("model",)),
            (StatsConfig, ("batch_size",)),
            (ReplaceFilesOptions, None),
        ),
    ),
    "toy": (
        cmd_toy,
        "toy models of superposition and their site",
        ((ToyConfig, None), (RenderConfig, ("replace_folder",)), (LegacyOptions, None)),
    ),
}
"""Each command: its function, its one-line help and the configs its options come from
(``None``: every field; else the fields it takes)."""


def parser() -> argparse.ArgumentParser:
    """The command line: every option is a field of a config dataclass (saesite/options.py)."""
    top = argparse.ArgumentParser(prog="saesite", description=__doc__.split("\n\n")[0])
    add_options(top, CommandOptions)
    sub = top.add_subparsers(dest="command", required=True)
    for name, (func, help_, groups) in COMMANDS.items():
        command = sub.add_parser(name, help=help_)
        for config_class, only in groups:
            add_options(command, config_class, only=only)
        command.set_defaults(func=func)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    sleep_when_waiting()  # before anything imports torch
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="saesite: %(message)s"
    )
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except (SaesiteError, ValueError) as err:
        if args.debug:
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"saesite: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("saesite: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as err:
        if args.debug or not _is_out_of_memory(err):
            raise
        print(f"saesite: error: {_out_of_memory_message(err, args)}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _is_out_of_memory(err: BaseException) -> bool:
    """A failed allocation: Python's MemoryError, torch's OutOfMemoryError (CUDA) or its CPU
    allocator's RuntimeError."""
    text = str(err)
    return (
        isinstance(err, MemoryError)
        or type(err).__name__ == "OutOfMemoryError"
        or "can't allocate memory" in text
        or "out of memory" in text.lower()
    )


def _out_of_memory_message(err: BaseException, args: argparse.Namespace) -> str:
    first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
    batch = getattr(args, "batch_size", None)
    lower = f"lower --batch-size (now {batch})" if batch is not None else "lower the sizes"
    return (
        f"out of memory ({first}); expected a job that fits: {lower}, or use fewer tokens "
        "(--n-tokens) or a smaller --top-k"
    )


if __name__ == "__main__":
    sys.exit(main())
