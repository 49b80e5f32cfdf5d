"""scripts/check_commit_msg.py, the commit-msg hook: subject <= 72 characters, then a blank line."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_commit_msg.py"
sys.path.insert(0, str(SCRIPT.parent))

from check_commit_msg import MAX_SUBJECT, problems  # noqa: E402


@pytest.mark.parametrize("message", [
    "Load scikit-learn on first use\n\nimport fastnn took 2.7 s; now 0.4 s.\n",
    "x" * MAX_SUBJECT + "\n",
    "Short subject\n# Please enter the commit message for your changes.\n#\n",
    "\n\nSubject after blank lines\n\nBody.\n",
    "Subject\n\nBody\n# ------------------------ >8 ------------------------\n" + "y" * 200 + "\n",
    "Merge branch 'i28' into main, " + "with a long generated subject" * 3 + "\n",
    "fixup! " + "z" * 100 + "\n",
])
def test_accepted(message):
    assert problems(message) == []


@pytest.mark.parametrize("message, reason", [
    ("x" * (MAX_SUBJECT + 1) + "\n", "73 characters"),
    ("Subject that goes on\nonto a second line\n", "second line must be blank"),
    ("Subject with a period.\n\nBody.\n", "ends with a period"),
    ("# only comments\n\n", "empty"),
    ("", "empty"),
])
def test_refused(message, reason):
    found = problems(message)
    assert found and reason in " ".join(found)


def test_hook_exit_status(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("Add the commit-msg hook\n\nWhy and what was measured.\n", encoding="utf-8")
    bad.write_text("a" * 100 + "\n", encoding="utf-8")
    run = [sys.executable, str(SCRIPT)]
    assert subprocess.run(run + [str(good)], capture_output=True).returncode == 0
    proc = subprocess.run(run + [str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "100 characters" in proc.stderr


def test_pre_commit_config_runs_it_at_commit_msg():
    config = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    assert "scripts/check_commit_msg.py" in config
    assert "stages: [commit-msg]" in config
    assert "commit-msg" in config.split("default_install_hook_types:")[1].splitlines()[0]
