#!/usr/bin/env bash
# Builds the shipped model from scratch, in the order it was built (2 h 05 to 2 h 45 on 2 CPU cores, by machine):
#
#   bash tools/build_model.sh [RUNS] [OUT]
#
# RUNS (default runs/build) keeps every intermediate model; OUT (default RUNS/model) receives the
# finished folder: model.onnx, metadata.json, MODEL_CARD.md and the test report. Pass
# src/faceattrs/assets as OUT to replace the shipped model. A step whose output exists is skipped, so
# an interrupted build can simply be started again (the training resumes from its checkpoint).
#
# Steps (README, Training and evaluation, says what each does and why):
#   1. train the first network (EfficientNet-Lite1, 16 epochs)            ~119 min
#   2. export it to ONNX, calibrated on validation                        ~2 min
#   3. self-distil it on degraded train faces, plus gender labels         ~18 min
#   4. store it as int8                                                   ~4 min
#   5. dump dlib's face-recognition network as XML (needs g++, pip)       ~3 min
#   6. fine-tune that network on the train labels                         ~10 min
#   7. add it as the second network, int8, with the blended heads         ~2 min
# The descriptor fine-tuning is not bit-reproducible (torch's threaded CPU reductions): rerun, it gave
# the same validation figures to four decimals, not the same bytes.
set -euo pipefail
runs=${1:-runs/build}
out=${2:-$runs/model}
mkdir -p "$runs"
step() { echo "== $(date -u +%H:%M:%S) $*"; }

if [ ! -f "$runs/multitask/model.safetensors" ]; then
    step "1/7 train"
    faceattrs train --recipe multitask --out "$runs/multitask" --resume
fi
if [ ! -f "$runs/first/model.onnx" ]; then
    step "2/7 export"
    faceattrs export "$runs/multitask" --version first --out "$runs/first"
fi
if [ ! -f "$runs/first_robust/model.onnx" ]; then
    step "3/7 self-distill"
    faceattrs self-distill --model-dir "$runs/first" --out "$runs/first_robust" --version first-robust
fi
if [ ! -f "$runs/first_int8/model.onnx" ]; then
    step "4/7 quantize"
    faceattrs quantize --model-dir "$runs/first_robust" --out "$runs/first_int8" --version first-int8
fi
if [ ! -f "$runs/dlib_net.xml" ]; then
    step "5/7 dlib network"
    bash "$(dirname "$0")/dlib_face_net/make_net_xml.sh" "$runs/dlib_net.xml"
fi
if [ ! -f "$runs/dlib_finetuned.safetensors" ]; then
    step "6/7 fine-tune descriptors"
    faceattrs finetune-descriptors --net "$runs/dlib_net.xml" --out "$runs/dlib_finetuned.safetensors"
fi
step "7/7 descriptor heads"
faceattrs add-descriptor-heads --net "$runs/dlib_net.xml" --model-dir "$runs/first_int8" --out "$out" --version 17 \
    --int8-descriptors --descriptor-calibration percentile --finetuned "$runs/dlib_finetuned.safetensors"
step "done: $out"
