# config.py - environments read from hgrc
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The configuration model: ``[environments]`` parsed into plain objects.

Every environment key is ``[environments] ENV.KEY``; any key may also be set
in ``[envdeploy]`` as a default for every environment.  The rest of the
extension reads :class:`Environment` and :class:`Host`, never the hgrc.
"""

import bisect
import os
import re

from mercurial.i18n import _
from mercurial import config as configmod, error, registrar
from mercurial.utils import procutil, stringutil

configtable = {}
configitem = registrar.configitem(configtable)

# Per-environment keys and their built-in defaults.  ``None`` means "not
# set": each key is documented in the extension help and in hgrc.example.
ENV_KEYS = {
    b'branch': None,  # the environment's own name
    b'hosts': b'',
    b'path': None,
    b'source': b'',
    b'migrate': b'',
    b'reload': b'',
    b'check': b'',
    b'hg': None,  # 'hg' on a remote host, this hg for a local environment
    b'identity': b'',
    b'forwardagent': b'false',  # lend the target our ssh-agent (hg pull)
    b'pushto': b'',  # where envmerge pushes; default-push/default if unset
    b'onfailure': b'rollback',
    b'serial': b'',  # hosts per batch, N or N%; all at once when empty
    b'maxfail': b'0',  # failed hosts tolerated before the deploy stops
    b'migrate.state': b'',  # derived from migrate when it runs manage.py
    b'migrate.rollback': b'',
    b'requiredfiles': b'',  # untracked files a deploy needs (envcheck)
    b'localsettings': b'',  # local file envsetup uploads where it is missing
    b'autodeploy': b'false',  # true, false or background (hooks.py)
    b'protect': b'false',  # one head only on the branch (protect.py)
    b'secret': b'',  # names of env.NAME values never shown (masked: ***)
    b'migrateon': b'',  # host or role migrating the one database; or all
}

# ``ENV.KEY.ROLE``: keys that a role's hosts set for themselves.  ``hosts``
# adds hosts with that role; ``reload`` and ``check`` override the
# environment's commands for them.
ROLE_KEYS = (b'hosts', b'reload', b'check')
_ROLE_NAME = re.compile(br'^[A-Za-z0-9_][A-Za-z0-9_-]*$')
# Names a role cannot take: the suffixes of the dotted keys (a role
# ``state`` would make ``migrate.state`` ambiguous the day migrate takes a
# role), ``env`` (ENV.env.NAME) and ``all`` (migrateon = all).
_RESERVED_ROLES = frozenset(
    [k.split(b'.', 1)[1] for k in ENV_KEYS if b'.' in k]
    + [b'env', b'all', b'sources'])
MIGRATE_ALL = b'all'

# ``ENV.env.NAME = VALUE``: exported to everything run on the targets.
ENVVAR = b'env.'
_ENVVAR_NAME = re.compile(br'^[A-Za-z_][A-Za-z0-9_]*$')
MASK = b'***'

ONFAILURE = (b'rollback', b'stop')

# Settings that only make sense once, in [envdeploy].
GLOBAL_KEYS = {
    b'knownhosts': b'~/.ssh/known_hosts',
    b'hostkeys': b'strict',
    b'sshconfig': b'~/.ssh/config',
    b'concurrency': 8,
    b'locktimeout': 30,
    b'timeout': 600,
    b'connecttimeout': 15,
    b'grace': 10,  # seconds running steps get to finish after Ctrl-C
    b'cmdserver': True,  # a target's hg commands in one process (cmdserver.py)
    b'autodeploy.sources': b'serve push',  # what the changegroup hook deploys
}

HOSTKEY_POLICIES = (b'strict', b'accept-new')

for _key, _default in ENV_KEYS.items():
    configitem(b'envdeploy', _key, default=_default)
for _key, _default in GLOBAL_KEYS.items():
    configitem(b'envdeploy', _key, default=_default)
configitem(b'environments', b'.*', default=None, generic=True)
configitem(b'envdeploy', br'env\..*', default=None, generic=True)

LOCAL = b'local'

_ENV_NAME = re.compile(br'^[A-Za-z0-9_][A-Za-z0-9_-]*$')
# [user@]host[:port], host may be a bracketed IPv6 address.
_HOST = re.compile(
    br'^(?:(?P<user>[^@\s:/]+)@)?'
    # Never a leading '-': a name that ssh or a ProxyCommand would take as
    # an option (OpenSSH refuses such host names too).
    br'(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.][A-Za-z0-9_.-]*)'
    br'(?::(?P<port>[0-9]+))?$'
)


class Host:
    """One target of an environment.

    ``port`` and ``user`` are None when the hgrc did not give them, so that
    ``~/.ssh/config`` and the ssh defaults can fill them in.
    """

    def __init__(self, spec, hostname=None, user=None, port=None, role=None):
        self.spec = spec
        self.hostname = hostname
        self.user = user
        self.port = port
        self.role = role  # ENV.hosts.ROLE, or None for plain ENV.hosts

    @property
    def islocal(self):
        return self.hostname is None

    @property
    def name(self):
        return self.spec

    @property
    def label(self):
        """The host as output names it: with its role, when it has one."""
        if self.role is None:
            return self.spec
        return b'%s (%s)' % (self.spec, self.role)

    def __repr__(self):
        return '<Host %s>' % self.spec.decode('utf-8', 'replace')


class Environment:
    """A named branch deployed to a set of hosts, with its commands."""

    def __init__(self, name, values, hosts):
        self.name = name
        self.values = values
        self.hosts = hosts

    def __getattr__(self, key):
        try:
            return self.values[key.encode('ascii')]
        except KeyError:
            raise AttributeError(key)

    @property
    def islocal(self):
        return self.hosts[0].islocal

    def command(self, name, host):
        """The ``reload``/``check``/``migrate`` command for ``host`` (its
        role's own when set, even empty), b'' when there is none."""
        if host.role is not None:
            own = self.values[b'roles'].get((name, host.role))
            if own is not None:
                return own
        return self.values[name] or b''

    @property
    def migrateall(self):
        """Whether every host migrates its own database (migrateon = all)."""
        return self.values[b'migrationhost'] is None

    def migrationhost(self, host):
        """The host that migrates ``host``'s database (maybe itself)."""
        return self.values[b'migrationhost'] or host

    def mask(self, data):
        """``data`` with every secret value replaced by ``***``."""
        for value in self.secretvalues:
            data = data.replace(value, MASK)
        return data

    def describe(self):
        if self.islocal:
            return _(b'local')
        return b', '.join(h.label for h in self.hosts)


def parsehost(spec, source=b''):
    """Parse ``[user@]host[:port]`` into a :class:`Host`."""
    m = _HOST.match(spec)
    if not m:
        raise _configerror(
            _(b"malformed host '%s'") % spec,
            source,
            _(b"write hosts as [user@]host[:port], separated by commas"),
        )
    port = m.group('port')
    if port is not None:
        port = int(port)
        if not 0 < port < 65536:
            raise _configerror(
                _(b"port out of range in host '%s'") % spec,
                source,
                _(b'a port is a number from 1 to 65535'),
            )
    hostname = m.group('host')
    if hostname.startswith(b'['):
        hostname = hostname[1:-1]
    return Host(spec, hostname=hostname, user=m.group('user'), port=port)


def parsehosts(value, source=b''):
    """Split a ``hosts`` value on commas and whitespace; reject empty items."""
    value = value.strip()
    if not value:
        return []
    items = [i.strip() for i in value.split(b',')]
    if any(not i for i in items):
        raise _configerror(
            _(b"empty host entry in '%s'") % value,
            source,
            _(b'remove the extra comma'),
        )
    hosts = []
    for item in items:
        for spec in item.split():
            hosts.append(parsehost(spec, source))
    specs = [h.spec for h in hosts]
    dupes = sorted({s for s in specs if specs.count(s) > 1})
    if dupes:
        raise _configerror(
            _(b'host listed twice: %s') % b', '.join(dupes), source
        )
    return hosts


def _configerror(msg, source=b'', hint=None):
    if source:
        msg = b'%s: %s' % (source, msg)
    return error.ConfigError(msg, hint=hint)


def envnames(ui):
    """The environment names declared in [environments], in order."""
    names = []
    for key, value in ui.configitems(b'environments'):
        name = key.split(b'.', 1)[0]
        if name not in names:
            names.append(name)
    return names


def _source(ui, section, key):
    src = ui.configsource(section, key)
    return src if src and src != b'none' else b''


def _valuesource(ui, prefix, key):
    """Where an environment's ``key`` came from: [environments], else the
    [envdeploy] default."""
    return (_source(ui, b'environments', prefix + key)
            or _source(ui, b'envdeploy', key))


_SECTION = re.compile(br'\[([^\[]+)\]')  # as mercurial.config parses it


class _recorder(configmod.config):
    """A config parser that remembers every assignment, not just the last."""

    def __init__(self):
        super().__init__()
        self.assignments = []  # [section, item, value, source]

    def set(self, section, item, value, source=b''):
        if not self.hasitem(section, item):
            # First set, or %unset since: that starts the key afresh, what
            # came before is intended.
            self.assignments = [a for a in self.assignments
                                if a[:2] != [section, item]]
        last = self.assignments[-1] if self.assignments else None
        if (last and last[:2] == [section, item]
                and value.startswith(last[2] + b'\n')):
            last[2] = value  # a continuation line of the same assignment
        else:
            self.assignments.append([section, item, value, source])
        super().set(section, item, value, source)


def _checkrepeats(ui, section, keys, cache):
    """Refuse a key given twice in one section block with different values.

    Layered files (~/.hgrc, then the repository's .hg/hgrc) override each
    other as usual, and so does a later ``[section]`` block appended to a
    file (``echo ... >> .hg/hgrc``).  But within one block the later line
    silently wins, which is almost always a mistake (two edits that
    crossed).  ``cache`` maps a file to what it sets, read once.
    """
    for key in keys:
        where = _source(ui, section, key)
        path, sep, line = where.rpartition(b':')
        if not sep or not line.isdigit() or not os.path.isfile(path):
            continue  # --config, or not from a file
        if path not in cache:
            rec = _recorder()
            headers = []
            try:
                rec.read(path)
                with open(path, 'rb') as fp:
                    headers = [n for n, l in enumerate(fp, 1)
                               if _SECTION.match(l)]
            except (OSError, error.ConfigError):
                pass  # changed meanwhile: nothing to say
            cache[path] = rec.assignments, headers
        assignments, headers = cache[path]
        block = bisect.bisect(headers, int(line))
        value = ui.config(section, key)
        for sect, item, other, source in assignments:
            opath, _sep, oline = source.rpartition(b':')
            if ((sect, item) == (section, key) and other != value
                    and opath == path
                    and bisect.bisect(headers, int(oline)) == block):
                raise _configerror(
                    _(b'[%s] %s is set twice with different values (also at '
                      b'line %s)') % (section, key, oline),
                    where,
                    _(b'remove one of them: only the last one counts'),
                )


def rawvalue(ui, name, key):
    """``ENV.KEY`` as written, else its ``[envdeploy]`` default, stripped;
    and where it was set (``file:line``, or empty).

    For the hooks, which read one key without loading (and validating) the
    whole environment, so that an environment they do not concern cannot
    break a push.
    """
    section, item = b'environments', name + b'.' + key
    value = ui.config(section, item)
    if value is None:
        section, item = b'envdeploy', key
        value = ui.config(section, item)
    return (value or b'').strip(), _source(ui, section, item)


def load(ui, name):
    """Return the :class:`Environment` called ``name``, validated."""
    names = envnames(ui)
    if name not in names:
        if names:
            hint = _(b'known environments: %s') % b', '.join(names)
        else:
            hint = _(
                b'declare one in [environments], for example\n'
                b'  staging.path = /srv/staging/project\n'
                b"(see 'hg help -e hgext_envdeploy')"
            )
        raise error.InputError(
            _(b"unknown environment '%s'") % name, hint=hint
        )
    if not _ENV_NAME.match(name):
        raise _configerror(
            _(b"invalid environment name '%s'") % name,
            hint=_(b'use letters, digits, - and _'),
        )

    values = {}
    environ = {}
    roles = {}  # (key, role) -> value, for ENV.KEY.ROLE
    prefix = name + b'.'
    cache = {}
    for key, value in ui.configitems(b'environments'):
        if not key.startswith(prefix):
            continue
        _checkrepeats(ui, b'environments', [key], cache)
        sub = key[len(prefix) :]
        if sub.startswith(ENVVAR):
            environ[_envvar(ui, b'environments', key, sub)] = value
            continue
        base, dot, role = sub.partition(b'.')
        if dot and base in ROLE_KEYS:
            roles[(base, _rolename(ui, key, role))] = value
            continue
        if sub not in ENV_KEYS:
            raise _configerror(
                _(b"unknown key '%s' for environment '%s'") % (sub, name),
                _source(ui, b'environments', key),
                _(b'known keys: %s') % b', '.join(sorted(ENV_KEYS)),
            )
        values[sub] = value
    for key in ENV_KEYS:
        if key not in values:
            _checkrepeats(ui, b'envdeploy', [key], cache)
            values[key] = ui.config(b'envdeploy', key)
    for key, value in ui.configitems(b'envdeploy'):
        if key.startswith(ENVVAR):
            environ.setdefault(_envvar(ui, b'envdeploy', key, key), value)
    values[b'environ'] = environ
    values[b'secret'] = secret = ui.configlist(
        b'environments', prefix + b'secret',
        ui.configlist(b'envdeploy', b'secret'))
    unknown = [n for n in secret if n not in environ]
    if unknown:
        raise _configerror(
            _(b'secret names %s, which is not set') % b', '.join(unknown),
            _valuesource(ui, prefix, b'secret'),
            _(b'secret lists names of values set as %s.env.NAME')
            % name)
    # Longest first: a secret that contains another is masked whole.
    values[b'secretvalues'] = sorted(
        {environ[n] for n in secret if environ[n]}, key=len, reverse=True)

    if values[b'onfailure'] not in ONFAILURE:
        raise _configerror(
            _(b"unknown onfailure mode '%s'") % values[b'onfailure'],
            _valuesource(ui, prefix, b'onfailure'),
            _(b'use one of: %s') % b', '.join(ONFAILURE),
        )
    _checkcount(ui, values, prefix, b'serial', br'^[1-9][0-9]*%?$',
                _(b'a number of hosts per batch, or a percentage (25%)'))
    if values[b'serial'].endswith(b'%') and int(values[b'serial'][:-1]) > 100:
        raise _configerror(_(b'serial percentage above 100%'),
                           _valuesource(ui, prefix, b'serial'))
    _checkcount(ui, values, prefix, b'maxfail', br'^[0-9]+$',
                _(b'a number of hosts (0: stop at the first failure)'))
    values[b'maxfail'] = int(values[b'maxfail'])
    forward = stringutil.parsebool(values[b'forwardagent'] or b'false')
    if forward is None:
        raise _configerror(
            _(b"invalid forwardagent value '%s'") % values[b'forwardagent'],
            _source(ui, b'environments', prefix + b'forwardagent'),
            _(b'use true or false'))
    values[b'forwardagent'] = forward
    if not values[b'branch']:
        values[b'branch'] = name
    if not values[b'path']:
        raise _configerror(
            _(b"environment '%s' has no path") % name,
            hint=_(b'set %s.path in [environments] to the repository on the '
                   b'target') % name,
        )
    autodeploy = (values[b'autodeploy'] or b'').strip()
    if (autodeploy and autodeploy.lower() != b'background'
            and stringutil.parsebool(autodeploy) is None):
        # hooks.mode() reads it on push; a typo is better found here.
        raise _configerror(
            _(b"invalid autodeploy value '%s' for environment '%s'")
            % (autodeploy, name),
            _valuesource(ui, prefix, b'autodeploy'),
            _(b'use true, false or background')
            + (_(b'; a comment goes on a line of its own')
               if b'#' in autodeploy else b''),
        )
    hostsource = _valuesource(ui, prefix, b'hosts')
    hosts = parsehosts(values[b'hosts'] or b'', hostsource)
    hosts += _rolehosts(ui, name, roles, [h.spec for h in hosts])
    values[b'roles'] = roles
    if not hosts:
        hosts = [Host(LOCAL)]
        # A local environment runs this very hg unless told otherwise, so a
        # newcomer's virtualenv works without being on PATH.
        if not values[b'hg']:
            values[b'hg'] = procutil.shellquote(procutil.hgexecutable())
        values[b'path'] = _expandpath(values[b'path'])
    if not values[b'hg']:
        values[b'hg'] = b'hg'
    values[b'migrationhost'] = _migrationhost(ui, name, values, hosts)
    return Environment(name, values, hosts)


def _rolename(ui, key, role):
    """``role`` of ``ENV.KEY.ROLE``; a config error if it cannot be one."""
    if not _ROLE_NAME.match(role) or role in _RESERVED_ROLES:
        raise _configerror(
            _(b"invalid role name '%s'") % role,
            _source(ui, b'environments', key),
            _(b'a role is letters, digits, - and _, and not one of: %s')
            % b', '.join(sorted(_RESERVED_ROLES)))
    return role


def _rolehosts(ui, name, roles, taken):
    """The hosts of ``ENV.hosts.ROLE`` keys, in the order written."""
    hosts = []
    known = set()
    for (key, role), value in roles.items():
        if key != b'hosts':
            continue
        known.add(role)
        where = _source(ui, b'environments', b'%s.hosts.%s' % (name, role))
        for host in parsehosts(value, where):
            if host.spec in taken:
                raise _configerror(
                    _(b'host listed twice: %s') % host.spec, where,
                    _(b'a host has one role at most'))
            host.role = role
            taken.append(host.spec)
            hosts.append(host)
    for key, role in roles:
        if key != b'hosts' and role not in known:
            raise _configerror(
                _(b"%s.%s names role '%s', which has no hosts")
                % (key, role, role),
                _source(ui, b'environments',
                        b'%s.%s.%s' % (name, key, role)),
                _(b'add its hosts as %s.hosts.%s') % (name, role))
    return hosts


def _migrationhost(ui, name, values, hosts):
    """The host ``migrate`` runs on, or None when every host migrates.

    ``migrateon`` names a host as written in ``hosts``, or a role (its
    first host); empty means the first host; ``all`` means every host (a
    database per host).
    """
    want = (values[b'migrateon'] or b'').strip()
    if want == MIGRATE_ALL:
        return None
    if not want:
        return hosts[0]
    for host in hosts:
        if host.spec == want:
            return host
    for host in hosts:
        if host.role == want:
            return host
    raise _configerror(
        _(b"migrateon names '%s', which is no host or role of '%s'")
        % (want, name),
        _valuesource(ui, name + b'.', b'migrateon'),
        _(b'name one of: %s, a role, or all')
        % b', '.join(h.spec for h in hosts))


def _envvar(ui, section, key, sub):
    """The variable name of ``env.NAME``; a config error if it is not one."""
    var = sub[len(ENVVAR):]
    if not _ENVVAR_NAME.match(var):
        raise _configerror(
            _(b"invalid environment variable name '%s'") % var,
            _source(ui, section, key),
            _(b'use letters, digits and _, not starting with a digit'))
    return var


def _checkcount(ui, values, prefix, key, pattern, hint):
    value = values[key] = (values[key] or b'').strip()
    if value and not re.match(pattern, value):
        raise _configerror(
            _(b"invalid %s value '%s'") % (key, value),
            _valuesource(ui, prefix, key), hint)


def _expandpath(path):
    return os.path.abspath(os.path.expanduser(path))


def settings(ui):
    """The run-wide [envdeploy] settings, validated."""
    _checkrepeats(ui, b'envdeploy', GLOBAL_KEYS, {})
    policy = ui.config(b'envdeploy', b'hostkeys')
    if policy not in HOSTKEY_POLICIES:
        raise _configerror(
            _(b"unknown hostkeys mode '%s'") % policy,
            _source(ui, b'envdeploy', b'hostkeys'),
            _(b'use one of: %s') % b', '.join(HOSTKEY_POLICIES),
        )
    out = {b'hostkeys': policy,
           b'cmdserver': ui.configbool(b'envdeploy', b'cmdserver')}
    for key in (b'knownhosts', b'sshconfig'):
        out[key] = _expandpath(ui.config(b'envdeploy', key))
    for key in (b'concurrency', b'locktimeout', b'timeout', b'connecttimeout',
                b'grace'):
        try:
            value = ui.configint(b'envdeploy', key)
        except error.ConfigError:
            value = None  # not a number: say where, as below
        if value is None or value < 1:
            raise _configerror(
                _(b'[envdeploy] %s must be a positive number') % key,
                _source(ui, b'envdeploy', key),
            )
        out[key] = value
    return out
