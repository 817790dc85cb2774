"""Batch jobs: which inputs make which jobs, where each job's results live, and whether they are complete.

One job = one run of the workflow for one input, written to `OUT/<job name>/` (outputs plus `_job.json`). The
folder appears by one rename when the run succeeded, so its existence means "complete"; `_job.json` records the
outputs and a fingerprint of the workflow and the job's `--set` values, so a rerun skips complete jobs and refuses
(instead of mixing) a folder made with other settings.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

JOB_FILE = "_job.json"
PLACEHOLDER = re.compile(r"\{(\w+)\}")
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=@-]*")


class BatchError(ValueError):
    """A batch that cannot start (inputs, placeholders, names); the message says what to fix."""


@dataclass(frozen=True)
class Job:
    """One input's run: `name` is its folder under OUT, `overrides` the rendered `--set` values."""

    name: str
    input: str
    overrides: tuple[str, ...]
    fingerprint: str


def find_inputs(spec: str) -> list[dict[str, str]]:
    """Rows of placeholder values (`input`, optional `name`, CSV columns) from a folder, a glob or a CSV file.

    A folder gives its visible files (not recursive); a CSV needs an `input` column (paths relative to the CSV's
    folder) and may give `name` and any other columns; anything else is a glob pattern (`**` recurses)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        rows = [{"input": str(p.resolve())} for p in files]
    elif path.suffix.lower() == ".csv" and path.is_file():
        rows = _csv_rows(path)
    else:
        rows = [{"input": str(Path(p).resolve())} for p in sorted(glob.glob(str(path), recursive=True))
                if Path(p).is_file()]
    if not rows:
        raise BatchError(f"--inputs {spec!r} gives no inputs: pass a folder of files, a glob such as 'clips/*.mp4' "
                         "or a CSV file with an 'input' column")
    return rows


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "input" not in reader.fieldnames:
            raise BatchError(f"{path} needs a header row with an 'input' column (and optionally 'name' and "
                             f"other columns usable as {{column}} in --set); found {reader.fieldnames}")
        rows = []
        for row in reader:
            if not (row.get("input") or "").strip():
                raise BatchError(f"{path} line {reader.line_num}: the 'input' column is empty")
            value = Path(row["input"].strip()).expanduser()
            row = {k: (v or "").strip() for k, v in row.items() if k is not None}
            row["input"] = str((value if value.is_absolute() else path.parent / value).resolve())
            rows.append(row)
    return rows


def fingerprint(workflow: dict, overrides: list[str]) -> str:
    """Identity of what a job computes: the workflow JSON and its rendered `--set` values."""
    text = json.dumps({"workflow": workflow, "overrides": overrides}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render(template: str, fields: dict[str, str]) -> str:
    """`{input}`, `{name}` or `{<csv column>}` in a `--set` value replaced by the job's values."""
    def value(match: re.Match) -> str:
        key = match.group(1)
        if key not in fields:
            raise BatchError(f"--set {template!r} uses {{{key}}}, which is not a placeholder; "
                             f"placeholders are {', '.join('{' + k + '}' for k in fields)}")
        return fields[key]

    return PLACEHOLDER.sub(value, template)


def make_jobs(workflow: dict, inputs: list[dict[str, str]], overrides: list[str]) -> list[Job]:
    """One job per input row; names come from the `name` column or the file stem and must be unique."""
    jobs, owners, computes = [], {}, {}
    for row in inputs:
        name = row.get("name") or Path(row["input"]).stem
        if not SAFE_NAME.fullmatch(name):
            raise BatchError(f"job name {name!r} (from {row['input']}) cannot be a folder name: use letters, digits "
                             "and _.+=@- (give a 'name' column in a CSV of inputs)")
        if name in owners:
            raise BatchError(f"inputs {owners[name]} and {row['input']} would both write OUT/{name}: give them "
                             "distinct names (a CSV of inputs with a 'name' column)")
        owners[name] = row["input"]
        fields = {**row, "name": name}
        rendered = [render(item, fields) for item in overrides]
        job = Job(name, row["input"], tuple(rendered), fingerprint(workflow, rendered))
        if job.fingerprint in computes:  # ComfyUI would serve the second from its cache and write nothing
            raise BatchError(f"jobs {computes[job.fingerprint]} and {name} would run the same prompt: use the input "
                             "in a --set value, e.g. --set 'Load Video.file={input}'")
        computes[job.fingerprint] = name
        jobs.append(job)
    return jobs


def completed(output: Path, job: Job) -> dict | None:
    """The `_job.json` record when `OUT/<job>` holds this job's complete results, else None.

    Raises BatchError when the folder exists but was made with other settings or lost files, so nothing is mixed
    or overwritten silently."""
    folder = output / job.name
    if not folder.exists():
        return None
    try:
        record = json.loads((folder / JOB_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise BatchError(f"{folder} exists but is not a finished batch job ({error}); delete it to run the job again")
    if record.get("fingerprint") != job.fingerprint:
        raise BatchError(f"{folder} holds results of another workflow or other --set values; delete it or choose "
                         "another --output to run the job with the current settings")
    missing = [name for name in record.get("outputs", []) if not _non_empty(folder / name)]
    if missing or not record.get("outputs"):
        raise BatchError(f"{folder} lost output files {missing or '(none listed)'}; delete it to run the job again")
    return record


def _non_empty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary name beside `path`, then rename (readers never see half a file).

    Not sv4d_lib.atomic: Ray ships only the `headless` package to the nodes, so it imports nothing of the pack."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)
