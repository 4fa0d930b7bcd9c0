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


class CodebookRead(torch.autograd.Function):
    """softmax(q @ codes.T * scale) @ values, with its backward written out.

    The values are the decoded codes, one number per code (see Model.forward), so the gradient
    of the scores has a closed form, P * g * (values - out), computed in the memory of P
    instead of through autograd's softmax Jacobian: the same numbers in about half the time.
    """

    @staticmethod
    def forward(ctx, q, codes, values, scale):  # q (B, T, D), codes (V, D), values (V, 1)
        p = (q * scale) @ codes.T                               # (B, T, V); scale the smaller side
        torch.softmax(p, dim=-1, out=p)                         # in place, in the scores' memory
        out = p @ values                                        # (B, T, 1)
        ctx.save_for_backward(p, codes, values, out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, g):                                       # g (B, T, 1)
        p, codes, values, out = ctx.saved_tensors
        grad_values = p.flatten(0, 1).T @ g.flatten(0, 1)       # (V, 1)
        grad_scores = p.mul_(values.T - out).mul_(g)            # (B, T, V), reuses p
        grad_q = grad_scores @ codes * ctx.scale                # (B, T, D)
        return grad_q, None, grad_values, None  # the codebook is fixed: no gradient


class Model(nn.Module):
    target = "aligned"  # trained on the next value at every position
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
        # The output at t depends on x at t alone, and overlapping windows repeat values: read
        # the codebook once per distinct value (exact, and several times less work in training).
        distinct, index = torch.unique(x, return_inverse=True)  # (U,), (B, T, 1)
        q = self.query(distinct.view(1, -1, 1), start_pos)      # (1, U, D)
        # The decoder is affine and the read's weights sum to one, so decoding the read equals
        # reading the decoded codes, decoder(P @ codebook) == P @ decoder(codebook): the read
        # then carries one number per code instead of d_model.
        values = self.decoder(self.codebook)                    # (V, 1)
        out = CodebookRead.apply(q, self.codebook, values, 1 / math.sqrt(q.shape[-1]))  # (1, U, 1)
        return out.view(-1)[index]                              # (B, T, 1)

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
