#!/usr/bin/env bash
# Run ON THE GPU MACHINE (repo root) after experiments/gpu/prepare.sh here:
#   bash experiments/gpu/train_codec.sh experiments/configs/train/default.yaml 8
# trains (resuming OUT/last.pt when it was carried) for MINUTES of wall time on CUDA, checkpointing every
# ckpt_every steps, and copies into $OUT what comes back (each < 16 MiB): model.pt (model + config + step,
# the input of `vqsim export-codec`), best.pt (best validation LPIPS), log.jsonl.
# last.pt (with optimizer states) is too big to come back; carry runs/NAME to resume on the next GPU run.
set -uo pipefail
cd "$(dirname "$0")/../.."
CONFIG=${1:?config}; MINUTES=${2:-8}; OUTDIR=${OUT:-/tmp/vqsim_out}
mkdir -p "$OUTDIR"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 VQSIM_LPIPS_WEIGHTS=$PWD/data_local/lpips
DEVICE=${DEVICE:-cuda}
RUN=$(python3 - "$CONFIG" <<'PY'
import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get("out", "runs/codec"))
PY
)
python3 -m experiments.cli train-codec --config "$CONFIG" --device "$DEVICE" --max-minutes "$MINUTES" \
  --data data_local/train256_part1.tar data_local/train256_part2.tar --val data_local/val 2>&1 | tee "$OUTDIR/train.log"
rc=${PIPESTATUS[0]}
for f in model.pt best.pt log.jsonl; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUTDIR/"; done
ls -la "$OUTDIR"
exit "$rc"
