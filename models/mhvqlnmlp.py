"""mhvqlnmlp: vqlnmlp with one small codebook per head (Method Two).

Research log 2024-12-21 (Solution 2) and 2024-12-22. Like grouped-query attention: the encoded
d_model vector is split into n_heads heads of head_size = d_model / n_heads, each normalised by
LayerNorm(head_size) and read from its own fixed N(0, 1) codebook of vocab_size codes; the heads
are concatenated and decoded. n_heads codebooks of vocab_size codes index vocab_size ** n_heads
combinations: two heads of 32 codes index 1024 with 6.25% of the entries of one 1024-code
codebook, three heads of 8 index 512 with 4.69% (the log). Scores are scaled by 1/sqrt(d_model),
not 1/sqrt(head_size), as in the log's reference runs.

Parent: vqlnmlp; the change is the split into heads: codebook (n_heads, vocab_size, head_size),
LayerNorm(head_size), and a read per head. Children: mhvqlnpemlp, mhvqlnmlp_sinpe, mhvqlnmlp_rope.
Shapes: x (B, T, 1) -> (B, T, 1); the output at t forecasts the value at t + 1.
"""
import math

import torch
import torch.nn as nn

try:
    from . import kernels
except ImportError:  # run as a file, python models/NAME.py: the kernels are beside it
    import kernels


class Model(nn.Module):
    target = "aligned"  # trained on the next value at every position
    pointwise = True  # the output at t depends on x[t] and t alone: a forecast needs the last position only
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.007, epochs=50)

    def __init__(self, vocab_size=512, d_model=64, n_heads=2):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}; choose n_heads among "
                             f"{', '.join(str(h) for h in range(1, d_model + 1) if d_model % h == 0)}")
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

        start_pos, the position of x[:, 0] in the series, is unused: this model has no positions.
        """
        B, T, _ = x.shape
        return self.ln(self.encoder(x).view(B, T, self.n_heads, -1))

    def forward(self, x, start_pos=0):
        # No positions: the output at t depends on x at t alone, and overlapping windows repeat
        # values, so read once per distinct value.
        return kernels.per_distinct_value(self.read, x)         # self.read(x): (B, T, 1)

    def read(self, x, start_pos=0):
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
