"""DeepLabV3+ with a timm encoder and a deeply supervised decoder.

Pure torch and timm: nothing here knows about IMDL-BenCo, and nothing is ever
downloaded (the encoder is built with ``pretrained=False``).
"""

import math
from typing import List, Sequence, Tuple

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

ASPP_RATES = {8: (12, 24, 36), 16: (6, 12, 18)}


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ImagePooling(nn.Module):
    """ASPP's global branch.

    No BatchNorm here on purpose: after global pooling a batch of one image has a
    single value per channel, and BatchNorm refuses to train on that, while
    IMDL-BenCo's default training batch size is 1.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(F.adaptive_avg_pool2d(x, 1)))
        return y.expand(-1, -1, x.shape[-2], x.shape[-1])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: (B, C_in, h, w) -> (B, out_channels, h, w)."""

    def __init__(self, in_channels: int, out_channels: int = 256, rates: Sequence[int] = (12, 24, 36)):
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBNReLU(in_channels, out_channels, 1)]
            + [ConvBNReLU(in_channels, out_channels, 3, dilation=r) for r in rates]
            + [ImagePooling(in_channels, out_channels)]
        )
        self.project = nn.Sequential(
            ConvBNReLU(out_channels * len(self.branches), out_channels, 1),
            nn.Dropout(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


def _upsample(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DeepSupervisedDecoder(nn.Module):
    """DeepLabV3+ decoder that predicts a 1-channel logit map at 1/8, 1/4, 1/2 and 1/1.

    The 1/4 stage is the classic DeepLabV3+ fusion with block-1 features; the
    1/2 stage fuses the stem features the same way, and the 1/1 stage refines
    the upsampled map, so every stage has its own head for deep supervision.
    """

    def __init__(self, aspp_channels: int, block1_channels: int, stem_channels: int, channels: int = 256):
        super().__init__()
        # Widths at 1/4, 1/2 and 1/1: DeepLabV3+'s 256 at 1/4, then narrower as the maps grow,
        # since a 3x3 convolution's cost grows with the pixels it covers.
        c4, c2, c1 = channels, max(channels // 4, 16), max(channels // 8, 8)
        self.refine8 = ConvBNReLU(aspp_channels, aspp_channels)
        self.project4 = ConvBNReLU(block1_channels, 48, 1)
        self.fuse4 = nn.Sequential(ConvBNReLU(aspp_channels + 48, c4), ConvBNReLU(c4, c4))
        self.project2 = ConvBNReLU(stem_channels, 32, 1) if stem_channels else None
        self.fuse2 = ConvBNReLU(c4 + (32 if stem_channels else 0), c2)
        self.fuse1 = ConvBNReLU(c2, c1)
        self.heads = nn.ModuleList([nn.Conv2d(c, 1, 1) for c in (aspp_channels, c4, c2, c1)])

    def forward(self, aspp: torch.Tensor, block1: torch.Tensor, stem, sizes: List[Tuple[int, int]]):
        """sizes: the four output sizes, coarsest first. Returns four (B, 1, h, w) logit maps."""
        x8 = self.refine8(_upsample(aspp, sizes[0]))
        x4 = _upsample(x8, sizes[1])
        x4 = self.fuse4(torch.cat([x4, self.project4(_upsample(block1, sizes[1]))], dim=1))
        x2 = _upsample(x4, sizes[2])
        if self.project2 is not None:
            x2 = torch.cat([x2, self.project2(_upsample(stem, sizes[2]))], dim=1)
        x2 = self.fuse2(x2)
        x1 = self.fuse1(_upsample(x2, sizes[3]))
        return [head(x) for head, x in zip(self.heads, (x8, x4, x2, x1))]


class DeepLabV3PlusNet(nn.Module):
    """DeepLabV3+ for binary manipulation masks, randomly initialised.

    forward(image (B, 3, H, W)) -> (logits, contrasted)
      logits: four (B, 1, h, w) maps at 1/8, 1/4, 1/2 and 1/1 of (H, W), finest last;
      contrasted: the features of encoder block ``contrast_block`` (default 1: (B, C1, H/4, W/4)),
      the features NCL contrasts; ``contrast_stride`` and ``contrast_channels`` describe them.
    """

    def __init__(
        self,
        backbone: str = "resnet101",
        output_stride: int = 8,
        decoder_channels: int = 256,
        head_prior: float = 0.1,
        contrast_block: int = 1,
    ):
        super().__init__()
        if decoder_channels < 8:
            raise ValueError(f"--decoder_channels must be at least 8, got {decoder_channels}")
        if not 0.0 < head_prior < 1.0:
            raise ValueError(f"--head_prior must be in (0, 1), got {head_prior}")
        if output_stride not in ASPP_RATES:
            raise ValueError(f"--output_stride must be 8 or 16, got {output_stride}")
        try:
            self.encoder = timm.create_model(
                backbone, pretrained=False, features_only=True, output_stride=output_stride
            )
        except RuntimeError as err:  # timm raises RuntimeError for unknown names
            raise ValueError(f"--backbone {backbone!r} is not a timm model: {err}") from None
        reductions = self.encoder.feature_info.reduction()
        channels = self.encoder.feature_info.channels()
        if 4 not in reductions:
            raise ValueError(f"--backbone {backbone!r} has no stride-4 feature map; use a ResNet")
        # The last stride-4 map is block 1 (the first one, for ResNets, is the stem's max-pool input).
        self.block1_index = max(i for i, r in enumerate(reductions) if r == 4)
        self.stem_index = max((i for i, r in enumerate(reductions) if r == 2), default=None)
        self.block1_channels = channels[self.block1_index]
        blocks = len(reductions) - self.block1_index  # 4 for a ResNet
        if not 1 <= contrast_block <= blocks:
            raise ValueError(f"--contrast_block must be 1 to {blocks} for {backbone!r}, got {contrast_block}")
        self.contrast_index = self.block1_index + contrast_block - 1
        self.contrast_stride = reductions[self.contrast_index]
        self.contrast_channels = channels[self.contrast_index]
        stem_channels = channels[self.stem_index] if self.stem_index is not None else 0
        self.aspp = ASPP(channels[-1], decoder_channels, ASPP_RATES[output_stride])
        self.decoder = DeepSupervisedDecoder(decoder_channels, self.block1_channels, stem_channels, decoder_channels)
        self.output_stride = output_stride
        self._init_new_layers(head_prior)

    def _init_new_layers(self, head_prior: float) -> None:
        for module in list(self.aspp.modules()) + list(self.decoder.modules()):
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Every head starts out predicting head_prior everywhere, about the share of tampered
        # pixels, as detection heads are initialised (Lin et al., focal loss, 2017). Started at
        # 0.5, the first steps on a mostly authentic batch drive every output far below 0.5,
        # and the network then took hundreds of steps to put any pixel back above it.
        for head in self.decoder.heads:
            nn.init.normal_(head.weight, std=0.01)
            nn.init.constant_(head.bias, math.log(head_prior / (1.0 - head_prior)))

    def forward(self, image: torch.Tensor):
        height, width = image.shape[-2:]
        features = self.encoder(image)
        block1 = features[self.block1_index]
        stem = features[self.stem_index] if self.stem_index is not None else None
        sizes = [(-(-height // s), -(-width // s)) for s in (8, 4, 2)] + [(height, width)]
        logits = self.decoder(self.aspp(features[-1]), block1, stem, sizes)
        return logits, features[self.contrast_index]
