"""Second-stage transformer over VQ indices (minGPT, taming-transformers layout).

The module tree and parameter names follow CompVis/taming-transformers
(``taming/modules/transformer/mingpt.py``) so that the ``transformer.*``
weights of an official ``Net2NetTransformer`` checkpoint load with
``strict=True``::

    tok_emb.weight                (V, C)          token embedding
    pos_emb                       (1, T, C)       learned positions (a Parameter)
    blocks.N.ln1 / ln2            LayerNorm(C)
    blocks.N.attn.{key,query,value,proj}   Linear(C, C)
    blocks.N.attn.mask            (1, 1, T, T)    buffer: 1 where attention is allowed
    blocks.N.mlp.0 / mlp.2        Linear(C, 4C) / Linear(4C, C)  (GELU between)
    ln_f                          LayerNorm(C)
    head.weight                   (V, C)          no bias

(V = vocab_size, T = block_size, C = n_embd).  Like taming, the attention mask
is a *persistent* buffer, so it appears in ``state_dict``.

Numerics (pre-LN block, as taming)::

    x = tok_emb[idx] + pos_emb[pos]
    x = x + proj(softmax(q kᵀ / √(C/n_head) + M) v)      (q, k, v from ln1(x))
    x = x + mlp(ln2(x))
    logits = head(ln_f(x))

with M = 0 where ``mask`` is 1 and −∞ elsewhere.  ``attn_impl="sdpa"`` (the
default) computes the attention with ``F.scaled_dot_product_attention``;
``"manual"`` materialises the (T×T) matrix exactly as taming does.  Both
reproduce taming's logits to ≈1e-6.

Beyond taming: ``forward`` accepts explicit positions, a per-row attention
mask and a key/value cache (``past_kv`` / ``use_cache``) for incremental
decoding, and can evaluate the head at selected positions only.  The
bidirectional (MaskGIT-style) model is the same module with ``causal=False``
(an all-ones mask).

Files: :mod:`codec.conceal.files` (the project's format) and
:mod:`codec.conceal.taming` (official taming checkpoints).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ParameterError

KVCache = tuple[tuple[torch.Tensor, torch.Tensor], ...]
"""Per layer (k, v), each (B, n_head, P, C / n_head): keys / values of P earlier tokens."""

ATTN_IMPLS = ("sdpa", "manual")


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of a :class:`GPT` (taming's ``GPT.__init__`` arguments + ``causal``).

    Attributes:
        vocab_size: V, number of token ids (K codewords, +1 for a [mask] token).
        block_size: T, maximum sequence length (number of position embeddings).
        n_layer, n_head, n_embd: depth, attention heads, width C (C % n_head == 0).
        embd_pdrop, resid_pdrop, attn_pdrop: dropout probabilities in [0, 1).
        n_unmasked: the first ``n_unmasked`` positions attend to each other
            bidirectionally (taming's prefix trick; 0 = plain causal).
        causal: False gives the bidirectional model (all-ones mask).
    """

    vocab_size: int
    block_size: int
    n_layer: int = 12
    n_head: int = 8
    n_embd: int = 256
    embd_pdrop: float = 0.0
    resid_pdrop: float = 0.0
    attn_pdrop: float = 0.0
    n_unmasked: int = 0
    causal: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "n_unmasked"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"GPTConfig.{name} must be an int, got {v!r}")
        if self.vocab_size < 2:
            raise ParameterError(f"vocab_size must be ≥ 2, got {self.vocab_size}")
        if self.block_size < 1:
            raise ParameterError(f"block_size must be ≥ 1, got {self.block_size}")
        if self.n_layer < 1 or self.n_head < 1 or self.n_embd < 1:
            raise ParameterError(
                f"n_layer, n_head, n_embd must be ≥ 1, got {self.n_layer}, {self.n_head}, {self.n_embd}"
            )
        if self.n_embd % self.n_head:
            raise ParameterError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        for name in ("embd_pdrop", "resid_pdrop", "attn_pdrop"):
            p = float(getattr(self, name))
            if not 0.0 <= p < 1.0:
                raise ParameterError(f"{name} must be in [0, 1), got {p}")
            object.__setattr__(self, name, p)
        if not 0 <= self.n_unmasked <= self.block_size:
            raise ParameterError(f"n_unmasked must be in [0, block_size={self.block_size}], got {self.n_unmasked}")
        object.__setattr__(self, "causal", bool(self.causal))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GPTConfig":
        """Build from a dict; unknown keys raise ``ValueError`` (naming them)."""
        from ..types import from_dict_strict

        return from_dict_strict(cls, d, "GPTConfig")

    def attention_mask(self) -> torch.Tensor:
        """(1, 1, T, T) float mask as taming builds it: tril(1) (+ unmasked prefix), or all ones."""
        T = self.block_size
        if not self.causal:
            return torch.ones(1, 1, T, T)
        mask = torch.tril(torch.ones(T, T))
        if self.n_unmasked:
            mask[: self.n_unmasked, : self.n_unmasked] = 1
        return mask.view(1, 1, T, T)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with taming's parameter names (key/query/value/proj + ``mask`` buffer)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        C = config.n_embd
        self.key = nn.Linear(C, C)
        self.query = nn.Linear(C, C)
        self.value = nn.Linear(C, C)
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.proj = nn.Linear(C, C)
        self.register_buffer("mask", config.attention_mask())  # persistent, as in taming
        self.n_head = config.n_head
        self.attn_pdrop = config.attn_pdrop
        self.impl = "sdpa"

    def forward(
        self,
        x: torch.Tensor,
        allowed: torch.Tensor,
        layer_past: tuple[torch.Tensor, torch.Tensor] | None = None,
        select: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, C); allowed: bool (B|1, 1, T, P+T), True = may attend.

        ``select`` (B, n): compute the outputs of these query rows only
        (keys/values still cover every token).  Returns the output (B, T, C)
        (or (B, n, C)) and this layer's (k, v) over all P+T tokens, each
        (B, n_head, P+T, C/n_head).
        """
        B, T, C = x.shape
        hs = C // self.n_head
        k = self.key(x).view(B, T, self.n_head, hs).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_head, hs).transpose(1, 2)
        if select is not None:
            x = torch.gather(x, 1, select.unsqueeze(-1).expand(-1, -1, C))
            allowed = torch.gather(
                allowed.expand(B, -1, -1, -1), 2, select[:, None, :, None].expand(-1, 1, -1, allowed.shape[-1])
            )
            T = x.shape[1]
        q = self.query(x).view(B, T, self.n_head, hs).transpose(1, 2)
        if layer_past is not None:
            k = torch.cat((layer_past[0], k), dim=2)
            v = torch.cat((layer_past[1], v), dim=2)
        if self.impl == "manual":
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
            att = att.masked_fill(~allowed, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_drop(att)
            y = att @ v
        else:
            p = self.attn_pdrop if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y)), (k, v)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        C = config.n_embd
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.attn = CausalSelfAttention(config)
        self.mlp = nn.Sequential(
            nn.Linear(C, 4 * C),
            nn.GELU(),
            nn.Linear(4 * C, C),
            nn.Dropout(config.resid_pdrop),
        )

    def forward(self, x, allowed, layer_past=None, select=None):
        a, present = self.attn(self.ln1(x), allowed, layer_past, select)
        if select is not None:  # only the selected rows continue (x is (B, n, C) from here)
            x = torch.gather(x, 1, select.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, present


class GPT(nn.Module):
    """minGPT over token ids (taming-transformers' ``mingpt.GPT`` layout).

    ``GPT(config)`` or ``GPT(vocab_size=..., block_size=..., ...)``.
    """

    def __init__(self, config: GPTConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = GPTConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a GPTConfig or keyword arguments, not both")
        self.config = config
        C = config.n_embd
        self.tok_emb = nn.Embedding(config.vocab_size, C)
        self.pos_emb = nn.Parameter(torch.zeros(1, config.block_size, C))
        self.drop = nn.Dropout(config.embd_pdrop)
        self.blocks = nn.Sequential(*[Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, config.vocab_size, bias=False)
        self.block_size = config.block_size
        self.sos_token = 0  # start token of unconditional AR models (taming's SOSProvider)
        self.meta: dict[str, Any] = {}  # set by load_transformer
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """taming/minGPT init: N(0, 0.02) weights, zero biases, unit LayerNorm; pos_emb stays 0."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    # ------------------------------------------------------------------ helpers
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def causal(self) -> bool:
        return self.config.causal

    def get_block_size(self) -> int:
        return self.block_size

    def set_attn_impl(self, impl: str) -> "GPT":
        """Choose the attention kernel: ``"sdpa"`` (default) or ``"manual"`` (taming's arithmetic)."""
        if impl not in ATTN_IMPLS:
            raise ParameterError(f"attn_impl must be one of {ATTN_IMPLS}, got {impl!r}")
        for blk in self.blocks:
            blk.attn.impl = impl
        return self

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        idx: torch.Tensor,
        past_kv: KVCache | None = None,
        use_cache: bool = False,
        *,
        pos: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        logits_at: torch.Tensor | None = None,
    ):
        """Logits of the next token at every (or selected) position.

        Args:
            idx: (B, T) token ids in [0, vocab_size).
            past_kv: cache from an earlier call (P tokens per row) or None.
            use_cache: also return the cache over all P+T tokens.
            pos: (T,) or (B, T) position indices into ``pos_emb``; default P … P+T−1.
            attn_mask: bool (B|1, 1, T, P+T), True = may attend; default
                ``mask[:, :, P:P+T, :P+T]`` from the buffer (causal in
                sequence order for the causal model).
            logits_at: (B, n) sequence indices in [0, T): compute the last
                block's query path, ``ln_f`` and ``head`` only there (logits
                (B, n, V); the cache still covers every token); default every
                position.

        Returns:
            logits (B, T, V) (or (B, n, V)); with ``use_cache`` the tuple
            ``(logits, past_kv)``.
        """
        if idx.ndim != 2:
            raise ParameterError(f"idx must be (B, T), got shape {tuple(idx.shape)}")
        B, T = idx.shape
        P = 0 if past_kv is None else past_kv[0][0].shape[2]
        if past_kv is not None and len(past_kv) != len(self.blocks):
            raise ParameterError(f"past_kv has {len(past_kv)} layers, model has {len(self.blocks)}")
        if pos is None:
            if P + T > self.block_size:
                raise ParameterError(f"sequence of {P + T} tokens exceeds block_size {self.block_size}")
            pos_e = self.pos_emb[:, P : P + T, :]
        else:
            if pos.shape[-1] != T:
                raise ParameterError(f"pos must have {T} entries per row, got shape {tuple(pos.shape)}")
            pos_e = self.pos_emb[0][pos]
            if pos_e.ndim == 2:
                pos_e = pos_e.unsqueeze(0)
        if attn_mask is None:
            if P + T > self.block_size:
                raise ParameterError(f"sequence of {P + T} tokens exceeds block_size {self.block_size}; pass attn_mask")
            attn_mask = self.blocks[0].attn.mask[:, :, P : P + T, : P + T] != 0
        x = self.drop(self.tok_emb(idx) + pos_e)
        presents = []
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            # the last block's outputs are needed only where logits are asked for
            x, present = blk(x, attn_mask, None if past_kv is None else past_kv[i], logits_at if i == last else None)
            if use_cache:
                presents.append(present)
        logits = self.head(self.ln_f(x))
        if use_cache:
            return logits, tuple(presents)
        return logits

    @torch.no_grad()
    def forward_slots(
        self,
        idx: torch.Tensor,
        pos: torch.Tensor,
        cache: SlotKVCache,
        slots: torch.Tensor,
        past_len: torch.Tensor,
        new_len: torch.Tensor,
        logits_at: torch.Tensor,
    ) -> torch.Tensor:
        """Continue B sequences kept in ``cache`` slots (causal models).

        Row b has ``past_len[b]`` tokens cached in slot ``slots[b]`` and adds
        ``new_len[b]`` ≤ M tokens ``idx[b, :new_len[b]]`` (positions
        ``pos[b]``; the rest of the row is padding).  Their keys/values are
        written into the slot, every new token attends to the row's cached and
        earlier new tokens, and the logits at sequence indices ``logits_at``
        (B, n) (relative to the new tokens) are returned, (B, n, V).
        """
        if not self.config.causal:
            raise ParameterError("forward_slots needs a causal model")
        B, M = idx.shape
        dev = idx.device
        ar = torch.arange(M, device=dev)
        real = ar[None, :] < new_len[:, None]  # (B, M)
        wslot = torch.where(real, slots[:, None], torch.zeros_like(slots)[:, None])
        wpos = (past_len[:, None] + ar[None, :]).clamp_(max=cache.length - 1)
        P, N, S = past_len.tolist(), new_len.tolist(), slots.tolist()
        if max(p + n for p, n in zip(P, N, strict=False)) > cache.length:
            raise ParameterError(f"a sequence exceeds the cache length {cache.length}")
        sel_rows = logits_at.tolist()
        # per row: query positions (absolute) of all new tokens, and of the selected ones (last layer)
        q_all = [torch.arange(p, p + n, device=dev) for p, n in zip(P, N, strict=False)]
        q_sel = [torch.tensor([p + t for t in ts], device=dev) for p, ts in zip(P, sel_rows, strict=False)]
        keys = [torch.arange(p + n, device=dev) for p, n in zip(P, N, strict=False)]
        m_all = [k[None, :] <= q[:, None] for k, q in zip(keys, q_all, strict=False)]
        m_sel = [k[None, :] <= q[:, None] for k, q in zip(keys, q_sel, strict=False)]
        x = self.drop(self.tok_emb(idx) + self.pos_emb[0][pos])
        last = len(self.blocks) - 1
        for li, blk in enumerate(self.blocks):
            att = blk.attn
            h = blk.ln1(x)
            C = h.shape[-1]
            nh, hs = att.n_head, C // att.n_head
            cache.k[li][wslot, :, wpos] = att.key(h).view(B, M, nh, hs)
            cache.v[li][wslot, :, wpos] = att.value(h).view(B, M, nh, hs)
            if li == last:  # only the rows whose logits are wanted
                h = torch.gather(h, 1, logits_at.unsqueeze(-1).expand(-1, -1, C))
                x = torch.gather(x, 1, logits_at.unsqueeze(-1).expand(-1, -1, C))
            T = h.shape[1]
            q = att.query(h).view(B, T, nh, hs).transpose(1, 2)
            y = torch.zeros_like(q)
            for b in range(B):  # attention straight from the slot (no gathered copy of the cache)
                L = P[b] + N[b]
                K = cache.k[li][S[b] : S[b] + 1, :, :L]
                V = cache.v[li][S[b] : S[b] + 1, :, :L]
                mask = m_sel[b] if li == last else m_all[b]
                qb = q[b : b + 1, :, : mask.shape[0]]
                if att.impl == "manual":
                    a_ = (qb @ K.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
                    y[b : b + 1, :, : mask.shape[0]] = F.softmax(a_.masked_fill(~mask, float("-inf")), dim=-1) @ V
                else:
                    y[b : b + 1, :, : mask.shape[0]] = F.scaled_dot_product_attention(qb, K, V, attn_mask=mask)
            x = x + att.resid_drop(att.proj(y.transpose(1, 2).reshape(B, T, C)))
            x = x + blk.mlp(blk.ln2(x))
        return self.head(self.ln_f(x))


class SlotKVCache:
    """Key/value buffers for many independent sequences decoded incrementally.

    Slot ``s`` of layer ``l`` holds keys ``k[l][s, :, :n]`` and values
    ``v[l][s, :, :n]`` (each (n_head, n, C/n_head)) of the first n tokens of
    one sequence.  Slot 0 is scratch (padding writes land there).  Slots are
    handed out with :meth:`alloc` and returned with :meth:`free`; the buffer
    doubles when it runs out.  Used by :meth:`GPT.forward_slots`.
    """

    def __init__(self, model: "GPT", length: int, n_slots: int = 8) -> None:
        p = next(model.parameters())
        self.n_layer = len(model.blocks)
        self.n_head = model.config.n_head
        self.hs = model.config.n_embd // model.config.n_head
        self.length = int(length)
        self.device, self.dtype = p.device, p.dtype
        self.k = [self._zeros(max(2, n_slots)) for _ in range(self.n_layer)]
        self.v = [self._zeros(max(2, n_slots)) for _ in range(self.n_layer)]
        self._free = list(range(len(self.k[0]) - 1, 0, -1))

    def _zeros(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.n_head, self.length, self.hs, device=self.device, dtype=self.dtype)

    def alloc(self) -> int:
        if not self._free:
            n = len(self.k[0])
            self.k = [torch.cat((t, self._zeros(n))) for t in self.k]
            self.v = [torch.cat((t, self._zeros(n))) for t in self.v]
            self._free = list(range(2 * n - 1, n - 1, -1))
        return self._free.pop()

    def free(self, slot: int) -> None:
        if slot > 0:
            self._free.append(slot)
