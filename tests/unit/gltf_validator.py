"""Khronos glTF validator (npm `gltf-validator`) for tests: installed once under the ignored `.cache/npm`."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.prerequisites import missing

REPO = Path(__file__).resolve().parents[2]
PREFIX = REPO / ".cache" / "npm"
PACKAGE = "gltf-validator@2.0.0-dev.3.10"
_SCRIPT = """
const fs = require('fs');
const validator = require('gltf-validator');
validator.validateBytes(new Uint8Array(fs.readFileSync(process.argv[1])), {maxIssues: 100})
  .then((report) => console.log(JSON.stringify(report.issues)))
  .catch((error) => { console.error(error); process.exit(1); });
"""


def validator_dir() -> Path:
    """Folder whose node_modules has gltf-validator (installed on first use). node/npm or the package missing: a
    failure under CI, else a skip (`tests.prerequisites.missing`)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing("node/npm not installed: the Khronos glTF validator needs them (apt-get install nodejs npm, then "
                "bash scripts/install_test_tools.sh)")
    if not (PREFIX / "node_modules" / "gltf-validator").is_dir():
        done = subprocess.run(["npm", "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", PACKAGE],
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode:
            missing(f"could not install {PACKAGE} from npm into {PREFIX}: {done.stderr[-500:]}")
    return PREFIX


def validate_glb(path: Path) -> dict:
    """The validator's issue summary: numErrors, numWarnings, numInfos, numHints and the messages."""
    done = subprocess.run(["node", "-e", _SCRIPT, str(path)], cwd=validator_dir(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
