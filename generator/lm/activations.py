"""Activations of one hook point, streamed from a model through a shuffled buffer.

As SAELens does: fill a buffer with ``buffer_batches`` model batches (every position of every
sequence), shuffle it, serve the first half in batches of ``batch_size`` vectors, keep the second
half, refill with fresh model batches and shuffle again. Every SAE batch then mixes tokens from
many sequences and positions, and each token is served exactly once per epoch.

The stream is resumable: ``state_dict`` records the generator, the epoch's sequence order and the
(sequence, position) of every row still waiting in the buffer, not the activations themselves;
``load_state_dict`` recomputes those rows with the model. (Recomputed rows can differ from the
original ones in the last bits when the model batches differently.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.lm.hooks import run_to_hook, stop_layer

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


@torch.no_grad()
def hook_activations(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], hook: str
) -> Float[Tensor, "batch pos d_in"]:
    """Run the model only as far as ``hook`` and return its activation (trailing dims flattened)."""
    act = run_to_hook(model, tokens, hook, stop_at_layer=stop_layer(hook))[hook].detach()
    return act.reshape(act.shape[0], act.shape[1], -1).float()


@torch.no_grad()
def sample_activations(
    model: HookedTransformer,
    tokens: Int[Tensor, "n_seq seq_len"],
    hook: str,
    *,
    model_batch_size: int = 32,
) -> Float[Tensor, "tok d_in"]:
    """Activations at every position of ``tokens``, flattened to [n_seq·seq_len, d_in]."""
    chunks = [
        hook_activations(model, tokens[start : start + model_batch_size], hook).flatten(0, 1)
        for start in range(0, len(tokens), model_batch_size)
    ]
    return torch.cat(chunks)


class ActivationStream:
    """An endless iterator of shuffled activation batches [batch_size, d_in], times ``scale``."""

    def __init__(
        self,
        model: HookedTransformer,
        tokens: Int[Tensor, "n_seq seq_len"],
        hook: str,
        *,
        batch_size: int,
        model_batch_size: int = 32,
        buffer_batches: int = 16,
        generator: torch.Generator,
        scale: float = 1.0,
        device: str = "cpu",
    ):
        if len(tokens) == 0:
            raise ValueError("ActivationStream needs at least one sequence; got none")
        self.model = model
        self.tokens = tokens
        self.hook = hook
        self.batch_size = batch_size
        self.model_batch_size = model_batch_size
        self.scale = scale
        self.device = device
        self.generator = generator
        seq_len = tokens.shape[1]
        # Rows the buffer holds after a refill: at least two SAE batches, so half can be served.
        self.capacity = max(buffer_batches * model_batch_size * seq_len, 2 * batch_size)
        self.epoch = 0
        self.cursor = 0
        self.order = torch.randperm(len(tokens), generator=generator)
        self.pending = torch.empty(0, 0)  # rows served next, in order (d_in known once filled)
        self.pending_where = torch.empty(0, dtype=torch.long)  # flat seq * seq_len + pos
        self.reserve = torch.empty(0, 0)  # rows kept back for the next shuffle
        self.reserve_where = torch.empty(0, dtype=torch.long)

    def __iter__(self) -> ActivationStream:
        return self

    def __next__(self) -> Float[Tensor, "batch d_in"]:
        if len(self.pending) < self.batch_size:
            self._refill()
        batch = self.pending[: self.batch_size]
        self.pending = self.pending[self.batch_size :]
        self.pending_where = self.pending_where[self.batch_size :]
        return batch.to(self.device) * self.scale if self.scale != 1.0 else batch.to(self.device)

    def _next_sequences(self) -> Int[Tensor, " n"]:
        """Indices of the next model batch of sequences, in this epoch's shuffled order."""
        if self.cursor >= len(self.order):
            self.epoch += 1
            self.cursor = 0
            self.order = torch.randperm(len(self.tokens), generator=self.generator)
        seqs = self.order[self.cursor : self.cursor + self.model_batch_size]
        self.cursor += len(seqs)
        return seqs

    def _rows(self, where: Int[Tensor, " n"]) -> Float[Tensor, "n d_in"]:
        """Activations of the given flat (seq, pos) rows, recomputed with the model."""
        seq_len = self.tokens.shape[1]
        if len(where) == 0:
            return torch.empty(0, 0)
        seqs, inverse = torch.unique(where // seq_len, return_inverse=True)
        acts = sample_activations(
            self.model,
            self.tokens[seqs].to(self.device),
            self.hook,
            model_batch_size=self.model_batch_size,
        ).cpu()
        return acts[inverse * seq_len + where % seq_len]

    def _refill(self) -> None:
        seq_len = self.tokens.shape[1]
        acts = [self.pending, self.reserve]
        where = [self.pending_where, self.reserve_where]
        n_rows = len(self.pending) + len(self.reserve)
        while n_rows < self.capacity:
            seqs = self._next_sequences()
            batch = hook_activations(self.model, self.tokens[seqs].to(self.device), self.hook)
            acts.append(batch.flatten(0, 1).cpu())
            positions = torch.arange(seq_len).repeat(len(seqs))
            where.append(seqs.repeat_interleave(seq_len) * seq_len + positions)
            n_rows += len(seqs) * seq_len
        d_in = acts[-1].shape[1]
        pool = torch.cat([a.reshape(-1, d_in) for a in acts])
        pool_where = torch.cat(where)
        perm = torch.randperm(len(pool), generator=self.generator)
        pool, pool_where = pool[perm], pool_where[perm]
        half = max(len(pool) // 2, self.batch_size)
        self.pending, self.pending_where = pool[:half], pool_where[:half]
        self.reserve, self.reserve_where = pool[half:], pool_where[half:]

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue the stream (row positions, not activations)."""
        return {
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "cursor": self.cursor,
            "order": self.order.clone(),
            "pending_where": self.pending_where.clone(),
            "reserve_where": self.reserve_where.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``; rows waiting in the buffer are recomputed."""
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.cursor = int(state["cursor"])
        self.order = state["order"].clone()
        self.pending_where = state["pending_where"].clone()
        self.reserve_where = state["reserve_where"].clone()
        self.pending = self._rows(self.pending_where)
        self.reserve = self._rows(self.reserve_where)
