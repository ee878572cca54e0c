# config.py - environments read from hgrc
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""The configuration model: ``[environments]`` parsed into plain objects.

Every environment key is ``[environments] ENV.KEY``; any key may also be set
in ``[envdeploy]`` as a default for every environment.  Each key is
registered once, with a typed default (configitems.py, the part that loads
with the extension), and read through one accessor,
:func:`envconfig`, which parses it with Mercurial's own
``ui.configbool``/``configlist``/``configwith`` and names the file and line
of a value it cannot take.  The rest of the extension reads
:class:`Environment` and :class:`Host`, never the hgrc.
"""

import bisect
import os
import re
import weakref

from mercurial.i18n import _
from mercurial import config as configmod, error
from mercurial.utils import procutil, stringutil

from . import configitems

ONFAILURE = (b'rollback', b'stop')
IRREVERSIBLE = (b'warn', b'refuse')
ONEDITS = (b'save', b'refuse')
TRANSFERS = (b'pull', b'push')  # how changesets reach a target (transfer.py)
LAYOUTS = (b'inplace', b'releases')  # path is the working copy, or not (releases.py)
HOSTKEY_POLICIES = (b'strict', b'accept-new')
BACKGROUND = b'background'  # autodeploy: deploy detached from the push
MIGRATE_ALL = b'all'
# Patterns are compiled on first use (re's cache): every hg command loads
# this module, few read an environment.
_SERIAL = br'^[1-9][0-9]*%?$'


# How a key's value is read: ``read(ui, section, item)`` gives the typed
# value, raising ConfigError for one it cannot take (the accessor then says
# which key, where, and what to write instead).


def _text(ui, section, item):
    return ui.config(section, item)


def _bool(ui, section, item):
    if not ui.config(section, item):
        return False  # ``KEY =`` (empty) has always meant off
    return ui.configbool(section, item)


def _list(ui, section, item):
    return ui.configlist(section, item)


def _parsed(convert):
    """Read with ``ui.configwith(convert)``.  ``convert`` raises ValueError
    for a value it refuses, and returns the registered (typed) default as
    it is."""

    def read(ui, section, item):
        return ui.configwith(convert, section, item)

    return read


def _oneof(choices):
    def convert(value):
        if value not in choices:
            raise ValueError(value)
        return value

    return convert


def _count(value):
    """A number of hosts, 0 or more; empty is 0."""
    if isinstance(value, bytes):
        value = value.strip() or b'0'
        if not value.isdigit():
            raise ValueError(value)
    return int(value)


def _positive(value):
    value = int(value)  # ValueError when it is no number
    if value < 1:
        raise ValueError(value)
    return value


def _seconds(value):
    """Seconds, 0 or more, fractions allowed; empty is 0.

    >>> _seconds(b'30'), _seconds(b' 0.5 '), _seconds(b''), _seconds(0)
    (30.0, 0.5, 0.0, 0)
    >>> for bad in (b'-1', b'nan', b'inf', b'soon'):
    ...     try:
    ...         _seconds(bad)
    ...     except ValueError:
    ...         print('refused', bad.decode())
    refused -1
    refused nan
    refused inf
    refused soon
    """
    if isinstance(value, bytes):
        value = float(value.strip() or b'0')  # ValueError when no number
    if not value >= 0 or value == float('inf'):
        raise ValueError(value)
    return value


def _interval(value):
    """Seconds between tries: more than 0."""
    value = _seconds(value)
    if not value > 0:
        raise ValueError(value)
    return value


def _serial(value):
    """Hosts per batch, N or N%; empty (all at once) stays b''."""
    value = value.strip()
    if value and not re.match(_SERIAL, value):
        raise ValueError(value)
    return value


def _autodeploy(value):
    """True, False or BACKGROUND."""
    if not isinstance(value, bytes):
        return value
    value = value.strip()
    if value.lower() == BACKGROUND:
        return BACKGROUND
    on = stringutil.parsebool(value) if value else False
    if on is None:
        raise ValueError(value)
    return on


class _Key:
    """How one key is read, and what an error about it says (``message``
    gets ``%(key)s`` and ``%(value)s``).  Its name and typed default are
    registered in configitems.py."""

    def __init__(self, read=_text, hint=None, message=None):
        self.read = read
        self.hint = hint
        self.message = message or _(b"invalid %(key)s value '%(value)s'")


_BOOL_HINT = _(b'use true or false')
_POSITIVE = _(b'[envdeploy] %(key)s must be a positive number')


def _choice(choices, message):
    return _Key(_parsed(_oneof(choices)),
                _(b'use one of: %s') % b', '.join(choices), message)


_TEXT = _Key()
_BOOL = _Key(_bool, _BOOL_HINT)
_LIST = _Key(_list)

ENV_KEYS = configitems.ENV_KEYS
USERSTEP_KEYS = configitems.USERSTEP_KEYS
GLOBAL_KEYS = configitems.GLOBAL_KEYS

# Every key not text: the ones an environment may set, then the run's.
_READ = {
    b'check.timeout': _Key(_parsed(_seconds),
                           _(b'a number of seconds (0: one try)')),
    b'check.interval': _Key(_parsed(_interval),
                            _(b'a number of seconds, more than 0')),
    b'forwardagent': _BOOL,
    b'onfailure': _choice(ONFAILURE, _(b"unknown onfailure mode '%(value)s'")),
    b'serial': _Key(_parsed(_serial),
                    _(b'a number of hosts per batch, or a percentage (25%)')),
    b'maxfail': _Key(_parsed(_count),
                     _(b'a number of hosts (0: stop at the first failure)')),
    b'requiredfiles': _LIST,
    b'autodeploy': _Key(_parsed(_autodeploy),
                        _(b'use true, false or background')),
    b'protect': _BOOL,
    b'secret': _LIST,
    b'irreversible': _choice(IRREVERSIBLE,
                             _(b"unknown irreversible policy '%(value)s'")),
    b'backup.keep': _Key(_parsed(_positive),
                         message=_(b'%(key)s must be a positive number')),
    b'onedits': _choice(ONEDITS, _(b"unknown onedits mode '%(value)s'")),
    b'transfer': _choice(TRANSFERS, _(b"unknown transfer mode '%(value)s'")),
    b'confirm': _BOOL,
    b'layout': _choice(LAYOUTS, _(b"unknown layout '%(value)s'")),
    b'linked': _LIST,
    b'keep': _Key(_parsed(_positive),
                  message=_(b'%(key)s must be a positive number')),
    b'hostkeys': _choice(HOSTKEY_POLICIES,
                         _(b"unknown hostkeys mode '%(value)s'")),
    b'concurrency': _Key(_parsed(_positive), message=_POSITIVE),
    b'locktimeout': _Key(_parsed(_positive), message=_POSITIVE),
    b'timeout': _Key(_parsed(_positive), message=_POSITIVE),
    b'connecttimeout': _Key(_parsed(_positive), message=_POSITIVE),
    b'grace': _Key(_parsed(_positive), message=_POSITIVE),
    b'cmdserver': _BOOL,
    b'autodeploy.sources': _LIST,
    b'trustrepofile': _BOOL,
}


def _readerof(key):
    """How ``key`` is read: a registered key that _READ does not name is
    text.

    >>> sorted(k for k, v in _READ.items()
    ...        if k not in ENV_KEYS and k not in GLOBAL_KEYS)
    []
    >>> defaults = {**ENV_KEYS, **GLOBAL_KEYS}
    >>> sorted(k for k, v in defaults.items()   # typed defaults, typed reads
    ...        if not isinstance(v, (bytes, type(None)))
    ...        and _readerof(k) is _TEXT)
    []
    >>> sorted(k for k, v in defaults.items()   # lists as lists
    ...        if callable(v) and _readerof(k) is not _LIST)
    []
    """
    if key not in ENV_KEYS and key not in GLOBAL_KEYS:
        raise KeyError(key)
    return _READ.get(key, _TEXT)

# ``ENV.KEY.ROLE``: keys that a role's hosts set for themselves.  ``hosts``
# adds hosts with that role; ``reload`` and ``check`` override the
# environment's commands for them.
ROLE_KEYS = (b'hosts', b'reload', b'check')
_ROLE_NAME = br'^[A-Za-z0-9_][A-Za-z0-9_-]*$'
# Names a role cannot take: the suffixes of the dotted keys (a role
# ``state`` would make ``migrate.state`` ambiguous the day migrate takes a
# role), ``env`` (ENV.env.NAME) and ``all`` (migrateon = all).
_RESERVED_ROLES = frozenset(
    [k.split(b'.', 1)[1] for k in ENV_KEYS
     if b'.' in k and k not in USERSTEP_KEYS]
    + [b'env', b'all', b'sources'])

# ``ENV.env.NAME = VALUE``: exported to everything run on the targets.
ENVVAR = b'env.'
_ENVVAR_NAME = br'^[A-Za-z_][A-Za-z0-9_]*$'
MASK = b'***'

LOCAL = b'local'

_ENV_NAME = br'^[A-Za-z0-9_][A-Za-z0-9_-]*$'
# [user@]host[:port], host may be a bracketed IPv6 address.
_HOST = (
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
    """A named branch deployed to a set of hosts, with its commands.

    :func:`load` builds it from the hgrc; every attribute is a parsed value
    (``forwardagent`` a bool, ``maxfail`` an int, ``requiredfiles`` and
    ``secret`` lists), named as the key is with its dots dropped
    (``migrate.state`` is ``migratestate``).
    """

    def __init__(
        self,
        name,
        hosts,
        branch=None,
        path=None,
        source=b'',
        hg=b'hg',
        identity=b'',
        forwardagent=False,
        pushto=b'',
        migrate=b'',
        migratestate=b'',
        migraterollback=b'',
        reload=b'',
        check=b'',
        checktimeout=0,
        checkinterval=2,
        roles=None,
        onfailure=b'rollback',
        serial=b'',
        maxfail=0,
        requiredfiles=(),
        localsettings=b'',
        autodeploy=False,
        protect=False,
        environ=None,
        secret=(),
        migrateon=None,
        migrateall=False,
        onedits=b'save',
        usersteps=None,
        transfer=b'pull',
        promotefrom=b'',
        confirm=False,
        layout=b'inplace',
        linked=(),
        keep=5,
    ):
        self.name = name
        self.hosts = hosts
        self.branch = branch or name
        self.path = path
        self.source = source
        self.hg = hg
        self.identity = identity
        self.forwardagent = forwardagent
        self.pushto = pushto
        self.migrate = migrate
        self.migratestate = migratestate
        self.migraterollback = migraterollback
        self.reload = reload
        self.check = check
        self.checktimeout = checktimeout  # seconds the check is tried for
        self.checkinterval = checkinterval
        self.roles = roles or {}  # (key, role) -> value, of ENV.KEY.ROLE
        self.onfailure = onfailure
        self.serial = serial
        self.maxfail = maxfail
        self.requiredfiles = list(requiredfiles)
        self.localsettings = localsettings
        self.autodeploy = autodeploy  # True, False or BACKGROUND
        self.protect = protect
        self.environ = environ or {}  # ENV.env.NAME
        self.secret = list(secret)
        # Longest first: a secret that contains another is masked whole.
        self.secretvalues = sorted(
            {self.environ[n] for n in self.secret if self.environ.get(n)},
            key=len, reverse=True)
        # The host migrating the one database (migrateon), unless every
        # host migrates its own.
        self.migrateall = migrateall
        self.onedits = onedits
        self.usersteps = usersteps or {}  # before.STEP/after.STEP: command
        self.confirm = confirm  # ask before a deploy or rollback (confirm.py)
        self.migrateon = None if migrateall else (migrateon or hosts[0])
        self.transfer = transfer  # pull, or push (transfer.py)
        self.promotefrom = promotefrom  # an environment's name, or b''
        self.layout = layout  # inplace, or releases (releases.py)
        self.linked = list(linked)  # paths in shared/, linked into releases
        self.keep = keep  # releases kept on disk

    @property
    def islocal(self):
        return self.hosts[0].islocal

    def command(self, name, host):
        """The ``reload``/``check``/``migrate`` command for ``host`` (its
        role's own when set, even empty), b'' when there is none."""
        if host.role is not None:
            own = self.roles.get((name, host.role))
            if own is not None:
                return own
        commands = {b'migrate': self.migrate, b'reload': self.reload,
                    b'check': self.check}
        if name not in commands:
            return self.usersteps.get(name) or b''  # before.STEP, after.STEP
        return commands[name] or b''

    def migrationhost(self, host):
        """The host that migrates ``host``'s database (maybe itself)."""
        return host if self.migrateall else self.migrateon

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
    """Parse ``[user@]host[:port]`` into a :class:`Host`.

    What the hgrc leaves out stays None, for ``~/.ssh/config`` to fill in;
    an IPv6 address goes in brackets (which the host name loses):

    >>> h = parsehost(b'deploy@web1.example.com:2222')
    >>> h.user, h.hostname, h.port, h.spec
    (b'deploy', b'web1.example.com', 2222, b'deploy@web1.example.com:2222')
    >>> h = parsehost(b'web1')
    >>> h.user, h.port, h.islocal
    (None, None, False)
    >>> h = parsehost(b'root@[2001:db8::1]:22')
    >>> h.user, h.hostname, h.port
    (b'root', b'2001:db8::1', 22)

    A name ssh would read as an option, a second ``@``, a port that no
    socket has: refused, naming where the value came from:

    >>> parsehost(b'-oProxyCommand=x', b'.hg/hgrc:4')
    Traceback (most recent call last):
      ...
    mercurial.error.ConfigError: .hg/hgrc:4: malformed host '-oProxyCommand=x'
    >>> parsehost(b'a@b@web1')
    Traceback (most recent call last):
      ...
    mercurial.error.ConfigError: malformed host 'a@b@web1'
    >>> parsehost(b'web1:0')
    Traceback (most recent call last):
      ...
    mercurial.error.ConfigError: port out of range in host 'web1:0'
    >>> try:
    ...     parsehost(b'web1:65536')
    ... except error.ConfigError as exc:
    ...     print(exc.message.decode(), '--', exc.hint.decode())
    port out of range in host 'web1:65536' -- a port is a number from 1 to 65535
    >>> [parsehost(b'web1:%d' % p).port for p in (1, 65535)]
    [1, 65535]
    """
    m = re.match(_HOST, spec)
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
    """Split a ``hosts`` value on commas and whitespace; reject empty items.

    >>> [h.spec for h in parsehosts(b' web1, deploy@web2:2222 web3 ,web4 ')]
    [b'web1', b'deploy@web2:2222', b'web3', b'web4']
    >>> parsehosts(b''), parsehosts(b'   ')
    ([], [])

    A stray comma and a host given twice (as written: ``web1`` and
    ``web1:22`` are two entries) are errors:

    >>> parsehosts(b'web1,, web2', b'hgrc:2')
    Traceback (most recent call last):
      ...
    mercurial.error.ConfigError: hgrc:2: empty host entry in 'web1,, web2'
    >>> parsehosts(b'web1,')
    Traceback (most recent call last):
      ...
    mercurial.error.ConfigError: empty host entry in 'web1,'
    >>> parsehosts(b'web2 web1, web2, web1 web3')
    Traceback (most recent call last):
      ...
    mercurial.error.ConfigError: host listed twice: web1, web2
    >>> len(parsehosts(b'web1, web1:22'))
    2
    """
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


# A ui whose environments each read the .hgenvironments of their own
# branch head (repofile.Heads): ui -> that provider.
_PERENV = weakref.WeakKeyDictionary()


def perenv(ui, provider):
    """Make ``ui`` read environment NAME from ``provider.forenv(NAME)``
    (a ui) and the names from ``provider.names()``."""
    _PERENV[ui] = provider


def envui(ui, name):
    """The ui that environment ``name`` is read from (``ui`` itself but
    for a ui given to :func:`perenv`)."""
    provider = _PERENV.get(ui)
    if provider is None or name is None:
        return ui
    return provider.forenv(name)


def envnames(ui):
    """The environment names declared in [environments], in order."""
    provider = _PERENV.get(ui)
    if provider is not None:
        return provider.names()
    names = []
    for key, value in ui.configitems(b'environments'):
        name = key.split(b'.', 1)[0]
        if name not in names:
            names.append(name)
    return names


def _source(ui, section, key):
    src = ui.configsource(section, key)
    return src if src and src != b'none' else b''


def _where(ui, name, key):
    """The (section, item) that ``ENV.KEY`` is read from: ``[environments]
    ENV.KEY`` when set, else ``[envdeploy] KEY`` (only that for ``name``
    None, the run-wide settings)."""
    if name is not None:
        item = name + b'.' + key
        if ui.config(b'environments', item) is not None:
            return b'environments', item
    return b'envdeploy', key


def envsource(ui, name, key):
    """Where :func:`envconfig` reads ``ENV.KEY`` from (``file:line``), or
    b'' for its default."""
    ui = envui(ui, name)
    return _source(ui, *_where(ui, name, key))


def envconfig(ui, name, key):
    """``ENV.KEY``, else ``[envdeploy] KEY``, else its registered default,
    parsed as the key is registered (a bool, an int, a list, ...).

    ``name`` None reads the run-wide ``[envdeploy] KEY`` alone.  A value
    that does not parse is a ConfigError naming the file and line, the
    environment, and what to write instead.
    """
    spec = _readerof(key)
    ui = envui(ui, name)
    section, item = _where(ui, name, key)
    try:
        return spec.read(ui, section, item)
    except error.ConfigError:
        value = ui.config(section, item)
        msg = spec.message % {b'key': key, b'value': value}
        if name is not None:
            msg += _(b" for environment '%s'") % name
        hint = spec.hint
        if b'#' in value:
            hint = (hint or b'') + _(b'; a comment goes on a line of its own')
        raise _configerror(msg, _source(ui, section, item), hint)


_SECTION = br'\[([^\[]+)\]'  # as mercurial.config parses it


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
                               if re.match(_SECTION, l)]
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


