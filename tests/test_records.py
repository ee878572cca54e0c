"""records.latestof, read from the end of the file, finds what
records.latest finds reading it whole: across chunk boundaries, past
damaged lines, for hosts with no record."""
import random

from mercurial import hg, ui as uimod

from hgext_envdeploy import records


def _repo(tmp_path):
    path = str(tmp_path / "repo").encode()
    return hg.repository(uimod.ui.load(), path, create=True)


def test_latestof_agrees_with_reading_the_whole_file(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    hosts = [b"web%d" % i for i in range(5)]
    rng = random.Random(4)
    for i in range(300):
        env = rng.choice([b"live", b"staging"])
        host = rng.choice(hosts[:4])  # web4 never deployed
        records.append(repo, [dict(env=env, host=host, node=b"%040x" % i,
                                   outcome=b"ok", kind=b"deploy")])
        if i % 50 == 7:
            with open(repo.vfs.join(records.RECORDS), "ab") as fp:
                fp.write(b'{"env": "live", "host": "web1", "node"\n')  # torn
    whole = records.latest(repo)
    for chunk in (37, 256, 1 << 16):  # lines cut anywhere, and in one read
        monkeypatch.setattr(records, "_CHUNK", chunk)
        for env in (b"live", b"staging"):
            found = records.latestof(repo, env, hosts)
            assert found == {h: whole[(env, h)] for h in hosts if (env, h) in whole}
            assert b"web4" not in found


def test_latestof_without_records(tmp_path):
    assert records.latestof(_repo(tmp_path), b"live", [b"web0"]) == {}
