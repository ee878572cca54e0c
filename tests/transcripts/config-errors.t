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
  config error: */config-errors.t/central/.hg/hgrc:3: unknown key 'relaod' for environment 'staging' (glob)
  (known keys: after.check, after.migrate, after.reload, after.update, autodeploy, backup, backup.keep, before.check, before.migrate, before.reload, before.update, branch, check, check.interval, check.timeout, confirm, forwardagent, hg, hosts, identity, irreversible, keep, layout, linked, localsettings, maxfail, migrate, migrate.rollback, migrate.state, migrateon, onedits, onfailure, path, promotefrom, protect, pushto, reload, requiredfiles, restore, secret, serial, source, transfer)
  [255]

