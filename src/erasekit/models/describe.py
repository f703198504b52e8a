"""What `erasekit info` says about a model: its family, sizes, text encoders, parameters per component and per
group, and the attention layers where text meets image."""

from __future__ import annotations

from erasekit.core.errors import ErasekitError
from erasekit.models.bundle import Bundle
from erasekit.models.groups import cross_attention_layers, groups_of, select


def describe(bundle: Bundle) -> list[str]:
    denoiser = bundle.denoiser
    h = bundle.image_size
    lines = [
        f"source        {bundle.source}",
        f"family        {bundle.family}  ({bundle.scale}; {type(denoiser).__name__}, {type(bundle.vae).__name__}, "
        f"stock pipeline {bundle.PIPELINE})",
        f"device/dtype  {bundle.device} / {str(bundle.dtype).replace('torch.', '')}",
        f"fingerprint   {bundle.fingerprint()}",
        f"image         {h}x{h}  latent {'x'.join(map(str, bundle.latent_shape))}  conditioning "
        f"{bundle.conditioning_width}-d",
        f"prediction    {bundle.PREDICTS if bundle.PREDICTS != 'eps' else bundle.scheduler.config.prediction_type}"
        f"  ({type(bundle.scheduler).__name__})",
        "text encoders",
    ]
    for text in bundle.texts:
        main = "  (main)" if text.name == bundle.text.name else ""
        lines.append(
            f"  {text.name:<16}{type(text.module).__name__}: text {text.width}-d, vocab "
            f"{text.vocabulary_size}, {text.max_length} tokens, {text.spec.layer} layer"
            f"{', pooled' if text.spec.pooled else ''}{main}"
        )
    lines.append("parameters")
    for name, module in bundle.modules.items():
        lines.append(f"  {name:<13}{sum(p.numel() for p in module.parameters()):>14,}")
    lines.append(f"{type(denoiser).__name__} parameter groups")
    for group, (desc, _) in groups_of(denoiser).items():
        n = (
            sum(p.numel() for p in denoiser.parameters())
            if group == "full"
            else sum(p.numel() for p in _members(denoiser, group))
        )
        lines.append(f"  {group:<13}{n:>14,}  {desc}")
    layers = cross_attention_layers(denoiser)
    kind = "joint attention" if bundle.DENOISER == "transformer" else "cross-attention"
    lines.append(f"{kind} layers ({len(layers)})")
    for name, module in layers:
        k = module.add_k_proj if bundle.DENOISER == "transformer" else module.to_k
        what = "add_k/add_v" if bundle.DENOISER == "transformer" else "to_k/to_v"
        lines.append(f"  {name:<52} {what} {k.in_features} -> {k.out_features}")
    return lines


def _members(denoiser, group: str):
    try:
        return select(denoiser, group)[1]
    except ErasekitError:  # a group this model has nothing of (SD3 has no single blocks)
        return []
