"""hgweb's /environments page and the changeset pages, served by a real `hg serve`
on 127.0.0.1 and read by a real headless Chromium (Debian's chromium and
chromium-driver, driven by selenium), as a person sees them; the JSON style over
plain HTTP."""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import unavailable
from envtools import clone_target, commit_on, environment, head

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SECRET = "s3cr3t-never-shown"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(hgenv, central_repo, tmp_path):
    """central_repo with staging deployed (live not), one changeset pending on
    staging, served by `hg serve` on 127.0.0.1; yields (base url, facts)."""
    staging_site = clone_target(hgenv, central_repo, tmp_path / "staging-site")
    live_site = clone_target(hgenv, central_repo, tmp_path / "live-site")
    hgenv.write_hgrc(central_repo, environment(
        "staging", path=staging_site, reload="echo reloaded"))
    hgenv.write_hgrc(central_repo, f"[environments]\nstaging.env.SECRET_KEY = {SECRET}\n"
                     "staging.secret = SECRET_KEY\n")
    hgenv.write_hgrc(central_repo, environment(
        "live", path=live_site, promotefrom="staging"))
    hgenv.hg("envdeploy", "staging", cwd=central_repo, check=True)
    deployed = head(hgenv, central_repo, "staging")
    pending = commit_on(hgenv, central_repo, "staging", "Fix the <footer> & more",
                        lambda repo: open(os.path.join(repo, "fix.txt"), "w").write("x"))
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [hgenv.hg_executable, "serve", "-R", str(central_repo), "-a", "127.0.0.1",
         "-p", str(port), "-E", str(tmp_path / "serve-errors.log")],
        env=hgenv.env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("hg serve did not answer: "
                                         + open(tmp_path / "serve.log").read())
                time.sleep(0.1)
        yield base, {"deployed": deployed, "pending": pending}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium through chromedriver; nothing is downloaded."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        unavailable(f"{', '.join(missing)} missing (apt-get install chromium "
                    "chromium-driver, or scripts/setup-env --sshd)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[test]')")
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_environments_page_in_a_browser(served, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base, facts = served
    deployed, pending = facts["deployed"], facts["pending"]

    browser.get(base + "/environments")
    browser.save_screenshot(str(tmp_path / "environments.png"))

    assert browser.title.endswith(": environments")
    text = browser.find_element(By.TAG_NAME, "body").text
    assert SECRET not in browser.page_source
    assert "echo reloaded" not in browser.page_source
    staging = browser.find_element(By.ID, "env-staging")
    live = browser.find_element(By.ID, "env-live")
    assert "staging" in staging.find_element(By.TAG_NAME, "h3").text
    [host] = staging.find_elements(By.CSS_SELECTOR, "tr.envdeploy-hostrow")
    assert host.text.startswith("local ")
    assert deployed[:12] in host.text and "deploy ok" in host.text
    assert "pending: 1 changeset not deployed everywhere" in staging.text
    [row] = staging.find_elements(By.CSS_SELECTOR, "tr.envdeploy-pendingrow")
    assert "Fix the <footer> & more" in row.text  # escaped, shown as written
    link = row.find_element(By.TAG_NAME, "a")
    assert link.text == pending[:12]
    assert link.get_attribute("href") == f"{base}/rev/{pending[:12]}"
    [run] = staging.find_elements(By.CSS_SELECTOR, "tr.envdeploy-runrow")
    assert "deploy" in run.text and "ok" in run.text
    # live: never deployed from here, its head not tested on staging.
    assert "unknown here" in live.text
    assert "staging: head tested there" in live.text
    assert "no run recorded in this repository" in live.text
    # The menu is paper's: the log is a link away.
    assert browser.find_element(By.LINK_TEXT, "log").get_attribute(
        "href").startswith(base + "/shortlog")
    assert "environments" in text

    # From the host row to the changeset page: it says where it is deployed.
    host.find_element(By.TAG_NAME, "a").click()
    browser.save_screenshot(str(tmp_path / "changeset.png"))
    assert browser.current_url == f"{base}/rev/{deployed[:12]}"
    row = browser.find_element(By.CSS_SELECTOR, "tr.envdeploy-deployed")
    assert row.text.startswith("deployed")
    assert "staging@local" in row.text
    assert row.find_element(By.LINK_TEXT, "environments").get_attribute(
        "href") == base + "/environments"

    # A changeset deployed nowhere has no such row.
    browser.get(f"{base}/rev/{pending[:12]}")
    assert browser.find_elements(By.CSS_SELECTOR, "tr.envdeploy-deployed") == []
    assert (tmp_path / "environments.png").stat().st_size > 1000


def test_environments_json_and_other_styles(served):
    base, facts = served
    with urllib.request.urlopen(base + "/environments?style=json") as r:
        assert r.headers["Content-Type"].startswith("application/json")
        data = json.load(r)
    envs = {e["name"]: e for e in data["environments"]}
    assert list(envs) == ["staging", "live"]
    [host] = envs["staging"]["hosts"]
    assert host["host"] == "local" and host["node"]["node"] == facts["deployed"]
    assert host["kind"] == "deploy" and host["outcome"] == "ok"
    assert [c["node"] for c in envs["staging"]["pending"]] == [facts["pending"]]
    assert envs["live"]["hosts"][0]["node"] is None
    assert envs["live"]["promotefrom"] == "staging" and envs["live"]["tested"] is True
    assert SECRET not in json.dumps(data)

    for style in ("gitweb", "monoblue", "spartan", "coal"):
        with urllib.request.urlopen(f"{base}/environments?style={style}") as r:
            page = r.read().decode()
        assert facts["deployed"][:12] in page, style
        assert f'href="/rev/{facts["pending"][:12]}' in page, style
        with urllib.request.urlopen(f"{base}/rev/{facts['deployed'][:12]}"
                                    f"?style={style}") as r:
            assert "staging@local" in r.read().decode(), style
    with urllib.request.urlopen(base + "/environments?style=raw") as r:
        text = r.read().decode()
    assert f"  local: {facts['deployed'][:12]}" in text
