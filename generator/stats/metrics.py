"""Global SAE metrics accumulated over the same tokens as the feature statistics.

Reconstruction and L0, over the measured tokens t (every token but BOS / EOS / padding by
default, as SAELens' run_evals; all of them with ``include_special_tokens``):
    mse                = Σ_t ‖x_t − x̂_t‖² / n_tokens_measured
    explained_variance = 1 − Σ_t ‖x_t − x̂_t‖² / Σ_t ‖x_t − x̄‖²
    l0                 = Σ_t #{f : acts_t,f > 0} / n_tokens_measured
(the spread Σ_t ‖x_t − x̄‖² is merged batch by batch, see ``ReconstructionAccumulator``).
Language-model loss, mean next-token cross-entropy (nats) over the same predictions:
    ce_loss_recovered  = (zero − spliced) / (zero − clean)
where *spliced* replaces the hook's activation by the SAE reconstruction (at the measured
tokens; special tokens keep theirs, as run_evals) and *zero* by zeros, computed on the first
``--ce-tokens`` tokens (whole sequences) with its standard error; the predictions made at
special tokens are left out.

Per-batch values combine in float64 along the tree of token positions (``stats/reduction.py``),
so shards merged in any order give one pass's numbers to the last bit.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saesite.stats.reduction import TreeReduction, add
from saesite.threads import one_thread

N, SSE, M2, ACTIVE, MEAN = 0, 1, 2, 3, 4
"""Layout of a reconstruction node: [n, sse, M2, active, mean_0 … mean_{d_in-1}] in float64 (the
counts n and active are exact below 2^53)."""


def combine_spread(a: Tensor, b: Tensor) -> Tensor:
    """Chan's formula: M2 = M2_a + M2_b + ‖x̄_b − x̄_a‖² · n_a n_b / (n_a + n_b)."""
    n_a, n_b = float(a[N]), float(b[N])
    total = n_a + n_b
    out = a.clone()
    out[N] = total
    out[SSE] = a[SSE] + b[SSE]
    out[ACTIVE] = a[ACTIVE] + b[ACTIVE]
    if total == 0:
        return out
    delta = b[MEAN:] - a[MEAN:]
    out[M2] = a[M2] + b[M2] + float(delta.square().sum()) * n_a * n_b / total
    out[MEAN:] = a[MEAN:] + delta * (n_b / total)
    return out


def _next_position(tree: TreeReduction) -> int:
    return tree.runs[-1].cursor if tree.runs else 0


class ReconstructionAccumulator:
    """Squared error, the activations' spread and L0 over the measured tokens, in float64.

    The measured tokens are all but those whose id is in ``excluded_token_ids`` (BOS, EOS,
    padding by default: SAELens' run_evals leaves them out). Per batch, the squared error and
    ``M2_b = Σ‖x − x̄_b‖²`` (centred on the batch mean, so no cancellation) are float64 dot
    products; batches combine in float64 with Chan's formula (``combine_spread``).
    """

    def __init__(self, d_in: int, device: str = "cpu", excluded_token_ids: tuple[int, ...] = ()):
        self.d_in = d_in
        self.excluded_token_ids = tuple(sorted(set(excluded_token_ids)))
        self.tree = TreeReduction(combine_spread)

    def measured(self, token_ids: Int[Tensor, "..."]) -> Bool[Tensor, "..."] | None:
        """Which tokens the metrics measure (None: all of them)."""
        if not self.excluded_token_ids:
            return None
        excluded = torch.tensor(self.excluded_token_ids, dtype=token_ids.dtype)
        return ~torch.isin(token_ids, excluded.to(token_ids.device))

    @torch.no_grad()
    def update(
        self,
        x: Float[Tensor, "tok d_in"],
        x_hat: Float[Tensor, "tok d_in"],
        n_active: Int[Tensor, " tok"],
        token_ids: Int[Tensor, " tok"],
        position: int | None = None,
        stop: int | None = None,
    ) -> None:
        """One batch: its hook activations, reconstructions, number of features firing and
        token ids per token; ``position``/``stop``: its sequences (default: after the last)."""
        keep = self.measured(token_ids)
        if keep is not None:
            x, x_hat, n_active = x[keep], x_hat[keep], n_active[keep]
        # float64 throughout: float32 dot products over millions of elements put the MSE off by
        # ~1e-5 relative (against SAELens), and explained variance near 0 by more than that.
        x64 = x.double()
        diff = (x64 - x_hat.double()).reshape(-1)
        mean = x64.mean(0) if x.shape[0] else x64.new_zeros(self.d_in)
        centred = (x64 - mean).reshape(-1)
        # on one thread: a float64 dot split over 2 threads rounds differently from one over
        # 1, and a shard on a Ray worker (1 thread) must give the leaf one process (2) gives
        with one_thread():
            m2, sse = float(torch.dot(centred, centred)), float(torch.dot(diff, diff))
        active = float(n_active.sum())
        head = torch.tensor([x.shape[0], sse, m2, active], dtype=torch.float64)
        position = _next_position(self.tree) if position is None else position
        self.tree.add(position, torch.cat([head.to(mean.device), mean]), stop)

    def merge(self, other: ReconstructionAccumulator) -> None:
        if other.excluded_token_ids != self.excluded_token_ids:
            raise ValueError(
                f"cannot merge metrics over tokens other than {list(other.excluded_token_ids)} "
                f"into metrics leaving out {list(self.excluded_token_ids)}; expected one build"
            )
        self.tree.merge(other.tree)

    def finalize(self) -> dict[str, float | int | list[int] | None]:
        """mse, explained_variance, l0 over the measured tokens; their number and the ids left
        out (site.json ``n_tokens_measured``, ``excluded_token_ids``)."""
        total = self.tree.result()
        out: dict[str, float | int | list[int] | None] = {
            "mse": None,
            "explained_variance": None,
            "l0": None,
            "n_tokens_measured": 0 if total is None else int(total[N]),
            "excluded_token_ids": list(self.excluded_token_ids),
        }
        if total is None or total[N] == 0:
            return out
        n, sse, m2 = float(total[N]), float(total[SSE]), float(total[M2])
        out["mse"] = sse / n
        out["explained_variance"] = 1.0 - sse / m2 if m2 > 0 else None
        out["l0"] = float(total[ACTIVE]) / n
        return out

    def state_dict(self) -> dict[str, Tensor | int | float | str]:
        excluded = torch.tensor(self.excluded_token_ids, dtype=torch.int64)
        return {"d_in": self.d_in, "excluded_token_ids": excluded, **self.tree.state_dict("tree")}

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> ReconstructionAccumulator:
        excluded = tuple(state["excluded_token_ids"].tolist())
        acc = cls(state["d_in"], device=device, excluded_token_ids=excluded)
        acc.tree.load_state_dict(state, "tree", device)
        return acc


