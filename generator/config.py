"""One frozen dataclass per stage. Each stage takes only its own config.

Validation happens in ``__post_init__`` and raises ``ValueError`` naming the bad value and what
was expected; the command line turns it into a one-line error with exit code 2.

How to add an option: add a field here, with a default and a docstring under it. That is all:
the field is the option (saesite/options.py). ``context_before: int = 8`` under
``StatsConfig`` is ``saesite build --context-before N``, its default 8 and its help the
docstring; ``Literal[...]`` gives the choices, ``X | None`` an optional value. Where the plain
name does not fit, say so with ``option(...)``: ``option(2048, flag="--sae-batch-size")``,
``option(None, flag="--no-bos", const=False)``, ``option(4096, parse=count_or_all)``, a nested
config's ``option(default_factory=..., prefix="dd-")``. A field of a config the command takes
only in part (``saesite render`` takes three of ``RenderConfig``'s) is listed in cli.py's
``COMMANDS``. tests/test_options.py fails when a field has no option, an option no field, or a
field no docstring. Options of the command line alone (``--debug``, ``--shard``) are fields of
the dataclasses in cli.py, the same way. Validate the value in ``__post_init__``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from saesite.options import count_or_all, instance_or_all, option

MODEL_DTYPES = ("float32", "bfloat16", "float16")


def _positive(name: str, value: int | float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        expected = "a non-negative number" if allow_zero else "a positive number"
        raise ValueError(f"--{name.replace('_', '-')} is {value}; expected {expected}")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the tokens come from and how they are cut into sequences."""

    dataset: str | None = None
    """Path to a `.npy` [n_seq, seq_len] token array, a `.txt` file, a folder of text files,
    a `.jsonl` file with a `text` field, `.parquet` / `.arrow` files, or a Hugging Face dataset
    `NAME[:SPLIT]` (streamed). None: the bundled demo tokens."""
    text_column: str | None = None
    """Hugging Face datasets: the column holding the text. None: `text`, or a pre-tokenised
    `input_ids` column used as it is."""
    n_tokens: int | None = None
    """Use at most this many tokens (whole sequences, rounded down). None: all of them."""
    seq_len: int | None = None
    """Sequence length for text datasets (ignored for `.npy`, whose rows are sequences).
    None: the SAE's metadata.context_size (capped by the model's n_ctx), else 128."""
    prepend_bos: bool | None = option(None, flag="--no-bos", const=False)
    """Text datasets: start every packed sequence with the tokenizer's BOS token (--no-bos: do
    not). None: the SAE's metadata.prepend_bos, else true."""

    def __post_init__(self) -> None:
        _positive("n_tokens", self.n_tokens)
        _positive("seq_len", self.seq_len)


@dataclass(frozen=True, kw_only=True)
class StatsConfig:
    """What the streaming pass accumulates per feature."""

    batch_size: int = 32
    """Sequences per forward pass."""
    top_k: int = 20
    """Top activating examples kept per feature."""
    n_bins: int = 64
    """Bins of the per-feature activation histogram (power-of-two width, see stats/histogram)."""
    n_intervals: int = 10
    """Quantile intervals per feature."""
    interval_samples: int = 5
    """Examples sampled uniformly at random from each interval."""
    context_before: int = 12
    """Tokens shown before the example's token (the page expands to the whole sequence)."""
    context_after: int = 4
    """Tokens shown after the example's token."""
    dense_threshold: float = 0.1
    """A feature firing on more than this fraction of tokens is flagged dense."""
    n_cofiring: int = 5
    """Co-firing neighbours listed per feature."""
    cofiring_exact_max_features: int = 16384
    """Largest d_sae whose co-firing is counted exactly (2·d_sae² bytes, stats/cofiring); above
    it, estimated from samples (stats/cofiring_sample)."""
    cofiring_candidates: int = 32
    """Co-active features stored per sampled token of the co-firing estimate (the largest)."""
    cofiring_samples: int = 16
    """Firing tokens sampled per feature for the co-firing estimate (stats/cofiring_sample)."""
    ce_loss: bool = True
    """Compute clean / spliced / zero-ablated language-model loss (the model from the hook on,
    three times)."""
    ce_tokens: int | None = option(4096, parse=count_or_all)
    """Tokens (whole sequences from the start of the dataset) the CE losses are computed on, or
    'all'; site.json reports the standard error of CE loss recovered. None: every token."""
    ablation: bool = False
    """Per top example, the change in next-token loss when the feature is ablated."""
    include_special_tokens: bool = False
    """Measure L0, MSE, explained variance and the CE losses over BOS / EOS / padding too
    (default: left out, as SAELens' run_evals; site.json metrics say which)."""
    seed: int = 0
    """Seed for the interval reservoirs."""
    device: str = "cpu"
    """Torch device for the pass."""

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "top_k",
            "n_bins",
            "n_intervals",
            "n_cofiring",
            "cofiring_candidates",
            "cofiring_samples",
            "cofiring_exact_max_features",
        ):
            _positive(name, getattr(self, name))
        _positive("interval_samples", self.interval_samples, allow_zero=True)
        _positive("ce_tokens", self.ce_tokens)
        _positive("context_before", self.context_before, allow_zero=True)
        _positive("context_after", self.context_after, allow_zero=True)
        if not 0.0 < self.dense_threshold <= 1.0:
            raise ValueError(
                f"--dense-threshold is {self.dense_threshold}; expected a fraction in (0, 1]"
            )
        if self.n_intervals > self.n_bins // 2:
            raise ValueError(
                f"n_intervals is {self.n_intervals}; expected at most n_bins/2 = {self.n_bins // 2}"
            )


