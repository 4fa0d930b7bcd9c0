"""mhcvqlnmlp: cvqlnmlp with every cache level split into heads, a codebook per head (Method Two + Three).

Research log 2024-12-21, "Examples to solve long-term memory problem in MLP", method2+3:
  "input(B, 4096, D)
   codebook1_1(4, D/5) ... codebook1_5(4, D/5)    (level 1: five heads of 4 codes)
   codebook2_1(16, D/2) codebook2_2(16, D/2)       (level 2: two heads of 16 codes)
   codebook3(32, D)"                               (level 3: one head of 32 codes)
Level i has heads[i] heads of head_size = d_model / heads[i]; head j of a level reads (and is
read in) dimensions j * head_size ... (j + 1) * head_size - 1 with its own codebook of
levels[i] codes, N(0, 1), a buffer (trainable_codebooks=True makes them parameters). As in
Method Two (mhvqlnmlp), a level of h heads of V codes stores h * V entries (V * d_model floats)
and indexes V ** h combinations: the log's levels index 4 ** 5 = 1024, 16 ** 2 = 256 and 32
combinations, the sizes of its Method Three example (1024, D), (256, D), (32, D), with 52 D
floats instead of 1312 D.

The cascade is cvqlnmlp's (read its docstring for the log's wording of the two orders and why
each exchange adds its result back), done per head:
- order "dec" (the default; the log's example has its combinations decreasing from L1): the
  input reads L1, h = read(input, L1); then h = h + read(h, L(i)) for i = 2..n. Each level
  splits the state into its own heads, so any heads that divide d_model work.
- order "inc": the caches exchange first, L(i)' = L(i) + read(L(i), L(i+1)') from the last
  level down, then the input reads L1'. A head of L(i) reads the part of L(i+1)'s codes in its
  own dimensions, so it must lie inside one head of L(i+1): heads[i + 1] must divide heads[i]
  (5-2-1 does not; 4-2-1 does). Otherwise a one-line ValueError.
Each read is LayerNorm(head_size) on the queries (shared by the heads of a level), scores
scaled by 1/sqrt(head_size), softmax, weighted sum of the head's codes. The scale differs from
mhvqlnmlp's 1/sqrt(d_model) (the log's reference runs): with a LayerNorm per head,
1/sqrt(head_size) gives each head's scores the unit variance of the single-head read, so a
model with one head per level is exactly cvqlnmlp (a test checks it).

Parent: cvqlnmlp; the change is `heads`, a number of heads per level.
Shapes: x (B, T, 1) -> (B, T, 1); the output at t forecasts the value at t + 1. Level i's cache
is (heads[i], levels[i], d_model / heads[i]).
"""
import math

import torch
import torch.nn as nn

ORDERS = ("inc", "dec")


def read(q, cache, scale):
    """One exchange per head: softmax(q @ cache.T * scale) @ cache.
    q (..., h, N, hs), cache (h, V, hs) -> (..., h, N, hs), and the softmax (..., h, N, V).

    Plain autograd: the later reads' queries depend on earlier reads, and trainable caches need
    their gradient, so vqlnmlp's closed-form CodebookRead (one number per code, no codebook
    gradient) does not fit here.
    """
    p = torch.softmax((q * scale) @ cache.transpose(-1, -2), dim=-1)  # (..., h, N, V)
    return p @ cache, p                                               # (..., h, N, hs)


def split_heads(t, heads):
    """(..., N, D) -> (..., heads, N, D / heads): head j holds dimensions j * hs ... (j + 1) * hs - 1."""
    return t.unflatten(-1, (heads, -1)).transpose(-2, -3)


def merge_heads(t):
    """(..., heads, N, hs) -> (..., N, heads * hs)."""
    return t.transpose(-2, -3).flatten(-2)


def memory(levels, heads, order, time_steps=4096):
    """The arithmetic of one cascade: code entries, codebook floats in units of d_model,
    combinations the input's first read chooses among, and softmax scores per sequence of
    time_steps positions (the (B, T, V) tensor that grows with the vocabulary, per sequence)."""
    per_position = heads[0] * levels[0] if order == "inc" else sum(h * v for h, v in zip(heads, levels))
    exchange = sum(heads[i] * levels[i] * levels[i + 1] for i in range(len(levels) - 1)) if order == "inc" else 0
    return {"entries": sum(h * v for h, v in zip(heads, levels)), "floats_per_d": sum(levels),
            "combinations": levels[0] ** heads[0], "scores": time_steps * per_position + exchange}


