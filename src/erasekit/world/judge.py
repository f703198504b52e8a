"""The world judge: a small CNN that scores images of the world exactly.

Heads: object (10 classes + "none", so an unrecognisable image is not forced into some object), colour,
background style, and mark present. Softmax outputs give top-k exactly as ResNet-50 does on Imagenette, and the
penultimate features feed the judge-feature Frechet distance. Trained on fresh renders with augmentation (noise,
blur, tinted off-palette backgrounds, cut-outs, object-free images) so that it stays exact on what the miniature
actually draws.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from erasekit.core.files import atomic_path, write_text
from erasekit.world.render import COLOUR_NAMES, OBJECTS, STYLES, Labels, render

NONE = len(OBJECTS)  # index of the object head's "none" class
OBJECT_CLASSES = OBJECTS + ("none",)
HEAD_NAMES = {"object": OBJECT_CLASSES, "colour": COLOUR_NAMES, "style": STYLES}  # each head's class names


class JudgeNet(nn.Module):
    def __init__(self, width: int = 24, features: int = 128):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.SiLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.SiLU(),
            )

        self.body = nn.Sequential(
            block(3, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * width, features),
            nn.SiLU(),
        )
        self.object = nn.Linear(features, len(OBJECT_CLASSES))
        self.colour = nn.Linear(features, len(COLOUR_NAMES))
        self.style = nn.Linear(features, len(STYLES))
        self.mark = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x * 2 - 1)
        return {
            "features": h,
            "object": self.object(h),
            "colour": self.colour(h),
            "style": self.style(h),
            "mark": self.mark(h).squeeze(-1),
        }


@dataclass
class Scores:
    """Softmax probabilities per head ([B, classes]) and mark probability ([B]); features [B, F]."""

    object: torch.Tensor
    colour: torch.Tensor
    style: torch.Tensor
    mark: torch.Tensor
    features: torch.Tensor

    def top1(self, head: str) -> list[str]:
        names = HEAD_NAMES[head]
        return [names[i] for i in getattr(self, head).argmax(-1).tolist()]

    def probability(self, head: str, label: str) -> torch.Tensor:
        """[B]: the probability of `label` under `head` (the mark head's own probability for "mark")."""
        if head == "mark":
            return self.mark
        names = HEAD_NAMES[head]
        return getattr(self, head)[:, names.index(label)]

    def in_top_k(self, head: str, label: str, k: int) -> torch.Tensor:
        """[B] bool: is `label` among the k most probable classes of `head`."""
        names = HEAD_NAMES[head]
        topk = getattr(self, head).topk(k, dim=-1).indices
        return (topk == names.index(label)).any(-1)


class WorldJudge:
    """Scores images in [0, 1], [B, 3, 32, 32]."""

    def __init__(self, net: JudgeNet):
        self.net = net.eval()

    @torch.no_grad()
    def score(self, images: torch.Tensor, batch: int = 512) -> Scores:
        outs = [self.net(images[i : i + batch].float().cpu()) for i in range(0, len(images), batch)]
        cat = {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
        return Scores(
            cat["object"].softmax(-1),
            cat["colour"].softmax(-1),
            cat["style"].softmax(-1),
            cat["mark"].sigmoid(),
            cat["features"],
        )

    def save(self, out: str | Path) -> None:
        out = Path(out)
        with atomic_path(out / "judge.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(tmp))
        write_text(
            out / "judge.json",
            json.dumps({"objects": OBJECT_CLASSES, "colours": COLOUR_NAMES, "styles": STYLES}, indent=2),
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> WorldJudge:
        """The judge saved in `path` (default: the one shipped in the package)."""
        from erasekit.core.assets import ASSETS
        from erasekit.core.errors import ErasekitError

        path = Path(path or ASSETS / "judge")
        if not (path / "judge.safetensors").exists():
            raise ErasekitError(f"world judge not found at {path}; build it with `erasekit world train`")
        net = JudgeNet()
        net.load_state_dict(load_file(str(path / "judge.safetensors")))
        return cls(net)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def random_labels(n: int, rng: np.random.Generator) -> Labels:
    return Labels(
        rng.integers(0, len(OBJECTS), n),
        rng.integers(0, len(COLOUR_NAMES), n),
        rng.integers(0, len(STYLES), n),
        rng.random(n) < 0.4,
    )


def training_batch(n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Augmented renders and their targets; 8% are object-free ("none": background, maybe the mark)."""
    rng = np.random.default_rng(seed)
    labels = random_labels(n, rng)
    none = rng.random(n) < 0.08
    drawn = Labels(np.where(none, -1, labels.obj), labels.colour, labels.style, labels.mark)  # -1: no object
    x = to_tensor(render(drawn, seed=int(rng.integers(2**31))))
    soft = torch.from_numpy(none & (rng.random(n) < 0.5))
    if soft.any():  # half of the object-free images blurred, like an unrecognisable generation
        x[soft] = _blur(x[soft], 5)
    obj = torch.from_numpy(np.where(none, NONE, labels.obj)).long()
    mark = torch.from_numpy(labels.mark).float()
    none = torch.from_numpy(none)
    x = _augment(x, rng)
    return x, {
        "object": obj,
        "colour": torch.from_numpy(labels.colour).long(),
        "style": torch.from_numpy(labels.style).long(),
        "mark": mark,
        "has_object": ~none,
    }


def _blur(x: torch.Tensor, k: int) -> torch.Tensor:
    kernel = torch.ones(3, 1, k, k) / (k * k)
    return F.conv2d(F.pad(x, [k // 2] * 4, mode="replicate"), kernel, groups=3)


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    n = len(x)
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    blur = torch.from_numpy(rng.random(n) < 0.3)
    if blur.any():
        x[blur] = _blur(x[blur], 3) * 0.6 + x[blur] * 0.4
    tint = torch.rand(n, 3, 1, 1, generator=g) * 0.16 - 0.08  # off-palette, slightly coloured backgrounds
    x = x + tint * torch.from_numpy(rng.random(n) < 0.4).float()[:, None, None, None]
    x = x * (0.9 + 0.2 * torch.rand(n, 1, 1, 1, generator=g))
    x = x + torch.randn(x.shape, generator=g) * torch.rand(n, 1, 1, 1, generator=g) * 0.08
    return x.clamp(0, 1)


def judge_loss(out: dict, target: dict) -> torch.Tensor:
    has = target["has_object"]
    loss = F.cross_entropy(out["object"], target["object"]) + F.cross_entropy(out["style"], target["style"])
    loss = loss + F.binary_cross_entropy_with_logits(out["mark"], target["mark"])
    if has.any():
        loss = loss + F.cross_entropy(out["colour"][has], target["colour"][has])
    return loss


@torch.no_grad()
def judge_accuracy(judge: WorldJudge, n: int = 2000, seed: int = 10**6) -> dict[str, float]:
    """Accuracy (%) of each head on `n` clean held-out renders."""
    rng = np.random.default_rng(seed)
    labels = random_labels(n, rng)
    s = judge.score(to_tensor(render(labels, seed=seed)))
    return {
        "object": 100 * (s.object.argmax(-1).numpy() == labels.obj).mean(),
        "colour": 100 * (s.colour.argmax(-1).numpy() == labels.colour).mean(),
        "style": 100 * (s.style.argmax(-1).numpy() == labels.style).mean(),
        "mark": 100 * ((s.mark.numpy() > 0.5) == labels.mark).mean(),
    }
