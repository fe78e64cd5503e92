#!/usr/bin/env bash
# bench_practical.py on one GPU (issue 29): the 4-layer nn.LSTM at widths 256/1024/2048 and
# the 4x256 nn.GRU, batch 128, T = 200, the training step in fp32 and under bf16 autocast
# (lsc measures and pre-trains the float32 weights), then the small rows. Every cost is also
# given in the model's own training steps. Dense checks read 8 samples (dense eig of 128
# samples x 2048-wide Jacobians would take the whole budget), each pre-training run stops
# after 60 s, and nothing starts after 420 s: the whole run fits in 8 minutes (`timeout`
# makes sure). The table goes to ${OUT:-docs/results/gpu_practical.md}.
#
#   bash benchmarks/gpu_practical.sh
#
# Not yet run on a GPU (none in the session that wrote it): the first run's table goes into
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_practical.sh needs a CUDA GPU (torch.cuda.is_available() is False)')"
out=${OUT:-docs/results/gpu_practical.md}
mkdir -p "$(dirname "$out")"
start=$(date +%s)
timeout 480 $PY benchmarks/bench_practical.py --device cuda --dtype fp32 bf16 --batch 128 --time-steps 200 \
    --only lstm:256 gru:256 lstm:1024 lstm:2048 relu cells proj --dense-samples 8 --max-seconds 60 \
    --budget 420 --out "$out" || echo "bench_practical.py stopped: exit $? (the table holds the rows finished)"
echo "gpu_practical: $(( $(date +%s) - start )) s wall; table in $out"
