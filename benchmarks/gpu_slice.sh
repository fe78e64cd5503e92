#!/usr/bin/env bash
# fig3's paper-size slice on one GPU (issue 27): GRU and LSTM, depth 5, width 256, seeds 0-1,
# PyTorch's default / pre-trained to 1 / pre-trained to 0.5 (12 runs, `--preset paper-slice`),
# four runs at a time on the one GPU. Each run leaves its record under docs/results/records
# like any run, naming the commit it ran; commit them and `make results` reports them.
#
#   bash benchmarks/gpu_slice.sh            # the whole slice
#   JOBS=2 bash benchmarks/gpu_slice.sh     # fewer runs at once
#
# Sized for about 8 minutes on one H100 (3 epochs of the 5k sl-MNIST subset, 100 pre-training
# steps); not yet run on a GPU: the first run's wall time goes into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_slice.sh needs a CUDA GPU (torch.cuda.is_available() is False)')"
start=$(date +%s)
python -m lsc experiment run fig3-deep-rnn --preset paper-slice --jobs "${JOBS:-4}" --threads 2 \
    --out "${OUT:-results}" --records "${RECORDS:-docs/results/records}"
echo "paper-slice: $(( $(date +%s) - start )) s wall"