def load(ui, name):
    """Return the :class:`Environment` called ``name``, validated."""
    _checkname(ui, name)
    ui = envui(ui, name)
    environ, roles = _readkeys(ui, name)

    def get(key):
        return envconfig(ui, name, key)

    secret = get(b'secret')
    unknown = [n for n in secret if n not in environ]
    if unknown:
        raise _configerror(
            _(b'secret names %s, which is not set') % b', '.join(unknown),
            envsource(ui, name, b'secret'),
            _(b'secret lists names of values set as %s.env.NAME')
            % name)
    serial = get(b'serial')
    if serial.endswith(b'%') and int(serial[:-1]) > 100:
        raise _configerror(_(b'serial percentage above 100%'),
                           envsource(ui, name, b'serial'))
    path = get(b'path')
    if not path:
        raise _configerror(
            _(b"environment '%s' has no path") % name,
            _namesource(ui, name),
            hint=_(b'set %s.path in [environments] to the repository on the '
                   b'target') % name,
        )
    hosts = parsehosts(get(b'hosts') or b'', envsource(ui, name, b'hosts'))
    hosts += _rolehosts(ui, name, roles, [h.spec for h in hosts])
    hg = get(b'hg')
    if not hosts:
        hosts = [Host(LOCAL)]
        # A local environment runs this very hg unless told otherwise, so a
        # newcomer's virtualenv works without being on PATH.
        if not hg:
            hg = procutil.shellquote(procutil.hgexecutable())
        path = _expandpath(path)
    migrateon = _migrationhost(ui, name, hosts)
    return Environment(
        name,
        hosts,
        path=path,
        hg=hg or b'hg',
        serial=serial,
        roles=roles,
        environ=environ,
        secret=secret,
        migrateon=migrateon,
        migrateall=migrateon is None,
        usersteps={key: get(key) for key in USERSTEP_KEYS if get(key)},
        # hooks.mode() reads autodeploy on push; a typo is better found
        # here too, as every other key's.
        **{_ATTRIBUTES.get(key, key.decode('ascii')): get(key)
           for key in _PLAIN_KEYS}
    )


