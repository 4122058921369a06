#!/usr/bin/env bash
# Rehearse the whole calibration procedure on the simulated line (no hardware needed).
#
#   calibration/sim_rehearsal.sh [STORE_DIR] [extra config args, e.g. --config configs/sim-airjet.yaml]
#
# Each step prints RESULT: PASS/FAIL and a "simulator check" line: how far the
# result is from the simulator's true camera mount, encoder and valve latency.
set -euo pipefail

store="${1:-calibration-rehearsal}"
shift || true
common=(--store "$store" --machine sim-line --non-interactive "$@")

sorter calibrate sheet --out "$store/belt-sheet.pdf"
sorter calibrate intrinsics --sim --board chessboard --cols 9 --rows 6 --square-mm 30 --views 15 "${common[@]}"
sorter calibrate belt --sim "${common[@]}"
sorter calibrate speed --sim "${common[@]}"
sorter calibrate timing --sim --valves all --repeats 5 "${common[@]}"
sorter calibrate history --store "$store" --machine sim-line
echo "Use it with: --set camera.calibration_file=$store/sim-line"
