"""Batch jobs without ComfyUI: inputs from a folder, a glob or a CSV, `--set` placeholders, names, resume checks,
and Ray staying optional."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from headless.batch_jobs import JOB_FILE, BatchError, completed, find_inputs, make_jobs

from .conftest import REPO, free_port, require_ray

WORKFLOW = {"1": {"class_type": "LoadVideo", "inputs": {"file": "x.mp4"}, "_meta": {"title": "Load Video"}}}


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.mp4", "a.mp4", ".hidden.mp4", "sub/c.mp4"):
        (folder / name).write_bytes(b"video")
    return folder


def test_a_folder_gives_its_visible_files_in_order(clips):
    assert [row["input"] for row in find_inputs(str(clips))] == [str(clips / "a.mp4"), str(clips / "b.mp4")]


def test_a_glob_may_recurse(clips):
    found = [Path(row["input"]).name for row in find_inputs(str(clips / "**" / "*.mp4"))]
    assert found == ["a.mp4", "b.mp4", "c.mp4"]


def test_a_csv_gives_paths_relative_to_itself_names_and_columns(clips):
    table = clips / "jobs.csv"
    table.write_text("input,name,seed\nsub/c.mp4,first,7\n" + f"{clips / 'a.mp4'},,8\n")
    jobs = make_jobs(WORKFLOW, find_inputs(str(table)), ["Load Video.file={input}", "Noise.noise_seed={seed}",
                                                         "Save.filename_prefix={name}/x"])
    assert [job.name for job in jobs] == ["first", "a"]
    assert jobs[0].overrides == (f"Load Video.file={clips / 'sub' / 'c.mp4'}", "Noise.noise_seed=7",
                                 "Save.filename_prefix=first/x")
    assert jobs[1].overrides[1:] == ("Noise.noise_seed=8", "Save.filename_prefix=a/x")


@pytest.mark.parametrize("text, message", [("path,seed\nx.mp4,1\n", "needs a header row with an 'input' column"),
                                           ("input\n", "gives no inputs"),
                                           ("input,seed\n\nx.mp4,1\n ,2\n", "line 4: the 'input' column is empty")])
def test_bad_csv_names_the_problem(tmp_path, text, message):
    table = tmp_path / "jobs.csv"
    table.write_text(text)
    with pytest.raises(BatchError, match=message):
        find_inputs(str(table))


def test_no_input_is_an_error(tmp_path):
    with pytest.raises(BatchError, match="gives no inputs"):
        find_inputs(str(tmp_path / "*.mp4"))


def test_placeholders_names_and_fingerprints(clips):
    rows = find_inputs(str(clips))
    with pytest.raises(BatchError, match=r"uses \{clip\}, which is not a placeholder; placeholders are \{input\}"):
        make_jobs(WORKFLOW, rows, ["Load Video.file={clip}"])
    cameras = 'Cameras.json={"azimuths_deg": [0, 90]}'  # JSON braces are values, not placeholders
    jobs = make_jobs(WORKFLOW, rows, [cameras, "Load Video.file={input}"])
    assert jobs[0].overrides[0] == cameras
    assert len({job.fingerprint for job in jobs}) == 2
    assert make_jobs(WORKFLOW, rows, [cameras, "Load Video.file={input}"]) == jobs  # stable across runs
    other = make_jobs({**WORKFLOW, "2": WORKFLOW["1"]}, rows, [cameras, "Load Video.file={input}"])
    assert other[0].fingerprint != jobs[0].fingerprint


def test_two_inputs_for_one_folder_or_a_bad_name_are_refused(clips):
    with pytest.raises(BatchError, match="would both write OUT/a"):
        make_jobs(WORKFLOW, [{"input": str(clips / "a.mp4")}, {"input": str(clips / "sub" / "a.mp4")}], [])
    with pytest.raises(BatchError, match="cannot be a folder name"):
        make_jobs(WORKFLOW, [{"input": str(clips / "a.mp4"), "name": "../up"}], [])
    with pytest.raises(BatchError, match=r"jobs a and b would run the same prompt: use the input in a --set"):
        make_jobs(WORKFLOW, find_inputs(str(clips)), ["Load Video.file=a.mp4"])


def test_resume_accepts_only_complete_folders_of_the_same_settings(tmp_path, clips):
    [job] = make_jobs(WORKFLOW, [{"input": str(clips / "a.mp4")}], ["Load Video.file={input}"])
    out = tmp_path / "out"
    assert completed(out, job) is None
    folder = out / job.name
    (folder / "sv4d2").mkdir(parents=True)
    (folder / "sv4d2" / "v0.mp4").write_bytes(b"frames")
    record = {"job": "a", "fingerprint": job.fingerprint, "status": "done", "outputs": ["sv4d2/v0.mp4"]}
    with pytest.raises(BatchError, match="is not a finished batch job"):
        completed(out, job)
    (folder / JOB_FILE).write_text(json.dumps(record))
    assert completed(out, job) == record
    (folder / JOB_FILE).write_text(json.dumps({**record, "fingerprint": "0" * 16}))
    with pytest.raises(BatchError, match="another workflow or other --set values"):
        completed(out, job)
    (folder / JOB_FILE).write_text(json.dumps(record))
    (folder / "sv4d2" / "v0.mp4").write_bytes(b"")
    with pytest.raises(BatchError, match=r"lost output files \['sv4d2/v0.mp4'\]"):
        completed(out, job)


def batch_args(workflow: Path, clips: Path, out: Path, address: str) -> list[str]:
    workflow.write_text(json.dumps(WORKFLOW))
    return [str(workflow), "--inputs", str(clips), "--output", str(out), "--ray", address,
            "--set", "Load Video.file={input}"]


def test_ray_stays_optional(tmp_path, clips):
    """With Ray unimportable the batch modules still import and run locally; `--ray` says how to install it."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "import headless.batch, headless.batch_local, headless.batch_worker, headless.batch_ray\n"
            "sys.exit(headless.batch.main(sys.argv[1:]))")
    args = batch_args(tmp_path / "workflow.json", clips, tmp_path / "out", "127.0.0.1:1")
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert "--ray needs Ray" in result.stderr and "pip install 'sv4d2[ray]'" in result.stderr


def test_a_ray_address_without_a_head_fails_fast(tmp_path, clips):
    require_ray()
    address = f"127.0.0.2:{free_port()}"
    args = batch_args(tmp_path / "workflow.json", clips, tmp_path / "out", address)
    result = subprocess.run([sys.executable, "-m", "headless.batch", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"no Ray head answers at {address}" in result.stderr and "ray start --head" in result.stderr
