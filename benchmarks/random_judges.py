"""Write randomly initialised judges (a ResNet-50 and a small CLIP, in the layouts `--resnet` and `--clip` read)
into a folder, for the bench's real-model path on the tiny model without downloading anything:

    .venv/bin/python benchmarks/random_judges.py /tmp/judges
    ERASEKIT_JUDGES=/tmp/judges .venv/bin/erasekit bench benchmarks/specs/smoke-tiny.yaml --out bench/smoke-tiny

Their figures mean nothing; the path (data sets, NudeNet, ResNet, CLIP, the cells and the table) is the real one.
"""

from __future__ import annotations

import sys

from erasekit.eval.judges import write_random_judges

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: random_judges.py OUT")
    for name, path in write_random_judges(sys.argv[1]).items():
        print(f"{name}: {path}")