@dataclass(frozen=True, kw_only=True)
class WeightStatsConfig:
    """Statistics read off the weights alone (no tokens)."""

    n_logits: int = 10
    """Top and bottom logit-effect tokens listed per feature."""
    n_neurons: int = 8
    """Neuron exposures listed per feature."""
    n_neighbours: int = 8
    """Nearest features by decoder cosine similarity."""
    n_logit_bins: int = 32
    """Bins of each feature's logit-effect histogram."""
    chunk_size: int = 1024
    """Features processed per chunk, so memory stays small for large d_sae."""

    def __post_init__(self) -> None:
        for name in ("n_logits", "n_neurons", "n_neighbours", "n_logit_bins", "chunk_size"):
            _positive(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class RenderConfig:
    """How the site is written."""

    out: str = "site"
    """Output folder. Replaced atomically at the end of the build: the files the previous site's
    manifest lists are removed, any other file in it is carried over (docs/output-folder.md)."""
    replace_folder: str | None = option(None, metavar="PATH")
    """Consent to delete a folder saesite did not write and everything in it: must name ``out``
    again. None: such a folder is refused."""
    labels: str | None = None
    """CSV or JSON file mapping feature id to a label; with several SAEs, by SAE id: CSV
    sae,id,label or JSON {"<sae id>": {"<id>": "<label>"}}."""
    title: str | None = None
    """Site title. None: derived from model and hook."""
    features_per_folder: int | None = None
    """Feature pages per folder (each folder also holds its features' records.jsonl.gz). None:
    500, or 499 with --feature-json, so a folder has at most 1,000 entries."""
    feature_json: bool = False
    """Also write each feature's record as its own <index>.json (the lines of its folder's
    records.jsonl.gz), for fetching one feature's data by URL; pages then link to it."""
    workers: int | None = None
    """Processes building feature records and pages. None: one per CPU (at most 8) from 256
    features."""
    base_url: str | None = None
    """Where the site will be hosted (http or https, e.g. https://user.github.io/repo/): pages
    get canonical and Open Graph URLs, and "Copy link" copies the hosted address. None: links
    stay relative."""

    def __post_init__(self) -> None:
        if self.features_per_folder is None:
            object.__setattr__(self, "features_per_folder", 499 if self.feature_json else 500)
        _positive("features_per_folder", self.features_per_folder)
        _positive("workers", self.workers)
        if self.base_url is not None:
            object.__setattr__(self, "base_url", normalise_base_url(self.base_url))


_URL_UNSAFE = frozenset(' "<>\\^`{|}')


def normalise_base_url(url: str) -> str:
    """An http(s) site address ending in one ``/``; ``ValueError`` naming what is wrong."""
    from urllib.parse import urlsplit

    expected = "expected an http:// or https:// address such as https://user.github.io/repo/"
    bad = next((c for c in url if c in _URL_UNSAFE or not c.isprintable()), None)
    if bad is not None:
        raise ValueError(f"--base-url {url!r} holds {bad!r}; {expected}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"--base-url {url!r} is not a URL; {expected}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--base-url {url!r} is not a web address; {expected}")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"--base-url {url!r} has a query or fragment; {expected}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """Everything `saesite build` needs; written into the site as `site.json` `config`."""

    model: str | None = None
    """TransformerLens model name, Hugging Face model folder or local model folder. None: the
    SAE's metadata.model_name, or the bundled demo model with the demo SAE."""
    sae: str | None = option(None, repeat=True)
    """SAELens folder, SAELens RELEASE/SAE_ID, hub ORG/REPO/PATH, or an ARENA state dict
    (sae/arena.py). None: the bundled demo SAE. Repeated: one site of several SAEs, one pass
    of the model (docs/multi-sae.md)."""
    instance: int | None = option(None, parse=instance_or_all)
    """Which instance of an ARENA n_instances state dict to build (0-based); 'all': every
    instance, each an SAE of one site."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """The model's dtype for the forward pass (statistics accumulate in float32 / float64)."""
    hook: str | None = None
    """Hook point. None: the SAE's metadata.hook_name."""
    data: DataConfig = field(default_factory=DataConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    weights: WeightStatsConfig = field(default_factory=WeightStatsConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    record_paths: bool = False
    """Publish the inputs' full local paths in site.json. False: paths relative to the working
    folder, or base names for paths outside it."""

    def __post_init__(self) -> None:
        if self.dtype not in MODEL_DTYPES:
            raise ValueError(
                f"--dtype is {self.dtype!r}; expected one of {', '.join(MODEL_DTYPES)}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class TrainModelConfig:
    """`saesite train-model`: a tiny transformer and its BPE tokenizer on local text."""

    out: str
    """Folder to write config.json, model.safetensors and tokenizer.json into."""
    corpus: str | None = None
    """Text file or folder. None: the Python standard library's own source files."""
    vocab_size: int = 4096
    """Tokens in the byte-level BPE vocabulary."""
    n_layers: int = 1
    """Transformer blocks."""
    d_model: int = 128
    """Residual stream width."""
    n_heads: int = 4
    """Attention heads per block (d_model must divide by it)."""
    d_mlp: int = 512
    """MLP hidden width."""
    n_ctx: int = 128
    """Context length (tokens per training sequence)."""
    batch_size: int = 32
    """Sequences per optimiser step."""
    lr: float = 3e-3
    """Adam learning rate."""
    steps: int = 2000
    """Optimiser steps."""
    seed: int = 0
    """Seed for the weights and the batches."""
    device: str = "cpu"
    """Torch device for training."""
    demo_tokens: int = 131072
    """Held-out tokens written as demo_tokens.npy (the default build dataset)."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layers", "d_model", "n_heads", "d_mlp", "n_ctx"):
            _positive(name, getattr(self, name))
        _positive("steps", self.steps)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


@dataclass(frozen=True, kw_only=True)
class TrainSaeConfig:
    """`saesite train-sae`: an SAE trained on a hook's activations, streamed from the model."""

    out: str
    """Folder for the SAE (SAELens format) and its training log."""
    hook: str = "blocks.0.mlp.hook_post"
    """Hook point whose activations the SAE reconstructs."""
    architecture: Literal["standard", "topk"] = "standard"
    """standard: ReLU + L1 penalty; topk: the k largest pre-activations."""
    d_sae: int = 2048
    """Number of features."""
    l1: float = 0.12
    """L1 coefficient (standard): loss = mse + l1 * sum_f acts_f, decoder rows kept at norm 1
    (train_sae scales inputs to unit total variance, so l1 does not depend on the hook's scale)."""
    l1_warmup_steps: int = 100
    """Steps over which the L1 coefficient ramps linearly from 0."""
    k: int = 32
    """Active latents per token (topk)."""
    aux_k: int | None = None
    """TopK auxiliary loss: dead latents used to model the residual. None: off."""
    lr: float = 3e-3
    """Adam learning rate."""
    lr_decay_fraction: float = 0.2
    """The learning rate decays linearly to 0 over this final fraction of the steps."""
    steps: int = 1500
    """Optimiser steps."""
    batch_size: int = option(2048, flag="--sae-batch-size")
    """Activation vectors per optimiser step."""
    buffer_batches: int = 16
    """Model batches held in the shuffled activation buffer."""
    b_dec_init: Literal["geometric_median", "mean"] = "geometric_median"
    """How b_dec is initialised from a sample of activations."""
    resample: Literal["anthropic", "random", "none"] = "anthropic"
    """Dead-feature resampling (standard only)."""
    resample_every: int = 200
    """Steps between resampling checks."""
    resample_window: int = 100
    """A feature is dead if it did not fire in this many recent steps."""
    resample_until: int | None = None
    """Stop resampling after this step. None: 80% of the run."""
    resample_lr_warmup: int = 100
    """After each resampling the learning rate ramps linearly from 0 over this many steps."""
    log_every: int = 25
    """Steps per line of the training log (values averaged over those steps)."""
    checkpoint_every: int = 500
    """Steps between checkpoints (DIR/checkpoint.pt, removed when the run completes)."""
    seed: int = 0
    """Seed for initialisation, the activation buffer's shuffles and resampling."""
    device: str = "cpu"
    """Torch device for the SAE."""
    resume: bool = False
    """Continue from DIR/checkpoint.pt if present."""

    def __post_init__(self) -> None:
        for name in (
            "d_sae",
            "k",
            "steps",
            "batch_size",
            "buffer_batches",
            "resample_every",
            "resample_window",
            "log_every",
            "checkpoint_every",
        ):
            _positive(name, getattr(self, name))
        _positive("l1", self.l1, allow_zero=True)
        _positive("l1_warmup_steps", self.l1_warmup_steps, allow_zero=True)
        _positive("resample_lr_warmup", self.resample_lr_warmup, allow_zero=True)
        _positive("lr", self.lr)
        _positive("aux_k", self.aux_k)
        if not 0.0 <= self.lr_decay_fraction <= 1.0:
            raise ValueError(
                f"lr_decay_fraction is {self.lr_decay_fraction}; expected a fraction in [0, 1]"
            )
        if self.architecture == "topk" and self.k > self.d_sae:
            raise ValueError(f"--k is {self.k}; expected at most --d-sae ({self.d_sae})")


@dataclass(frozen=True, kw_only=True)
class DoubleDescentConfig:
    """`saesite toy`'s double-descent sweep: one 2-D toy model per dataset size T."""

    sizes: tuple[int, ...] = (3, 5, 8, 12, 20, 30, 50, 100, 300, 1000)
    """Dataset sizes T swept (training points per model; comma-separated, e.g. 3,10,100).
    Empty (''): no sweep."""
    steps: int = 3000
    """Full-batch AdamW steps per model (5% linear warm-up, then cosine decay to 0)."""
    n_features: int = 50
    """Features of the toy model (2 hidden dimensions)."""
    feature_probability: float = 0.1
    """Probability that a feature is on in a data point."""
    replicas: int = 3
    """Models trained per T from different starts and data; the lowest training loss is kept."""
    n_test: int = 4096
    """Fresh points the test loss is measured on."""
    lr: float = 1e-2
    """Peak learning rate (the paper: 1e-3 over 50,000 steps; ten times that over 3,000 shows
    the same curve in a minute on a CPU)."""
    weight_decay: float = 1e-2
    """AdamW decoupled weight decay."""

    def __post_init__(self) -> None:
        for name in ("steps", "n_features", "replicas", "n_test"):
            _positive(name, getattr(self, name))
        _positive("lr", self.lr)
        _positive("weight_decay", self.weight_decay, allow_zero=True)
        if any(size <= 0 for size in self.sizes) or list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(
                f"--dd-sizes is {','.join(map(str, self.sizes))}; expected increasing positive "
                "dataset sizes"
            )
        if not 0.0 < self.feature_probability <= 1.0:
            raise ValueError(
                f"feature probability is {self.feature_probability}; expected a number in (0, 1]"
            )


@dataclass(frozen=True, kw_only=True)
class ToyConfig:
    """`saesite toy`: toy models of superposition, SAEs on them, and their site."""

    out: str = "site-toy"
    """Output folder for the site."""
    seed: int = 0
    """Seed for every toy model's weights and data, and every SAE."""
    device: str = "cpu"
    """Torch device for training."""
    steps: int = 5000
    """Optimiser steps per toy model (all its instances train at once)."""
    sae_steps: int = 5000
    """Optimiser steps per SAE (two per bottleneck instance: with and without resampling)."""
    batch_size: int = 512
    """Inputs per step, for the toy models and the SAEs."""
    lr: float = 1e-3
    """AdamW learning rate of the toy models."""
    sae_l1: float = 0.8
    """L1 coefficient of the toy SAEs (MSE summed over the hidden dimensions)."""
    seeds_per_level: int = 1
    """Toy-model instances trained per sparsity level; the lowest-loss one is kept."""
    n_samples: int = 8192
    """Inputs per instance from which the SAE latents' feature pages are computed."""
    double_descent: DoubleDescentConfig = option(default_factory=DoubleDescentConfig, prefix="dd-")
    """The memorisation-to-generalisation sweep over dataset sizes."""

    def __post_init__(self) -> None:
        for name in ("steps", "sae_steps", "batch_size", "seeds_per_level", "n_samples"):
            _positive(name, getattr(self, name))
        _positive("lr", self.lr)
        _positive("sae_l1", self.sae_l1, allow_zero=True)
