"""1-D CNNs over token ids (text, SMILES): Kim's multi-width CNN and a residual 1-D CNN with optional SE.

Both take int64 ids N x L (0 = `<pad>`) and return N x num_classes logits (regression: N x 1). Through
`build_model` they get `in_channels` = the vocabulary size and `image_size` = the longest sequence.

Padding never changes a prediction: embeddings of `<pad>` positions are zeroed and every conv output
is masked back to zero there, so a conv window reaching past the end sees the same zeros as the conv's
own zero padding of a sequence given alone; pooling is a masked max (and mean) over real positions only,
and the SE squeeze is a masked mean. (BatchNorm's training statistics do include padded positions;
in eval mode it is a per-channel affine map, which keeps the invariance.)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.models import MODELS


def pad_mask(ids: torch.Tensor) -> torch.Tensor:
    """float N x 1 x L: 1 at real tokens, 0 at `<pad>` (id 0)."""
    return (ids != 0).unsqueeze(1).to(torch.float32)


def masked_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """N x C x L -> N x C, the max over the positions where mask (N x 1 x L) is 1 (0 for an empty row)."""
    out = h.masked_fill(mask == 0, float("-inf")).amax(dim=2)
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (h * mask).sum(2) / mask.sum(2).clamp(min=1)


class TokenEmbedding(nn.Module):
    """ids N x L -> masked embeddings N x D x L (channels first, for Conv1d) and the mask N x 1 x L."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = ids.long()
        mask = pad_mask(ids)
        return self.embed(ids).transpose(1, 2) * mask, mask


class KimCNN(nn.Module):
    """Kim (2014): parallel convolutions of several widths over the embeddings, ReLU, max over time
    (masked), dropout, one linear layer."""

    def __init__(self, num_classes: int, vocab_size: int, embed_dim: int = 64, widths: Sequence[int] = (3, 5, 7),
                 channels: int = 128, dropout: float = 0.2):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, embed_dim)
        # odd widths, "same" padding: output t sees tokens t-k//2 .. t+k//2, zeros beyond either end
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, k, padding=k // 2) for k in widths)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * len(widths), num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x, mask = self.embedding(ids)
        pooled = [masked_max(F.relu(conv(x)), mask) for conv in self.convs]
        return self.fc(self.dropout(torch.cat(pooled, 1)))


class MaskedSE(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) whose squeeze is the mean over real positions only."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(channels, max(4, channels // reduction))
        self.fc2 = nn.Linear(max(4, channels // reduction), channels)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(masked_mean(h, mask)))))
        return h * w.unsqueeze(2)


class ResBlock1d(nn.Module):
    """conv-BN-ReLU-conv-BN (+ masked SE) + identity, ReLU; outputs re-masked to zero at padding."""

    def __init__(self, channels: int, kernel: int, dilation: int, se: bool):
        super().__init__()
        pad = dilation * (kernel // 2)
        self.conv1 = nn.Conv1d(channels, channels, kernel, padding=pad, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=pad, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.se = MaskedSE(channels) if se else None

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(h))) * mask
        y = self.bn2(self.conv2(y)) * mask
        if self.se is not None:
            y = self.se(y, mask)
        return F.relu(h + y) * mask


class ResCNN1d(nn.Module):
    """Embedding, a width-`kernel` stem conv, `blocks` residual blocks (dilation 1, 2, 4, ... cycling over
    `dilations`, so the receptive field grows fast), masked max + mean pooling, dropout, linear."""

    def __init__(self, num_classes: int, vocab_size: int, embed_dim: int = 64, channels: int = 128,
                 blocks: int = 4, kernel: int = 5, dilations: Sequence[int] = (1, 2, 4), se: bool = False,
                 dropout: float = 0.2):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, embed_dim)
        self.stem = nn.Conv1d(embed_dim, channels, kernel, padding=kernel // 2)
        self.blocks = nn.ModuleList(ResBlock1d(channels, kernel, dilations[i % len(dilations)], se)
                                    for i in range(blocks))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * channels, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x, mask = self.embedding(ids)
        h = F.relu(self.stem(x)) * mask
        for block in self.blocks:
            h = block(h, mask)
        return self.fc(self.dropout(torch.cat([masked_max(h, mask), masked_mean(h, mask)], 1)))


SEQ_TASKS = ("seq_classify", "seq_regress")


@MODELS.register("textcnn", tasks=SEQ_TASKS, backbone=False,
                 doc="Kim (2014) 1-D CNN over tokens: widths 3/5/7, max over time; embed_dim, channels, widths")
def textcnn(num_classes: int, in_channels: int, image_size: int | Sequence[int], dropout: float = 0.2,
            embed_dim: int = 64, channels: int = 128, widths: Sequence[int] = (3, 5, 7)) -> KimCNN:
    """`in_channels`: the vocabulary size; `image_size`: unused (any length is taken)."""
    return KimCNN(num_classes, in_channels, embed_dim, tuple(int(w) for w in widths), channels, dropout)


@MODELS.register("rescnn1d", tasks=SEQ_TASKS, backbone=False, attention=True,
                 doc="residual dilated 1-D CNN over tokens, masked max+mean pooling; attention=se; blocks, channels")
def rescnn1d(num_classes: int, in_channels: int, image_size: int | Sequence[int], dropout: float = 0.2,
             attention: str | None = None, embed_dim: int = 64, channels: int = 128, blocks: int = 4,
             kernel: int = 5) -> ResCNN1d:
    """`in_channels`: the vocabulary size; `attention`: "se" for masked SE in every block."""
    if attention not in (None, "se"):
        from cnnkit.errors import CnnkitError

        raise CnnkitError(f'rescnn1d supports attention "se" only, got "{attention}"; set model.attention=se or none.')
    return ResCNN1d(num_classes, in_channels, embed_dim, channels, blocks, kernel, se=attention == "se",
                    dropout=dropout)
