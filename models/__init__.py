"""The model registry: `--model NAME` loads models/NAME.py and its class `Model`.

A forecasting model declares `target` ("aligned": the next value at every position, or "last":
the value after the window) and `train_defaults`; its constructor's keyword arguments are its
whole configuration. Files whose Model has no `target` (models/vqvae.py, the image
autoencoders) belong to other scripts and are not listed here.
"""
import importlib
import inspect
import os

MODELS_DIR = os.path.dirname(os.path.abspath(__file__))


class ModelError(ValueError):
    """An unknown model name or an option the model does not take; one line for the user."""


def _module(name):
    return importlib.import_module(f"models.{name}")


def names():
    """Every forecasting model, sorted by name."""
    found = []
    for filename in sorted(os.listdir(MODELS_DIR)):
        name, ext = os.path.splitext(filename)
        if ext == ".py" and not name.startswith("_") and hasattr(_module(name).Model, "target"):
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


def build(name, **kwargs):
    """Model NAME with the given constructor arguments; unknown arguments are a ModelError."""
    cls = get(name)
    valid = options(cls)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        takes = ", ".join(f"--{k}" for k in valid) or "no model options"
        raise ModelError(f"model {name} does not take --{unknown[0]}; it takes {takes}")
    try:
        return cls(**kwargs)
    except ValueError as e:  # the constructor's own checks, e.g. d_model not divisible by n_heads
        raise ModelError(f"model {name}: {e}") from None


def count_parameters(model):
    """(trainable, fixed): trained parameters, and frozen parameters plus buffers (codebooks)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fixed = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    fixed += sum(b.numel() for b in model.buffers())
    return trainable, fixed
