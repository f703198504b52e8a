"""Dark Miner (DM2; Meng et al., "Dark Miner: Defend against undesired generation for text-to-image diffusion
models", arXiv:2409.17682): loop mining → verifying → circumventing until the embedding that best brings the
concept back no longer does (Sec. 3.2, Fig. 1).

Only LoRA adapters train (rank 8 on `to_v` of every attention module, through peft). θ' is the frozen base (the
`teacher`), θ = θ' + adapters the `student`. Families: every one. On SD3 and FLUX `to_v` is the image stream's value
projection of every joint and single block (`add_v_proj`, the text stream's, may be named too); c mines the
conditioning's per-token states, and a family's pooled vector stays the starting prompt's.

1. Mining (Eq. 5): c, `tokens` free vectors in the text encoder's output space, minimises the student's
   denoising error on k images drawn from the image pool P_I (the teacher's images of "a * photo"):
       L_M = E_{x ∈ P_I,k, t, ε} ||ε − ε_θ(x_t | c, t)||².
   The student is frozen here. Each verified c joins the embedding pool P_E.
2. Verifying (Eq. 6): s(c) = 1/k Σ_{x_e ∈ P_I,k} cos(Enc(x_c) − Enc(x_r), Enc(x_e) − Enc(x_r)), x_c the student's
   image of c, x_r its image of c0 = "a photo" (same seed). DM2 ends when s(c) ≤ τ. Enc is the caller's
   (`run.scorer`): CLIP's image encoder on SD, the world judge's features on the miniature.
3. Circumventing (Eqs. 7-8): c is the newest embedding with probability r, else an earlier one of P_E, and
       l_c = ||ε_θ(x_t | t, c) − ε_θ'(x_t | t, c0)||²
       l_p = Σ_{c' ∈ {c0, 0·c, −c}} ||ε_θ(x_t | t, c') − ε_θ'(x_t | t, c')||²
       L_C = α_c l_c + α_p l_p,   SGD,
   x the teacher's images of c, noised to a uniform t.

Where the paper is silent, this module chooses (and says so): c starts from the encoding of a pool prompt (its
first `tokens` vectors); mining uses Adam (`mine_optimizer`); an L-vector c is sampled with classifier-free
guidance against the empty prompt's first L vectors (the text encoder is causal: they are the encoding of its first
L tokens); the teacher's `circ_images` images of each c are generated once, when c is mined.

Defaults are the paper's appendix for SD (the image pool's size is not given: 200 here); `MINI` is the
miniature's. Resume: each stage of each loop checkpoints under its own prefix (`loop003-mine-`) and each finished
verification is kept in record/loops.json, so a killed run replays finished stages from their checkpoints and
continues the current one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from erasekit.core.conditioning import Conditioning
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.files import write_text
from erasekit.core.images import thumbnails
from erasekit.core.loop import RECORD, Run, step_generator, train
from erasekit.core.options import at_least, check_choice
from erasekit.methods.concepts import ConceptSet, expand
from erasekit.methods.latents import LatentPool
from erasekit.methods.loop import MemoryOptions, autocast_dtype, check_precision, checkpointing, guard
from erasekit.methods.registry import register
from erasekit.models.bundle import Bundle
from erasekit.models.lora import add_adapters, lora_tensors

ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


@dataclass
class DarkMinerConfig(MemoryOptions):
    rank: int = at_least(1, 8)
    modules: tuple = ("to_v",)  # the attention projections that get adapters (the paper's Table S6: to_v)
    max_loops: int = at_least(1, 100)
    tau: float = 0.2  # τ: verification threshold (Eq. 6)
    anchor: str = "a photo"  # c0
    templates: tuple = ("a {} photo",)  # the image pool's prompts ("a * photo", appendix)
    pool_size: int = at_least(1, 200)  # images in P_I
    k: int = at_least(1, 3)  # images per mining stage (and mining batch)
    tokens: int = at_least(1, 32)  # length of c
    mine_iterations: int = at_least(1, 1000)
    mine_lr: float = 0.1
    mine_decay_at: int = at_least(0, 500)  # lr × decay from this step
    mine_grad_clip: float = at_least(0.0, 10.0)
    mine_optimizer: str = "adam"
    circ_iterations: int = at_least(1, 1000)
    circ_lr: float = 0.01
    circ_decay_at: int = at_least(0, 800)
    circ_grad_clip: float = at_least(0.0, 100.0)
    circ_batch: int = at_least(1, 1)
    circ_images: int = at_least(1, 16)  # the teacher's images of each c, that x_t is drawn from
    r: float = 0.7  # probability of circumventing the newest c
    alpha_c: float = 1.0
    alpha_p: float = 0.5
    decay: float = 0.1  # the learning rates' factor at mine_decay_at / circ_decay_at
    steps: int = at_least(1, 50)  # DDIM steps of every image the method generates
    guidance: float = 7.5
    vocab: str = ""  # words to name c by in the log (nearest in output space): a vocabulary, or "" (the tokenizer's)
    checkpoint_every: int = at_least(1, 50)
    seed: int = 0

    OPTIONS = ("gradient_checkpointing", "precision", "memory_limit_gb")
    WHY_NOT = (
        "its optimizers keep almost no state (SGD on the adapters, Adam on one embedding), and its teacher shares "
        "every frozen weight with the student"
    )

    def grad_batch(self) -> int:  # mining passes k images; circumventing 4 batches (c, 0·c, −c, c0)
        return max(self.k, 4 * self.circ_batch)

    def trained_count(self, bundle: Bundle, group: str) -> int:  # the adapters: rank × (in + out) per projection
        return sum(
            self.rank * (m.in_features + m.out_features)
            for name, m in bundle.denoiser.named_modules()
            if isinstance(m, torch.nn.Linear) and any(name.endswith(f".{p}") for p in self.modules)
        )

    def check(self) -> None:
        super().check()
        if not -1 < self.tau < 1:
            raise ErasekitError(f"tau must lie in (-1, 1) (s(c) is a mean of cosines), got {self.tau}")
        if not 0 <= self.r <= 1:
            raise ErasekitError(f"r must be a probability in [0, 1], got {self.r}")
        for name in ("mine_lr", "circ_lr", "decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ErasekitError(f"{name} must be a positive finite number, got {value}")
        unknown = [m for m in self.modules if m not in ATTENTION_PROJECTIONS]
        if not self.modules or unknown:
            raise ErasekitError(
                f"modules must name attention projections ({', '.join(ATTENTION_PROJECTIONS)}), "
                f"got {', '.join(self.modules) or 'none'}"
            )
        check_choice(self.mine_optimizer, OPTIMIZERS, "mining optimizer")


MINI = {
    "max_loops": 48,
    "pool_size": 32,
    "tokens": 8,
    "mine_iterations": 60,
    "mine_decay_at": 40,
    "circ_iterations": 100,
    "circ_decay_at": 80,
    "circ_lr": 1.0,
    "circ_batch": 4,
    "circ_images": 8,
    "steps": 10,
    "guidance": 5.0,
    "vocab": "world",
    "checkpoint_every": 20,
}


def word_table(bundle: Bundle, vocab: str) -> tuple[list[str], torch.Tensor]:
    """Whole words and their output-space vectors (each word alone: its own position, `Bundle.word_states`)."""
    from erasekit.attacks.goal import candidate_ids
    from erasekit.models.words import decode

    ids = candidate_ids(bundle, vocab)
    return [decode(bundle, i[None]) for i in ids], bundle.word_states(ids)


def nearest_words(c: Conditioning, words: list[str], table: torch.Tensor) -> str:
    """The vocabulary word nearest (cosine) to each vector of c: what the mined embedding reads as."""
    sim = F.normalize(c.tokens.detach()[0].float(), dim=-1) @ F.normalize(table.float(), dim=-1).T
    return " ".join(words[i] for i in sim.argmax(-1).tolist())


@register(
    "darkminer",
    "Dark Miner: loop mine -> verify -> circumvent with LoRA on to_v until the mined embedding "
    "no longer brings the concept back (Meng 2024)",
    DarkMinerConfig,
    paper="arXiv:2409.17682",
    presets={"mini": MINI},
    scorer=lambda config: "image-features",
)
def erase(bundle: Bundle, concepts: ConceptSet, config: DarkMinerConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    if run.scorer is None:
        raise ErasekitError("Dark Miner verifies mined embeddings with an image encoder (Eq. 6): pass run.scorer")
    check_precision(bundle, config)
    guard(bundle, "full", config)  # every block's activations: gradients reach c, or every to_v's adapter
    teacher, student = bundle, bundle.clone((bundle.DENOISER,), changes=lambda name: False)  # LoRA adds: shared
    layers = add_adapters(student, config.rank, list(config.modules), config.seed)
    if config.gradient_checkpointing:
        checkpointing(student)
    adapters = [p for layer in layers.values() for p in layer.parameters() if p.requires_grad]
    prompts = expand(concepts.erase, config.templates)
    with torch.no_grad():
        c_0 = bundle.encode_prompts([config.anchor])
        empty = bundle.unconditional().first(config.tokens)
        starts = bundle.encode_prompts(prompts).first(config.tokens)
        P_I = torch.cat(
            [
                LatentPool(
                    teacher,
                    bundle.encode_prompts([p]),
                    n,
                    seed=config.seed + 7919 * i,
                    steps=config.steps,
                    guidance=config.guidance,
                ).z0
                for i, (p, n) in enumerate(_shares(prompts, config.pool_size))
            ]
        )
    words, table = word_table(bundle, config.vocab)
    record = _Record(run)
    P_E, x_pools, loops = [], [], []
    for loop in range(config.max_loops):
        pick = torch.randperm(len(P_I), generator=step_generator(config.seed, loop, 11))[: config.k]
        x_e = P_I[pick]
        started = time.perf_counter()
        for p in adapters:
            p.requires_grad_(False)
        c, mine_rows = mine(student, x_e, starts[loop % len(starts)], config, run, loop)
        mined = time.perf_counter()
        seeds = [config.seed + 100_003 * (loop + 1) + j for j in range(config.k)]
        done = record.loop(loop)
        if done is None:
            s_c, x_c = verify(student, c, x_e, c_0, empty, seeds, config, run.scorer)
            record.keep(f"loop{loop:03d}.before", x_c)
        else:
            s_c = done["s"]
        verified = time.perf_counter()
        row = {
            "loop": loop,
            "s": s_c,
            "mine_loss": mine_rows[-1]["loss"] if mine_rows else None,
            "nearest": nearest_words(c, words, table),
        }
        if s_c <= config.tau:
            loops.append({**row, "stopped": True, "seconds": {"mine": mined - started, "verify": verified - mined}})
            record.save(loops, P_E)
            break
        P_E.append(c)
        with torch.no_grad():
            x_pools.append(
                LatentPool(
                    teacher,
                    c,
                    config.circ_images,
                    seed=seeds[0],
                    steps=config.steps,
                    guidance=config.guidance,
                    uncond=empty,
                )
            )
        for p in adapters:
            p.requires_grad_(True)
        circ_rows = circumvent(student, teacher, P_E, x_pools, c_0, adapters, config, run, loop)
        ended = time.perf_counter()
        if done is None:
            with torch.no_grad():
                record.keep(f"loop{loop:03d}.after", _images(student, c, empty, seeds, config))
        loops.append(
            done
            or {
                **row,
                "circ_loss": circ_rows[-1]["loss"] if circ_rows else None,
                "l_c": circ_rows[-1].get("l_c") if circ_rows else None,
                "seconds": {"mine": mined - started, "verify": verified - mined, "circumvent": ended - verified},
            }
        )
        record.save(loops, P_E)
    edit = Edit.from_changes(
        bundle, lora_tensors(student, layers), "darkminer", config, concepts.as_dict(), kind="lora"
    )
    edit.metrics.update(
        {
            "loops": len(P_E),
            "stopped_by": "verification" if loops and loops[-1].get("stopped") else "max_loops",
            "s": [row["s"] for row in loops],
        }
    )
    return edit


def mine(
    student: Bundle, x_e: torch.Tensor, start: Conditioning, config: DarkMinerConfig, run: Run, loop: int
) -> tuple[Conditioning, list[dict]]:
    """Eq. 5: the embedding c (per-token states [1, tokens, D]) whose conditioning best denoises the k pool images.
    A family's pooled vector, where it has one, stays the starting prompt's: c is what the per-token states mine."""
    c = torch.nn.Parameter(start.tokens.detach().clone())

    def sched(step: int) -> float:
        return config.mine_lr * (config.decay if step >= config.mine_decay_at else 1.0)

    def loss_fn(step: int):
        gen = step_generator(config.seed, step, 2 * loop)
        t = student.train_timesteps(len(x_e), gen)
        eps = torch.randn(x_e.shape, generator=gen).to(x_e.device, x_e.dtype)
        x_t = student.add_noise(x_e, eps, t)
        return F.mse_loss(student.eps(x_t, t, start.with_tokens(c).expand(len(x_e))), eps)  # L_M

    rows = train(
        f"mine {loop}",
        loss_fn,
        [c],
        config.mine_iterations,
        config.mine_lr,
        run,
        config.mine_grad_clip,
        config.checkpoint_every,
        prefix=f"loop{loop:03d}-mine-",
        optimizer=OPTIMIZERS[config.mine_optimizer],
        lr_at=sched,
        precision=autocast_dtype(student, config),
    )
    return start.with_tokens(c.detach()).detach(), rows


def verify(
    student: Bundle,
    c: Conditioning,
    x_e: torch.Tensor,
    c_0: Conditioning,
    empty: Conditioning,
    seeds: list[int],
    config: DarkMinerConfig,
    enc,
) -> tuple[float, torch.Tensor]:
    """Eq. 6: s(c), and the student's images x_c of c."""
    with torch.no_grad():
        x_c = _images(student, c, empty, seeds, config)
        x_r = student.generate(None, seeds, steps=config.steps, guidance=config.guidance, cond=c_0.expand(len(seeds)))
        images_e = (student.decode_latents(x_e).float() + 1) / 2
        f_c, f_r, f_e = (torch.as_tensor(enc(x)).float() for x in (x_c, x_r, images_e))
    s_c = float(F.cosine_similarity(f_c - f_r, f_e - f_r, dim=-1).mean())
    if not math.isfinite(s_c):
        raise ErasekitError(f"the verifier's score s(c) is {s_c}: the image encoder returned non-finite features")
    return s_c, x_c


