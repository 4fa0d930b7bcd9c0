"""att: causal self-attention over the window (one head), with a KV cache for generation.

Research log: 2024-12-22 next step 1 ("consider adding causal attention"), 2024-12-23 next
steps 1-3 (start_pos, KV-cache inference, causal mask) and 2025-01-06 next step 2 ("attention
with linear mapping for KV ... causal, KVCache").

Parent: vqlnmlp, whose read is attention with a fixed codebook as keys and values. Here the keys
and values are linear maps of the window's own values, so positions interact, and a causal mask
lets position t see only the values up to t:

    x (B, T, 1) -> Linear(1, d_model) -> positional encoding on the input (pe_type randn, sinpe,
    or rope with pe_on "input") -> LayerNorm (in_ln) -> q, k, v = Linear(d_model, d_model, no bias)
    -> RoPE on q and k (pe_type rope, pe_on "qk") -> LayerNorm on q and on k (q_ln, k_ln)
    -> softmax(q k^T / sqrt(d_model)) v, causal or not -> Linear(d_model, 1, no bias) -> (B, T, 1)

There is no output projection: Linear(d_model, 1) right after it would make one linear map of
the two.

The defaults are the original code's (simple-sequence-prediction, src/model/att.py at 5b97253;
tests/test_reference.py checks them against its outputs). Three options switch to what this
project did before (docs/DEPARTURES.md):
    bias=True             biases on q, k, v and the decoder (the original has none: +3 d_model + 1
                          parameters).
    pe_std=0.01           the randn table's std; the original's simplepe table is 0.02 * N(0, 1),
                          the log's vqlnpemlp used 0.01.
    rope_before_ln=False  with pe_on "qk", LayerNorm q and k first and rotate last. The original
                          rotates first; a LayerNorm after the rotation is not a rotation, so with
                          q_ln or k_ln q . k then depends on absolute positions, not only on their
                          differences. Rotating last keeps q . k relative (relative_positions).

Positions: start_pos numbers x[:, 0]. randn is a fixed pe_std * N(0, 1) table, block_size rows
(positions past it are an error); sinpe (Vaswani et al. 2017) and rope (Su et al. 2021) are
computed for any position. With pe_type none, or rope on q and k with no LayerNorm after the
rotation, the outputs depend on positions only through their differences (relative_positions):
numbering a window from 0 or from its place in the series gives the same outputs.

causal=False lets every position see the whole window. Trained on the next value at every
position (target "aligned"), position t then sees its own target x[t + 1]: the training and
validation losses leak, and only the last position (val_mse_last, forecasts) is a fair measure.

KV cache (causal only), llama's start_pos vocabulary:
    cache = model.new_cache()
    out = model(window, start_pos=0, cache=cache)         # (B, T, 1); keeps the keys and values
    out = model(value, start_pos=T, cache=cache)          # (B, 1, 1); one row of attention
Every position attends to at most block_size positions, itself included, with or without a
cache (a longer x gets a banded causal mask); the cache keeps the last block_size - 1 keys and
values (new_cache(window): window - 1), so a forecast can run past block_size. With
relative_positions, cached generation equals recomputing each window numbered from 0; with
absolute encodings it equals a full forward with the same absolute positions (the model has one
layer: a key depends only on its own value and position).

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
        self.k = self.v = None                                   # (B, L, D), positions next_pos - L ...
        self.next_pos = None

    def extend(self, k, v, start_pos):
        """Cached then new keys and values, (B, L + T, D), and the position of the first one."""
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

    def __init__(self, d_model=64, block_size=96, pe_type="rope", pe_on="input", in_ln=False,
                 q_ln=False, k_ln=False, causal=True, bias=False, pe_std=0.02, rope_before_ln=True):
        super().__init__()
        if pe_type not in PE_TYPES:
            raise ValueError(f"pe_type {pe_type!r} is not one of {', '.join(PE_TYPES)}")
        if pe_on not in PE_ON:
            raise ValueError(f"pe_on {pe_on!r} is not one of {', '.join(PE_ON)}")
        if pe_on == "qk" and pe_type != "rope":
            raise ValueError(f"pe_on 'qk' rotates q and k and needs pe_type 'rope', got pe_type "
                             f"{pe_type!r}; use pe_on 'input' with {pe_type}")
        if d_model < 1 or block_size < 1:
            raise ValueError(f"d_model and block_size must be at least 1, got {d_model} and {block_size}")
        if pe_type in ("sinpe", "rope") and d_model % 2:
            raise ValueError(f"pe_type {pe_type} works on pairs of features and needs an even d_model, got {d_model}")
        self.pe_type, self.pe_on, self.causal, self.block_size = pe_type, pe_on, causal, block_size
        self.rope_before_ln = rope_before_ln
        self.relative_positions = pe_type == "none" or (pe_on == "qk" and not (rope_before_ln and (q_ln or k_ln)))
        self.encoder = nn.Linear(1, d_model)
        self.in_ln = nn.LayerNorm(d_model) if in_ln else nn.Identity()
        self.q, self.k, self.v = (nn.Linear(d_model, d_model, bias=bias) for _ in range(3))
        self.q_ln = nn.LayerNorm(d_model) if q_ln else nn.Identity()
        self.k_ln = nn.LayerNorm(d_model) if k_ln else nn.Identity()
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
        q, k, v = self.q(h), self.k(h), self.v(h)                # (B, T, D) each
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
            k, v, first_pos = cache.extend(k, v, start_pos)      # (B, L + T, D), from first_pos
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
