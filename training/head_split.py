"""Cut the box decoding out of an exported YOLOv8 plate net: the runtime decodes only the boxes it keeps.

  python training/head_split.py IN.onnx OUT.onnx        # float or int8 (QDQ) export of ultralytics

An ultralytics export ends in the box decoding: a softmax over the 16 distance bins of each box side
(the "DFL"), their expectation, and the distances turned into boxes around every anchor. On the CPU
that softmax runs over every anchor of the picture (about 37,000 for a 1344x1344 view) and took 19% of
the int8 net's time (onnxruntime's profile), to decode boxes of which a handful score over the
threshold. The cut net outputs what comes before it:

- ``box_bins`` (batch, 64, anchors): the logits of the 16 bins of each side (left, top, right, bottom),
- ``scores`` (batch, 1, anchors): the plate score (after the sigmoid),

and ``piiblur.detectors.yolo_plate`` decodes the boxes of the anchors over the threshold the same way
(anchors row by row at strides 8, 16, 32). The boxes are those of the full net to float rounding: on a
960x640 crop of a real street panorama, every one of the 12,600 anchors' boxes within 0.00013 px and the
scores identical, for the float and the int8 file alike.
"""

from __future__ import annotations

import argparse

import onnx
from onnx import utils

BINS_OUTPUT = "box_bins"
SCORES_OUTPUT = "scores"


def _producer(graph: onnx.GraphProto, op_type: str, name_part: str) -> onnx.NodeProto:
    found = [n for n in graph.node if n.op_type == op_type and n.name.endswith(name_part)]
    if len(found) != 1:
        raise ValueError(f"expected one {op_type} node named *{name_part}, found {len(found)}")
    return found[0]


def split(model: onnx.ModelProto) -> onnx.ModelProto:
    """The net up to the bins' logits and the scores (onnx's extractor prunes the decoding), its two
    outputs named ``box_bins`` and ``scores``."""
    graph = model.graph
    # the DFL's reshape takes the concatenated bin logits of the three levels; the head's last sigmoid
    # gives the class scores that the export concatenates after the boxes
    bins = _producer(graph, "Reshape", "/dfl/Reshape").input[0]
    scores = _producer(graph, "Sigmoid", "/model.22/Sigmoid").output[0]
    cut = utils.Extractor(model).extract_model([graph.input[0].name], [bins, scores])
    for output, name in zip(cut.graph.output, (BINS_OUTPUT, SCORES_OUTPUT), strict=True):
        for node in cut.graph.node:  # after the cut no node reads these tensors: only their producers
            node.output[:] = [name if o == output.name else o for o in node.output]
        output.name = name
    onnx.checker.check_model(cut)
    return cut


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source")
    ap.add_argument("target")
    args = ap.parse_args()
    onnx.save(split(onnx.load(args.source)), args.target)


if __name__ == "__main__":
    main()
