"""mhvqlnmlp_rope: mhvqlnmlp with rotary position encoding in every head.

Research log 2024-12-23 (run mhvqlnmlp_rope_vs512_dm64_nh8: 8 heads, the best val loss of the
table, but weak regressive forecasts with the sliding window; the log proposed start_pos).

Parent: mhvqlnmlp; the change is rope() on each head's encoded vector (over head_size) before
its LayerNorm, and 8 heads by default. Positions start at start_pos and may run past any
length. With positions the output at t depends on t too, so the parent's
once-per-distinct-value read goes.
Shapes: x (B, T, 1) -> (B, T, 1); the output at t forecasts the value at t + 1.
"""
import math

import torch
import torch.nn as nn

try:
    from . import kernels
except ImportError:  # run as a file, python models/NAME.py: the kernels are beside it
    import kernels


def rope(x, start_pos):
    """Rotary position encoding (RoFormer, 2021): rotate each pair (x[..., 2i], x[..., 2i+1]) by
    the angle position * 10000 ** (-2i / dim). x (B, T, ..., dim); positions start_pos..start_pos+T-1.
    Angles are computed for any position, so there is no block_size."""
    T, dim = x.shape[1], x.shape[-1]
    inv_freq = 10000.0 ** (-torch.arange(0, dim, 2, device=x.device, dtype=x.dtype) / dim)  # (dim/2,)
    pos = torch.arange(start_pos, start_pos + T, device=x.device, dtype=x.dtype)
    angles = (pos[:, None] * inv_freq).view(T, *[1] * (x.dim() - 3), dim // 2)           # (T, ..., dim/2)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Model(nn.Module):
    target = "aligned"  # trained on the next value at every position
    pointwise = True  # the output at t depends on x[t] and t alone: a forecast needs the last position only
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.007, epochs=50)

    def __init__(self, vocab_size=512, d_model=64, n_heads=8):
        super().__init__()
        fits = [h for h in range(1, d_model + 1) if d_model % h == 0 and (d_model // h) % 2 == 0]  # even heads
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}; choose n_heads among "
                             f"{', '.join(map(str, fits))}")
        if (d_model // n_heads) % 2:
            raise ValueError(f"RoPE rotates pairs of dimensions: head_size {d_model // n_heads} must be even; choose "
                             f"n_heads among {', '.join(map(str, fits))}")
        self.n_heads = n_heads
        self.encoder = nn.Linear(1, d_model)
        self.ln = nn.LayerNorm(d_model // n_heads)  # normalises each head on its own
        self.register_buffer("codebook", torch.randn(n_heads, vocab_size, d_model // n_heads))  # fixed
        self.decoder = nn.Linear(d_model, 1)
        for layer in (self.encoder, self.decoder):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def query(self, x, start_pos=0):
        """The encoded values that read the codebooks: (B, T, 1) -> (B, T, H, hs).

        start_pos is the position of x[:, 0] in the series.
        """
        B, T, _ = x.shape
        return self.ln(rope(self.encoder(x).view(B, T, self.n_heads, -1), start_pos))

    def forward(self, x, start_pos=0):
        q = self.query(x, start_pos)                            # (B, T, H, hs)
        scale = 1 / math.sqrt(self.decoder.in_features)         # 1/sqrt(d_model), as the log
        # decoder(concat_h softmax(q_h @ E_h.T * scale) @ E_h), E_h head h's codebook: (B, T, 1)
        return kernels.codebook_read(q, self.codebook, self.decoder, scale)

    def code_probs(self, x, start_pos=0):
        """The reads' softmax over codes, (B, T, H, V), for codebook-usage statistics."""
        q = self.query(x, start_pos)                            # (B, T, H, hs)
        scores = torch.einsum("bthd,hvd->bthv", q, self.codebook)
        return torch.softmax(scores / math.sqrt(self.decoder.in_features), dim=-1)


if __name__ == "__main__":
    torch.manual_seed(0)
    model = Model()
    x = torch.randn(4, 96, 1)
    y = model(x)
    trainable = sum(p.numel() for p in model.parameters())
    fixed = sum(b.numel() for b in model.buffers())
    print(f"{__doc__.split(':')[0]}: {trainable} trainable, {fixed} fixed parameters; {tuple(x.shape)} -> {tuple(y.shape)}")
    assert y.shape == x.shape
