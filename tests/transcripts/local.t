Status, log and checks of local environments (no hosts: no SSH), on a tiny
repository: a staging branch deployed to a clone in ./site, a live branch
never deployed.

  $ cat > "$HGRCPATH" <<EOF
  > [ui]
  > username = Test <test@example.com>
  > [extensions]
  > hgext_envdeploy =
  > EOF

Commits with a fixed date have the same hashes on every run.

  $ ROOT=$PWD
  $ hg init central
  $ cd central
  $ echo hello > app.txt
  $ hg commit -qAm initial -d '0 0'
  $ hg branch -q staging
  $ hg commit -qm 'create staging' -d '0 0'
  $ hg update -q default
  $ hg branch -q live
  $ hg commit -qm 'create live' -d '0 0'
  $ hg clone -q -U . ../site
  $ hg clone -q -U . ../live-site
  $ cat >> .hg/hgrc <<EOF
  > [environments]
  > staging.path = $ROOT/site
  > staging.reload = echo reloaded >> reloads
  > staging.requiredfiles = settings.local
  > live.path = $ROOT/live-site
  > EOF

Nothing deployed yet; envcheck finds the target ready once the file it
requires is there:

  $ hg envstatus
  staging: branch staging at 95f83fb24a0e "create staging"
    local: never deployed (empty working copy); 2 changesets not deployed
  live: branch live at 26a79ac06888 "create live"
    local: never deployed (empty working copy); 2 changesets not deployed

  $ touch ../site/settings.local
  $ hg envcheck staging
  checking staging (95f83fb24a0e): local
  local:
    ok      connect       local
    ok      hg            Mercurial * (glob)
    ok      path          */local.t/site: a clone of this project (glob)
    ok      source        the host's default path has 95f83fb24a0e
    ok      requiredfiles settings.local
    ok      lock          free
    ok      freeze        not frozen
    ok      journal       last run finished
    ok      workingcopy   clean
    ok      migrations    no migration state to read
  staging: every check passed on 1 host

  $ hg envdeploy staging
  deploying 95f83fb24a0e (staging) to staging: local
  local: update ok (*s) (glob)
  local: reload ok (*s) (glob)
  local: deployed 95f83fb24a0e (*s) (glob)

  $ cat ../site/reloads
  reloaded

  $ hg envstatus staging
  staging: branch staging at 95f83fb24a0e "create staging"
    local: 95f83fb24a0e "create staging", deployed ????-??-??T??:??:??Z by Test <test@example.com>; up to date (glob)

A second deploy: one changeset pending, then deployed; the log is newest
first.

  $ hg update -q staging
  $ echo world >> app.txt
  $ hg commit -qm 'say more' -d '0 0'
  $ hg envstatus staging
  staging: branch staging at 8436f2451ed8 "say more"
    local: 95f83fb24a0e "create staging", deployed ????-??-??T??:??:??Z by Test <test@example.com>; 1 changeset not deployed (glob)

  $ hg envdeploy staging
  deploying 8436f2451ed8 (staging) to staging: local
  local: pull ok (*s) (glob)
  local: update ok (*s) (glob)
  local: reload ok (*s) (glob)
  local: deployed 8436f2451ed8 (*s) (glob)

  $ hg envlog staging
  deploy ????????T??????Z-* by Test <test@example.com>, ????-??-??T??:??:??Z (*s): ok (glob)
    95f83fb24a0e -> 8436f2451ed8 "say more"
    local: ok (*s) (glob)
  
  deploy ????????T??????Z-* by Test <test@example.com>, ????-??-??T??:??:??Z (*s): ok (glob)
    (empty) -> 95f83fb24a0e "create staging"
    local: ok (*s) (glob)
  

A manual edit on the target and a required file gone: envstatus names the
edit (-v), envcheck reports both and exits 1.

  $ echo edited >> ../site/app.txt
  $ rm ../site/settings.local
  $ hg envstatus staging -v
  staging: branch staging at 8436f2451ed8 "say more"
    local: 8436f2451ed8 "say more", deployed ????-??-??T??:??:??Z by Test <test@example.com>; up to date (glob)
      manual edits: app.txt

  $ hg envcheck staging
  checking staging (8436f2451ed8): local
  local:
    ok      connect       local
    ok      hg            Mercurial * (glob)
    ok      path          */local.t/site: a clone of this project (glob)
    ok      source        the host's default path has 8436f2451ed8
    FAILED  requiredfiles missing: settings.local
                          (run 'hg envsetup staging' (with staging.localsettings), or create them on the host)
    ok      lock          free
    ok      freeze        not frozen
    ok      journal       last run finished
    FAILED  workingcopy   manual edits: app.txt
                          (a deploy saves them as a patch under */local.t/site/.hg/envdeploy/patches and discards them) (glob)
    ok      migrations    no migration state to read
  staging: 2 checks failed: local (requiredfiles, workingcopy)
  [1]

