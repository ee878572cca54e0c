"""paramiko is imported without invoke, yet its ssh_config parser keeps
``Match exec`` (the fallback where no OpenSSH client is installed)."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent('''
    import sys
    from mercurial import ui as uimod
    from hgext_envdeploy import transport
    transport.OpenSSHConfig.find = classmethod(lambda cls, path: None)
    settings = {b'hostkeys': b'strict', b'connecttimeout': 5,
                b'knownhosts': b'/nonexistent/known_hosts',
                b'sshconfig': sys.argv[1].encode()}
    context = transport.SSHContext(uimod.ui.load(), settings)
    print('invoke loaded with paramiko:', 'invoke' in sys.modules)
    for alias in ('web', 'db'):
        print(alias, context._resolve(alias)['hostname'])
''')


def test_paramiko_parser_still_runs_match_exec(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(textwrap.dedent('''\
        Match originalhost web exec "test -d /"
          HostName web.reached-through-match-exec
        Match originalhost db exec "false"
          HostName db.never
    '''))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(config)],
                         env=dict(os.environ, PYTHONPATH=ROOT),
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "invoke loaded with paramiko: False",
        "web web.reached-through-match-exec",
        "db db",
    ]