# Keys that go into Environment as they are read (attribute names for the
# dotted ones).
_ATTRIBUTES = {b'migrate.state': 'migratestate',
               b'migrate.rollback': 'migraterollback',
               b'check.timeout': 'checktimeout',
               b'check.interval': 'checkinterval'}
_PLAIN_KEYS = (b'branch', b'source', b'identity', b'forwardagent', b'pushto',
               b'migrate', b'migrate.state', b'migrate.rollback', b'reload',
               b'check', b'check.timeout', b'check.interval', b'onfailure',
               b'maxfail', b'requiredfiles', b'localsettings', b'autodeploy',
               b'protect', b'onedits', b'transfer', b'promotefrom', b'confirm',
               b'layout', b'linked', b'keep')


def _checkname(ui, name):
    """InputError for an environment not declared, ConfigError for a name
    that cannot be one."""
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
    if not re.match(_ENV_NAME, name):
        raise _configerror(
            _(b"invalid environment name '%s'") % name,
            _namesource(ui, name),
            hint=_(b'use letters, digits, - and _'),
        )


def _namesource(ui, name):
    """Where environment ``name`` is first declared (``file:line``)."""
    ui = envui(ui, name)
    prefix = name + b'.'
    for key, _value in ui.configitems(b'environments'):
        if key.startswith(prefix):
            return _source(ui, b'environments', key)
    return b''


