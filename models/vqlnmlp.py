"""vqlnmlp: vqmlp with a LayerNorm between the encoder and the codebook read.

Research log 2024-12-21: "models with layer normalization perform better than those without".
Each value is encoded to d_model, compared with every code of a codebook drawn once from
N(0, 1), and replaced by the softmax-weighted sum of the codes, then decoded. The codebook is
a buffer: it is saved with the model but never trained. The read is attention whose keys and
values are both the codebook, with scale 1/sqrt(d_model).

Parent: vqmlp; the change is LayerNorm(d_model) on the encoded values, so every query has
zero mean and unit variance, the scale of the N(0, 1) codes. Child: vqlnpemlp (adds positions).
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

    def __init__(self, vocab_size=512, d_model=64):
        super().__init__()
        self.encoder = nn.Linear(1, d_model)
        self.ln = nn.LayerNorm(d_model)
        self.register_buffer("codebook", torch.randn(vocab_size, d_model))  # fixed, never trained
        self.decoder = nn.Linear(d_model, 1)
        for layer in (self.encoder, self.decoder):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def query(self, x, start_pos=0):
        """The encoded values that read the codebook: (B, T, 1) -> (B, T, D).

        start_pos, the position of x[:, 0] in the series, is unused: this model has no positions.
        """
        return self.ln(self.encoder(x))

    def forward(self, x, start_pos=0):
        # No positions: the output at t depends on x at t alone, and overlapping windows repeat
        # values, so read once per distinct value.
        return kernels.per_distinct_value(self.read, x)         # self.read(x): (B, T, 1)

    def read(self, x, start_pos=0):
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
