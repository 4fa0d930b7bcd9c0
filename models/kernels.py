"""The speed tricks, each written once, beside the formula it computes: the VQ-MLP models' codebook
reads, and the Adam update train.py steps with.

A model file's forward is the textbook computation; where a trick below is measurably faster, the
model calls it in one line with the formula in a comment beside the call. Each kernel computes its
formula exactly (the same numbers up to rounding; tests/testkernels.py checks every one against
the formula in float64, outputs and gradients), so reading the formula is reading the model.

Timings: one training step (forward + backward; 32 windows of 96 values of the log's y_w series,
default model sizes) of the textbook written with PyTorch primitives and of the model with its
kernels, alternating, median of 7 repeats, one thread (OMP_NUM_THREADS=1), on a 2-core AMD EPYC
machine shared with other work: milliseconds vary 2-3x from run to run, the ratios less; the
ranges below are over three runs.

The registry (models/__init__.py) lists only files whose Model declares a target, so not this one.
"""
import torch

# Scores per block of queries: 2 MB of float32, about one core's L2 cache.
BLOCK = 2 ** 19


def per_distinct_value(f, x):
    """f(x), computing f once per distinct value of x. x (B, T, 1); f maps (1, U, 1) -> (1, U, 1).

    Exact when f(x)[b, t] depends on x[b, t] alone, as in a model without positions. Overlapping
    training windows repeat the same values, so f runs on 712 values instead of 3072 (a batch of
    y_w): a vqlnmlp step with codebook_read 4-6x faster with this than without (6 ms instead of
    24), mhvqlnmlp 3-5x.
    """
    distinct, index = torch.unique(x, return_inverse=True)  # (U,), (B, T, 1)
    return f(distinct.view(1, -1, 1)).view(-1)[index]       # (B, T, 1)


def codebook_read(q, codes, decoder, scale):
    """decoder(concat_h softmax(q_h @ codes_h.T * scale) @ codes_h), exactly.

    q (B, T, H, hs) with codes (H, V, hs): one codebook per head; or q (B, T, D) with codes (V, D):
    one codebook (H = 1). decoder: nn.Linear(H * hs, 1), which reads the concatenated heads.
    Returns (B, T, 1). The codes are fixed: no gradient reaches them.

    Faster because (1) the decoder is affine and each head's softmax weights P_h sum to one, so
        decoder(concat_h P_h @ codes_h) == sum_h P_h @ (codes_h @ w_h) + bias,
    with w_h head h's slice of the decoder's weight: each code carries one number; (2) the gradients
    have a closed form in the reads r_h = P_h @ codes_h and u_h = P_h @ (codes_h * codes_h @ w_h),
        d out / d q_h = scale * (u_h - (r_h @ w_h) * r_h),    d out / d w_h = r_h,
    so the forward gets r and u from its one pass over P and keeps nothing of size V for the
    backward; (3) it walks the queries in blocks of about BLOCK scores in one reused buffer, which
    stays in cache, instead of a fresh (H, B*T, V) tensor (50 MB for 8 heads x 512 codes) being
    page-faulted in and read back. One step against autograd through the formula: mhvqlnmlp_rope
    (8 heads) 5-5.6x faster (109 ms instead of 610), vqlnmlp_rope (one head) 1.5-1.9x (27 ms
    instead of 50). With one head it is as fast as keeping P for a closed-form backward.
    """
    if codes.dim() == 2:                                         # one codebook: one head
        q, codes = q.unsqueeze(-2), codes.unsqueeze(0)
    B, T, H, hs = q.shape
    w = decoder.weight.view(H, hs, 1)                            # (H, hs, 1): head h's slice
    out = _BlockedRead.apply(q.flatten(0, 1).transpose(0, 1), codes, w, scale)  # (B*T, 1)
    return (out + decoder.bias).view(B, T, 1)


class _BlockedRead(torch.autograd.Function):
    """sum_h softmax(q_h @ codes_h.T * scale) @ codes_h @ w_h; see codebook_read."""

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


