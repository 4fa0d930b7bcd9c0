"""lstm: the research log's best baseline, a two-layer LSTM with one linear head.

Research log 2024-12-21 and 2025-01-06 ("lstm_linear1"): nn.LSTM(1 -> hidden_size, num_layers,
batch_first), then Linear(hidden_size -> 1) on the last step's output. Unlike the VQ models it is
trained only on the value after the window (target "last"), as in the log.

Parent: none.
Shapes: x (B, T, 1) -> (B, 1), the forecast of the value after the window.
"""
import torch
import torch.nn as nn


class Model(nn.Module):
    target = "last"  # trained on the value after the window only
    train_defaults = dict(time_steps=112, batch_size=64, lr=0.0005, epochs=50)

    def __init__(self, hidden_size=64, num_layers=2):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        for name, p in self.named_parameters():  # the log's init: Xavier weights, zero biases
            if "weight" in name:
                nn.init.xavier_uniform_(p)
            else:
                nn.init.zeros_(p)

    def forward(self, x, start_pos=0):
        # start_pos is unused: the LSTM knows order from recurrence, not from positions.
        out, _ = self.lstm(x)          # (B, T, H)
        return self.head(out[:, -1])   # (B, 1)


if __name__ == "__main__":
    torch.manual_seed(0)
    model = Model()
    x = torch.randn(4, 112, 1)
    y = model(x)
    trainable = sum(p.numel() for p in model.parameters())
    print(f"lstm: {trainable} trainable parameters; {tuple(x.shape)} -> {tuple(y.shape)}")
    assert y.shape == (4, 1)
