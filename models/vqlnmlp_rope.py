"""vqlnmlp_rope: vqlnmlp with rotary position encoding on the encoded vector.

Research log 2024-12-22 (next step: "consider using the transformer2017 PE and RoPE") and
2024-12-23, where RoPE gave the best val loss. Each value is encoded to d_model, its vector is
rotated by an angle that grows with its position (pairs of dimensions, RoFormer's frequencies),
then layer-normed and read from the fixed N(0, 1) codebook as in vqlnmlp. A rotation keeps the
norm, and the dot product of two rotated vectors depends only on their position offset.

Parent: vqlnmlp; the change is rope() on the encoded vector before the LayerNorm, over d_model.
Positions start at start_pos and may run past any length. With positions the output at t
depends on t too, so the parent's once-per-distinct-value read goes.
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

    def __init__(self, vocab_size=512, d_model=64):
        super().__init__()
        if d_model % 2:
            raise ValueError(f"RoPE rotates pairs of dimensions: d_model {d_model} must be even")
        self.encoder = nn.Linear(1, d_model)
        self.ln = nn.LayerNorm(d_model)
        self.register_buffer("codebook", torch.randn(vocab_size, d_model))  # fixed, never trained
        self.decoder = nn.Linear(d_model, 1)
        for layer in (self.encoder, self.decoder):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def query(self, x, start_pos=0):
        """The encoded values that read the codebook: (B, T, 1) -> (B, T, D).

        start_pos is the position of x[:, 0] in the series.
        """
        return self.ln(rope(self.encoder(x), start_pos))

    def forward(self, x, start_pos=0):
        q = self.query(x, start_pos)                            # (B, T, D)
        scale = 1 / math.sqrt(q.shape[-1])                      # 1/sqrt(D)
        # decoder(softmax(q @ E.T * scale) @ E), E the codebook: (B, T, 1)
        return kernels.codebook_read(q, self.codebook, self.decoder, scale)

    def code_probs(self, x, start_pos=0):
        """The read's softmax over codes, (B, T, heads=1, V), for codebook-usage statistics."""
        q = self.query(x, start_pos)
        return torch.softmax(q @ self.codebook.T / math.sqrt(q.shape[-1]), dim=-1).unsqueeze(2)


if __name__ == "__main__":
    torch.manual_seed(0)
    model = Model()
    x = torch.randn(4, 96, 1)
    y = model(x)
    trainable = sum(p.numel() for p in model.parameters())
    fixed = sum(b.numel() for b in model.buffers())
    print(f"{__doc__.split(':')[0]}: {trainable} trainable, {fixed} fixed parameters; {tuple(x.shape)} -> {tuple(y.shape)}")
    assert y.shape == x.shape
