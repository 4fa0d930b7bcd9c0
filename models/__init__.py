"""The model registry and the model protocol: `--model NAME` loads models/NAME.py's `Model`.

What a forecasting model declares, and all the scripts read of it (nothing else):

    target          "aligned": trained on the next value at every position, output (B, T, 1);
                    "last": trained on the value after the window only, output (B, 1). Required.
    train_defaults  dict(time_steps=, batch_size=, lr=, epochs=): its training defaults. Required.
    solve(x, y)     a closed-form fit: sets the weights that minimise the MSE on the training
                    windows x (N, T, 1) and targets y; train.py calls it instead of running Adam
                    (linear: least squares in float64), so lr, batch_size and epochs do not apply
                    (one solve, recorded as epoch 1). Optional; without it, Adam on the MSE.
    __init__(...)   keyword arguments with defaults: the whole configuration. A checkpoint stores
                    them, run names are spelled from them (config.run_name), and each is a
                    command-line option of train.py. An argument named block_size is the length
                    of a positional table: train.py sets it to time_steps unless given.
                    What each argument means, for `train.py --model NAME --help`: OPTION_HELP
                    below, one line per argument name; a model may word its own in
    option_help     {argument: one line}, which replaces OPTION_HELP's line for that model.
    choices         {argument: tuple of the values its constructor accepts}, the very tuple the
                    constructor checks against (att's PE_TYPES): the help lists them.
    forward(x, start_pos=0)   x (B, T, 1) normalised values; start_pos numbers the first position.
    codebook        a fixed buffer (V, D) or (heads, V, head_size), never a parameter; or
    codebook_size() (entries, vocabulary) for models with several codebooks (the cascades).
    code_probs(x)   (B, T, heads, V) code probabilities: train.py reports codebook usage
                    (codebook_usage below).
    causal, new_cache(window), forward(x, start_pos, cache)
                    a causal model with a KV cache: forecast.py predicts one value a step.
    relative_positions   True where outputs depend on positions only through differences
                    (RoPE, or none): the cache then gives the same forecasts as recomputing.
    pointwise       True where the output at t depends on x[t] and t alone (every VQ family):
                    a fed-back forecast then needs the window's last position only
                    (models/rollout.py, kv_cache on).
    pe_type, pe_on  named in forecast.py's error when the cache would change forecasts.

Files whose Model has no `target` (models/vqvae.py, the image autoencoders) belong to
vqvae_imagenet.py and are not listed here, and neither are the helpers beside the models:
kernels.py (the speed tricks), norm.py (--norm last and revin), rollout.py (forecasting many
steps, with or without a KV cache).
"""
import importlib
import inspect
import os

from runs import UsageError

MODELS_DIR = os.path.dirname(os.path.abspath(__file__))


class ModelError(UsageError):
    """An unknown model name or an option the model does not take; one line for the user."""


def _module(name):
    return importlib.import_module(f"models.{name}")


def names():
    """Every forecasting model, sorted by name."""
    found = []
    for filename in sorted(os.listdir(MODELS_DIR)):
        name, ext = os.path.splitext(filename)
        if ext == ".py" and not name.startswith("_") and hasattr(getattr(_module(name), "Model", None), "target"):
            found.append(name)
    return found


def get(name):
    """The Model class of models/NAME.py."""
    valid = names()
    if name not in valid:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(valid)}")
    return _module(name).Model


def description(name):
    """The first line of the model file's docstring, without the leading name."""
    doc = (_module(name).__doc__ or "").strip().splitlines()
    return doc[0].split(":", 1)[-1].strip() if doc else ""


