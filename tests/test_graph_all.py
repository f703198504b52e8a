"""The full concept graph (issue 17): its three properties on graphs built to have them or not, and
`erasekit graph --all` end to end on the miniature (UCE's closed form: ten erasures in seconds)."""

import json

import numpy as np
import pytest

from erasekit.eval.graph import graph_properties
from test_user_facing import assert_one_line_error as one_line_error
from test_user_facing import run as run_cli

NAMES = list("abcdef")


def _distances(seed=0):
    x = np.random.default_rng(seed).random((len(NAMES), 3))
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


def test_locality_is_negative_for_a_graph_that_hurts_near_concepts_and_positive_for_one_that_hurts_far_ones():
    d = _distances()
    near = np.clip(1 - d, 0, 1)
    np.fill_diagonal(near, 1)
    far = d / d.max()
    np.fill_diagonal(far, 1)
    g0 = np.full(len(NAMES), 0.9)
    assert graph_properties(near, g0, d, 100, NAMES)["locality"]["spearman_delta_distance"] < -0.9
    assert graph_properties(far, g0, d, 100, NAMES)["locality"]["spearman_delta_distance"] > 0.9
    assert graph_properties(near, g0, d, 100, NAMES)["asymmetry"]["mean_abs_difference"] == 0  # symmetric


def test_asymmetry_beyond_noise_and_an_abnormal_concept_are_found():
    d, g0 = _distances(), np.full(len(NAMES), 0.95)
    delta = np.zeros((len(NAMES), len(NAMES)))
    np.fill_diagonal(delta, 1)
    delta[0, 1] = 0.6  # erasing a hurts b, erasing b leaves a alone
    delta[:, 5] = 0.5  # f is hurt by every erasure
    delta[5, 5] = 1
    p = graph_properties(delta, g0, d, 50, NAMES)
    assert ("a", "b", pytest.approx(0.6)) in [tuple(x) for x in p["asymmetry"]["pairs_beyond_noise"]]
    assert p["asymmetry"]["mean_abs_difference"] > p["asymmetry"]["noise_floor"]
    assert p["abnormal"]["concepts"] == ["f"]
    same = graph_properties(delta, g0, d, 2, NAMES)  # two images per rate: nothing is beyond noise
    assert same["abnormal"]["concepts"] == [] and same["asymmetry"]["pairs_beyond_noise"] == []


def test_graph_all_builds_the_full_graph_from_cached_erasures(tmp_path):
    out = tmp_path / "g"
    result = run_cli("graph", "--all", "--method", "uce", "--n", 1, "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    rows = (out / "graph-uce.csv").read_text().splitlines()
    assert len(rows) == 11 and rows[1].startswith("uce − circle,circle,")
    data = json.loads((out / "properties.json").read_text())["uce"]
    delta = np.array(data["delta"])
    assert delta.shape == (10, 10) and np.diag(delta).mean() > 0.5  # each erasure hits its own object
    assert set(data["properties"]) >= {"locality", "asymmetry", "abnormal"}
    assert "| uce |" in (out / "properties.md").read_text() and (out / "graph-uce.png").stat().st_size > 1000
    edits = sorted(p.name for p in (out / "edits").iterdir())
    again = run_cli("graph", "--all", "--method", "uce", "--n", 1, "--out", out)
    assert again.exit_code == 0 and "every cell cached" in again.output
    assert sorted(p.name for p in (out / "edits").iterdir()) == edits


def test_graph_refuses_bad_combinations(tmp_path):
    one_line_error(run_cli("graph", "--out", tmp_path / "a"), "graph needs --edit RUN")
    one_line_error(run_cli("graph", "--all", "--method", "nope", "--out", tmp_path / "b"), "nope")
    one_line_error(run_cli("graph", "tiny", "--all", "--out", tmp_path / "c"), "runs on the miniature")
