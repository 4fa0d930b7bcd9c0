"""cvqlnmlp: vqlnmlp with a cascade of codebook caches of different sizes (Method Three).

Research log 2024-12-21, Solution 3 (and 2025-01-06, next step 1: "implement method three,
achieving cascaded cache VQ"). The log sees a codebook as a soft cache of the (B, T, D) inputs
and asks for a hierarchy of caches, "if L1 cache misses, it should access L2, then L3", in two
orders:
  "vocab_size inc: input = 4096, L1cache = 32, L2cache = 128, L3cache = 512:
   L3 exchanges with L2, L2 with L1, L1 with input."
  "vocab_size dec: L1cache = 512, L2cache = 128, L3cache = 32:
   input exchanges with L1, L1 with L2, L2 with L3."

Our reading. `levels` are the cache sizes L1, L2, ... in the log's numbering: L1 is the cache
next to the input (--levels 32-128-512 --order inc, --levels 512-128-32 --order dec are the
log's two examples). Each cache is a (size, d_model) codebook drawn once from N(0, 1), a
buffer as in vqlnmlp (trainable_codebooks=True makes them parameters). "A exchanges with B" is
one vqlnmlp read with A as the queries and B as keys and values: LayerNorm(A), softmax of the
scores scaled by 1/sqrt(d_model), weighted sum of B's rows.
- order "inc": the caches exchange first, from the last level down, before any input arrives:
  Ln' = Ln, L(i)' = L(i) + read(L(i), L(i+1)'), and the input reads L1' alone. So L1' is the
  same for every input, and the input's read is one softmax over len(L1) codes.
- order "dec": the input reads L1, the result reads L2, that result reads L3:
  h = read(input, L1), then h = h + read(h, L(i)) for i = 2..n; the decoder reads h.
What is added back: the result of each exchange is added to its queries (a residual), except
that the input is replaced by its first read, as in vqlnmlp, so nothing reaches the decoder
except sums of codes. Why: a softmax mixture of N(0, 1) codes averages them towards zero. In
inc without the residual, at d_model 64 (seed 0, untrained), L1' rows have norm 0.36 against 8.1
for a code and the input's read of them is uniform (mean top weight 0.0315 for 1/32); with it,
norm 9.5 and top weight 0.18. In dec without the residual the output would be a mixture of the
last cache's codes alone (32 in the log's example), so the large L1 could act only through the
choice among those. With it, a cache keeps what it had and gains what it read (a hit in L1 is
kept; a miss, a flat read, leaves room for L2 to add detail), and the LayerNorm before each read
gives the queries unit scale again.

Parent: vqlnmlp (one codebook, one read); the change is the list of caches and their order.
Sibling: mhcvqlnmlp (each level split into heads).
Shapes: x (B, T, 1) -> (B, T, 1); the output at t forecasts the value at t + 1. Caches
(levels[i], d_model); per position, inc reads levels[0] codes, dec reads sum(levels) codes.
"""
import math

import torch
import torch.nn as nn

ORDERS = ("inc", "dec")


def read(q, cache, scale):
    """One exchange: softmax(q @ cache.T * scale) @ cache. q (..., N, D), cache (V, D).

    Plain autograd: the later reads' queries depend on earlier reads, and trainable caches need
    their gradient, so vqlnmlp's closed-form CodebookRead (one number per code, no codebook
    gradient) does not fit here.
    """
    p = torch.softmax((q * scale) @ cache.T, dim=-1)  # (..., N, V)
    return p @ cache, p                               # (..., N, D), (..., N, V)


