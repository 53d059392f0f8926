#!/usr/bin/env bash
# One command: venv, base weights, dataset, training, evaluation and ONNX export.
#   training/run.sh                    # everything, training until $UNTIL (UTC HH:MM) or $EPOCHS epochs
#   STEPS="export" training/run.sh     # only some steps: venv base data train export
#   RESUME=1 STEPS="train export" training/run.sh
#   STEPS="soup" ALPHA=0.2 training/run.sh   # mix base and fine-tuned weights, export fp32 + int8
# Env: DATA (shared data folder, default: found next to the repo), UNTIL, EPOCHS, SEED, NICE, ALPHA.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-"venv base data train export soup"}
PY=.venv-train/bin/python
NICE=${NICE:-10}
has() { [[ " $STEPS " == *" $1 "* ]]; }

if has venv && [ ! -x "$PY" ]; then
  python3 -m venv .venv-train
  .venv-train/bin/pip install --upgrade pip
  .venv-train/bin/pip install torch torchvision "ultralytics==8.4.190" onnx onnxslim onnxruntime numpy pillow opencv-python-headless
fi
if has base; then
  $PY training/base_weights.py
  mkdir -p training/build/wheels
  ls training/build/wheels/scikit_image-0.26.0-*.whl >/dev/null 2>&1 || \
    $PY -m pip download --no-deps --only-binary :all: -d training/build/wheels "scikit-image==0.26.0"
fi
if has data; then
  rm -rf training/build/dataset
  PYTHONPATH=src nice -n "$NICE" $PY training/build_dataset.py ${DATA:+--data "$DATA"} --seed "${SEED:-20261130}" \
    --skimage-wheel "$(ls training/build/wheels/scikit_image-0.26.0-*.whl | head -1)"
fi
if has train; then
  if [ -n "${RESUME:-}" ]; then
    nice -n "$NICE" $PY training/train.py --resume ${UNTIL:+--until "$UNTIL"}
  else
    nice -n "$NICE" $PY training/train.py --epochs "${EPOCHS:-6}" ${UNTIL:+--until "$UNTIL"}
  fi
fi
if has export; then
  W=training/runs/ft/weights/best.pt
  [ -f "$W" ] || W=training/checkpoint/last.pt
  PYTHONPATH=src $PY training/export.py --weights "$W"
  PYTHONPATH=src $PY training/quantize.py --model training/out/plate_yolov8n_ft.onnx \
    --out training/out/plate_yolov8n_ft_int8.onnx ${DATA:+--data "$DATA"} --float-head class
  PYTHONPATH=src $PY training/quick_eval.py training/out/plate_yolov8n_ft.onnx training/out/plate_yolov8n_ft_int8.onnx \
    src/piiblur/models/plate_yolov8n_street_int8.onnx --json training/out/quick_eval_heldout.json
fi
if has soup; then
  # WiSE-FT: (1 - ALPHA) * base + ALPHA * fine-tuned; ALPHA chosen on the dev halves (training/README.md)
  A=${ALPHA:-0.2}
  $PY training/soup.py --fine-tuned training/checkpoint/last.pt --alpha "$A" --out "training/build/soup_$A.pt"
  PYTHONPATH=src $PY training/export.py --weights "training/build/soup_$A.pt" --no-val --name "plate_yolov8n_soup"
  PYTHONPATH=src $PY training/quantize.py --model training/out/plate_yolov8n_soup.onnx \
    --out training/out/plate_yolov8n_soup_int8.onnx ${DATA:+--data "$DATA"} --float-head class
fi
