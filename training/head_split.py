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
from onnx import helper

BINS_OUTPUT = "box_bins"
SCORES_OUTPUT = "scores"


def _producer(graph: onnx.GraphProto, op_type: str, name_part: str) -> onnx.NodeProto:
    found = [n for n in graph.node if n.op_type == op_type and n.name.endswith(name_part)]
    if len(found) != 1:
        raise ValueError(f"expected one {op_type} node named *{name_part}, found {len(found)}")
    return found[0]


def split(model: onnx.ModelProto) -> onnx.ModelProto:
    """The net with its outputs moved to the bins' logits and the scores (the decoding pruned)."""
    graph = model.graph
    # the DFL's reshape takes the concatenated bin logits of the three levels; the head's last sigmoid
    # gives the class scores that the export concatenates after the boxes
    bins = _producer(graph, "Reshape", "/dfl/Reshape").input[0]
    scores = _producer(graph, "Sigmoid", "/model.22/Sigmoid").output[0]
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    outputs = [
        helper.make_tensor_value_info(BINS_OUTPUT, onnx.TensorProto.FLOAT, [batch.dim_param or 1, 64, "anchors"]),
        helper.make_tensor_value_info(SCORES_OUTPUT, onnx.TensorProto.FLOAT, [batch.dim_param or 1, 1, "anchors"]),
    ]
    graph.node.append(helper.make_node("Identity", [bins], [BINS_OUTPUT], name="box_bins_out"))
    graph.node.append(helper.make_node("Identity", [scores], [SCORES_OUTPUT], name="scores_out"))
    del graph.output[:]
    graph.output.extend(outputs)
    return _pruned(model)


def _pruned(model: onnx.ModelProto) -> onnx.ModelProto:
    """Only the nodes (and initialisers) that the outputs need."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(list(graph.node)):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initialisers = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initialisers)
    infos = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(infos)
    onnx.checker.check_model(model)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source")
    ap.add_argument("target")
    args = ap.parse_args()
    onnx.save(split(onnx.load(args.source)), args.target)


if __name__ == "__main__":
    main()
