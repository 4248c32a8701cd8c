#!/bin/bash
# The optional GPU path, checked on a lent machine: the same Keras 3 model trains with the
# JAX backend (no TensorFlow there), and its best.keras comes back for converter.convert.
#
#   python -m training.pair_shards --pairs data/pairs/melody --songs 56 --out .gpu/pairs
#   pip download keras namex optree wheels into .whl (see /work/.library/device/README.md)
#   device run: bash benchmarks/gpu_training.sh, carrying .gpu and .whl
#
# Writes $OUT/train.log and $OUT/run/ (config.json, history.csv, best.keras).
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
start=$(date +%s)
python3 -m training.train --pairs .gpu/pairs --run "$OUT/run" --set batch_windows=32 --set epochs=4 \
    --set validation_batches=4 2>&1 | grep -v "^W0000\|^I0000" | tee "$OUT/train.log"
echo "train wall: $(( $(date +%s) - start )) s" | tee -a "$OUT/train.log"
