import numpy as np
import pytest
from PIL import Image

from piiblur.detections import Detections
from piiblur.orientation import upright_to_stored


def test_deduplicated_keeps_best_of_overlapping_and_drops_contained_partial():
    dets = Detections(
        [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 5, 10], [50, 50, 60, 60], [0, 0, 10, 10]],
        [0.9, 0.8, 0.7, 0.6, 0.95],
        [0, 0, 0, 0, 1],  # the last is a plate: other class, kept
    )
    kept = dets.deduplicated()
    assert sorted(kept.scores.tolist()) == pytest.approx([0.6, 0.9, 0.95])


def test_above_applies_thresholds_per_class():
    dets = Detections([[0, 0, 1, 1]] * 4, [0.2, 0.5, 0.2, 0.5], [0, 0, 1, 1])
    kept = dets.above({"face": 0.4, "plate": 0.1})
    assert kept.class_names == ["face", "plate", "plate"]


def test_geometry_and_records():
    dets = Detections.of_class(np.array([[10, 20, 30, 60]]), np.array([0.5]), "plate")
    moved = dets.shifted(5, 5).scaled(2.0).clipped(50, 100)
    assert moved.xyxy.tolist() == [[30, 50, 50, 100]]
    assert moved.to_records() == [{"class": "plate", "score": 0.5, "box": [30.0, 50.0, 50.0, 100.0]}]
    assert len(Detections.merge([dets, Detections.empty(), moved])) == 2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_boxes_map_back_to_the_stored_grid(orientation):
    stored = np.zeros((40, 60), np.uint8)
    stored[5:15, 30:50] = 255  # a bright block, x 30-50, y 5-15 in the stored grid
    transpose = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                 4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
    image = Image.fromarray(stored)
    upright = np.asarray(image.transpose(transpose[orientation]) if orientation > 1 else image)
    ys, xs = np.nonzero(upright)
    box = Detections.of_class(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]), np.array([1.0]), "face")
    back = upright_to_stored(box, orientation, (60, 40))
    assert back.xyxy.tolist() == [[30, 5, 50, 15]]
