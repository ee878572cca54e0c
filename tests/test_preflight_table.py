"""preflight.CHECKS is the table that drives hg envcheck: its rows are the checks
shown, in order, and the sections of the one shared round trip are those its rows
read. Real hg, a local environment, and an extension adding one row."""
from envtools import clone_target, environment
from hgext_envdeploy import preflight


def test_every_section_read_exists_and_every_section_is_read():
    known = [name for name, _script in preflight.SECTIONS]
    read = {name for _check, _func, reads in preflight.CHECKS for name in reads}
    assert read <= set(known)
    assert set(known) <= read, "a section no check reads costs a round trip for nothing"
    assert preflight.CHECKS[0][0] == b"connect"  # an unreachable host skips the rest


# An extension adding one check: a function, a row of CHECKS, a section of
# SECTIONS; with MAINTENANCE=drop, the row goes and the section stays.
EXTENSION = """
import os
from hgext_envdeploy import preflight

def maintenance(r):
    status, out = r.found[b"maintenance"]
    if out.strip() == b"on":
        return preflight.FAILED, b"in maintenance", b"remove the file"
    return preflight.OK, b"off", None

def uisetup(ui):
    if os.environ.get("MAINTENANCE") == "drop":
        preflight.SECTIONS += ((b"maintenance", lambda r: b"echo asked >> asked"),)
        return
    preflight.SECTIONS += (
        (b"maintenance", lambda r: b"cat maintenance 2>/dev/null || true"),)
    preflight.CHECKS = preflight.CHECKS[:2] + (
        (b"maintenance", maintenance, (b"maintenance",)),) + preflight.CHECKS[2:]
"""


def test_a_row_added_to_the_table_is_checked_and_shown(hgenv, central_repo, tmp_path):
    site = clone_target(hgenv, central_repo, tmp_path / "site")
    extension = tmp_path / "maintenance.py"
    extension.write_text(EXTENSION)
    hgenv.write_hgrc(central_repo, environment("staging", path=site) +
                     f"[extensions]\nmaintenance = {extension}\n")
    (tmp_path / "site" / "maintenance").write_text("on\n")

    r = hgenv.hg("envcheck", "staging", cwd=central_repo)

    assert r.rc == 1, r.text
    names = [line.split()[1] for line in r.out.splitlines()
             if line.startswith("  ") and not line.strip().startswith("(")]
    assert names == ["connect", "hg", "maintenance", "path", "source",
                     "requiredfiles", "lock", "freeze", "journal", "workingcopy",
                     "migrations"]
    assert "FAILED  maintenance   in maintenance" in r.out
    assert "(remove the file)" in r.out
    assert "staging: 1 check failed: local (maintenance)" in r.err
    # envdeploy --check is the same table.
    r = hgenv.hg("envdeploy", "--check", "staging", cwd=central_repo)
    assert r.rc == 1 and "FAILED  maintenance   in maintenance" in r.out, r.text

    # The row gone, its section is no longer asked of the host either.
    hgenv.env["MAINTENANCE"] = "drop"
    r = hgenv.hg("envcheck", "staging", cwd=central_repo)
    assert r.rc == 0, r.text
    assert "maintenance" not in r.out
    assert "staging: every check passed on 1 host" in r.out
    assert not (tmp_path / "site" / "asked").exists()
