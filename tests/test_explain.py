"""Occlusion maps of a pair distance, checked on cases whose answer is known."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from siamgui.core.evaluation.explain import display_input, explain_pair, overlay

sys.path.insert(0, str(Path(__file__).parent))
from conftest import LFW_ROOT, lfw_available


def seeded_verifier(seed: int):
    """A compact CNN with fixed random weights: no training, fully deterministic."""
    from siamgui.core.modelfile import LoadedModel, build_network, make_meta
    from siamgui.core.preprocess import preset_spec
    from siamgui.core.verifier import Verifier

    torch.manual_seed(seed)
    meta = make_meta(architecture={"name": "compact-cnn", "kwargs": {"in_channels": 3, "embedding_dim": 32,
                                                                      "width": 8}},
                     preprocess=preset_spec("generic", 64), threshold=1.0)
    return Verifier(LoadedModel(build_network(meta), meta), device="cpu", precision="float32")


def scene() -> np.ndarray:
    a = np.full((64, 64, 3), 100, np.uint8)
    yy, xx = np.mgrid[:64, :64]
    a[(yy - 18) ** 2 + (xx - 44) ** 2 < 100] = (30, 60, 200)
    a[8:12, 4:30] = 20
    return a


@pytest.mark.parametrize("seed", range(4))
def test_a_pair_differing_in_one_patch_lights_up_that_patch(seed):
    v = seeded_verifier(seed)
    a = scene()
    b = a.copy()
    b[36:52, 4:20] = (230, 200, 40)  # exactly one patch of the 8 x 8 lattice (centre 44, 12)
    e = explain_pair(v, a, b)
    assert e.boxes[5 * 8 + 1] == (36, 52, 4, 20) and e.patch == 16
    # covering that patch of B leaves B equal to A: the distance drops to zero, the largest possible fall
    assert e.deltas[1][5, 1] == pytest.approx(-e.distance, abs=1e-5)
    assert np.unravel_index(np.argmin(e.deltas[1]), (8, 8)) == (5, 1)
    y, x = np.unravel_index(np.argmin(e.maps[1]), e.maps[1].shape)
    assert 36 <= y < 52 and 4 <= x < 20
    # a region that pulls the pair apart is drawn red, one that pulls it together green
    shown = overlay(display_input(b), e.maps[1], e.scale)
    assert shown[44, 12, 0] > shown[44, 12, 1]


def centre_and_corners(m: np.ndarray) -> tuple[float, float]:
    h, w = m.shape
    k = h // 6
    corners = np.r_[m[:k, :k].ravel(), m[:k, -k:].ravel(), m[-k:, :k].ravel(), m[-k:, -k:].ravel()]
    return float(np.abs(m[h // 4:3 * h // 4, w // 4:3 * w // 4]).mean()), float(np.abs(corners).mean())


@pytest.fixture(scope="module")
def bundled():
    from siamgui.core.verifier import Verifier

    return Verifier(device="cpu")


def test_covering_the_face_changes_the_distance_more_than_the_background(bundled):
    from _gui_helpers import draw_face

    a, _ = bundled.prepare(draw_face(200), bgr=True)
    b, _ = bundled.prepare(draw_face(240)[10:230, 20:220].copy(), bgr=True)
    e = explain_pair(bundled, a, b)
    assert e.maps[0].shape == a.shape[:2]
    for m in e.maps:
        face, background = centre_and_corners(m)
        assert face > 3 * background


@pytest.mark.skipif(not lfw_available(), reason="LFW is not present")
def test_covering_the_face_matters_more_on_a_real_lfw_pair(bundled):
    a, _ = bundled.prepare(LFW_ROOT / "Abdullah_Gul" / "Abdullah_Gul_0013.jpg")
    b, _ = bundled.prepare(LFW_ROOT / "Abdullah_Gul" / "Abdullah_Gul_0014.jpg")
    e = explain_pair(bundled, a, b)
    assert e.distance < bundled.threshold
    for m in e.maps:
        face, background = centre_and_corners(m)
        assert face > 2 * background


def test_grey_inputs_display_as_rgb_and_signatures_uninverted():
    grey = np.zeros((8, 8, 1), np.uint8)
    assert display_input(grey).shape == (8, 8, 3) and display_input(grey, invert=True).min() == 255