class Model(nn.Module):
    target = "aligned"  # trained on the next value at every position
    pointwise = True  # the output at t depends on x[t] and t alone: a forecast needs the last position only
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.007, epochs=50)
    choices = dict(order=ORDERS)  # what the constructor accepts, for --help

    def __init__(self, levels=(32, 128, 512), order="inc", d_model=64, trainable_codebooks=False):
        super().__init__()
        levels = tuple(levels)
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
        if not levels or min(levels) < 1:
            raise ValueError(f"levels must be one or more cache sizes >= 1 (L1 first), e.g. 32-128-512; "
                             f"got {'-'.join(map(str, levels))}")
        if d_model < 1:
            raise ValueError(f"d_model must be >= 1, got {d_model}")
        self.levels, self.order = levels, order
        self.encoder = nn.Linear(1, d_model)
        # One LayerNorm per read: dec, the state before each level; inc, the input before L1
        # (lns[0]) and cache L(i) before it reads L(i+1) (lns[i]).
        self.lns = nn.ModuleList(nn.LayerNorm(d_model) for _ in levels)
        for i, size in enumerate(levels, 1):
            cache = torch.randn(size, d_model)
            if trainable_codebooks:
                self.register_parameter(f"cache{i}", nn.Parameter(cache))
            else:
                self.register_buffer(f"cache{i}", cache)  # fixed, never trained
        self.decoder = nn.Linear(d_model, 1)
        for layer in (self.encoder, self.decoder):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def caches(self):
        """[L1, L2, ...] as stored, each (size, d_model)."""
        return [getattr(self, f"cache{i}") for i in range(1, len(self.levels) + 1)]

    def exchanged_caches(self):
        """inc: the caches after their exchange, from the last level down; [L1', L2', ...]."""
        caches = self.caches()
        scale = 1 / math.sqrt(caches[0].shape[-1])
        out = [caches[-1]]
        for i in range(len(caches) - 2, -1, -1):
            mixed, _ = read(self.lns[i + 1](caches[i]), out[0], scale)
            out.insert(0, caches[i] + mixed)
        return out

    def query(self, x, start_pos=0):
        """The encoded values that read L1 (inc: L1'): (B, T, 1) -> (B, T, D).

        start_pos, the position of x[:, 0] in the series, is unused: this model has no positions.
        """
        return self.lns[0](self.encoder(x))

    def reads(self, x, start_pos=0):
        """(h, [p1, p2, ...]): the state the decoder reads (B, T, D) and every per-position read's
        softmax (B, T, V_i); inc has one (over L1'), dec one per level."""
        q = self.query(x, start_pos)                               # (B, T, D)
        scale = 1 / math.sqrt(q.shape[-1])
        if self.order == "inc":
            h, p = read(q, self.exchanged_caches()[0], scale)      # (B, T, D), (B, T, V1)
            return h, [p]
        caches = self.caches()
        h, p = read(q, caches[0], scale)                           # the input is replaced by L1's read
        probs = [p]
        for ln, cache in zip(self.lns[1:], caches[1:]):
            r, p = read(ln(h), cache, scale)                       # a miss goes on to the next level
            h = h + r
            probs.append(p)
        return h, probs

    def forward(self, x, start_pos=0):
        h, _ = self.reads(x, start_pos)
        return self.decoder(h)                                     # (B, T, 1)

    def code_probs(self, x, start_pos=0, level=0):
        """The softmax of the input's read of L1 (inc: L1'), (B, T, heads=1, V), for
        codebook-usage statistics; dec also has level=1, 2, ...: the read of L2, L3, ..."""
        _, probs = self.reads(x, start_pos)
        if not 0 <= level < len(probs):
            raise ValueError(f"order {self.order} has per-position reads at levels 0..{len(probs) - 1}, "
                             f"not {level}")
        return probs[level].unsqueeze(2)

    def codebook_size(self):
        """(code entries stored, combinations the input's first read chooses among): later
        reads depend on the input only through the first, so they add no combinations."""
        return sum(self.levels), self.levels[0]


if __name__ == "__main__":
    torch.manual_seed(0)
    x = torch.randn(4, 96, 1)
    for order, levels in (("inc", (32, 128, 512)), ("dec", (512, 128, 32))):
        model = Model(levels=levels, order=order)
        y = model(x)
        trainable = sum(p.numel() for p in model.parameters())
        fixed = sum(b.numel() for b in model.buffers())
        print(f"{__doc__.split(':')[0]}: {trainable} trainable, {fixed} fixed parameters; order {order}, "
              f"levels {'-'.join(map(str, levels))}; {tuple(x.shape)} -> {tuple(y.shape)}")
        assert y.shape == x.shape