def options(cls):
    """The constructor's keyword arguments and their defaults: the model's configuration."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: p.default for p in params}


# What each constructor argument means: one line per argument name, shared by the models that take
# it; the help adds the valid values (Model.choices, true/false, sizes) and the default.
OPTION_HELP = {
    "vocab_size": "codes in each fixed random codebook",
    "d_model": "width of the encoded values and the codes",
    "n_heads": "heads: d_model is split into n_heads parts of d_model / n_heads",
    "block_size": "rows of the positional table, the longest window it numbers",
    "pe_per_head": "true: one sinusoidal table of width head_size in every head (the log's); "
                   "false: one of width d_model split among the heads",
    "levels": "cache sizes L1-L2-..., L1 next to the input (the log's Method Three)",
    "heads": "heads per cache level, one number per level, each dividing d_model",
    "order": "inc: the caches exchange from the last level down, then the input reads L1; "
             "dec: the input reads L1, the result L2, ...",
    "trainable_codebooks": "train the caches' codes too, instead of fixed random ones",
    "kv_heads": "key/value heads shared by groups of query heads (grouped-query); must divide n_heads",
    "pe_type": "positional encoding: none, a fixed randn table, sinusoidal, or rotary (RoPE)",
    "pe_on": "where positions enter: input (added to or rotating the encoded values) or qk (RoPE on q and k)",
    "in_ln": "LayerNorm on the encoded input before q, k, v",
    "q_ln": "LayerNorm on the queries",
    "k_ln": "LayerNorm on the keys",
    "causal": "position t sees only values up to t (false: the whole window; the losses then leak)",
    "bias": "biases on q, k, v and the decoder (the original has none)",
    "pe_std": "std of the randn positional table (pe_type randn)",
    "rope_before_ln": "with pe_on qk: rotate q and k before their LayerNorm (the original) or after",
    "hidden_size": "LSTM hidden units",
    "num_layers": "stacked LSTM layers",
}


def describe(cls, name):
    """One line for --NAME of model cls: what it means (OPTION_HELP, or the model's own option_help)."""
    return {**OPTION_HELP, **getattr(cls, "option_help", {})}.get(name, "")


def values(cls, name):
    """The values --NAME takes, as the help shows them: the model's declared choices ({none,rope}),
    {true,false}, sizes joined by '-' (N-N-N), a number (X) or an integer >= 1 (N)."""
    default = options(cls)[name]
    if name in getattr(cls, "choices", {}):
        return "{" + ",".join(map(str, cls.choices[name])) + "}"
    if isinstance(default, bool):
        return "{true,false}"
    if isinstance(default, (tuple, list)):
        return "-".join("N" for _ in default)
    return {float: "X", int: "N"}.get(type(default), "TEXT")


def positions(cls, time_steps):
    """{"block_size": time_steps} for a model with a positional table, else {}."""
    return {"block_size": time_steps} if "block_size" in options(cls) else {}


def build(name, example=None, **kwargs):
    """Model NAME with the given constructor arguments. Unknown arguments, sizes below 1 and
    whatever the constructor refuses are a one-line ModelError. With `example` (a (1, T, 1)
    window) the model is also run once on it, so that a configuration that cannot run fails
    here, before a run directory is written."""
    import torch
    cls = get(name)
    valid = options(cls)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        takes = ", ".join(f"--{k}" for k in valid) or "no model options"
        raise ModelError(f"model {name} does not take --{unknown[0]}; it takes {takes}")
    for k, v in kwargs.items():  # sizes; tuples (levels, heads) are checked by their constructors
        if type(valid[k]) is int and type(v) is int and v < 1:
            raise ModelError(f"model {name}: --{k} must be at least 1, got {v}")
    try:
        model = cls(**kwargs)
        if example is not None:
            with torch.no_grad():
                model(example)
    except (ValueError, RuntimeError, IndexError, TypeError) as e:  # e.g. d_model not divisible by n_heads
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        given = ", ".join(f"--{k} {v}" for k, v in kwargs.items() if v != valid[k]) or "its defaults"
        raise ModelError(f"model {name} with {given}: {message}") from None
    return model


def codebook_size(model):
    """(code entries, effective vocabulary) of a model's codebook, or None.

    A (V, D) codebook holds V entries and indexes V codes; (heads, V, head_size) holds
    heads * V entries and indexes V ** heads combinations (the log's Method Two).
    Models with several codebooks (the cascades) answer for themselves: model.codebook_size().
    """
    import torch
    if hasattr(model, "codebook_size"):
        return model.codebook_size()
    codebook = getattr(model, "codebook", None)
    if not isinstance(codebook, torch.Tensor):
        return None
    heads, vocab = (1, codebook.shape[0]) if codebook.dim() == 2 else codebook.shape[:2]
    return heads * vocab, vocab ** heads


def count_parameters(model):
    """(trainable, fixed): trained parameters, and frozen parameters plus buffers (codebooks)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fixed = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    fixed += sum(b.numel() for b in model.buffers())
    return trainable, fixed


def inert_options(model):
    """(training options that cannot change this model's result, why) or ((), None): a model with
    nothing to learn or draw (naive), or one fit in closed form (the same windows give the same
    weights), is the same for any lr, batch_size, epochs and seed. sweep.py runs it once for all."""
    if hasattr(model, "solve"):
        return ("lr", "batch_size", "epochs", "seed"), "fit by least squares in closed form"
    if sum(count_parameters(model)) == 0:
        return ("lr", "batch_size", "epochs", "seed"), "nothing to train"
    return (), None


def codebook_usage(model, x, chunk=256):
    """Per head: perplexity of the mean code distribution and the fraction of codes that are
    the argmax of at least one input, over inputs x (B, T, 1); None for a model without codes."""
    import torch
    if not hasattr(model, "code_probs"):
        return None
    model.eval()
    total = hits = None
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            p = model.code_probs(x[i:i + chunk]).flatten(0, 1)      # (N, heads, V)
            if total is None:  # made once and added to in place: a long series' chunks leave no tensors between them
                total = torch.zeros(p.shape[1:], dtype=p.dtype, device=p.device)           # (heads, V)
                hits = torch.zeros(p.shape[1:], dtype=torch.bool, device=p.device)
            total += p.sum(0)
            hits.scatter_(1, p.argmax(-1).T, True)                    # True where some input chose the code
            del p                                                  # before the next chunk's read, not after
    model.train()
    mean = total / total.sum(-1, keepdim=True)                  # (heads, V)
    entropy = -(mean * mean.clamp_min(1e-30).log()).sum(-1)
    return [{"head": h, "perplexity": float(entropy[h].exp()), "used_fraction": float(hits[h].float().mean()),
             "vocab_size": int(mean.shape[-1])} for h in range(mean.shape[0])]


def table():
    """The lines of `train.py --list`: every model with its parameter counts, then the arithmetic
    of multi-head codebooks and of the cascades."""
    import torch
    lines = [f"{'model':16s} {'target':8s} {'trainable':>9s} {'fixed':>7s} {'codes':>6s} {'vocabulary':>10s}  description"]
    for name in names():
        torch.manual_seed(0)
        model = build(name)
        trainable, fixed = count_parameters(model)
        codes, vocab = codebook_size(model) or ("-", "-")
        if vocab != "-" and vocab >= 10 ** 9:  # 512 ** 8 reads better as a power
            vocab = f"{model.codebook.shape[1]}^{model.codebook.shape[0]}"
        lines.append(f"{name:16s} {model.target:8s} {trainable:9d} {fixed:7d} {codes:>6} {vocab:>10}  {description(name)}")
    lines += ["", "codes: codebook entries stored; vocabulary: combinations they index, vocab_size ** n_heads.",
              "Method Two (log 2024-12-21): n_heads codebooks of vocab_size codes against one codebook "
              "of vocab_size ** n_heads codes",
              f"{'heads x codes':>14s} {'combinations':>12s} {'entries':>8s} {'of one codebook':>15s}"]
    for heads, vocab in ((2, 32), (3, 8), (2, 512)):  # the log's two examples, then nh2 vs512
        lines.append(f"{heads:>6d} x {vocab:<5d} {vocab ** heads:>12d} {heads * vocab:>8d} "
                     f"{100 * heads * vocab / vocab ** heads:>14.3g}%")
    from models.mhcvqlnmlp import memory_table  # the cascades' arithmetic (Method Three, Two + Three)
    return lines + [""] + memory_table()
