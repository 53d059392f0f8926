#!/usr/bin/env bash
# Export a candidate plate net and measure it on the dev halves (never the test halves):
#   training/candidate.sh CHECKPOINT.pt ALPHA NAME
# THRESHOLD=0.3 measures at another plate threshold. ALPHA mixes it with the base weights (soup.py: 1 = the checkpoint as it is). Writes
# training/out/cand_NAME{,_int8}.onnx and training/out/cand_NAME.txt (the benchmark tables).
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=$1; A=$2; NAME=$3
PY=.venv-train/bin/python
BENCH=${BENCH_PY:-.venv/bin/python}
$PY training/soup.py --fine-tuned "$CKPT" --alpha "$A" --out "training/build/cand_$NAME.pt"
PYTHONPATH=src $PY training/export.py --weights "training/build/cand_$NAME.pt" --no-val --name "cand_$NAME" > /dev/null
PYTHONPATH=src $PY training/quantize.py --model "training/out/cand_$NAME.onnx" \
  --out "training/out/cand_$NAME"_int8.onnx ${DATA:+--data "$DATA"} --float-head class > /dev/null
{
  $BENCH benchmarks/plates.py --plate-model "training/out/cand_${NAME}_int8.onnx" --sets ro,openimages,us --half dev ${THRESHOLD:+--threshold "$THRESHOLD"}
  $BENCH benchmarks/plates.py --plate-model "training/out/cand_${NAME}_int8.onnx" --sets pano --half dev --poses 4 --misses ${THRESHOLD:+--threshold "$THRESHOLD"}
} > "training/out/cand_$NAME.txt" 2>&1
grep -E "^###|^\| (all|pitch)|per image" "training/out/cand_$NAME.txt"