def circumvent(
    student: Bundle,
    teacher: Bundle,
    P_E: list[Conditioning],
    x_pools: list[LatentPool],
    c_0: Conditioning,
    adapters: list[torch.nn.Parameter],
    config: DarkMinerConfig,
    run: Run,
    loop: int,
) -> list[dict]:
    """Eqs. 7-8 on the adapters: the newest c (probability r) or an earlier one is sent to c0's prediction, while
    c0, 0·c and −c keep the teacher's."""

    def sched(step: int) -> float:
        return config.circ_lr * (config.decay if step >= config.circ_decay_at else 1.0)

    def loss_fn(step: int):
        gen = step_generator(config.seed, step, 2 * loop + 1)
        newest = len(P_E) - 1
        earlier = newest > 0 and float(torch.rand((), generator=gen)) >= config.r
        j = int(torch.randint(0, newest, (1,), generator=gen)) if earlier else newest
        x_t, t, _ = x_pools[j].draw(gen, config.circ_batch)
        b, c = len(x_t), P_E[j]
        probes = Conditioning.cat([c, c.scaled(0.0), c.scaled(-1.0)]).repeat_interleave(b)  # c, 0·c, −c per x_t
        x3, t3, c0_b = x_t.repeat(3, 1, 1, 1), t.repeat(3), c_0.expand(b)
        on_c, on_zero, on_neg = student.eps(x3, t3, probes).chunk(3)
        on_c0 = student.eps(x_t, t, c0_b)
        with torch.no_grad():
            target_c0 = teacher.eps(x_t, t, c0_b)
            target_zero, target_neg = teacher.eps(x3[b:], t3[b:], probes[b:]).chunk(2)
        l_c = F.mse_loss(on_c, target_c0)  # Eq. 7
        l_p = F.mse_loss(on_c0, target_c0) + F.mse_loss(on_zero, target_zero) + F.mse_loss(on_neg, target_neg)
        return config.alpha_c * l_c + config.alpha_p * l_p, {"l_c": l_c.item(), "l_p": l_p.item(), "c": j}

    return train(
        f"circumvent {loop}",
        loss_fn,
        adapters,
        config.circ_iterations,
        config.circ_lr,
        run,
        config.circ_grad_clip,
        config.checkpoint_every,
        prefix=f"loop{loop:03d}-circ-",
        optimizer=OPTIMIZERS["sgd"],
        lr_at=sched,
        precision=autocast_dtype(student, config),
    )


