import numpy as np
from helpers import detail

from piiblur.blur import blur, protected
from piiblur.detections import Detections


def _noise(h=300, w=400, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_blur_removes_detail_inside_and_touches_nothing_outside():
    img = _noise()
    dets = Detections([[100, 80, 160, 160], [250, 200, 370, 240]], [0.9, 0.9], [0, 1])
    out = blur(img, dets)
    for box in [(110, 90, 150, 150), (260, 205, 360, 235)]:
        assert detail(out, box) < 0.01 * detail(img, box)
    changed = (out != img).any(axis=2)
    mask = protected(dets, img.shape[:2])
    # every changed pixel is within a few feather widths of a protected one, none far away
    assert changed[mask].all()
    far = np.ones_like(changed)
    far[40:200, 40:220] = False
    far[170:280, 220:400] = False
    assert not changed[far].any()


def test_strength_scales_with_region_size():
    """A big face is blurred as hard, relative to its size, as a small one."""
    img = _noise(800, 800)
    small, big = [100, 100, 120, 125], [300, 300, 700, 800]
    out = blur(img, Detections([small, big], [1, 1], [0, 0]))
    # residual contrast at the scale of a tenth of the face: low in both
    for x1, y1, x2, y2 in (small, big):
        crop = out[y1:y2, x1:x2].astype(np.float32).mean(axis=2)
        step = max(1, (x2 - x1) // 10)
        assert np.abs(np.diff(crop[:, ::step], axis=1)).mean() < 6.0


def test_edges_are_soft_not_a_box():
    img = np.zeros((200, 200, 3), np.uint8)
    img[:, 100:] = 255
    out = blur(img, Detections([[60, 60, 140, 140]], [1], [0]))
    row = out[100, :, 0].astype(int)
    assert np.abs(np.diff(row)).max() < 60  # the hard step at x=100 is gone, and no new step appears


def test_any_dtype_and_channels():
    img16 = (np.random.default_rng(1).integers(0, 65535, (100, 100), dtype=np.uint16))
    out = blur(img16, Detections([[20, 20, 80, 80]], [1], [0]))
    assert out.dtype == np.uint16 and out.shape == img16.shape
    assert detail(out, (30, 30, 70, 70)) < 0.01 * detail(img16, (30, 30, 70, 70))
    rgba = np.dstack([_noise(100, 100), np.full((100, 100), 200, np.uint8)])
    assert blur(rgba, Detections([[20, 20, 80, 80]], [1], [1])).shape == (100, 100, 4)


def test_a_profile_face_whose_box_is_narrower_than_the_face_is_hidden_whole():
    """A detector's box of a face in profile can be half as wide as the head; the blur covers a whole face."""
    img = _noise(200, 200)
    narrow = Detections([[90, 60, 104, 100]], [0.9], [0])  # 14 x 40 px: a profile box
    mask = protected(narrow, img.shape[:2])
    head = (84, 64, 110, 96)  # a 26 x 32 px face around it (0.8 of its height wide)
    x1, y1, x2, y2 = head
    assert mask[y1:y2, x1:x2].mean() >= 0.95
    out = blur(img, narrow)
    assert detail(out, head) < 0.05 * detail(img, head)
