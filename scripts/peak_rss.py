"""Run `gpu-usage ARGS...` in this process and write its peak memory as JSON.

  python scripts/peak_rss.py OUT.json collect --config facility.toml

`self_mb` is this process (the collector); `children_mb` the largest child it
waited for (sacct, sacctmgr).
"""

import json
import resource
import sys

from collector.cli import main

out, args = sys.argv[1], sys.argv[2:]
try:
    main(args, prog_name="gpu-usage", standalone_mode=False)
finally:
    usage = {"self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    with open(out, "w") as f:
        json.dump(usage, f)
