"""The memory options of the fine-tuning loop and its memory guard (issue 35), on the tiny random SD-1 model.

Each option is checked against the plain fp32 run: gradient checkpointing recomputes the same numbers (equal), bf16
and fp16 autocast and a model loaded in half precision move the trained weights' update by a small fraction of the
update itself. The guard's activation count is checked against what a real backward pass keeps, and its refusals
are one line. The ESR/PSR check at n = 32 on the miniature is `-m slow` (and benchmarks/memory_options.py).
"""

import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from erasekit.cli import main
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.loop import MemoryOptions, estimate, student
from erasekit.models import memory
from erasekit.models.load import load_bundle

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def tiny():
    return load_bundle("tiny")


def esd(bundle, method="esd", **values):
    spec = registry.get(method)
    small = {k: v for k, v in {"iterations": 4, "ddim_steps": 2, "batch": 2}.items() if hasattr(spec.config, k)}
    config = registry.build_config(spec, values={**small, **values}, preset=bundle.preset)
    return spec.erase(bundle, ConceptSet(["a cat"]), config, Run(progress=False))


def update_error(edit, reference, base) -> float:
    """How far `edit` moves the model's prediction for the erased concept from where `reference` moves it, as a
    share of the reference's own move: ||ε' − ε_ref|| / ||ε_ref − ε_base|| on fixed noise (Adam's first steps are
    ±lr per weight, so weights that barely matter flip with float noise; the prediction is what must agree)."""
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(4, *base.latent_shape, generator=generator).to(base.device)
    t, cond = torch.tensor([100, 300, 600, 900], device=base.device), base.encode_prompts(["a cat"] * 4)
    fp32 = base if base.dtype == torch.float32 else load_bundle("tiny", device=base.device)
    with torch.no_grad():
        eps_base, eps_ref, eps = (m.eps(z, t, cond).float() for m in (fp32, reference.apply(fp32), edit.apply(fp32)))
    return float((eps - eps_ref).norm() / (eps_ref - eps_base).norm())


@pytest.fixture(scope="module")
def fp32(tiny):
    return esd(tiny)


def test_gradient_checkpointing_gives_the_same_weights(tiny, fp32):
    assert update_error(esd(tiny, gradient_checkpointing=True), fp32, tiny) == 0.0


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_moves_the_update_by_a_small_fraction(tiny, fp32, precision):
    edit = esd(tiny, precision=precision)
    assert all(t.dtype == torch.float32 for t in edit.tensors.values())  # the masters stay fp32
    assert 0.0 < update_error(edit, fp32, tiny) < 0.1  # ran in half precision, and close


def test_a_half_precision_model_trains_fp32_masters_of_its_group_only(tiny, fp32):
    half = load_bundle("tiny", dtype="bf16")
    model, params = student(half, "xattn", MemoryOptions())
    assert all(p.dtype == torch.float32 for p in params.values()) and params.autocast == torch.bfloat16
    frozen = [p for n, p in model.denoiser.named_parameters() if n not in params]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    # the trained group starts from bf16-rounded weights: a 20-step update is large enough to dwarf the rounding
    assert update_error(esd(half, iterations=20), esd(tiny, iterations=20), half) < 0.2
    with pytest.raises(ErasekitError, match="precision=fp32 needs the model in fp32"):
        esd(half, precision="fp32")


def test_every_fine_tuning_method_takes_the_options(tiny):
    for method, values in (("target", {}), ("fmn", {"pool_size": 2}), ("ca", {"pool_size": 2})):
        edit = esd(tiny, method, precision="bf16", gradient_checkpointing=True, **values)
        assert edit.tensors


@pytest.mark.skipif(CUDA, reason="the refusals of a CPU-only machine")
def test_cuda_only_options_are_refused_in_one_line_before_any_work(tiny):
    with pytest.raises(ErasekitError, match="8-bit optimizers .* run on CUDA only"):
        esd(tiny, optimizer_bits=8)
    with pytest.raises(ErasekitError, match="offload_teacher .* already on the CPU"):
        esd(tiny, offload_teacher=True)


def test_unknown_option_values_are_refused(tiny):
    for values, text in (({"precision": "fp8"}, "unknown precision"), ({"optimizer_bits": 4}, "optimizer_bits")):
        with pytest.raises(ErasekitError, match=text):
            esd(tiny, **values)


def test_an_option_a_method_does_not_take_is_refused_and_left_off_its_page():
    from erasekit.methods.mace import MACEConfig
    from erasekit.methods.salun import SalUnConfig

    with pytest.raises(ErasekitError, match="MACE does not take memory_limit_gb: its LoRAs"):
        MACEConfig(memory_limit_gb=4.0).check()
    with pytest.raises(ErasekitError, match="SalUn does not take offload_teacher: it keeps no frozen teacher"):
        SalUnConfig(offload_teacher=True).check()
    docs = str(Path(__file__).parents[1] / "docs")
    sys.path.insert(0, docs)
    try:
        import gen
    finally:
        sys.path.remove(docs)
    table = gen.options_table(registry.get("mace"))
    assert "`precision`" in table and "`memory_limit_gb`" not in table and "`offload_teacher`" not in table


