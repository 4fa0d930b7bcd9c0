"""vqlnpemlp: vqlnmlp with a fixed random positional embedding.

Research log 2024-12-21: "even adding the simplest local positional encoding of 0.01 * randn
achieves performance close to the initial model with only layer normalization".
Each value is encoded to d_model, compared with every code of a codebook drawn once from
N(0, 1), and replaced by the softmax-weighted sum of the codes, then decoded. The codebook is
a buffer: it is saved with the model but never trained. The read is attention whose keys and
values are both the codebook, with scale 1/sqrt(d_model).

Parent: vqlnmlp; the change is pe, 0.01 * N(0, 1) of shape (block_size, d_model), a buffer,
added after the encoder and before the LayerNorm. Its std must be much smaller than the encoded
input's, or training becomes difficult (the log). Positions are numbered from start_pos. With
positions the output at t depends on t too, so the parent's once-per-distinct-value read goes.
Shapes: x (B, T, 1) -> (B, T, 1); the output at t forecasts the value at t + 1.

query() and code_probs() compute the read as written above. forward() computes the same numbers
faster (see scores_factors): the encoder's input is one number, so LayerNorm(encoder(x) + pe)
is known in closed form and the scores of a position over all codes need three numbers per
position and three rows per position, not a d_model-deep product.
"""
import math

import torch
import torch.nn as nn


class RankThreeRead(torch.autograd.Function):
    """softmax(f @ g) @ values at every position, with its backward written out.

    f (T, B, 3) and g (T, 3, V) are the scores' factors (see Model.scores_factors); values are
    the decoded codes, one number per code (see Model.forward), so the gradient of the scores
    has a closed form, P * grad * (values - out), computed in the memory of P.
    """

    @staticmethod
    def forward(ctx, f, g, values):                              # values (V, 1)
        p = torch.bmm(f, g)                                      # (T, B, V) scores
        torch.softmax(p, dim=-1, out=p)                          # in place, in the scores' memory
        out = p @ values                                         # (T, B, 1)
        ctx.save_for_backward(f, g, p, values, out)
        return out

    @staticmethod
    def backward(ctx, grad):                                     # grad (T, B, 1)
        f, g, p, values, out = ctx.saved_tensors
        grad_values = p.flatten(0, 1).T @ grad.flatten(0, 1)     # (V, 1)
        grad_scores = p.mul_(values.T - out).mul_(grad)          # (T, B, V), reuses p
        return grad_scores @ g.transpose(1, 2), f.transpose(1, 2) @ grad_scores, grad_values


class Model(nn.Module):
    target = "aligned"  # trained on the next value at every position
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.007, epochs=50)

    def __init__(self, vocab_size=512, d_model=64, block_size=96):
        super().__init__()
        self.encoder = nn.Linear(1, d_model)
        self.register_buffer("pe", 0.01 * torch.randn(block_size, d_model))  # fixed
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

    def scores_factors(self, x, start_pos=0):
        """f (T, B, 3) and g (T, 3, V) with f @ g == query(x) @ codebook.T / sqrt(d_model).

        With u = encoder(x) + pe_t = x w + b + pe_t, LayerNorm subtracts the mean over features,
        u - mean(u) = x a + e_t with a = w - mean(w) and e_t = (b + pe_t) - mean(b + pe_t), and
        divides by r = sqrt(mean((x a + e_t)^2) + eps), a quadratic in x. So the score of code c is
            q . c = (x / r) (gamma * a) . c  +  (1 / r) (gamma * e_t) . c  +  beta . c:
        three numbers per position, [x / r, 1 / r, 1], times three rows per position and code.
        """
        T, D = x.shape[1], self.codebook.shape[1]
        w = self.encoder.weight[:, 0]
        a = w - w.mean()                                             # (D,)
        e = self.encoder.bias + self.positions(start_pos, T)
        e = e - e.mean(-1, keepdim=True)                             # (T, D)
        xt = x[..., 0].T                                             # (T, B)
        var = xt * xt * (a @ a / D) + xt * (2 / D * (e @ a)).unsqueeze(1) + (e * e).mean(-1, keepdim=True)
        inv_r = torch.rsqrt(var + self.ln.eps)                       # (T, B)
        f = torch.stack([xt * inv_r, inv_r, torch.ones_like(inv_r)], -1)                  # (T, B, 3)
        gamma, beta = self.ln.weight, self.ln.bias
        rows = torch.stack([(gamma * a).expand(T, D), gamma * e, beta.expand(T, D)], 1)  # (T, 3, D)
        return f, rows @ (self.codebook.T / math.sqrt(D))            # (T, 3, V)

    def forward(self, x, start_pos=0):
        # The decoder is affine and the read's weights sum to one, so decoding the read equals
        # reading the decoded codes, decoder(P @ codebook) == P @ decoder(codebook): the read
        # then carries one number per code instead of d_model.
        values = self.decoder(self.codebook)                         # (V, 1)
        out = RankThreeRead.apply(*self.scores_factors(x, start_pos), values)  # (T, B, 1)
        return out.transpose(0, 1)                                   # (B, T, 1)

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
