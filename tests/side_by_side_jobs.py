"""A cheap stand-in job for the executor tests (importable by spawned workers; no torch import)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def sleepy_job(job):
    """Sleep, record (start, end, pid, CUDA_VISIBLE_DEVICES) in the job's log folder, return a value of the config."""
    start = time.time()
    time.sleep(job.config["sleep"])
    end = time.time()
    Path(job.config["log"], f"{job.label}.json").write_text(json.dumps([start, end, os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")]))
    return {"kind": job.kind, "label": job.label, "value": job.config["x"] ** 2}, None
