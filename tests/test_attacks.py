"""Attacks (issue 12): what core gives them (learned words, token slots, embeddings as input, the trajectory), each
attack's algorithm on small settings, resume, ASR with its intervals, the command line and its bad inputs."""

import json

import numpy as np
import pytest
import torch

from erasekit.attacks import registry
from erasekit.attacks.goal import AdversarialPrompt, AttackResult, Goal
from erasekit.core.edit import Edit, load_embedding
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.models import words as T
from erasekit.models.export import export
from erasekit.models.load import load_bundle
from test_user_facing import assert_one_line_error as one_line_error
from test_user_facing import run as run_cli


@pytest.fixture(scope="module")
def mini():
    return load_bundle("mini")


def width(bundle):
    return bundle.modules["text_encoder"].get_input_embeddings().weight.shape[1]


# ---- core: words, slots, embeddings, trajectory --------------------------------------------------------------


def test_a_learned_word_of_two_vectors_conditions_as_the_vectors_typed_in_place(tiny):
    v = torch.randn(2, width(tiny))
    spelled = T.add_tokens(tiny, {"<w>": v})
    ids, slots = T.slotted(tiny, "a", prefix=0)
    ids = torch.cat([ids[:2], ids[1:2], ids[1:2], ids[2:-2]])  # [bos, a, _, _, eos, ...]
    by_hand = tiny.encode_embeddings(T.splice(tiny, ids, [2, 3], v), ids[None])
    assert torch.allclose(spelled.encode_prompts(["a <w>"]).tokens, by_hand.tokens, atol=1e-5)
    assert "<w>" not in tiny.text.tokenizer.get_vocab()  # the given bundle is left as it was


def test_slots_filled_with_the_prompts_own_tokens_give_the_texts_conditioning(tiny):
    ids, slots = T.slotted(tiny, "a cat on a mat", prefix=2, every=2)
    assert slots[:2] == [1, 2] and len(slots) == 2 + 2
    plain = tiny.tokenize(["dog dog a cat on a mat"])[0]
    word = plain[1]
    embeds = T.splice(tiny, ids, slots[:2], tiny.text.token_embeddings(word.repeat(2)))
    ids2, _ = T.slotted(tiny, "a cat on a mat", prefix=2)
    spliced = T.splice(tiny, ids2, [1, 2], tiny.text.token_embeddings(word.repeat(2)))
    assert torch.allclose(
        tiny.encode_embeddings(spliced, ids2[None]).tokens,
        tiny.encode_prompts(["dog dog a cat on a mat"]).tokens,
        atol=1e-5,
    )
    assert embeds.shape == (1, 77, width(tiny))


def test_generation_from_embeddings_and_the_trajectory_match_the_text_path(tiny):
    cond = tiny.encode_prompts(["a cat"])
    assert torch.equal(tiny.generate(None, [3], steps=3, cond=cond), tiny.generate(["a cat"], [3], steps=3))
    timesteps, z = tiny.trajectory(cond, [3], steps=3)
    assert len(timesteps) == 3 and z.shape[0] == 4
    assert torch.equal(z[-1], tiny.sample(cond, [3], steps=3, decode=False))


def test_a_token_edit_exports_a_file_stock_diffusers_loads_to_the_same_conditioning(tiny, tmp_path):
    v = torch.randn(2, width(tiny))
    edit = Edit.from_changes(tiny, {"<cat*>": v}, "inversion", {}, {"concept": "cat"}, kind="tokens")
    edit.save(tmp_path / "emb")
    loaded = Edit.load(tmp_path / "emb")
    export(loaded, None, tmp_path / "learned.safetensors", format="textual-inversion")
    pipe = tiny.clone(("text_encoder",)).to_pipeline()
    import copy

    pipe.tokenizer = copy.deepcopy(tiny.text.tokenizer)
    pipe.load_textual_inversion(str(tmp_path / "learned.safetensors"))
    stock = pipe.encode_prompt("a <cat*>", "cpu", 1, False)[0]
    ours = loaded.apply(tiny).encode_prompts(["a <cat*>"]).tokens
    assert torch.allclose(stock, ours, atol=1e-5)
    replay = load_embedding(tmp_path / "learned.safetensors").apply(tiny).encode_prompts(["a <cat*>"]).tokens
    assert torch.allclose(replay, ours, atol=1e-6)