# The log's examples (2024-12-21), as (name, levels, heads, order); D is d_model.
LOG_EXAMPLES = (
    ("original: (512, D)", (512,), (1,), "dec"),
    ("method 1: (1024, D)", (1024,), (1,), "dec"),
    ("method 2: 2 x (32, D/2)", (32,), (2,), "dec"),
    ("method 3 inc: (32, D) (128, D) (512, D)", (32, 128, 512), (1, 1, 1), "inc"),
    ("method 3 dec: (512, D) (128, D) (32, D)", (512, 128, 32), (1, 1, 1), "dec"),
    ("method 3: (1024, D) (256, D) (32, D), dec", (1024, 256, 32), (1, 1, 1), "dec"),
    ("method 2+3: 5 x (4, D/5), 2 x (16, D/2), (32, D), dec", (4, 16, 32), (5, 2, 1), "dec"),
)


def memory_table(time_steps=4096):
    """The log's examples side by side, as lines of text (train.py --list prints them)."""
    lines = [f"Method Three and Two + Three (log 2024-12-21): input (B, {time_steps}, D); a single-level "
             f"cascade is one codebook (vqlnmlp, mhvqlnmlp)",
             f"{'configuration':55s} {'entries':>7s} {'floats':>7s} {'combinations':>12s} "
             f"{'of one codebook':>15s} {'scores/sequence':>15s}"]
    for name, levels, heads, order in LOG_EXAMPLES:
        m = memory(levels, heads, order, time_steps)
        lines.append(f"{name:55s} {m['entries']:7d} {m['floats_per_d']:>5d} D {m['combinations']:12d} "
                     f"{100 * m['floats_per_d'] / m['combinations']:14.4g}% {m['scores']:15,d}")
    lines.append("floats: codebook memory; of one codebook: floats against one (combinations, D) codebook; "
                 "combinations: codes the input's first read\nchooses among (later levels depend on the input "
                 "only through it); scores/sequence: softmax weights for one sequence (inc adds the caches' "
                 "exchange). The log's 6.25% for method 2 counts entries (64 of 1024); in floats it is 3.125%.")
    return lines


