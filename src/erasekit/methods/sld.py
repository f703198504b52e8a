"""Safe Latent Diffusion (Schramowski et al., CVPR 2023), and the plain negative prompt: erasure at sampling time.

Neither changes a weight. Each returns a sampler edit (core/sampler.py): the manifest holds the safety concept S
(or the negative prompt) and the guidance settings, `Edit.apply` hands them to the bundle, and every image the
bundle samples afterwards is guided away from S. Exported, the edit is a diffusers `StableDiffusionPipelineSafe`
folder (the negative prompt alone: a `StableDiffusionPipeline` folder) with `sampler.json`, the keyword arguments
its call needs.

- `sld`: `level` picks one of the paper's hyper-parameter sets (weak / medium / strong / max; Dark Miner's Table 1
  uses strong); any `sld_*` setting given overrides the level's. S defaults to the erased concepts, comma-joined;
  `safety_concept=i2p` takes the paper's (and diffusers') default text, written for I2P's categories.
- `negative`: the erased concepts as the negative prompt, which replaces the empty prompt of classifier-free
  guidance: ε̃ = ε(c_neg) + w (ε(c_p) − ε(c_neg)). The floor any sampling-time method must beat.

Families: every one. On the guidance-distilled FLUX-dev, whose guidance is an input of the transformer and which has
no unconditional pass, both add one: "true CFG", ε̃ = ε(c_neg) + s (ε(c_p) − ε(c_neg)) at the sampling settings'
`true_cfg` (4 by default, FluxPipeline's `true_cfg_scale`), and SLD's γ is computed from those two passes and ε(S),
while the guidance the user asks for stays the embedded one. Only SD 1.x/2.x have a stock SLD pipeline; other
families' exports carry `sampler.json` for erasekit alone (a negative prompt replays in any stock pipeline).

Both act only under classifier-free guidance (guidance > 1), as in diffusers. The warm-up counts sampling steps
(7 for strong): the paper's settings assume 50 steps, and with fewer steps the guidance starts at a later fraction
of the trajectory. No preset for the miniature: its settings are the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

from erasekit.core.edit import Edit
from erasekit.core.loop import Run
from erasekit.core.options import Checked, check_choice
from erasekit.core.sampler import SLD_KEYS, SLD_LEVELS, Sampling
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.registry import register
from erasekit.models.bundle import Bundle

I2P_CONCEPT = (
    "an image showing hate, harassment, violence, suffering, humiliation, harm, suicide, sexual, nudity, "
    "bodily fluids, blood, obscene gestures, illegal activity, drug use, theft, vandalism, weapons, child "
    "abuse, brutality, cruelty"
)  # the paper's S (diffusers' StableDiffusionPipelineSafe default)


@dataclass
class SLDConfig(Checked):
    level: str = "strong"  # weak | medium | strong | max
    safety_concept: str = ""  # "" = the erased concepts, comma-joined; "i2p" = the paper's default text
    sld_warmup_steps: int | None = None  # None: the level's
    sld_guidance_scale: float | None = None
    sld_threshold: float | None = None
    sld_momentum_scale: float | None = None
    sld_mom_beta: float | None = None

    def check(self) -> None:
        check_choice(self.level, SLD_LEVELS, "SLD level")

    def settings(self) -> dict:
        """The level's settings with any explicit `sld_*` override."""
        given = {k: getattr(self, k) for k in SLD_KEYS if getattr(self, k) is not None}
        return {**SLD_LEVELS[self.level], **given}


@dataclass
class NegativeConfig(Checked):
    prompt: str = ""  # "" = the erased concepts, comma-joined


def _joined(concepts: ConceptSet) -> str:
    return ", ".join(concepts.erase)


@register(
    "sld",
    "Safe Latent Diffusion: guide sampling away from a safety concept (Schramowski 2023)",
    SLDConfig,
    paper="arXiv:2211.05105",
)
def erase(bundle: Bundle, concepts: ConceptSet, config: SLDConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    concept = {"": _joined(concepts), "i2p": I2P_CONCEPT}.get(config.safety_concept, config.safety_concept)
    sampling = Sampling(safety_concept=concept, **config.settings())
    return Edit.from_changes(bundle, {}, "sld", config, concepts.as_dict(), kind="sampler", sampling=sampling.as_dict())


@register(
    "negative", "Negative prompt: the erased concepts replace the empty prompt of guidance (the floor)", NegativeConfig
)
def erase_negative(bundle: Bundle, concepts: ConceptSet, config: NegativeConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    sampling = Sampling(negative_prompt=config.prompt.strip() or _joined(concepts))
    return Edit.from_changes(
        bundle, {}, "negative", config, concepts.as_dict(), kind="sampler", sampling=sampling.as_dict()
    )