def test_an_embedding_for_another_text_encoder_is_refused(tiny, tmp_path):
    from safetensors.torch import save_file

    save_file({"<x>": torch.zeros(1, width(tiny) + 8)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ErasekitError, match="learned for another text encoder"):
        load_embedding(tmp_path / "other.safetensors").apply(tiny)


# ---- the attacks ---------------------------------------------------------------------------------------------


def star_goal(bundle, detect=None, prompts=("a star",), **kw):
    from erasekit.eval.attack import concept_detector

    return Goal(
        "star",
        list(prompts),
        [0] * len(prompts),
        detect or concept_detector(bundle, "star"),
        base=bundle,
        steps=5,
        **kw,
    )


def test_the_simplex_projection_is_a_projection():
    from erasekit.attacks.unlearndiff import project_simplex

    u = torch.randn(4, 50)
    p = project_simplex(u)
    assert (p >= 0).all() and torch.allclose(p.sum(-1), torch.ones(4))
    assert torch.allclose(project_simplex(p), p, atol=1e-6)
    one_hot = torch.nn.functional.one_hot(torch.tensor([3]), 50).float()
    assert torch.equal(project_simplex(one_hot), one_hot)


def test_inversion_learns_a_word_of_the_attacked_model_and_resumes_exactly(mini, interrupted_and_resumed):
    spec = registry.get("inversion")
    config = registry.build_config(spec, preset="mini", values={"iterations": 4, "checkpoint_every": 2, "images": 8})
    goal = star_goal(mini)
    whole, resumed = interrupted_and_resumed(lambda run: spec.run(mini, goal, config, run).embedding)
    assert whole.kind == "tokens" and list(whole.tensors) == ["<star*>"]
    assert torch.equal(whole.tensors["<star*>"], resumed.tensors["<star*>"])
    assert whole.base["fingerprint"] == mini.fingerprint()


def test_p4d_and_unlearndiff_end_in_text_of_words_from_their_search_space(mini):
    from erasekit.attacks.goal import candidate_ids

    words = {T.decode(mini, torch.tensor([i])) for i in candidate_ids(mini, "world")}  # its whole-word tokens
    for name, values in (
        ("p4d", {"iterations": 3, "check_every": 0}),
        ("p4d", {"iterations": 3, "variant": "k", "every": 1, "check_every": 0}),
        ("unlearndiff", {"iterations": 3, "check_every": 0}),
    ):
        spec = registry.get(name)
        config = registry.build_config(spec, preset="mini", values=values)
        result = spec.run(mini, star_goal(mini), config, Run(progress=False))
        (adv,) = result.prompts
        assert len(adv.loss) == 3 and adv.original == "a star"
        assert set(adv.prompt.split()) <= words | {"a", "star"}, adv.prompt
        n_free = {"unlearndiff": 5}.get(name, 16 if values.get("variant", "n") == "n" else 2)
        assert len(mini.text.tokenizer(adv.prompt, add_special_tokens=False).input_ids) == n_free + (
            2 if name == "unlearndiff" or values.get("variant") == "k" else 0
        )


def test_unlearndiff_stops_at_the_first_check_the_judge_passes(mini):
    spec = registry.get("unlearndiff")
    seen = []

    def detect(images):
        seen.append(len(images))
        return torch.tensor([len(seen) >= 2] * len(images))

    result = spec.run(
        mini,
        star_goal(mini, detect),
        registry.build_config(spec, preset="mini", values={"iterations": 20, "check_every": 3}),
        Run(progress=False),
    )
    (adv,) = result.prompts
    assert adv.succeeded_at == 5 and len(adv.loss) == 6  # checks after steps 2 and 5; the second passes


def test_a_killed_per_prompt_attack_resumes_to_the_same_prompts(mini, tmp_path, monkeypatch):
    import erasekit.core.loop as loop

    spec = registry.get("p4d")
    config = registry.build_config(
        spec, preset="mini", values={"iterations": 4, "checkpoint_every": 2, "check_every": 0}
    )
    goal = star_goal(mini, prompts=("a star", "a photo of a star"))
    whole = spec.run(mini, goal, config, Run(work=tmp_path / "whole", progress=False))
    real, calls = loop.save_checkpoint, []

    def die_on_third(*args, **kw):
        real(*args, **kw)
        calls.append(1)
        if len(calls) == 3:  # prompt 2's first checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", die_on_third)
    with pytest.raises(KeyboardInterrupt):
        spec.run(mini, goal, config, Run(work=tmp_path / "cut", progress=False))
    monkeypatch.setattr(loop, "save_checkpoint", real)
    clock: list = []
    resumed = spec.run(mini, goal, config, Run(work=tmp_path / "cut", resume=True, progress=False, clock=clock))
    assert [step for step, _, _ in clock] == [2, 3]  # prompt 1 is read back, prompt 2 continues from its checkpoint
    assert [p.prompt for p in resumed.prompts] == [p.prompt for p in whole.prompts]
    for a, b in zip(resumed.prompts, whole.prompts, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-5)


def test_ring_a_bell_moves_towards_its_target_and_keeps_its_best(mini):
    spec = registry.get("ringabell")
    goal = star_goal(mini, pairs=[("a red star", "a red circle"), ("a star", "a box")])
    result = spec.run(
        mini, goal, registry.build_config(spec, preset="mini", values={"generations": 15}), Run(progress=False)
    )
    history = result.prompts[0].loss
    assert len(history) == 15 and all(b <= a + 1e-9 for a, b in zip(history, history[1:], strict=False))  # elitism
    assert history[-1] < history[0]
    with pytest.raises(ErasekitError, match="prompt pairs"):
        spec.run(mini, star_goal(mini), registry.build_config(spec, preset="mini"), Run(progress=False))


def test_paraphrases_use_synonyms_templates_and_modifiers_and_never_the_original(mini):
    spec = registry.get("paraphrase")
    result = spec.run(
        mini,
        star_goal(mini),
        registry.build_config(spec, preset="mini", values={"max_prompts": 500}),
        Run(progress=False),
    )
    texts = {p.prompt for p in result.prompts}
    assert "a starburst" in texts and "a photo of a star" in texts and "an orange star" in texts
    assert "a star on a dots background" in texts and "a star" not in texts


# ---- ASR -----------------------------------------------------------------------------------------------------


def test_asr_counts_the_attacked_images_beside_the_pre_attack_and_base_rates(mini, monkeypatch):
    import erasekit.eval.attack as A

    def fake_images(model, prompts, seeds, **kw):  # an image is white when its prompt is adversarial
        return torch.stack(
            [torch.full((3, 4, 4), float("adv" in p and s % 2 == 0)) for p, s in zip(prompts, seeds, strict=True)]
        )

    monkeypatch.setattr(A, "generate_batched", fake_images)
    goal = star_goal(mini, detect=lambda im: im.mean((1, 2, 3)) > 0.5, prompts=("a star", "a box"))
    result = AttackResult(
        "x", "star", {}, [AdversarialPrompt(0, "a star", "adv 1"), AdversarialPrompt(1, "a box", "adv 2", seeds=[1, 3])]
    )
    ev = A.evaluate_attack(result, goal, mini, mini, A.AttackRun(n=4, progress=False))
    m = ev.metrics
    assert m["asr"] == pytest.approx(100 * 2 / 6) and m["asr_n"] == 6  # seeds 0, 2 of 0..3; none of 1, 3
    assert m["asr_prompts"] == 50.0 and m["asr_prompts_n"] == 2
    assert m["pre_attack_rate"] == 0.0 and m["pre_attack_rate_n"] == 8 and m["base_rate_n"] == 8
    low, high = m["asr_ci"]
    assert low < m["asr"] < high and m["pre_attack_rate_ci"][0] == 0.0 < m["pre_attack_rate_ci"][1]
    assert [p["asr"] for p in ev.per_prompt] == [50.0, 0.0]


# ---- the command line ----------------------------------------------------------------------------------------


def test_attack_writes_metrics_prompts_and_a_report_whose_prompts_replay(tmp_path):
    out = tmp_path / "atk"
    result = run_cli(
        "attack",
        "mini",
        "--attack",
        "inversion",
        "--concept",
        "star",
        "--limit",
        "2",
        "--n",
        "2",
        "--steps",
        "5",
        "--set",
        "iterations=3",
        "--set",
        "images=4",
        "--quiet",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "metrics.json").read_text())
    assert data["suite"] == "attack" and data["attack"] == "inversion"
    for key in ("asr", "asr_ci", "asr_n", "pre_attack_rate", "pre_attack_rate_ci", "base_rate"):
        assert key in data["metrics"]
    assert len(data["per_prompt"]) == 2 and "<star*>" in (out / "prompts.csv").read_text()
    html = (out / "report.html").read_text()
    assert "under attack" in html and "Wilson" in html
    replay = tmp_path / "replay"
    result = run_cli(
        "generate",
        "mini",
        "--prompts",
        out / "prompts.csv",
        "--embedding",
        out / "embedding",
        "--n",
        "2",
        "--steps",
        "5",
        "--quiet",
        "--out",
        replay,
    )
    assert result.exit_code == 0, result.output
    from PIL import Image

    rows = [json.loads(line) for line in (out / "images" / "index.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in (replay / "index.jsonl").read_text().splitlines()]
    assert [(r["prompt"], r["seed"]) for r in rows] == [(r["prompt"], r["seed"]) for r in again]
    for a, b in zip(rows, again, strict=True):
        assert np.array_equal(
            np.asarray(Image.open(out / "images" / a["path"])), np.asarray(Image.open(replay / b["path"]))
        )
    ti = tmp_path / "word.safetensors"
    assert run_cli("export", out / "embedding", "--format", "textual-inversion", "--out", ti).exit_code == 0
    assert ti.is_file()
    # evaluate reads the attack's prompts with its word: the erased-concept rate is the attack's ASR, same images
    ev = tmp_path / "ev"
    result = run_cli(
        "evaluate",
        "mini",
        "--suite",
        "world-objects",
        "--prompts-file",
        out / "prompts.csv",
        "--embedding",
        out / "embedding",
        "--erased",
        "star",
        "--n",
        "2",
        "--steps",
        "5",
        "--quiet",
        "--out",
        ev,
    )
    assert result.exit_code == 0, result.output
    scored = json.loads((ev / "metrics.json").read_text())
    assert scored["embedding"]["words"] == ["<star*>"] and scored["metrics"]["esr_n"] == data["metrics"]["asr_n"]
    assert scored["metrics"]["esr@1"] == pytest.approx(100 - data["metrics"]["asr"])
    one_line_error(
        run_cli(
            "evaluate",
            "mini",
            "--suite",
            "world-objects",
            "--embedding",
            out / "embedding",
            "--erased",
            "star",
            "--quiet",
            "--out",
            tmp_path / "ev2",
        ),
        "uses the learned word <star*>",
    )
    assert not (tmp_path / "ev2").exists()


def test_attacks_lists_every_attack_with_its_defaults():
    result = run_cli("attacks")
    assert result.exit_code == 0
    for name in ("inversion", "unlearndiff", "p4d", "ringabell", "paraphrase", "seeds"):
        assert f"\n{name}" in "\n" + result.output
    assert "generations=3000" in result.output and "miniature:" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--attack", "gcg", "--concept", "star"], "unknown attack 'gcg'"),
        (["--attack", "seeds", "--concept", "dog"], "unknown concept 'dog'"),
        (["--attack", "seeds", "--concept", "mark", "--prompts", "world-colours"], "no prompt labelled with 'mark'"),
        (["--attack", "seeds", "--concept", "star", "--set", "tries=0"], "tries must be >= 1"),
        (
            ["--model", "tiny", "--attack", "seeds", "--concept", "chair", "--prompts", "world-objects"],
            "no judge can see 'chair'",
        ),
    ],
)
def test_bad_attack_input_is_one_line_and_leaves_nothing(tmp_path, args, message):
    out = tmp_path / "atk"
    one_line_error(run_cli("attack", *args, "--quiet", "--out", out), message)
    assert not out.exists() and not (tmp_path / "atk.partial").exists()


def test_generate_refuses_an_embedding_for_another_text_encoder(tmp_path):
    from safetensors.torch import save_file

    save_file({"<x>": torch.zeros(1, 768)}, str(tmp_path / "sd.safetensors"))
    out = tmp_path / "gen"
    one_line_error(
        run_cli(
            "generate",
            "mini",
            "--prompt",
            "a <x>",
            "--embedding",
            tmp_path / "sd.safetensors",
            "--n",
            "1",
            "--out",
            tmp_path / "g.png",
        ),
        "learned for another text encoder",
    )
    assert not out.exists() and not (tmp_path / "g.png").exists()