def _readkeys(ui, name):
    """Check every ``NAME.KEY`` written; ``(environ, roles)``: the
    ``env.VAR`` values and the ``KEY.ROLE`` ones, whose names are open."""
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
        if base in (b'before', b'after'):
            # before.STEP.ROLE: the key is two words.
            step, dot, role = role.partition(b'.')
            base = b'%s.%s' % (base, step)
        if (dot and (base in ROLE_KEYS or base in USERSTEP_KEYS)
                and sub not in ENV_KEYS):
            roles[(base, _rolename(ui, key, role))] = value
            continue
        if sub not in ENV_KEYS:
            raise _configerror(
                _(b"unknown key '%s' for environment '%s'") % (sub, name),
                _source(ui, b'environments', key),
                _(b'known keys: %s') % b', '.join(sorted(ENV_KEYS)),
            )
    for key in ENV_KEYS:
        if _where(ui, name, key)[0] == b'envdeploy':
            _checkrepeats(ui, b'envdeploy', [key], cache)
    for key, value in ui.configitems(b'envdeploy'):
        if key.startswith(ENVVAR):
            environ.setdefault(_envvar(ui, b'envdeploy', key, key), value)
    return environ, roles


def _rolename(ui, key, role):
    """``role`` of ``ENV.KEY.ROLE``; a config error if it cannot be one."""
    if not re.match(_ROLE_NAME, role) or role in _RESERVED_ROLES:
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