def _images(model: Bundle, c: Conditioning, empty: Conditioning, seeds: list[int], config) -> torch.Tensor:
    """Images in [0, 1] of the embedding c, guided against the empty prompt's vectors of c's length."""
    n = len(seeds)
    out = model.sample(c.expand(n), seeds, steps=config.steps, guidance=config.guidance, uncond=empty.expand(n))
    return (out.float() + 1) / 2


def _shares(prompts: list[str], total: int) -> list[tuple[str, int]]:
    """`total` pool images split over the prompts as evenly as possible (prompts left with none are dropped)."""
    each, extra = divmod(total, len(prompts))
    shares = [(p, each + (i < extra)) for i, p in enumerate(prompts)]
    return [(p, n) for p, n in shares if n > 0]


RECORD_SIDE = 64  # pixels: the largest images record/images.safetensors keeps (the report shows them at 64)


class _Record:
    """record/ in the work folder: loops.json (one row per finished loop), the embedding pool P_E and each loop's
    images of c before and after its circumvention (what the report shows). Without a work folder: memory only."""

    def __init__(self, run: Run):
        self.folder = run.work / RECORD if run.work is not None else None
        self.before: list[dict] = []
        self.images: dict[str, torch.Tensor] = {}
        if self.folder is not None and run.resume and (self.folder / "loops.json").is_file():
            from safetensors.torch import load_file

            self.before = json.loads((self.folder / "loops.json").read_text())
            if (self.folder / "images.safetensors").is_file():
                self.images = dict(load_file(str(self.folder / "images.safetensors")))

    def keep(self, key: str, images: torch.Tensor) -> None:
        """Images in [0, 1], kept as uint8 (as they are saved), at most `RECORD_SIDE` pixels high: the file is
        rewritten after every loop, and a real model's 512 px images would make that 5 MB more each time."""
        if images.shape[-1] > RECORD_SIDE:
            images = thumbnails(images, RECORD_SIDE)
        self.images[key] = (images.cpu() * 255).round().to(torch.uint8).contiguous()

    def loop(self, loop: int) -> dict | None:
        """The row of `loop` if it finished before a resume."""
        return next((row for row in self.before if row["loop"] == loop), None)

    def save(self, loops: list[dict], P_E: list[torch.Tensor]) -> None:
        if self.folder is None:
            return
        from safetensors.torch import save_file

        from erasekit.core.files import atomic_path

        self.folder.mkdir(parents=True, exist_ok=True)
        write_text(self.folder / "loops.json", json.dumps(loops, indent=1))
        with atomic_path(self.folder / "images.safetensors") as tmp:
            save_file(self.images, str(tmp))
        if P_E:
            with atomic_path(self.folder / "embeddings.safetensors") as tmp:
                save_file({f"c{j:03d}": c.tokens[0].contiguous() for j, c in enumerate(P_E)}, str(tmp))
