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


# Scores per block of queries: 2 MB of float32, about one core's L2 cache.
BLOCK = 2 ** 19


class CodebookRead(torch.autograd.Function):
    """sum_h softmax(q_h @ codes_h.T * scale) @ codes_h @ w_h, with its backward written out.

    Each head's read is decoded by its slice w_h of the decoder's weights: values_h = codes_h @ w_h
    is one number per code (see Model.forward). With the read r_h = P_h @ codes_h and
    u_h = P_h @ (values_h * codes_h), both (N, hs), the gradients have a closed form,
        d out_h / d q_h = scale * (u_h - out_h * r_h),    d out_h / d w_h = r_h,
    so the forward gets r and u from its one pass over the probabilities P and keeps nothing of
    size V for the backward. It walks the queries in blocks of about BLOCK scores, reusing one
    buffer: the scores stay in cache instead of a fresh (H, N, V) tensor (50 MB for 8 heads x 512
    codes x 3072 queries) being page-faulted in and read back at every step.
    """

    @staticmethod
    def forward(ctx, q, codes, w, scale):  # q (H, N, hs), codes (H, V, hs), w (H, hs, 1)
        (H, N, hs), V = q.shape, codes.shape[1]
        keys = codes.mT * scale                                 # (H, hs, V)
        both = torch.cat((codes, codes * (codes @ w)), dim=-1)  # (H, V, 2 hs): codes, values * codes
        rows = max(1, min(N, BLOCK // (H * V)))
        block = q.new_empty(H * rows * V)
        ru = q.new_empty(H, N, 2 * hs)
        for i in range(0, N, rows):
            n = min(rows, N - i)
            p = block[:H * n * V].view(H, n, V)
            torch.bmm(q[:, i:i + n], keys, out=p)               # scores
            torch.softmax(p, dim=-1, out=p)                     # in place
            ru[:, i:i + n] = p @ both
        r, u = ru.split(hs, dim=-1)                             # (H, N, hs) each
        out = r @ w                                             # (H, N, 1): one read per head
        ctx.save_for_backward(r, u, out)
        ctx.scale = scale
        return out.sum(0)                                       # (N, 1): the heads summed

    @staticmethod
    def backward(ctx, g):                                       # g (N, 1)
        r, u, out = ctx.saved_tensors
        grad_q = (u - out * r) * (g * ctx.scale)                # (H, N, hs)
        grad_w = r.mT @ g                                       # (H, hs, 1)
        return grad_q, None, grad_w, None  # the codebook is fixed: no gradient


class Model(nn.Module):
    target = "aligned"  # trained on the next value at every position
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.007, epochs=50)

    def __init__(self, vocab_size=512, d_model=64, n_heads=2):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
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
        # The output at t depends on x at t alone, and overlapping windows repeat values: read
        # the codebook once per distinct value (exact, and several times less work in training).
        distinct, index = torch.unique(x, return_inverse=True)  # (U,), (B, T, 1)
        q = self.query(distinct.view(1, -1, 1), start_pos)      # (1, U, H, hs)
        # The decoder is affine and each head's read weights sum to one, so decoding the
        # concatenated reads equals summing each head's read of its decoded codes,
        # decoder(concat_h P_h @ E_h) == sum_h P_h @ (E_h @ W_h) + bias: one number per code.
        w = self.decoder.weight.view(self.n_heads, -1, 1)       # (H, hs, 1): head h's slice
        scale = 1 / math.sqrt(self.decoder.in_features)         # 1/sqrt(d_model), as the log
        out = CodebookRead.apply(q[0].transpose(0, 1), self.codebook, w, scale)  # (U, 1)
        return (out + self.decoder.bias).view(-1)[index]        # (B, T, 1)

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
