"""The mutation fuzzer of testcluster/fuzz.py at length: sacct lines, slurmrestd job
JSON and the policy file, mutated from the recorded real output of three Slurm
releases. Prints what it fed and what happened; exits 1 if any input broke the rule
(a crash, a record that vanished, an insane record, an error not naming the file).

  .venv/bin/python scripts/fuzz.py --sacct 200000 --rest 50000 --policy 20000 \\
      --out docs/fuzz.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testcluster import fuzz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sacct", type=int, default=100_000, help="sacct inputs (1-5 lines)")
    parser.add_argument("--rest", type=int, default=20_000, help="slurmrestd inputs (1-3 jobs)")
    parser.add_argument("--policy", type=int, default=5_000, help="policy files")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    out, broken = {}, 0
    for name, run, n in (("sacct", fuzz.fuzz_sacct, args.sacct),
                         ("slurmrestd", fuzz.fuzz_rest, args.rest),
                         ("policy", fuzz.fuzz_policy, args.policy)):
        started = time.perf_counter()
        tally = run(n, args.seed)
        took = time.perf_counter() - started
        print(f"{tally.line(name)} ({took:.1f} s)", flush=True)
        for failure in tally.failures[:5]:
            print(f"  BROKE: {failure[:400]}")
        broken += len(tally.failures)
        out[name] = {"inputs": tally.inputs, "records": tally.records,
                     "rejected": tally.rejected, "pending_arrays": tally.pending,
                     "refused_whole": tally.refused, "broke_the_rule": len(tally.failures),
                     "seconds": round(took, 1)}
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    raise SystemExit(1 if broken else 0)


if __name__ == "__main__":
    main()
