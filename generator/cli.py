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
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence

from saesite.config import (
    BuildConfig,
    DataConfig,
    DoubleDescentConfig,
    RenderConfig,
    StatsConfig,
    ToyConfig,
    TrainModelConfig,
    TrainSaeConfig,
    WeightStatsConfig,
)
from saesite.errors import SaesiteError

log = logging.getLogger("saesite")
EXIT_USAGE = 2


def _sizes(text: str) -> tuple[int, ...]:
    """``3,5,8`` -> (3, 5, 8); an empty string -> ()."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated whole numbers, e.g. 3,10,100"
        ) from None


def _defaults(config_class: type) -> dict:
    """A config dataclass's field defaults: the command line's defaults are the config's."""
    return {f.name: f.default for f in dataclasses.fields(config_class)}


WORKERS_HELP = "processes building feature records and pages (default: one per CPU, at most 8)"


def _count_or_all(text: str) -> int | None:
    """A positive count, or ``all`` (None)."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count; expected N or 'all'") from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        help="TransformerLens model name or local model folder (default: the bundled demo model)",
    )
    p.add_argument("--dataset", help=".npy [n_seq, seq_len] token ids, or .txt / folder / .jsonl")
    p.add_argument("--n-tokens", type=int, help="use at most this many tokens")
    p.add_argument(
        "--seq-len",
        type=int,
        help="sequence length for text datasets (default: the SAE's context_size, else 128)",
    )
    p.add_argument(
        "--no-bos",
        action="store_true",
        help="text datasets: do not prepend BOS (default: the SAE's prepend_bos)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")


TRAIN_FORCE_HELP = "replace the files this command writes in --out (nothing else there)"


def _add_out_safety_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--replace-folder",
        metavar="PATH",
        help="delete the folder PATH (which must be --out again) and everything in it, "
        "to write the site there; needed only for a folder saesite did not write",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="no effect, kept for old scripts: a site saesite wrote is replaced without it "
        "(its own files only; others are kept), and a folder it did not write needs "
        "--replace-folder",
    )


def _warn_force(args: argparse.Namespace) -> None:
    if args.force:
        log.warning(
            "--force has no effect: only the files of a previous site are replaced, and a "
            "folder saesite did not write needs --replace-folder PATH"
        )


def _data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(
        dataset=args.dataset,
        n_tokens=args.n_tokens,
        seq_len=args.seq_len,
        prepend_bos=False if args.no_bos else None,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saesite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="compute feature statistics and write a static site")
    _add_data_args(b)
    b.add_argument(
        "--sae",
        help="SAELens folder, SAELens RELEASE/SAE_ID, hub ORG/REPO/PATH or an ARENA state "
        "dict (default: the bundled demo SAE)",
    )
    b.add_argument(
        "--instance", type=int, help="instance of an ARENA n_instances state dict (0-based)"
    )
    b.add_argument("--hook", help="hook name (default: the SAE's metadata.hook_name)")
    b.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default="float32",
        help="model weights' dtype (bfloat16 on GPUs); the SAE and statistics stay float32",
    )
    b.add_argument("--top-k", type=int, default=20, help="top activating examples per feature")
    b.add_argument("--n-bins", type=int, default=64, help="activation histogram bins")
    b.add_argument("--n-intervals", type=int, default=10, help="quantile intervals per feature")
    b.add_argument("--interval-samples", type=int, default=5, help="examples per interval")
    b.add_argument("--context-before", type=int, default=8, help="tokens shown before")
    b.add_argument("--context-after", type=int, default=3, help="tokens shown after")
    b.add_argument("--dense-threshold", type=float, default=0.1)
    b.add_argument("--no-ce-loss", action="store_true", help="skip the CE-loss metrics")
    b.add_argument(
        "--ce-tokens",
        type=_count_or_all,
        default=_defaults(StatsConfig)["ce_tokens"],
        help="tokens (whole sequences from the start) the CE losses use, or 'all' "
        "(default: %(default)s; site.json gives the standard error)",
    )
    b.add_argument(
        "--ablation",
        action="store_true",
        help="per top example, loss change when the feature is ablated",
    )
    b.add_argument("--labels", help="CSV or JSON file: feature id -> label")
    b.add_argument("--title", help="site title")
    b.add_argument("--workers", type=int, help=WORKERS_HELP)
    b.add_argument("--out", default="site", help="output folder (default: site)")
    _add_out_safety_args(b)
    b.add_argument(
        "--record-paths",
        action="store_true",
        help="publish the inputs' full local paths in site.json (default: paths relative to "
        "the working folder, or base names)",
    )
    _add_distributed_args(b)
    b.set_defaults(func=cmd_build)

    g = sub.add_parser("merge", help="merge shard states (build --shard) and write the site")
    g.add_argument("states", nargs="+", help="folders written by build --shard I/N --state-out")
    g.add_argument("--labels", help="CSV or JSON file: feature id -> label")
    g.add_argument("--title", help="site title")
    g.add_argument("--workers", type=int, help=WORKERS_HELP)
    g.add_argument("--out", default="site", help="output folder (default: site)")
    _add_out_safety_args(g)
    g.set_defaults(func=cmd_merge)

    r = sub.add_parser("render", help="re-render a built site from its JSON (no model)")
    r.add_argument("site", nargs="?", default="site", help="a folder written by saesite build")
    r.add_argument("--labels", help="CSV or JSON file: feature id -> label")
    r.add_argument("--title", help="site title")
    r.add_argument("--workers", type=int, help=WORKERS_HELP)
    r.set_defaults(func=cmd_render)

    m = sub.add_parser("train-model", help="train a BPE tokenizer and a tiny transformer")
    m.add_argument("--out", required=True)
    m.add_argument("--corpus", help="text file or folder (default: the Python stdlib sources)")
    m.add_argument("--vocab-size", type=int, default=4096)
    m.add_argument("--n-layers", type=int, default=1)
    m.add_argument("--d-model", type=int, default=128)
    m.add_argument("--n-heads", type=int, default=4)
    m.add_argument("--d-mlp", type=int, default=512)
    m.add_argument("--n-ctx", type=int, default=128)
    m.add_argument("--batch-size", type=int, default=32)
    m.add_argument("--lr", type=float, default=3e-3)
    m.add_argument("--steps", type=int, default=2000)
    m.add_argument("--demo-tokens", type=int, default=131072)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--device", default="cpu")
    m.add_argument("--force", action="store_true", help=TRAIN_FORCE_HELP)
    m.set_defaults(func=cmd_train_model)

    s = sub.add_parser("train-sae", help="train an SAE on a hook's activations")
    _add_data_args(s)
    s.add_argument("--hook", default="blocks.0.mlp.hook_post")
    s.add_argument("--out", required=True)
    d = _defaults(TrainSaeConfig)
    s.add_argument("--architecture", choices=["standard", "topk"], default=d["architecture"])
    s.add_argument("--d-sae", type=int, default=d["d_sae"])
    s.add_argument("--l1", type=float, default=d["l1"], help="standard: L1 coefficient")
    s.add_argument("--l1-warmup-steps", type=int, default=d["l1_warmup_steps"])
    s.add_argument("--k", type=int, default=d["k"], help="topk: active latents per token")
    s.add_argument("--aux-k", type=int, help="topk: auxiliary-loss latents (default off)")
    s.add_argument("--lr", type=float, default=d["lr"])
    s.add_argument("--steps", type=int, default=d["steps"])
    s.add_argument(
        "--sae-batch-size",
        type=int,
        default=d["batch_size"],
        help="activation vectors per optimiser step",
    )
    s.add_argument("--resample", choices=["anthropic", "random", "none"], default=d["resample"])
    s.add_argument("--resample-every", type=int, default=d["resample_every"])
    s.add_argument(
        "--resample-window",
        type=int,
        default=d["resample_window"],
        help="steps without firing that make a feature dead",
    )
    s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    s.add_argument("--force", action="store_true", help=TRAIN_FORCE_HELP)
    s.set_defaults(func=cmd_train_sae)

    t = sub.add_parser("toy", help="toy models of superposition and their site")
    t.add_argument("--out", default="site-toy")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--steps", type=int, default=5000)
    t.add_argument("--sae-steps", type=int, default=5000)
    t.add_argument(
        "--seeds-per-level",
        type=int,
        default=1,
        help="train this many seeds per sparsity level and keep the lowest loss",
    )
    t.add_argument("--sae-l1", type=float, default=0.8, help="L1 coefficient of the toy SAEs")
    dd = _defaults(DoubleDescentConfig)
    t.add_argument(
        "--dd-sizes",
        type=_sizes,
        default=dd["sizes"],
        help="double descent: dataset sizes T, comma-separated ('' for no sweep)",
    )
    t.add_argument("--dd-steps", type=int, default=dd["steps"], help="double descent: steps")
    t.add_argument(
        "--dd-replicas", type=int, default=dd["replicas"], help="double descent: models per T"
    )
    _add_out_safety_args(t)
    t.set_defaults(func=cmd_toy)
    return parser


def _add_distributed_args(b: argparse.ArgumentParser) -> None:
    b.add_argument(
        "--shard",
        metavar="I/N",
        help="compute only token shard I of 0..N-1 and write its state to --state-out",
    )
    b.add_argument("--state-out", metavar="DIR", help="folder for the --shard state")
    b.add_argument(
        "--feature-shard",
        metavar="J/M",
        help="with --shard: only the features of feature shard J of 0..M-1 (very wide SAEs)",
    )
    b.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="token shards as Ray tasks: on a cluster's ADDRESS, or a local instance",
    )
    b.add_argument(
        "--shards", type=int, help="--ray: number of token shards (default: one per CPU)"
    )
    b.add_argument(
        "--feature-shards",
        type=int,
        default=1,
        metavar="M",
        help="--ray: split each token shard's features over M tasks (very wide SAEs)",
    )
    b.add_argument(
        "--max-retries", type=int, default=3, help="--ray: retries of a task whose worker died"
    )


def _render_config(args: argparse.Namespace) -> RenderConfig:
    _warn_force(args)
    return RenderConfig(
        out=args.out,
        replace_folder=args.replace_folder,
        labels=args.labels,
        title=args.title,
        workers=args.workers,
    )


def cmd_merge(args: argparse.Namespace) -> None:
    from saesite.shards import merge_states

    merge_states(args.states, _render_config(args))


def _run_build(config: BuildConfig, args: argparse.Namespace) -> None:
    if (args.shard is None) != (args.state_out is None):
        raise SaesiteError("--shard and --state-out go together; expected both or neither")
    if args.shard is not None and args.ray is not None:
        raise SaesiteError("--shard and --ray exclude each other; expected one of them")
    if args.shards is not None and (args.ray is None or args.shards < 1):
        raise SaesiteError(f"--shards {args.shards}; expected a positive count with --ray")
    if args.feature_shard is not None and args.shard is None:
        raise SaesiteError("--feature-shard goes with --shard I/N; expected both")
    if args.feature_shards != 1 and (args.ray is None or args.feature_shards < 1):
        raise SaesiteError(
            f"--feature-shards {args.feature_shards}; expected a positive count with --ray"
        )
    if args.shard is not None:
        from saesite.shards import build_shard, parse_shard

        feature_shard = (
            parse_shard(args.feature_shard, "--feature-shard")
            if args.feature_shard is not None
            else None
        )
        build_shard(config, *parse_shard(args.shard), args.state_out, feature_shard)
    elif args.ray is not None:
        from saesite.ray_build import ray_build

        ray_build(
            config,
            args.ray,
            args.shards,
            max_retries=args.max_retries,
            n_feature_shards=args.feature_shards,
        )
    else:
        from saesite.pipeline import build_site
        from saesite.threads import use_available_cpus

        use_available_cpus()
        build_site(config)


def cmd_build(args: argparse.Namespace) -> None:
    config = BuildConfig(
        model=args.model,
        sae=args.sae,
        instance=args.instance,
        hook=args.hook,
        dtype=args.dtype,
        data=_data_config(args),
        stats=StatsConfig(
            batch_size=args.batch_size,
            top_k=args.top_k,
            n_bins=args.n_bins,
            n_intervals=args.n_intervals,
            interval_samples=args.interval_samples,
            context_before=args.context_before,
            context_after=args.context_after,
            dense_threshold=args.dense_threshold,
            ce_loss=not args.no_ce_loss,
            ce_tokens=args.ce_tokens,
            ablation=args.ablation,
            seed=args.seed,
            device=args.device,
        ),
        weights=WeightStatsConfig(),
        render=_render_config(args),
        record_paths=args.record_paths,
    )
    _run_build(config, args)


def cmd_render(args: argparse.Namespace) -> None:
    from saesite.site.render import rerender_site

    rerender_site(args.site, labels=args.labels, title=args.title, workers=args.workers)


def cmd_train_model(args: argparse.Namespace) -> None:
    from saesite.output_files import MODEL_FILES, check_files_free
    from saesite.preflight import check_device
    from saesite.train.model import train_model

    check_files_free(args.out, MODEL_FILES, force=args.force)
    check_device(args.device)
    config = TrainModelConfig(
        out=args.out,
        corpus=args.corpus,
        vocab_size=args.vocab_size,
        n_layers=args.n_layers,
        d_model=args.d_model,
        n_heads=args.n_heads,
        d_mlp=args.d_mlp,
        n_ctx=args.n_ctx,
        batch_size=args.batch_size,
        lr=args.lr,
        steps=args.steps,
        seed=args.seed,
        device=args.device,
        demo_tokens=args.demo_tokens,
    )
    summary = train_model(config)
    print(" ".join(f"{k}={v}" for k, v in summary.items()))


def cmd_train_sae(args: argparse.Namespace) -> None:
    config = TrainSaeConfig(
        out=args.out,
        hook=args.hook,
        architecture=args.architecture,
        d_sae=args.d_sae,
        l1=args.l1,
        l1_warmup_steps=args.l1_warmup_steps,
        k=args.k,
        aux_k=args.aux_k,
        lr=args.lr,
        steps=args.steps,
        batch_size=args.sae_batch_size,
        resample=args.resample,
        resample_every=args.resample_every,
        resample_window=args.resample_window,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
    )
    from saesite.output_files import SAE_FILES, check_files_free
    from saesite.pipeline import train_sae_command
    from saesite.preflight import check_device
    from saesite.threads import use_available_cpus

    check_files_free(args.out, SAE_FILES, force=args.force)
    check_device(args.device)
    use_available_cpus()
    summary = train_sae_command(
        model=args.model, data=_data_config(args), config=config, model_batch_size=args.batch_size
    )
    print(" ".join(f"{k}={v}" for k, v in summary.items()))


def cmd_toy(args: argparse.Namespace) -> None:
    from saesite.preflight import check_device
    from saesite.toy.site import build_toy_site

    _warn_force(args)
    check_device(args.device)
    build_toy_site(
        ToyConfig(
            out=args.out,
            seed=args.seed,
            device=args.device,
            steps=args.steps,
            sae_steps=args.sae_steps,
            seeds_per_level=args.seeds_per_level,
            sae_l1=args.sae_l1,
            double_descent=DoubleDescentConfig(
                sizes=args.dd_sizes, steps=args.dd_steps, replicas=args.dd_replicas
            ),
        ),
        replace_folder=args.replace_folder,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
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
