"""naive: persistence, the forecast of the next value is the last value seen.

A baseline the research log did not have. The log found that VQMLP "learned to output the last
value"; every result table shows naive so that such a model is seen for what it is. On a
random walk (the `goog` data set) persistence is hard to beat. No parameters: training it only
measures its losses.

Parent: none.
Shapes: x (B, T, 1) -> (B, T, 1); the output at t is x at t, the forecast of the value at t + 1.
"""
import torch
import torch.nn as nn


class Model(nn.Module):
    target = "aligned"
    pointwise = True  # the output at t depends on x[t] alone: a forecast needs the last position only
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.007, epochs=1)  # nothing to learn

    def __init__(self):
        super().__init__()

    def forward(self, x, start_pos=0):
        return x.clone()  # a copy, so callers may write into the result


if __name__ == "__main__":
    x = torch.randn(4, 96, 1)
    y = Model()(x)
    print(f"naive: 0 parameters; {tuple(x.shape)} -> {tuple(y.shape)}")
    assert torch.equal(x, y)
