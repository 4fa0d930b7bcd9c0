"""mhvqlnmlp_sinpe: mhvqlnmlp with the Transformer's sinusoidal position encoding.

Research log 2024-12-23 (run mhvqlnmlp_sinpe_vs512_dm64_nh8: 8 heads).

Parent: mhvqlnmlp; the change is a sinusoidal table pe, a buffer, added to the encoded values
before the LayerNorms, and 8 heads by default. pe_per_head=True (the default, the log's code):
one table of width head_size, added after the split into heads, the same in every head;
pe_per_head=False (this repository's earlier reading): one table of width d_model, added before
the split, so each head gets its own slice of the frequencies. Positions are numbered from
start_pos and must stay below block_size. With positions the output at t depends on t too, so
the parent's once-per-distinct-value read goes.
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

    def __init__(self, vocab_size=512, d_model=64, n_heads=8, block_size=96, pe_per_head=True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}; choose n_heads among "
                             f"{', '.join(str(h) for h in range(1, d_model + 1) if d_model % h == 0)}")
        self.n_heads = n_heads
        self.encoder = nn.Linear(1, d_model)
        self.pe_per_head = pe_per_head
        width = d_model // n_heads if pe_per_head else d_model
        self.register_buffer("pe", sinusoidal_table(block_size, width))  # fixed
        self.ln = nn.LayerNorm(d_model // n_heads)  # normalises each head on its own
        self.register_buffer("codebook", torch.randn(n_heads, vocab_size, d_model // n_heads))  # fixed
        self.decoder = nn.Linear(d_model, 1)
        for layer in (self.encoder, self.decoder):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def query(self, x, start_pos=0):
        """The encoded values that read the codebooks: (B, T, 1) -> (B, T, H, hs).

        start_pos is the position of x[:, 0] in the series; positions run up to block_size - 1.
        """
        B, T, _ = x.shape
        block_size = self.pe.shape[0]
        if start_pos + T > block_size:
            raise ValueError(f"positions {start_pos}..{start_pos + T - 1} exceed the positional "
                             f"table's block_size {block_size}")
        h, pe = self.encoder(x), self.pe[start_pos:start_pos + T]  # (B, T, D), (T, hs) or (T, D)
        if self.pe_per_head:                                    # one table, the same in every head
            return self.ln(h.view(B, T, self.n_heads, -1) + pe[:, None])
        return self.ln((h + pe).view(B, T, self.n_heads, -1))  # one table split across the heads

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