def _migrationhost(ui, name, hosts):
    """The host ``migrate`` runs on, or None when every host migrates.

    ``migrateon`` names a host as written in ``hosts``, or a role (its
    first host); empty means the first host; ``all`` means every host (a
    database per host).
    """
    want = (envconfig(ui, name, b'migrateon') or b'').strip()
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
        envsource(ui, name, b'migrateon'),
        _(b'name one of: %s, a role, or all')
        % b', '.join(h.spec for h in hosts))


def _envvar(ui, section, key, sub):
    """The variable name of ``env.NAME``; a config error if it is not one."""
    var = sub[len(ENVVAR):]
    if not re.match(_ENVVAR_NAME, var):
        raise _configerror(
            _(b"invalid environment variable name '%s'") % var,
            _source(ui, section, key),
            _(b'use letters, digits and _, not starting with a digit'))
    return var


def _expandpath(path):
    return os.path.abspath(os.path.expanduser(path))


def settings(ui):
    """The run-wide [envdeploy] settings, validated: {key: value}."""
    _checkrepeats(ui, b'envdeploy', GLOBAL_KEYS, {})
    out = {key: envconfig(ui, None, key) for key in GLOBAL_KEYS}
    for key in (b'knownhosts', b'sshconfig'):
        out[key] = _expandpath(out[key])
    return out
