"""vqvae: a small convolutional autoencoder whose bottleneck is a codebook read or an FFN.

Research log 2024-12 "vqvae-imagenet-ffn": a VQVAE trained on ImageNet to reconstruct images
whose patches were half masked, then its quantizer replaced by an LLM-style FFN (with and
without dropout). The log's finding: the VQ matches the FFN with half the bottleneck's
parameters, and the VQ's codebook was never trained at all (only its LayerNorm was).

Five bottlenecks, chosen by `bottleneck`, act on every latent position (a vector of embed_dim):
- "vqvae" (the log's SoftQuantize): LayerNorm, softmax(x E^T / sqrt(embed_dim)) over n_embed
  codes, probabilities @ E, straight-through output x + (q - x).detach(). The detach cuts E out
  of the graph: E gets no gradient and stays at its N(0, 1) initialisation.
- "amvqvae": LayerNorm, the argmax code E[idx]; output the mean of E[idx] and its
  straight-through version, so E is trained (through the first half).
- "smvqvae": LayerNorm, the softmax read of "vqvae" without the straight-through: E is trained.
- "ffnae": Linear(embed_dim -> n_embed), GELU, Linear(n_embed -> embed_dim).
- "llmffnae": "ffnae" followed by Dropout(dropout).

The network is the original code's (MinVQVAE, commit fe3d527, tests/reference/): the encoder
downsamples with stride-2 4x4 convs and a 3x3 conv, then ResBlocks and a ReLU; the decoder is
ResBlocks, ReLU, a 3x3 transposed conv, then stride-2 4x4 transposed convs. Two choices keep
the original by default and name the alternative (docs/DEPARTURES.md):
- residual="relu" (original): the ResBlock's first ReLU is in place in the original, so it
  rewrites its input and the skip adds relu(x); "identity" adds x, the textbook pre-activation
  ResBlock the code appears to intend.
- decoder="original": ResBlocks -> ReLU -> ConvTranspose 3x3; "mirror": Conv 3x3 -> ResBlocks,
  the order this repository used before (same parameter count, a different network).

This file is not a forecasting model: Model has no `target`, so train.py's registry skips it;
vqvae_imagenet.py trains it.

Shapes (scale_factor s, downsampling 2 ** (s + 1), 4 by default):
x (B, in_channels, H, W) -> latent (B, embed_dim, H / 4, W / 4) -> bottleneck per position
-> reconstruction (B, in_channels, H, W).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BOTTLENECKS = ("vqvae", "amvqvae", "smvqvae", "ffnae", "llmffnae")
RESIDUALS = ("relu", "identity")
DECODERS = ("original", "mirror")


class ResBlock(nn.Module):
    """skip(x) + conv1x1(relu(conv3x3(relu(x)))), through res_channels; skip is relu or identity."""

    def __init__(self, channels, res_channels, residual="relu"):
        super().__init__()
        self.residual = residual
        self.conv = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, res_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(res_channels, channels, 1),
        )

    def forward(self, x):
        # The original's ReLU(inplace=True) overwrites x before the skip reads it: relu(x) + F(x).
        skip = F.relu(x) if self.residual == "relu" else x
        return skip + self.conv(x)


class SoftmaxQuantize(nn.Module):
    """smvqvae: LayerNorm, softmax read of the codebook, no straight-through: E is trained."""
    straight_through = False

    def __init__(self, embed_dim, n_embed):
        super().__init__()
        self.ln = nn.LayerNorm(embed_dim)
        self.codebook = nn.Parameter(torch.randn(n_embed, embed_dim))  # nn.Embedding's N(0, 1)

    def forward(self, x):                                           # (N, D)
        x = self.ln(x)
        p = torch.softmax(x @ self.codebook.T / math.sqrt(x.shape[-1]), dim=-1)  # (N, n_embed)
        q = p @ self.codebook                                       # (N, D)
        if self.straight_through:  # the value is q; the gradient is the identity on x
            return x + (q - x).detach()
        return q


class SoftQuantize(SoftmaxQuantize):
    """vqvae: SoftmaxQuantize with a straight-through output, which cuts E out of the graph:
    E gets no gradient and stays at its N(0, 1) initialisation; only the LayerNorm learns."""
    straight_through = True


class ArgmaxQuantize(nn.Module):
    """amvqvae: LayerNorm, nearest code by dot product; half of the output trains E."""

    def __init__(self, embed_dim, n_embed):
        super().__init__()
        self.ln = nn.LayerNorm(embed_dim)
        self.codebook = nn.Parameter(torch.randn(n_embed, embed_dim))

    def forward(self, x):                                           # (N, D)
        x = self.ln(x)
        q = self.codebook[(x @ self.codebook.T).argmax(-1)]         # (N, D)
        # Both halves have the value q: the first sends gradient to E, the second to x.
        return (q + (x + (q - x).detach())) / 2


class FFN(nn.Module):
    """ffnae / llmffnae: the transformer FFN, Linear -> GELU -> Linear (-> Dropout)."""

    def __init__(self, embed_dim, hidden, dropout=0.0):
        super().__init__()
        self.up = nn.Linear(embed_dim, hidden)
        self.down = nn.Linear(hidden, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):                                           # (N, D)
        return self.dropout(self.down(F.gelu(self.up(x))))


class Model(nn.Module):
    choices = dict(bottleneck=BOTTLENECKS, residual=RESIDUALS, decoder=DECODERS)  # what the constructor accepts
    option_help = dict(  # one line per constructor argument, for vqvae_imagenet.py --help
        in_channels="image channels: 1 reads the images as grayscale, 3 as RGB",
        hidden="channels of the encoder's last convolutions and of the decoder's first",
        res_channels="channels inside each ResBlock",
        n_res_blocks="ResBlocks in the encoder, and as many in the decoder",
        embed_dim="width of each latent vector, the bottleneck's input and output",
        n_embed="codes in the codebook, or the FFN's hidden units (a swap keeps the width)",
        scale_factor="stride-2 convolutions beyond the first: an image side is 2 ** (scale_factor + 1) latent sides",
        dropout="llmffnae's dropout after its FFN",
        residual="relu: a ResBlock adds relu(x), as the original's in-place ReLU did; identity: it adds x",
        decoder="original: ResBlocks, ReLU, a 3x3 transposed conv; mirror: a 3x3 conv, then ResBlocks")

    def __init__(self, bottleneck="vqvae", in_channels=3, hidden=128, res_channels=32,
                 n_res_blocks=2, embed_dim=64, n_embed=512, scale_factor=1, dropout=0.2,
                 residual="relu", decoder="original"):
        super().__init__()
        for name, value, choices in (("bottleneck", bottleneck, BOTTLENECKS), ("residual", residual, RESIDUALS),
                                     ("decoder", decoder, DECODERS)):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
        if scale_factor < 0 or hidden % 2 ** scale_factor:
            raise ValueError(f"hidden {hidden} must be divisible by 2 ** scale_factor ({2 ** scale_factor})")
        self.downsampling = 2 ** (scale_factor + 1)  # image side / latent side

        # Encoder: stride-2 4x4 convs from hidden / 2^s channels, doubling up to hidden.
        ch = hidden // 2 ** scale_factor
        enc = [nn.Conv2d(in_channels, ch, 4, stride=2, padding=1)]
        for _ in range(scale_factor):
            enc += [nn.ReLU(), nn.Conv2d(ch, ch * 2, 4, stride=2, padding=1)]
            ch *= 2
        enc += [nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1)]
        enc += [ResBlock(hidden, res_channels, residual) for _ in range(n_res_blocks)]
        enc += [nn.ReLU()]
        self.encoder = nn.Sequential(*enc)
        self.to_latent = nn.Conv2d(hidden, embed_dim, 1)

        if bottleneck == "vqvae":
            self.bottleneck = SoftQuantize(embed_dim, n_embed)
        elif bottleneck == "amvqvae":
            self.bottleneck = ArgmaxQuantize(embed_dim, n_embed)
        elif bottleneck == "smvqvae":
            self.bottleneck = SoftmaxQuantize(embed_dim, n_embed)
        else:  # the FFN's hidden width is n_embed, so a swap keeps the width
            self.bottleneck = FFN(embed_dim, n_embed, dropout if bottleneck == "llmffnae" else 0.0)

        # Decoder: ResBlocks, then transposed convs halving channels back to in_channels.
        self.from_latent = nn.Conv2d(embed_dim, hidden, 1)
        blocks = [ResBlock(hidden, res_channels, residual) for _ in range(n_res_blocks)]
        if decoder == "original":
            dec = blocks + [nn.ReLU(), nn.ConvTranspose2d(hidden, hidden, 3, padding=1)]
        else:  # "mirror": the encoder read backwards
            dec = [nn.Conv2d(hidden, hidden, 3, padding=1)] + blocks
        ch = hidden
        for _ in range(scale_factor):
            dec += [nn.ReLU(), nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1)]
            ch //= 2
        dec += [nn.ReLU(), nn.ConvTranspose2d(ch, in_channels, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x):                                            # (B, C, H, W)
        return self.to_latent(self.encoder(x))                      # (B, D, H/4, W/4)

    def quantize(self, z):                                          # (B, D, h, w)
        B, D, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, D)                 # (B*h*w, D): one vector per position
        out = self.bottleneck(flat)
        return out.view(B, h, w, D).permute(0, 3, 1, 2)             # (B, D, h, w)

    def decode(self, z):                                            # (B, D, h, w)
        return self.decoder(self.from_latent(z))                    # (B, C, H, W)

    def forward(self, x):                                           # (B, C, H, W)
        return self.decode(self.quantize(self.encode(x)))           # (B, C, H, W)


if __name__ == "__main__":
    x = torch.randn(2, 3, 64, 64)
    for name in BOTTLENECKS:
        torch.manual_seed(0)
        model = Model(bottleneck=name)
        out = model(x)
        assert out.shape == x.shape, (name, out.shape)
        total = sum(p.numel() for p in model.parameters())
        inner = sum(p.numel() for p in model.bottleneck.parameters())
        print(f"{name:9s} parameters {total:7d}  bottleneck {inner:6d}  "
              f"{tuple(x.shape)} -> latent {tuple(model.encode(x).shape)} -> {tuple(out.shape)}")
