"""Judges: what scores generated images. Images come in as [B, 3, H, W] floats in [0, 1].

- `WorldJudge` (exact, for the miniature) lives in `erasekit.world.judge`; `world_judge()` loads the shipped one.
- `ResNetJudge`: an ImageNet classifier in the transformers `microsoft/resnet-50` layout, with the 10 Imagenette
  classes mapped to their ImageNet indices (the seeds' ESR/PSR on Imagenette).
- `NudeNetJudge`: NudeNet's ONNX exposed-part detector (shipped in its wheel; extra `nudity`).
- `ClipJudge`: CLIP image-text similarity (ViT-B/32 or ViT-L/14 layouts).
No judge downloads anything: weights are local folders; a missing one says what to download and where to point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from erasekit.core.errors import ErasekitError
from erasekit.core.images import resize_crop

IMAGENETTE = {  # class name as in the Imagenette prompt list -> ImageNet-1k index
    "tench": 0,
    "english springer": 217,
    "cassette player": 482,
    "chain saw": 491,
    "church": 497,
    "french horn": 566,
    "garbage truck": 569,
    "gas pump": 571,
    "golf ball": 574,
    "parachute": 701,
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def world_judge(path: str | Path | None = None):
    from erasekit.world.judge import WorldJudge

    return WorldJudge.load(path)


def attribute_scorer(bundle, attributes, concept: str, clip: str | Path | None = None):
    """images -> [B, K] scores whose first T columns are the attributes (UCE debias's judge, run.scorer).

    On the miniature, the world's exact judge (`world.native.colour_scorer`: every colour, the attributes first).
    Elsewhere: CLIP zero-shot over "a photo of a {attribute} {concept}" (the official UCE code's judge), the
    attributes alone."""
    from erasekit.eval.registries import world_tool

    own = world_tool(bundle, "attributes")
    if own is not None:
        return own(attributes)
    judge = ClipJudge(clip, device=bundle.device)
    texts = [f"a photo of a {a} {concept}" for a in attributes]
    return lambda images: judge.zero_shot(images, texts)


def image_encoder(bundle, clip: str | Path | None = None):
    """images -> [B, F] image features (Dark Miner's Enc in Eq. 6, run.scorer): CLIP's image encoder, as the paper
    uses; on the miniature the world judge's penultimate features (it has no CLIP)."""
    from erasekit.eval.registries import world_tool

    own = world_tool(bundle, "features")
    if own is not None:
        return own()
    judge = ClipJudge(clip, device=bundle.device)
    return judge.image_embeds


SCORERS = {  # what a method's registration may ask for (Method.scorer), built from the run's inputs
    "attributes": lambda bundle, config, concepts, clip: attribute_scorer(
        bundle, config.attributes, concepts.erase[0], clip
    ),
    "image-features": lambda bundle, config, concepts, clip: image_encoder(bundle, clip),
    "segmented-images": lambda bundle, config, concepts, clip: segmented_images(bundle),
}


def build_scorer(kind: str, bundle, config, concepts, clip=None):
    """The scorer a method asked for by name."""
    if kind not in SCORERS:
        raise ErasekitError(f"unknown scorer {kind!r}; valid: {', '.join(SCORERS)}")
    return SCORERS[kind](bundle, config, concepts, clip)


def method_scorer(method, bundle, config, concepts, clip=None):
    """The scorer a registered method's run needs with this config (`Method.scorer`), or None."""
    kind = method.scorer(config) if method.scorer is not None else None
    return build_scorer(kind, bundle, config, concepts, clip) if kind else None


def segmented_images(bundle):
    """(concept, n, seed) -> (images in [-1, 1], object masks): MACE's segmented training images (run.scorer). The
    miniature renders them with exact masks; on SD they come from Grounded-SAM, which erasekit does not ship."""
    from erasekit.eval.registries import world_tool

    own = world_tool(bundle, "segments")
    if own is not None:
        return own()
    raise ErasekitError(
        "segmentation masks for MACE exist on the miniature only (erasekit ships no Grounded-SAM): "
        "run MACE with --set masks='' (attention over the whole image, the official "
        "use_gsam_mask: false)"
    )


def _require(path: str | Path | None, what: str, hub_id: str, option: str) -> Path:
    if path is None or not Path(path).is_dir() or not (Path(path) / "config.json").exists():
        raise ErasekitError(
            f"{what} weights not found{f' at {path}' if path else ''}: download {hub_id} on a machine with network "
            f"(huggingface-cli download {hub_id} --local-dir DIR) and pass {option} DIR"
        )
    return Path(path)


def _preprocess(images: torch.Tensor, size: int, mean, std, device) -> torch.Tensor:
    """Resize (shorter side to `size`, bicubic with antialias), centre-crop, normalise, on `device`."""
    images = resize_crop(images.to(device).float().clamp(0, 1), size)
    mean, std = (torch.tensor(v, device=images.device)[:, None, None] for v in (mean, std))
    return (images - mean) / std


class ResNetJudge:
    """ImageNet top-k over all 1000 classes (ESR/PSR compare an Imagenette label's index against it)."""

    def __init__(self, path: str | Path | None, device="cpu"):
        from transformers import ResNetForImageClassification

        path = _require(path, "ResNet-50", "microsoft/resnet-50", "--resnet")
        self.model = ResNetForImageClassification.from_pretrained(str(path)).eval().to(device)
        self.device = device

    @torch.no_grad()
    def probs(self, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
        out = []
        for i in range(0, len(images), batch):
            x = _preprocess(images[i : i + batch], 224, IMAGENET_MEAN, IMAGENET_STD, self.device)
            out.append(self.model(pixel_values=x).logits.softmax(-1).cpu())
        return torch.cat(out)

    @staticmethod
    def label_index(name: str) -> int:
        key = name.strip().lower()
        if key not in IMAGENETTE:
            raise ErasekitError(f"unknown Imagenette class {name!r}; known: {', '.join(IMAGENETTE)}")
        return IMAGENETTE[key]


class NudeNetJudge:
    """Per image, the highest score NudeNet gives each label (a dict label -> score)."""

    def __init__(self):
        try:
            from nudenet import NudeDetector
        except ImportError:
            raise ErasekitError("NudeNet is not installed: pip install 'erasekit[nudity]'") from None
        self.detector = NudeDetector()

    def detect(self, images: torch.Tensor) -> list[dict[str, float]]:
        arr = (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        results = []
        for im in arr:
            best: dict[str, float] = {}
            for det in self.detector.detect(np.ascontiguousarray(im[..., ::-1])):  # NudeNet reads BGR like cv2
                best[det["class"]] = max(best.get(det["class"], 0.0), float(det["score"]))
            results.append(best)
        return results


def _projected(out) -> torch.Tensor:
    """transformers < 5 returns the projected embeddings; >= 5 an output whose pooler_output holds them."""
    return (out if torch.is_tensor(out) else out.pooler_output).cpu()


class ClipJudge:
    """CLIP embeddings of images and texts; `similarity` gives the per-pair cosine used by the CLIP score."""

    def __init__(self, path: str | Path | None, device="cpu"):
        from transformers import CLIPModel, CLIPTokenizer

        path = _require(path, "CLIP", "openai/clip-vit-large-patch14", "--clip")
        self.model = CLIPModel.from_pretrained(str(path)).eval().to(device)
        self.tokenizer = CLIPTokenizer.from_pretrained(str(path))
        self.size = self.model.config.vision_config.image_size
        self.device = device

    @torch.no_grad()
    def image_embeds(self, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
        return torch.cat(
            [
                _projected(
                    self.model.get_image_features(
                        pixel_values=_preprocess(part, self.size, CLIP_MEAN, CLIP_STD, self.device)
                    )
                )
                for part in images.split(batch)
            ]
        )

    @torch.no_grad()
    def text_embeds(self, texts: list[str], batch: int = 256) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), batch):
            ids = self.tokenizer(
                texts[i : i + batch], padding=True, truncation=True, max_length=77, return_tensors="pt"
            ).to(self.device)
            out.append(_projected(self.model.get_text_features(**ids)))
        return torch.cat(out)

    def similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """[B]: the cosine of image i with text i (the CLIP score's pairs)."""
        return F.cosine_similarity(self.image_embeds(images), self.text_embeds(texts), dim=-1)

    def zero_shot(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """[B, T]: CLIP's zero-shot probabilities of each image over the T texts (softmax of 100 × cosine)."""
        image, text = F.normalize(self.image_embeds(images), dim=-1), F.normalize(self.text_embeds(texts), dim=-1)
        return torch.softmax(100 * image @ text.T, dim=1)


def _load_torchscript(path: str | Path | None, what: str, how: str, option: str):
    if path is None or not Path(path).is_file():
        raise ErasekitError(f"{what} not found{f' at {path}' if path else ''}: {how}; pass {option} FILE")
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # not a TorchScript archive
        raise ErasekitError(
            f"cannot load {what} from {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None


class InceptionFeatures:
    """2048-d pool features of the standard FID Inception (TensorFlow 2015-12-05 weights), from the TorchScript
    file StyleGAN2-ADA's metrics use (`inception-2015-12-05.pt`): called on uint8 [B, 3, H, W] images with
    `return_features=True`, it resizes to 299 itself, as TF-FID does."""

    def __init__(self, path: str | Path | None):
        self.model = _load_torchscript(
            path, "the FID Inception network", "download inception-2015-12-05.pt (StyleGAN2-ADA metrics)", "--inception"
        )

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch):
            x = (images[i : i + batch].cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            out.append(self.model(x, return_features=True).float().cpu())
        return torch.cat(out).numpy()


class LpipsJudge:
    """LPIPS distances between paired images from a TorchScript export of `lpips.LPIPS(net="alex")`
    (on a machine with the lpips package: `torch.jit.script(lpips.LPIPS(net="alex")).save("lpips_alex.pt")`).
    Called with two [B, 3, H, W] batches in [-1, 1]; returns [B] distances."""

    def __init__(self, path: str | Path | None):
        self.model = _load_torchscript(
            path, "the LPIPS network", 'export it with torch.jit.script(lpips.LPIPS(net="alex")).save(FILE)', "--lpips"
        )

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor, batch: int = 64) -> torch.Tensor:
        return torch.cat(
            [
                self.model(x.cpu().float() * 2 - 1, y.cpu().float() * 2 - 1).reshape(len(x))
                for x, y in zip(a.split(batch), b.split(batch), strict=True)
            ]
        )


def check_concepts(bundle, texts) -> None:
    """Refuse, before any work, concepts the model's judge knows it has never seen (on the miniature: a word the
    world has not got, which would erase nothing). Other models take any text."""
    from erasekit.eval.registries import world_tool

    check = world_tool(bundle, "check")
    if check is not None:
        check([t for t in texts if t])


def write_random_clip(out: str | Path) -> Path:
    """A small randomly initialised CLIP (32-pixel ViT, the real BPE vocabulary) in the layout `--clip` reads."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from erasekit.core.assets import ASSETS

    layers = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(layers, vocab_size=49408),
        vision_config=dict(layers, image_size=32, patch_size=8),
        projection_dim=8,
    )
    CLIPModel(config).save_pretrained(out)
    CLIPTokenizer.from_pretrained(str(ASSETS / "clip_tokenizer")).save_pretrained(out)
    return Path(out)


def write_random_judges(out: str | Path) -> dict[str, Path]:
    """Randomly initialised judges in the layouts `--resnet` and `--clip` read, for running the real models' path
    (the bench on `tiny`, its tests) where no weights can be downloaded: a ResNet-50 (the real architecture, 25.6M
    parameters) in `out/resnet-50`, and a small CLIP (`write_random_clip`) in `out/clip`. Their figures mean
    nothing; the plumbing they exercise is the real one."""
    from transformers import ResNetConfig, ResNetForImageClassification

    out = Path(out)
    torch.manual_seed(0)
    ResNetForImageClassification(ResNetConfig(num_labels=1000)).save_pretrained(out / "resnet-50")
    return {"resnet": out / "resnet-50", "clip": write_random_clip(out / "clip")}
