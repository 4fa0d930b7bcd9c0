"""att_mh: causal multi-head attention with grouped-query heads (kv_heads), with a KV cache.

Research log: 2024-12-22 (multi-head VQ did better than one head, and next step 1, causal
attention), 2024-12-23 next steps 1-3 (start_pos, KV-cache inference, causal mask) and
2025-01-06 next step 2 ("attention with linear mapping for KV ... causal, KVCache").

Parent: att; the change is n_heads heads of head_size = d_model / n_heads, with grouped-query
attention (Ainslie et al. 2023, llama's n_kv_heads): k and v have kv_heads heads, each shared by
a group of n_heads / kv_heads query heads (kv_heads = n_heads is plain multi-head attention,
kv_heads = 1 multi-query attention). The cache holds kv_heads heads, not n_heads.

    x (B, T, 1) -> Linear(1, d_model) -> positional encoding on the input (pe_type randn, sinpe,
    or rope with pe_on "input") -> LayerNorm (in_ln) -> q (n_heads heads), k, v (kv_heads heads),
    linear maps with no bias -> RoPE on each head of q and k (pe_type rope, pe_on "qk")
    -> LayerNorm on each head of q and of k (q_ln, k_ln; one LayerNorm(head_size) each, shared
    by the heads) -> per head softmax(q k^T / sqrt(head_size)) v, causal or not -> heads side
    by side -> Linear(d_model, 1, no bias)

As in att: no output projection (Linear(d_model, 1) absorbs it), randn is a fixed pe_std * N(0, 1)
table of block_size rows, sinpe and rope take any position; relative_positions when pe_type is
none, or rope on q and k with no LayerNorm after the rotation. causal=False leaks each
position's target into the aligned loss (see att).

The defaults are the original code's (simple-sequence-prediction, src/model/att_mh.py at
5b97253; tests/test_reference.py checks them against its outputs). Three options switch to what
this project did before (docs/DEPARTURES.md):
    bias=True             biases on q, k, v and the decoder (the original has none: +(n_heads +
                          2 kv_heads) head_size + 1 parameters).
    pe_std=0.01           the randn table's std; the original's simplepe table is 0.02 * N(0, 1).
    rope_before_ln=False  with pe_on "qk", LayerNorm each head of q and k first and rotate last,
                          so that q . k depends on position differences only; the original
                          rotates first (see att).

KV cache (causal only), llama's start_pos vocabulary:
    cache = model.new_cache()
    out = model(window, start_pos=0, cache=cache)         # (B, T, 1); keeps the keys and values
    out = model(value, start_pos=T, cache=cache)          # (B, 1, 1); one row of attention
Every position attends to at most block_size positions, itself included, with or without a
cache; the cache keeps the last block_size - 1 keys and values (new_cache(window): window - 1),
so a forecast can run past block_size. With relative_positions, cached generation equals
recomputing each window numbered from 0; with absolute encodings it equals a full forward with
the same absolute positions.

Shapes: x (B, T, 1) -> (B, T, 1); the output at t forecasts the value at t + 1.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

PE_TYPES = ("none", "randn", "sinpe", "rope")
PE_ON = ("input", "qk")


def rope_angles(start_pos, T, dim, device=None):
    """cos and sin, (T, dim // 2), of the angles p * 10000^(-2i / dim) for p = start_pos ... + T - 1.

    Angles in float64: in float32 an angle near position 10^4 is off by up to 5e-4 rad, enough to
    make q . k depend on absolute positions."""
    pos = torch.arange(start_pos, start_pos + T, dtype=torch.float64)
    inv_freq = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = torch.outer(pos, inv_freq)                          # (T, dim // 2)
    return angles.cos().float().to(device), angles.sin().float().to(device)


def apply_rope(x, cos, sin):
    """Rotate each pair (x[..., 2i], x[..., 2i + 1]) of x (..., T, dim) by its angle (T, dim // 2)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def sinusoids(start_pos, T, dim, device=None):
    """The sinusoidal encoding (T, dim): sin and cos of the same angles, interleaved."""
    cos, sin = rope_angles(start_pos, T, dim, device)
    return torch.stack((sin, cos), dim=-1).flatten(-2)


class KVCache:
    """Keys and values of the latest positions of a batch of sequences, for generation.

    Holds at most window - 1 positions, the ones before `next_pos`: with the new value's own key,
    each query then sees `window` keys, as in a window of training."""

    def __init__(self, window):
        self.window, self.keep = window, window - 1
        self.k = self.v = None                                   # (B, kv_heads, L, hs), positions next_pos - L ...
        self.next_pos = None

    def extend(self, k, v, start_pos):
        """Cached then new keys and values, (B, kv_heads, L + T, hs), and the position of the first one."""
        T = k.shape[-2]
        first_pos = start_pos
        if self.k is not None:
            if start_pos != self.next_pos:
                raise ValueError(f"the cache holds positions up to {self.next_pos - 1}, so the next "
                                 f"values start at {self.next_pos}; got start_pos {start_pos}")
            first_pos -= self.k.shape[-2]
            k, v = torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)
        self.next_pos = start_pos + T
        L = min(self.keep, k.shape[-2])
        self.k, self.v = k[..., k.shape[-2] - L:, :], v[..., k.shape[-2] - L:, :]  # the last L (may be 0)
        return k, v, first_pos


class Model(nn.Module):
    target = "aligned"  # trained on the next value at every position
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.001, epochs=50)  # benchmarks/studies.py att
    choices = dict(pe_type=PE_TYPES, pe_on=PE_ON)  # what the constructor accepts, for --help
    option_help = dict(d_model="width of the encoded values, the queries, keys and values")  # no codes here

    def __init__(self, d_model=64, n_heads=4, kv_heads=2, block_size=96, pe_type="rope", pe_on="input",
                 in_ln=False, q_ln=False, k_ln=False, causal=True, bias=False, pe_std=0.02,
                 rope_before_ln=True):
        super().__init__()
        if pe_type not in PE_TYPES:
            raise ValueError(f"pe_type {pe_type!r} is not one of {', '.join(PE_TYPES)}")
        if pe_on not in PE_ON:
            raise ValueError(f"pe_on {pe_on!r} is not one of {', '.join(PE_ON)}")
        if pe_on == "qk" and pe_type != "rope":
            raise ValueError(f"pe_on 'qk' rotates q and k and needs pe_type 'rope', got pe_type "
                             f"{pe_type!r}; use pe_on 'input' with {pe_type}")
        if min(d_model, n_heads, kv_heads, block_size) < 1:
            raise ValueError(f"d_model, n_heads, kv_heads and block_size must be at least 1, got "
                             f"{d_model}, {n_heads}, {kv_heads} and {block_size}")
        paired = pe_type in ("sinpe", "rope") and pe_on == "qk"  # then each head's features are paired up
        choices = [h for h in range(1, d_model + 1) if d_model % h == 0 and not (paired and (d_model // h) % 2)
                   and h % kv_heads == 0]
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}; choose n_heads "
                             f"among {', '.join(map(str, choices))}" + (f" (multiples of kv_heads {kv_heads})"
                                                                         if kv_heads > 1 else ""))
        if n_heads % kv_heads:
            choices = [h for h in range(1, n_heads + 1) if n_heads % h == 0]
            raise ValueError(f"kv_heads {kv_heads} does not divide n_heads {n_heads}; choose kv_heads "
                             f"among {', '.join(map(str, choices))}")
        head_size = d_model // n_heads
        rotated = d_model if pe_on == "input" else head_size     # the features RoPE / sinpe pair up
        if pe_type in ("sinpe", "rope") and rotated % 2:
            what = "d_model" if pe_on == "input" else "head_size d_model / n_heads"
            raise ValueError(f"pe_type {pe_type} on {pe_on} works on pairs of features and needs an even "
                             f"{what}, got {rotated}" + (f"; choose n_heads among {', '.join(map(str, choices))}"
                                                          if pe_on == "qk" and choices else ""))
        self.pe_type, self.pe_on, self.causal, self.block_size = pe_type, pe_on, causal, block_size
        self.n_heads, self.kv_heads, self.head_size = n_heads, kv_heads, head_size
        self.rope_before_ln = rope_before_ln
        self.relative_positions = pe_type == "none" or (pe_on == "qk" and not (rope_before_ln and (q_ln or k_ln)))
        self.encoder = nn.Linear(1, d_model)
        self.in_ln = nn.LayerNorm(d_model) if in_ln else nn.Identity()
        self.q = nn.Linear(d_model, n_heads * head_size, bias=bias)
        self.k = nn.Linear(d_model, kv_heads * head_size, bias=bias)
        self.v = nn.Linear(d_model, kv_heads * head_size, bias=bias)
        self.q_ln = nn.LayerNorm(head_size) if q_ln else nn.Identity()
        self.k_ln = nn.LayerNorm(head_size) if k_ln else nn.Identity()
        self.decoder = nn.Linear(d_model, 1, bias=bias)
        for layer in (self.encoder, self.q, self.k, self.v, self.decoder):  # the log's init
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        if pe_type == "randn":
            self.register_buffer("pe", pe_std * torch.randn(block_size, d_model))  # fixed, as in the log

    def new_cache(self, window=None):
        """An empty KV cache for forward(x, start_pos, cache): generation one value at a time.

        Each position then attends to the last `window` positions (default block_size, as the
        forward without a cache; forecast.py passes its time_steps)."""
        if not self.causal:
            raise ValueError("a KV cache needs causal attention; this model was built with causal False")
        window = self.block_size if window is None else window
        if window < 1:
            raise ValueError(f"a KV cache window must be at least 1, got {window}")
        return KVCache(window)

    def embed(self, x, start_pos):
        """The encoded input with its positional encoding: (B, T, 1) -> (B, T, D)."""
        T, D = x.shape[1], self.encoder.out_features
        h = self.encoder(x)
        if self.pe_type == "randn":
            if start_pos < 0 or start_pos + T > self.block_size:
                raise ValueError(f"positions {start_pos}..{start_pos + T - 1} exceed the positional table's "
                                 f"block_size {self.block_size} (pe_type randn); sinpe and rope take any position")
            h = h + self.pe[start_pos:start_pos + T]
        elif self.pe_type == "sinpe":
            h = h + sinusoids(start_pos, T, D, x.device)
        elif self.pe_type == "rope" and self.pe_on == "input":
            h = apply_rope(h, *rope_angles(start_pos, T, D, x.device))
        return self.in_ln(h)

    def forward(self, x, start_pos=0, cache=None):
        """x (B, T, 1) at positions start_pos ... start_pos + T - 1 -> (B, T, 1).

        With a cache (from new_cache), x continues the cached sequence: the first call may start
        anywhere, each later one at the position after the previous call's last."""
        B, T, _ = x.shape
        h = self.embed(x, start_pos)                             # (B, T, D)
        heads = lambda t, n: t.view(B, T, n, self.head_size).transpose(1, 2)  # (B, n, T, hs)
        q = heads(self.q(h), self.n_heads)                       # (B, nh, T, hs)
        k = heads(self.k(h), self.kv_heads)                      # (B, kvh, T, hs)
        v = heads(self.v(h), self.kv_heads)                      # (B, kvh, T, hs)
        rope_qk = self.pe_type == "rope" and self.pe_on == "qk"
        if rope_qk:
            cos, sin = rope_angles(start_pos, T, q.shape[-1], x.device)
        if rope_qk and self.rope_before_ln:                      # the original's order
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k = self.q_ln(q), self.k_ln(k)
        if rope_qk and not self.rope_before_ln:                  # rotation last: q . k stays relative
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        first_pos = start_pos
        if cache is not None:
            if not self.causal:
                raise ValueError("a KV cache needs causal attention; this model was built with causal False")
            k, v, first_pos = cache.extend(k, v, start_pos)      # (B, kvh, L + T, hs), from first_pos
        group = self.n_heads // self.kv_heads                    # llama's repeat_kv: each k, v head
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # serves a group
        window = cache.window if cache is not None else self.block_size
        if not self.causal:
            y = F.scaled_dot_product_attention(q, k, v)
        elif k.shape[-2] == T and T <= window:                   # one window, as in training
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif T == 1:                                             # one new value: all cached keys are in its window
            y = F.scaled_dot_product_attention(q, k, v)
        else:                                                    # causal, at most `window` back
            q_pos = torch.arange(start_pos, start_pos + T, device=x.device)[:, None]
            k_pos = torch.arange(first_pos, first_pos + k.shape[-2], device=x.device)[None, :]
            mask = (k_pos <= q_pos) & (k_pos > q_pos - window)   # (T, L + T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).reshape(B, T, -1)                  # (B, T, D): heads side by side
        return self.decoder(y)                                   # (B, T, 1)


if __name__ == "__main__":
    torch.manual_seed(0)
    model = Model().eval()
    x = torch.randn(4, 96, 1)
    y = model(x)
    trainable = sum(p.numel() for p in model.parameters())
    fixed = sum(b.numel() for b in model.buffers())
    print(f"{__doc__.split(':')[0]}: {trainable} trainable, {fixed} fixed parameters; {tuple(x.shape)} -> {tuple(y.shape)}")
    assert y.shape == x.shape
    cache = model.new_cache()  # the cache reproduces the full forward, one value at a time
    steps = [model(x[:, :48], 0, cache)] + [model(x[:, t:t + 1], t, cache) for t in range(48, 96)]
    assert torch.allclose(torch.cat(steps, dim=1), y, atol=1e-5)
