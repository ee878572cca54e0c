"""The package as the card says: setup.py beside pyproject.toml, a version
hg reports, and both `pip install .` and `pip install -e .` working."""
import os
import subprocess
import sys

from conftest import PROJECT_ROOT


def test_setup_py_is_minimal_and_the_metadata_is_in_pyproject():
    with open(os.path.join(PROJECT_ROOT, "setup.py")) as fp:
        setup_py = fp.read()
    assert "setup()" in setup_py and "name=" not in setup_py
    with open(os.path.join(PROJECT_ROOT, "pyproject.toml")) as fp:
        assert 'name = "hgext-envdeploy"' in fp.read()


def test_hg_version_lists_the_extension_with_its_version(hgenv, tmp_path):
    import hgext_envdeploy

    r = hgenv.hg("version", "-v", cwd=tmp_path, check=True)

    line = [l for l in r.out.splitlines() if "hgext_envdeploy" in l]
    assert line and line[0].split() == ["hgext_envdeploy", "external",
                                        hgext_envdeploy.__version__], r.out


def _pip(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pip", "-q", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_pip_install_and_editable_install(tmp_path):
    import hgext_envdeploy

    target = tmp_path / "plain"
    r = _pip("install", "--no-deps", "--target", target, ".", cwd=PROJECT_ROOT)
    assert r.returncode == 0, r.stderr
    assert (target / "hgext_envdeploy" / "__init__.py").exists()
    [meta] = [p for p in os.listdir(target) if p.endswith(".dist-info")]
    assert meta == f"hgext_envdeploy-{hgext_envdeploy.__version__}.dist-info"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                   check=True)
    python = str(venv / "bin" / "python")
    r = subprocess.run([python, "-m", "pip", "-q", "install", "--no-deps", "-e", "."],
                       cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # find_spec: where it would import from, without needing Mercurial there.
    where = subprocess.run([python, "-c", "import importlib.util; print(importlib."
                            "util.find_spec('hgext_envdeploy').origin)"], cwd=tmp_path,
                           capture_output=True, text=True, env=env, check=True)
    assert where.stdout.strip() == os.path.join(PROJECT_ROOT, "hgext_envdeploy",
                                                "__init__.py")
