"""The transcripts in tests/transcripts/, Mercurial's `.t` dialect, run by prysk.

Each pins the whole output and exit status of a few commands on local
environments (no SSH), so that a change of wording shows in review as a diff
of the transcript.  After an intended change, accept the new output with
prysk's -i (it shows the diff and asks), from the project root:

  d=$(mktemp -d); HOME=$d HGRCPATH=$d/hgrc PYTHONPATH=$PWD PATH=$PWD/.venv/bin:$PATH \\
      .venv/bin/prysk -i tests/transcripts/local.t

Lines that matched keep their patterns; write `(glob)` or `(re)` ones into new
lines for whatever changes from run to run (dates, durations, paths, run ids;
commits made with -d '0 0' have the same hashes every time).
"""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT, VENV_BIN, unavailable

TRANSCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transcripts")


@pytest.mark.parametrize(
    "name", sorted(n for n in os.listdir(TRANSCRIPTS) if n.endswith(".t")))
def test_transcript(name, tmp_path):
    try:
        import prysk  # noqa: F401
    except ImportError:
        unavailable("prysk is not installed (pip install -e '.[test]')")
    # Like HgEnv: this hg first on PATH, the source tree importable, no HG*
    # variable of the caller's; HGRCPATH is a file the transcript writes.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HG", "PRYSK"))}
    env.update(
        HOME=str(tmp_path / "home"),
        HGRCPATH=str(tmp_path / "hgrc"),
        PATH=VENV_BIN + os.pathsep + env.get("PATH", os.defpath),
        PYTHONPATH=os.pathsep.join(
            [PROJECT_ROOT] + [p for p in [env.get("PYTHONPATH")] if p]),
        TMPDIR=str(tmp_path),  # prysk makes the directories it runs in there
    )
    os.makedirs(env["HOME"])
    # A copy: prysk writes NAME.err beside the file it runs when it fails.
    copy = tmp_path / name
    shutil.copyfile(os.path.join(TRANSCRIPTS, name), copy)
    proc = subprocess.run(
        [sys.executable, "-m", "prysk", "--shell", "/bin/sh", "--color", "never", copy],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"tests/transcripts/{name}: the output differs (- expected, + got):\n"
        f"{proc.stdout}{proc.stderr}")