class LossAccumulator:
    """Mean clean / spliced / zero-ablated next-token loss, CE loss recovered and its standard
    error, from per-sequence loss sums.

    With a_i = zero_i − spliced_i and b_i = zero_i − clean_i summed over sequence i's
    predictions, ``ce_loss_recovered = Σa / Σb`` (a ratio estimator over sequences; the
    sequences are the independent units) and its standard error by the delta method,
        se = sqrt(Σ_i (a_i − R b_i)² / (n (n − 1))) / b̄,   b̄ = Σb / n,
    from the float64 sums Σc, Σs, Σz, Σa², Σb², Σab, kept on the pass's device (no host
    synchronisation per batch), per batch, reduced along the tree of positions.
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.tree = TreeReduction(add)
        """Per-batch [Σc, Σs, Σz, Σa², Σb², Σab], float64."""
        self.n_seq = 0
        self.n_predictions = 0

    def update(
        self,
        losses: Float[Tensor, "3 seq"],
        n_predictions: int,
        position: int | None = None,
        stop: int | None = None,
    ) -> None:
        """One batch: its per-sequence loss sums over ``n_predictions`` next-token predictions
        in all; ``position``/``stop``: its sequences (default: right after the last)."""
        clean, spliced, zero = losses
        a, b = zero - spliced, zero - clean
        value = torch.stack(
            [clean.sum(), spliced.sum(), zero.sum(), (a * a).sum(), (b * b).sum(), (a * b).sum()]
        ).double()
        position = _next_position(self.tree) if position is None else position
        self.tree.add(position, value, stop)
        self.n_seq += losses.shape[1]
        self.n_predictions += n_predictions

    def merge(self, other: LossAccumulator) -> None:
        self.tree.merge(other.tree)
        self.n_seq += other.n_seq
        self.n_predictions += other.n_predictions

    def finalize(self) -> dict[str, float | int | None]:
        keys = ("ce_loss_clean", "ce_loss_spliced", "ce_loss_zero_ablated", "ce_loss_recovered")
        out: dict[str, float | int | None] = dict.fromkeys(keys)
        out["ce_loss_recovered_se"] = None
        out["ce_loss_tokens"] = self.n_predictions
        if self.n_predictions == 0:
            return out
        total = self.tree.result()
        if total is None:
            return out
        c, s, z, aa, bb, ab = total.tolist()
        n = self.n_seq
        out.update(
            zip(
                keys[:3],
                (c / self.n_predictions, s / self.n_predictions, z / self.n_predictions),
                strict=True,
            )
        )
        if z == c:
            return out
        ratio = (z - s) / (z - c)
        out["ce_loss_recovered"] = ratio
        if n > 1:
            spread = max(aa - 2 * ratio * ab + ratio * ratio * bb, 0.0)
            out["ce_loss_recovered_se"] = math.sqrt(spread / (n * (n - 1))) / abs((z - c) / n)
        return out

    def state_dict(self) -> dict[str, Tensor | int | float | str]:
        return {
            "n_seq": self.n_seq,
            "n_predictions": self.n_predictions,
            **self.tree.state_dict("tree"),
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> LossAccumulator:
        acc = cls(device)
        acc.n_seq, acc.n_predictions = state["n_seq"], state["n_predictions"]
        acc.tree.load_state_dict(state, "tree", device)
        return acc