class Model(nn.Module):
    target = "aligned"  # trained on the next value at every position
    pointwise = True  # the output at t depends on x[t] and t alone: a forecast needs the last position only
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.007, epochs=50)
    choices = dict(order=ORDERS)  # what the constructor accepts, for --help

    def __init__(self, levels=(4, 16, 32), heads=(5, 2, 1), order="dec", d_model=60,
                 trainable_codebooks=False):
        super().__init__()
        levels, heads = tuple(levels), tuple(heads)
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
        if not levels or min(levels) < 1:
            raise ValueError(f"levels must be one or more codebook sizes >= 1 (L1 first), e.g. 4-16-32; "
                             f"got {'-'.join(map(str, levels))}")
        if len(heads) != len(levels) or min(heads) < 1:
            raise ValueError(f"heads needs one number >= 1 per level ({len(levels)} levels), e.g. 5-2-1; "
                             f"got {'-'.join(map(str, heads))}")
        if d_model < 1 or any(d_model % h for h in heads):
            raise ValueError(f"d_model {d_model} must be divisible by every level's heads "
                             f"{'-'.join(map(str, heads))}")
        if order == "inc" and any(heads[i] % heads[i + 1] for i in range(len(heads) - 1)):
            raise ValueError(f"order inc needs each level's heads to divide the previous level's (a head of "
                             f"L(i) reads inside one head of L(i+1)); got heads {'-'.join(map(str, heads))}")
        self.levels, self.heads, self.order = levels, heads, order
        self.encoder = nn.Linear(1, d_model)
        # One LayerNorm per read, on the queries' head_size, shared by their heads: dec, the state
        # before each level; inc, the input before L1 (lns[0]) and cache L(i) before it reads
        # L(i+1) (lns[i]).
        query_heads = heads[:1] + heads[:-1] if order == "inc" else heads
        self.lns = nn.ModuleList(nn.LayerNorm(d_model // h) for h in query_heads)
        for i, (size, h) in enumerate(zip(levels, heads), 1):
            cache = torch.randn(h, size, d_model // h)
            if trainable_codebooks:
                self.register_parameter(f"cache{i}", nn.Parameter(cache))
            else:
                self.register_buffer(f"cache{i}", cache)  # fixed, never trained
        self.decoder = nn.Linear(d_model, 1)
        for layer in (self.encoder, self.decoder):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def caches(self):
        """[L1, L2, ...] as stored, each (heads, size, head_size)."""
        return [getattr(self, f"cache{i}") for i in range(1, len(self.levels) + 1)]

    def exchanged_caches(self):
        """inc: the caches after their exchange, from the last level down; [L1', L2', ...]."""
        caches = self.caches()
        out = [caches[-1]]
        for i in range(len(caches) - 2, -1, -1):
            h, size, hs = caches[i].shape
            keys = out[0]                                          # (h', V', hs'), h' divides h
            keys = keys.unflatten(-1, (h // keys.shape[0], hs)).transpose(1, 2).flatten(0, 1)  # (h, V', hs)
            mixed, _ = read(self.lns[i + 1](caches[i]), keys, 1 / math.sqrt(hs))
            out.insert(0, caches[i] + mixed)
        return out

    def query(self, x, start_pos=0):
        """The encoded values that read L1 (inc: L1'), per head: (B, T, 1) -> (B, heads[0], T, hs).

        start_pos, the position of x[:, 0] in the series, is unused: this model has no positions.
        """
        return self.lns[0](split_heads(self.encoder(x), self.heads[0]))

    def reads(self, x, start_pos=0):
        """(h, [p1, p2, ...]): the state the decoder reads (B, T, D) and every per-position read's
        softmax (B, heads_i, T, V_i); inc has one (over L1'), dec one per level."""
        q = self.query(x, start_pos)                               # (B, h1, T, hs1)
        scale = 1 / math.sqrt(q.shape[-1])
        if self.order == "inc":
            r, p = read(q, self.exchanged_caches()[0], scale)      # (B, h1, T, hs1), (B, h1, T, V1)
            return merge_heads(r), [p]
        caches = self.caches()
        r, p = read(q, caches[0], scale)
        h, probs = merge_heads(r), [p]                             # the input is replaced by L1's read
        for ln, cache, heads in zip(self.lns[1:], caches[1:], self.heads[1:]):
            q = ln(split_heads(h, heads))                          # (B, heads, T, hs)
            r, p = read(q, cache, 1 / math.sqrt(q.shape[-1]))      # a miss goes on to the next level
            h = h + merge_heads(r)
            probs.append(p)
        return h, probs

    def forward(self, x, start_pos=0):
        h, _ = self.reads(x, start_pos)
        return self.decoder(h)                                     # (B, T, 1)

    def code_probs(self, x, start_pos=0, level=0):
        """The softmax of the input's read of L1 (inc: L1'), (B, T, heads, V), for
        codebook-usage statistics; dec also has level=1, 2, ...: the read of L2, L3, ..."""
        _, probs = self.reads(x, start_pos)
        if not 0 <= level < len(probs):
            raise ValueError(f"order {self.order} has per-position reads at levels 0..{len(probs) - 1}, "
                             f"not {level}")
        return probs[level].transpose(1, 2)

    def codebook_size(self):
        """(code entries stored, combinations the input's first read chooses among): later
        reads depend on the input only through the first, so they add no combinations."""
        return sum(h * v for h, v in zip(self.heads, self.levels)), self.levels[0] ** self.heads[0]


if __name__ == "__main__":
    torch.manual_seed(0)
    x = torch.randn(4, 96, 1)
    for order, heads in (("dec", (5, 2, 1)), ("inc", (4, 2, 1))):
        model = Model(heads=heads, order=order)
        y = model(x)
        trainable = sum(p.numel() for p in model.parameters())
        fixed = sum(b.numel() for b in model.buffers())
        print(f"{__doc__.split(':')[0]}: {trainable} trainable, {fixed} fixed parameters; order {order}, "
              f"levels {'-'.join(map(str, model.levels))}, heads {'-'.join(map(str, heads))}; "
              f"{tuple(x.shape)} -> {tuple(y.shape)}")
        assert y.shape == x.shape
    print("\n".join(memory_table()))
