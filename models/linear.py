"""linear: one linear layer from the window to the next value (an autoregressive model).

A baseline the research log did not have: least squares, which any sequence model should beat.
It declares fit = "least_squares": train.py solves for the weight and bias in closed form on the
training windows (float64) instead of running Adam, so lr, batch_size and epochs do not apply.
The Xavier-uniform weight and zero bias below (as the log initialises every Linear) are replaced
by that solve.

Parent: none.
Shapes: x (B, T, 1) with T == block_size -> (B, 1), the forecast of the value after the window.
"""
import torch
import torch.nn as nn


class Model(nn.Module):
    target = "last"
    fit = "least_squares"  # train.py: the closed-form least-squares weights, no Adam
    train_defaults = dict(time_steps=96, batch_size=32, lr=0.007, epochs=1)  # lr names the run only
    option_help = dict(block_size="values the linear layer reads: the window length")

    def __init__(self, block_size=96):
        super().__init__()
        self.head = nn.Linear(block_size, 1)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x, start_pos=0):
        if x.shape[1] != self.head.in_features:
            raise ValueError(f"linear takes windows of block_size {self.head.in_features} values, "
                             f"got {x.shape[1]}")
        return self.head(x.squeeze(-1))  # (B, T) -> (B, 1)


if __name__ == "__main__":
    torch.manual_seed(0)
    model = Model()
    x = torch.randn(4, 96, 1)
    y = model(x)
    trainable = sum(p.numel() for p in model.parameters())
    print(f"linear: {trainable} trainable parameters; {tuple(x.shape)} -> {tuple(y.shape)}")
    assert y.shape == (4, 1)
