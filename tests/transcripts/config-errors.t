Configuration errors name the file and line of the value at fault, with a
hint, and exit 255 (30 with ui.detailed-exit-code) before anything runs.

  $ cat > "$HGRCPATH" <<EOF
  > [extensions]
  > hgext_envdeploy =
  > EOF
  $ hg init central
  $ cd central

A stray comma in a host list:

  $ cat >> .hg/hgrc <<EOF
  > [environments]
  > staging.path = /srv/staging
  > staging.hosts = web1.example.com,, web2.example.com
  > EOF
  $ hg envstatus staging
  config error: */config-errors.t/central/.hg/hgrc:3: empty host entry in 'web1.example.com,, web2.example.com' (glob)
  (remove the extra comma)
  [255]

  $ hg envcheck staging --config ui.detailed-exit-code=yes
  config error: */config-errors.t/central/.hg/hgrc:3: empty host entry in 'web1.example.com,, web2.example.com' (glob)
  (remove the extra comma)
  [30]

A misspelt key:

  $ cat > .hg/hgrc <<EOF
  > [environments]
  > staging.path = /srv/staging
  > staging.relaod = touch wsgi.py
  > EOF
  $ hg envstatus
  warning: skipping environment 'staging': */config-errors.t/central/.hg/hgrc:3: unknown key 'relaod' for environment 'staging' (glob)
  (known keys: after.check, after.migrate, after.reload, after.update, autodeploy, backup, backup.keep, before.check, before.migrate, before.reload, before.update, branch, check, check.interval, check.timeout, confirm, forwardagent, hg, hosts, identity, irreversible, keep, layout, linked, localsettings, maxfail, migrate, migrate.rollback, migrate.state, migrateon, onedits, onfailure, path, promotefrom, protect, pushto, reload, requiredfiles, restore, secret, serial, source, transfer)
  [1]


A malformed environment fails the commands that concern it, with its file
and line; the others work, and a listing of every environment warns and
goes on with the rest:

  $ cat > .hg/hgrc <<EOF
  > [environments]
  > staging.path = /srv/staging
  > café.path = /srv/cafe
  > EOF
  $ hg envdeploy café
  config error: */config-errors.t/central/.hg/hgrc:3: invalid environment name 'café' (glob)
  (use letters, digits, - and _)
  [255]
  $ hg envstatus staging
  staging: branch 'staging' does not exist here
    local: cannot read: /srv/staging does not exist on this host
      (run 'hg envsetup staging': it clones the repository there)
  $ hg envstatus
  warning: skipping environment 'café': */config-errors.t/central/.hg/hgrc:3: invalid environment name 'café' (glob)
  (use letters, digits, - and _)
  staging: branch 'staging' does not exist here
    local: cannot read: /srv/staging does not exist on this host
      (run 'hg envsetup staging': it clones the repository there)
  [1]
