"""The synthetic October of fakeslurm.py as the dashboard sees it: a collected store, a
policy file on disk (the dashboard reads GPU_USAGE_CONFIG) and the recorded squeue
and sinfo output of the real test cluster for the live view."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from collector.collect import collect

from . import fakeslurm

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp()
FIXTURES = Path(__file__).parents[1] / "fixtures" / "slurm-22.05.8"
VIEWS = Path(__file__).parents[2] / "dashboard" / "views"


def toml_of(policy: dict) -> str:
    """The policy dict as TOML (JSON scalars and arrays are valid TOML values)."""
    out = []
    for key, value in policy.items():
        if isinstance(value, dict) and all(not isinstance(v, dict) for v in value.values()):
            out.append(f"[{key}]")
            out += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()]
        elif isinstance(value, list):
            for item in value:
                out.append(f"[[{key}]]")
                out += [f"{k} = {json.dumps(v)}" for k, v in item.items()]
        out.append("")
    return "\n".join(out)


def make(tmp: Path, jobs: list[str] | None = None, extra: dict | None = None,
         steps: str | None = None) -> tuple[Path, dict[str, str], object]:
    """(policy file, environment for the stand-in Slurm tools, settings); `jobs`
    instead of fakeslurm's, `extra` policy sections, `steps` (sacct's step lines)."""
    settings, env = fakeslurm.make(tmp, jobs if jobs is not None else fakeslurm.JOBS, steps)
    data = Path(env["FAKE_SLURM_DIR"])
    shutil.copy(FIXTURES / "squeue-live.txt", data / "squeue.txt")
    shutil.copy(FIXTURES / "sinfo-live.txt", data / "sinfo.txt")
    collect(settings, now=NOW, env=env)
    policy = {**fakeslurm.POLICY, **(extra or {}), "store": {"path": str(settings.store.path)}}
    path = tmp / "facility.toml"
    path.write_text(toml_of(policy))
    return path, env, settings
