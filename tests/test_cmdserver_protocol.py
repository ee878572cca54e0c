"""The command server protocol against scripted servers: the cases real hg
does not produce on demand (split frames, input requests, a broken stream).

The real server is tested in test_cmdserver.py."""
import os
import struct
import sys

import pytest

from hgext_envdeploy import transport
from hgext_envdeploy.cmdserver import CommandServer
from hgext_envdeploy.shell import Shell, ShellError, quote

HELLO = b"capabilities: getencoding runcommand\nencoding: utf-8\npid: 1"

# A server that reads one command, then plays back FRAMES (a repr'd list of
# (channel, data)); an 'I' or 'L' frame waits for the client's answer and
# reports it on the 'o' channel.  It ends at the empty line, as hg does.
_SERVER = r"""
import struct, sys
out, inp = sys.stdout.buffer, sys.stdin.buffer
def frame(ch, data):
    out.write(ch + struct.pack('>I', len(data)) + data); out.flush()
frame(b'o', %(hello)r)
while True:
    line = inp.readline()
    if line in (b'', b'\n'):
        break
    (n,) = struct.unpack('>I', inp.read(4)); inp.read(n)
    for ch, data in %(frames)r:
        if ch in (b'I', b'L'):
            out.write(ch + struct.pack('>I', 4096)); out.flush()
            (n,) = struct.unpack('>I', inp.read(4))
            frame(b'o', b'answered %%d bytes\n' %% n)
        elif ch == b'X':
            sys.exit(3)
        else:
            frame(ch, data)
"""


@pytest.fixture
def shell(tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        sh = Shell(transport.LocalTransport(), 10)
    finally:
        os.chdir(cwd)
    yield sh
    sh.close()


def _server(tmp_path, frames, hello=HELLO):
    script = tmp_path / "server.py"
    script.write_text(_SERVER % {"hello": hello, "frames": frames})
    # Run as 'HG serve --cmdserver pipe': the script ignores its arguments.
    return b"%s %s" % (quote(os.fsencode(sys.executable)),
                       quote(os.fsencode(script)))


def test_lines_split_across_frames_reach_output_whole(shell, tmp_path):
    frames = [(b"o", b"pulling fr"), (b"o", b"om src\nadded 1 chan"),
              (b"e", b"gesets\n"), (b"o", b"no newline"),
              (b"r", struct.pack(">i", 0))]
    server = CommandServer(shell, _server(tmp_path, frames))
    lines = []

    status, out = server.run((b"pull",), lines.append)

    assert status == 0
    assert lines == [b"pulling from src", b"added 1 changesets", b"no newline"]
    assert out == b"pulling from src\nadded 1 changesets\nno newline"
    server.stop()
    assert shell.run(b"echo shell again") == (0, b"shell again\n")


def test_exit_status_and_later_commands_share_the_server(shell, tmp_path):
    frames = [(b"o", b"x\n"), (b"r", struct.pack(">i", 255))]
    server = CommandServer(shell, _server(tmp_path, frames))

    assert server.run((b"update",))[0] == 255
    assert server.running
    assert server.run((b"update",))[0] == 255


def test_input_requests_get_end_of_file(shell, tmp_path):
    frames = [(b"L", b""), (b"I", b""), (b"r", struct.pack(">i", 0))]
    server = CommandServer(shell, _server(tmp_path, frames))

    status, out = server.run((b"commit",))

    assert status == 0
    assert out == b"answered 0 bytes\n" * 2


def test_unknown_required_channel_breaks_the_session(shell, tmp_path):
    frames = [(b"Z", b"what"), (b"r", struct.pack(">i", 0))]
    server = CommandServer(shell, _server(tmp_path, frames))

    with pytest.raises(ShellError, match="unknown channel"):
        server.run((b"log",))
    # Never reused: its next answer could be anything.
    with pytest.raises(ShellError):
        shell.run(b"true")


def test_optional_channels_are_skipped(shell, tmp_path):
    frames = [(b"d", b"debug noise"), (b"o", b"ok\n"), (b"r", struct.pack(">i", 0))]
    server = CommandServer(shell, _server(tmp_path, frames))

    assert server.run((b"log",)) == (0, b"ok\n")


def test_a_server_that_dies_mid_command_fails_it_and_frees_the_shell(shell, tmp_path):
    frames = [(b"o", b"working\n"), (b"X", b"")]
    server = CommandServer(shell, _server(tmp_path, frames))

    status, out = server.run((b"update",))

    assert status == 255
    assert out.startswith(b"working\n") and b"ended unexpectedly" in out
    assert not server.running
    assert shell.run(b"echo fine") == (0, b"fine\n")


def test_a_stranger_answering_gets_a_process_per_command(shell, tmp_path):
    # Something that prints instead of greeting: each command is then run as
    # a process, 'HG ARGS', here an echo.
    server = CommandServer(shell, b"echo")

    assert server.run((b"log", b"-r", b"it's")) == (0, b"log -r it's\n")
    assert not server.usable


def test_a_stranger_starting_with_o_is_still_a_stranger(shell, tmp_path):
    # 'ok, serve ...' reads as channel 'o' with a length of 0x6b2c2073 bytes.
    server = CommandServer(shell, b"echo ok,")

    assert server.run((b"log",)) == (0, b"ok, log\n")
    assert not server.usable


def test_disabled_never_starts_a_server(shell, tmp_path):
    server = CommandServer(shell, _server(tmp_path, []), enabled=False)

    status, out = server.run((b"x",))

    # The script ran as a process: it greeted and waited for input (none).
    assert out.startswith(b"o") and HELLO in out
    assert not server.running
