"""vqlnmlp_sinpe: vqlnmlp with the Transformer's sinusoidal position encoding.

Research log 2024-12-22 (next step: "consider using the transformer2017 PE") and 2024-12-23.
Each value is encoded to d_model, compared with every code of a codebook drawn once from
N(0, 1), and replaced by the softmax-weighted sum of the codes, then decoded. The codebook is
a buffer: it is saved with the model but never trained. The read is attention whose keys and
values are both the codebook, with scale 1/sqrt(d_model).

Parent: vqlnmlp; the change is pe = sinusoidal_table(block_size, d_model), the fixed table
sin/cos(position / 10000 ** (2i / d_model)), a buffer, added after the encoder and before the
LayerNorm, where vqlnpemlp adds 0.01 * N(0, 1). Positions are numbered from start_pos and must
stay below block_size. With positions the output at t depends on t too, so the parent's
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


def sinusoidal_table(block_size, d_model):
    """The Transformer's (2017) encoding: pe[pos, 2i] = sin(pos / 10000 ** (2i / d_model)),
    pe[pos, 2i + 1] = cos(the same angle). (block_size, d_model); an odd d_model ends on a sin column."""
    pos = torch.arange(block_size, dtype=torch.float32)[:, None]
    angles = pos / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)[:, :d_model]


class Model(nn.Module):
    target = "aligned"  # trained on the next value at every position
    pointwise = True  # the output at t depends on x[t] and t alone: a forecast needs the last position only
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.007, epochs=50)

    def __init__(self, vocab_size=512, d_model=64, block_size=96):
        super().__init__()
        self.encoder = nn.Linear(1, d_model)
        self.register_buffer("pe", sinusoidal_table(block_size, d_model))  # fixed
        self.ln = nn.LayerNorm(d_model)
        self.register_buffer("codebook", torch.randn(vocab_size, d_model))  # fixed, never trained
        self.decoder = nn.Linear(d_model, 1)
        for layer in (self.encoder, self.decoder):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def query(self, x, start_pos=0):
        """The encoded values that read the codebook: (B, T, 1) -> (B, T, D).

        start_pos is the position of x[:, 0] in the series; positions run up to block_size - 1.
        """
        return self.ln(self.encoder(x) + self.positions(start_pos, x.shape[1]))

    def positions(self, start_pos, T):
        """The rows of pe for positions start_pos .. start_pos + T - 1: (T, D)."""
        if start_pos + T > self.pe.shape[0]:
            raise ValueError(f"positions {start_pos}..{start_pos + T - 1} exceed the positional "
                             f"table's block_size {self.pe.shape[0]}")
        return self.pe[start_pos:start_pos + T]

    def forward(self, x, start_pos=0):
        pe = self.positions(start_pos, x.shape[1])              # (T, D)
        scale = 1 / math.sqrt(pe.shape[-1])                     # 1/sqrt(D)
        # decoder(softmax(ln(encoder(x) + pe) @ E.T * scale) @ E), E the codebook: (B, T, 1)
        return kernels.layernorm_read(x, self.encoder, pe, self.ln, self.codebook, self.decoder, scale)

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
