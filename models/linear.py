"""linear: one linear layer from the window to the next value (an autoregressive model).

A baseline the research log did not have: least squares, which any sequence model should beat.
It has a closed-form fit, `solve`: train.py calls it on the training windows instead of running
Adam, so lr, batch_size and epochs do not apply. The Xavier-uniform weight and zero bias below
(as the log initialises every Linear) are replaced by that solve.

Parent: none.
Shapes: x (B, T, 1) with T == block_size -> (B, 1), the forecast of the value after the window.
"""
import torch
import torch.nn as nn


class Model(nn.Module):
    target = "last"
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

    @torch.no_grad()
    def solve(self, x, y):
        """Set weight and bias to the least-squares fit of y (N, 1) from windows x (N, T, 1): they
        minimise sum_i (x_i . weight + bias - y_i) ** 2, solved in float64 on the CPU (the
        minimum-norm solution where the windows do not determine it, to float32's precision)."""
        X = x.detach().flatten(1).cpu().double()                           # (N, T)
        X = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)    # (N, T + 1): the bias's column
        # x is float32: a direction whose singular value is below a millionth of the largest is rounding
        # (under --norm revin every window sums to 0, up to rounding), and is left out, not fit
        solution = torch.linalg.lstsq(X, y.detach().cpu().double().view(-1, 1), rcond=1e-6, driver="gelsd").solution
        self.head.weight.copy_(solution[:-1, 0].view_as(self.head.weight))
        self.head.bias.fill_(solution[-1, 0].item())


if __name__ == "__main__":
    torch.manual_seed(0)
    model = Model()
    x = torch.randn(4, 96, 1)
    y = model(x)
    trainable = sum(p.numel() for p in model.parameters())
    print(f"linear: {trainable} trainable parameters; {tuple(x.shape)} -> {tuple(y.shape)}")
    assert y.shape == (4, 1)
