"""Each metric against a hand-computed example, with cases where it must be 0 and where it must be 100."""

import numpy as np
import pytest
import torch

from erasekit.eval import metrics as m

# 4 images, 3 classes; top-1 is [0, 1, 2, 0]; top-2 adds [1, 2, 0, 2]
PROBS = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.35, 0.05, 0.6], [0.5, 0.1, 0.4]])


def test_in_top_k_by_hand():
    assert m.in_top_k(PROBS, [0, 0, 0, 2], 1).tolist() == [True, False, False, False]
    assert m.in_top_k(PROBS, [0, 0, 0, 2], 2).tolist() == [True, False, True, True]


def test_esr_and_psr_by_hand():
    labels = [0, 0, 0, 2]
    assert m.esr(PROBS, labels, 1) == 75.0 and m.psr(PROBS, labels, 1) == 25.0
    assert m.esr(PROBS, labels, 2) == 25.0 and m.psr(PROBS, labels, 2) == 75.0


def test_esr_is_0_and_psr_100_when_every_label_is_top_1():
    labels = PROBS.argmax(-1)
    assert m.esr(PROBS, labels, 1) == 0.0 and m.psr(PROBS, labels, 1) == 100.0


def test_esr_is_100_when_no_label_is_in_top_k():
    assert m.esr(PROBS, [2, 0, 1, 1], 1) == 100.0 and m.psr(PROBS, [2, 0, 1, 1], 1) == 0.0


def test_rate_over_no_images_is_an_error():
    with pytest.raises(ValueError):
        m.psr(torch.zeros(0, 3), [], 1)


def test_ner_by_hand():
    dets = [{"FEMALE_BREAST_EXPOSED": 0.6}, {"FACE_FEMALE": 0.99}, {"BUTTOCKS_EXPOSED": 0.31}, {}]
    assert [m.ner(dets, t) for t in m.NER_THRESHOLDS] == [50.0, 25.0, 0.0, 0.0]
    assert m.ner([{"FEET_EXPOSED": 0.9}] * 3, 0.8) == 100.0
    assert m.ner([{"ANUS_EXPOSED": 0.9}] * 3, 0.3) == 0.0  # not one of the seeds' eight (AP's EXPOSED_LABELS)


def test_clip_score_clamps_negative_cosine_to_zero():
    img = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    txt = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 1.0]])
    assert m.clip_score(img, txt) == pytest.approx((100 + 0 + 100 / np.sqrt(2)) / 3, rel=1e-5)


def test_frechet_distance_is_zero_for_identical_sets_and_mean_shift_squared():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 3))
    assert m.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert m.frechet_distance(a, a + np.array([3.0, 0, 4.0])) == pytest.approx(25.0, rel=1e-6)


def test_pixel_distance_by_hand():
    a, b = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    b[0] = 1.0
    assert m.pixel_distance(a, a) == 0.0 and m.pixel_distance(a, b) == 50.0


def test_asr_rsr_and_side_effect_by_hand():
    assert m.attack_success_rate([True, False, False, True]) == 50.0
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])  # image 0 shows class 1; image 1 shows class 0
    assert m.rsr(probs, [1, 1], k=1) == 50.0 and m.rsr(probs, [1, 1], k=2) == 100.0
    assert m.side_effect([1.0, 0.8], [0.5, 0.8]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        m.side_effect([1.0], [1.0, 2.0])


def test_the_seeds_four_splits_partition_the_ten_classes():
    assert len(m.IMAGENETTE_SPLITS) == 4
    for erase, keep in m.IMAGENETTE_SPLITS:
        assert len(erase) == len(keep) == 5 and set(erase) | set(keep) == set(m.IMAGENETTE_ORDER)
    assert m.IMAGENETTE_SPLITS[0][0] == ("cassette player", "church", "garbage truck", "parachute", "french horn")
    assert set(m.IMAGENETTE_SPLITS[1][0]) == set(m.IMAGENETTE_SPLITS[0][1])  # v2 is v1 reversed
    assert set(m.IMAGENETTE_SPLITS[3][0]) == set(m.IMAGENETTE_SPLITS[2][1])


def test_world_splits_follow_the_imagenette_positions():
    from erasekit.world.render import OBJECTS

    world = m.splits_for(OBJECTS)
    assert world[0][0] == ("triangle", "cross", "diamond", "arrow", "heart")  # cassette player <-> triangle, ...
    with pytest.raises(ValueError):
        m.splits_for(OBJECTS[:9])


def test_wilson_interval_matches_hand_computed_values():
    from erasekit.eval.metrics import wilson

    assert wilson(100.0, 80) == pytest.approx([95.42, 100.0], abs=0.01)  # 80 of 80
    assert wilson(80.0, 10) == pytest.approx([49.02, 94.33], abs=0.01)  # 8 of 10
    assert wilson(0.0, 10) == pytest.approx([0.0, 27.75], abs=0.01)
    low, high = wilson(50.0, 10_000)
    assert low < 50 < high and high - low < 2.0  # narrows with n


def test_esr_and_psr_carry_their_n_and_interval():
    from erasekit.eval.metrics import shown
    from erasekit.eval.suites import split_rates as _split_rates

    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.1, 0.9]])
    metrics, _ = _split_rates(probs, [0, 0, 1, 1], ["a", "a", "b", "b"], ["a"], ["b"])
    assert metrics["esr@1"] == 50.0 and metrics["esr_n"] == 2 and metrics["psr_n"] == 2
    assert metrics["esr@1_ci"] == pytest.approx([9.45, 90.55], abs=0.01)
    assert shown(metrics, "esr@1") == "50.00 [9.5, 90.5] n=2" and shown(metrics, "acc@1") == "75.00"
