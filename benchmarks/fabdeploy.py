"""The deploy steps done with Fabric 3, as a fabfile would: one command per step.

Run by benchmarks/run.py as its own process (so it pays its interpreter and
imports, as ``hg envdeploy`` and ``ssh`` do):

    python fabdeploy.py serial|threading KEY KNOWN_HOSTS PATH STEP... -- HOST...

Every STEP runs on every host (``Group.run``, the way a Fabric deploy task
runs a group), in ``cd PATH``; a failing step on any host fails the run.
Host keys are checked against KNOWN_HOSTS (Fabric would accept any key).
"""
import shlex
import sys

from fabric import Connection, SerialGroup, ThreadingGroup


def main(argv):
    kind, key, known_hosts, path = argv[:4]
    split = argv.index("--")
    steps, hosts = argv[4:split], argv[split + 1 :]
    group_class = {"serial": SerialGroup, "threading": ThreadingGroup}[kind]
    connections = []
    for spec in hosts:
        c = Connection(spec, connect_kwargs={"key_filename": key,
                                             "look_for_keys": False,
                                             "allow_agent": False})
        c.client.load_host_keys(known_hosts)
        connections.append(c)
    group = group_class.from_connections(connections)
    try:
        for step in steps:
            group.run(f"cd {shlex.quote(path)} && {step}", hide=True, in_stream=False)
    finally:
        group.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