def test_the_meta_trace_counts_what_a_real_backward_keeps(tiny):
    """The estimate's activations against the bytes a real forward pass saves for backward, on the CPU kernels."""
    model, params = student(tiny, "xattn")
    weights = {id(p) for p in model.denoiser.parameters()}
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        if id(t) not in weights and id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
        return t

    z = torch.randn(3, *tiny.latent_shape)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.model_output(z, torch.full((3,), 500), tiny.unconditional(3))
    counted = memory.activation_bytes(tiny, "xattn", 3, torch.float32, checkpointing=False)
    assert abs(counted - total) / total < 0.05, (counted, total)
    assert memory.activation_bytes(tiny, "xattn", 3, torch.float32, checkpointing=True) < counted
    assert memory.activation_bytes(tiny, "xattn", 3, torch.bfloat16, checkpointing=False) < 0.6 * counted


def test_the_guard_refuses_in_one_line_naming_the_options(tiny):
    with pytest.raises(ErasekitError) as e:
        esd(tiny, memory_limit_gb=0.001)
    text = str(e.value)
    assert (
        "\n" not in text and "at peak on cpu" in text and "does not fit even with gradient_checkpointing=true" in text
    )


def test_the_guard_names_the_fewest_options_that_fit(tiny):
    spec = registry.get("esd")
    config = registry.build_config(spec, values={"batch": 64}, preset=tiny.preset)
    plain = estimate(tiny, "xattn", config)
    checkpointed = estimate(tiny, "xattn", replace(config, gradient_checkpointing=True))
    assert checkpointed.activations < plain.activations / 2
    limit = (plain.peak + checkpointed.peak) / 2 / 1e9
    with pytest.raises(ErasekitError, match="it would fit with gradient_checkpointing=true;"):
        student(tiny, "xattn", replace(config, memory_limit_gb=limit))
    student(tiny, "xattn", replace(config, memory_limit_gb=limit, gradient_checkpointing=True))  # fits


def test_the_cli_refuses_with_exit_2(tmp_path):
    result = CliRunner().invoke(
        main,
        ["erase", "--model", "tiny", "--method", "esd", "--erase", "cat", "--set", "memory_limit_gb=0.001"]
        + ["--out", str(tmp_path / "edit")],
    )
    assert result.exit_code == 2, result.output
    assert "at peak" in result.output and not (tmp_path / "edit").exists()


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_offloaded_teacher_gives_the_same_weights_on_cuda():
    bundle = load_bundle("tiny", device="cuda")
    reference = esd(bundle)
    assert update_error(esd(bundle, offload_teacher=True), reference, bundle) == 0.0
    assert all(p.device.type == "cuda" for p in bundle.denoiser.parameters())  # put back


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device and bitsandbytes")
def test_eight_bit_adam_stays_close_on_cuda():
    pytest.importorskip("bitsandbytes")
    bundle = load_bundle("tiny", device="cuda")
    assert update_error(esd(bundle, optimizer_bits=8), esd(bundle), bundle) < 0.2


@pytest.mark.slow
def test_the_options_leave_esr_and_psr_on_the_miniature_inside_the_sampling_noise():
    """ESD erases `star` on the miniature with each CPU option; at n = 32 images per prompt both rates' intervals
    overlap the fp32 run's, and fewer images change than another training seed changes (benchmarks/memory_options.py;
    it adds fp16 and the two together)."""
    folder = str(Path(__file__).parents[1] / "benchmarks")
    sys.path.insert(0, folder)
    try:
        import memory_options
    finally:
        sys.path.remove(folder)
    rows = memory_options.run(["esd"], ["ckpt", "bf16", "half", "seed1"], 32)["esd"]
    assert rows["ckpt"]["flipped"] == 0  # recomputation: the same weights, the same images
    for option, row in rows.items():  # no difference n images can show, and no more images moved than a new seed moves
        assert row["esr_n"] >= 32 and row["agrees"], (option, row["delta"])
        assert row["flipped"] <= rows["seed1"]["flipped"], (option, row["flipped"], rows["seed1"]["flipped"])


def test_the_estimate_counts_autocast_copies_and_what_the_method_keeps(tiny):
    """Autocast keeps a half copy of every fp32 master for the step, and SalUn a saliency mask byte per weight: a
    whole-UNet run that was estimated without them was killed for memory at SD-1.x's size (docs/scale.md)."""
    from erasekit.models.groups import select

    spec = registry.get("salun")
    config = registry.build_config(spec, values={"batch": 1}, preset=tiny.preset)
    n = sum(p.numel() for p in select(tiny.denoiser, config.group)[1])
    fp32, bf16 = estimate(tiny, config.group, config), estimate(tiny, config.group, replace(config, precision="bf16"))
    assert fp32.casts == 0 and bf16.casts == 2 * n and fp32.method == bf16.method == n
    assert bf16.peak - bf16.activations == fp32.peak - fp32.activations + 2 * n + (bf16.now - fp32.now)
    esd_config = registry.build_config(registry.get("esd"), preset=tiny.preset)
    assert estimate(tiny, "xattn", esd_config).method == 0


def test_a_cpu_run_may_use_what_the_machine_has_available():
    cpu = torch.device("cpu")
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory.resident_bytes(cpu) < memory.capacity_bytes(cpu) <= physical + memory.resident_bytes(cpu)