def layernorm_read(x, encoder, pe, ln, codes, decoder, scale):
    """decoder(softmax(ln(encoder(x) + pe) @ codes.T * scale) @ codes), exactly.

    x (B, T, 1), encoder nn.Linear(1, D), pe (T, D) added at every position, ln nn.LayerNorm(D),
    codes (V, D), decoder nn.Linear(D, 1). Returns (B, T, 1). The codes are fixed.

    Faster because the encoder's input is one number, so the LayerNorm is known in closed form and
    the scores of a position need three numbers, not a D-deep product. With u = x w + b + pe_t,
    u - mean(u) = x a + e_t with a = w - mean(w), e_t = (b + pe_t) - mean(b + pe_t), and
    r = sqrt(mean((x a + e_t)^2) + eps), a quadratic in x; the score of code c is
        ln(u) . c = (x / r) (gamma * a) . c  +  (1 / r) (gamma * e_t) . c  +  beta . c,
    three numbers per query, [x / r, 1 / r, 1], times three rows per position and code. The read
    then carries one number per code (the decoded codes, as in codebook_read) and its backward is
    written out in the memory of the probabilities. One step against autograd through the
    formula: vqlnpemlp 2.7-2.9x faster (16 ms instead of 44), vqlnmlp_sinpe 2.3-2.8x; and 1.6x
    faster than codebook_read on the layer-normed queries.
    """
    T, D = x.shape[1], codes.shape[1]
    w = encoder.weight[:, 0]
    a = w - w.mean()                                             # (D,)
    e = encoder.bias + pe
    e = e - e.mean(-1, keepdim=True)                             # (T, D)
    xt = x[..., 0].T                                             # (T, B)
    var = xt * xt * (a @ a / D) + xt * (2 / D * (e @ a)).unsqueeze(1) + (e * e).mean(-1, keepdim=True)
    inv_r = torch.rsqrt(var + ln.eps)                            # (T, B)
    f = torch.stack([xt * inv_r, inv_r, torch.ones_like(inv_r)], -1)                  # (T, B, 3)
    rows = torch.stack([(ln.weight * a).expand(T, D), ln.weight * e, ln.bias.expand(T, D)], 1)  # (T, 3, D)
    values = decoder(codes)                                      # (V, 1): decoded codes
    out = _RankThreeRead.apply(f, rows @ (codes.T * scale), values)  # (T, B, 1)
    return out.transpose(0, 1)                                   # (B, T, 1)


class _RankThreeRead(torch.autograd.Function):
    """softmax(f @ g) @ values at every position; f (T, B, 3), g (T, 3, V), values (V, 1).

    The gradient of the scores has a closed form, P * grad * (values - out), computed in the
    memory of P instead of through autograd's softmax Jacobian.
    """

    @staticmethod
    def forward(ctx, f, g, values):
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


class Adam:
    """Adam (betas 0.9, 0.999, eps 1e-8, no weight decay) with torch's fused kernel: the update that
    torch.optim.Adam(params, lr, fused=True) makes, bit for bit (tests/test_train.py).

    Why not torch.optim.Adam itself: building any torch.optim optimizer imports torch._dynamo, a
    second or more of every train.py process. Side by side (`python benchmarks/speed.py ab`,
    docs/BENCHMARKS.md), the quick start with torch.optim.Adam(fused=True) took 1.30x the wall time
    of this one on a 2-core AMD EPYC (2026-12-04) and 1.16x on a 2-core Intel Xeon (2026-12-05),
    default threads, medians of 6 alternating rounds: this one saves 14-23%. CPU and CUDA; train.py uses torch.optim.Adam on other devices.
    Its state_dict is torch.optim.Adam's, so a run resumes under either (on any device)."""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), device=p.device) for p in self.params]

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        live = [i for i, p in enumerate(self.params) if p.grad is not None]  # as torch.optim: skip unused
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_([self.params[i] for i in live], [self.params[i].grad for i in live],
                           [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live], [], steps,
                           amsgrad=False, lr=self.lr, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                           maximize=False, grad_scale=None, found_inf=None)

    def state_dict(self):
        """torch.optim.Adam's format: {"state": {i: step, exp_avg, exp_avg_sq}, "param_groups": [...]}."""
        group = dict(lr=self.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                     foreach=None, capturable=False, differentiable=False, fused=None, decoupled_weight_decay=False,
                     params=list(range(len(self.params))))
        state = {i: {"step": s.float(), "exp_avg": m, "exp_avg_sq": v}
                 for i, (s, m, v) in enumerate(zip(self.steps, self.exp_avg, self.exp_avg_sq)) if s.item() > 0}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, saved):
        """A state_dict of this class or of torch.optim.Adam (runs written before 2026-12-04 hold
        {"steps", "exp_avg", "exp_avg_sq"} lists: read too)."""
        if "state" not in saved:
            saved = {"state": {i: {"step": s, "exp_avg": m, "exp_avg_sq": v} for i, (s, m, v) in
                               enumerate(zip(saved["steps"], saved["exp_avg"], saved["exp_avg_sq"]))}}
        for i in range(len(self.params)):
            entry = saved["state"].get(i, saved["state"].get(str(i)))
            for mine, key in ((self.steps, "step"), (self.exp_avg, "exp_avg"), (self.exp_avg_sq, "exp_avg_sq")):
                if entry is None:
                    mine[i].zero_()
                else:
                    mine[i].copy_(torch.as_tensor(entry[key]))
