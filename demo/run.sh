#!/usr/bin/env bash
# Walk through hgext_envdeploy on local environments; see scripts/demo.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d -t envdeploy-demo.XXXXXX)}"
mkdir -p "$work"
cd "$work"

# The demo's own configuration, instead of ~/.hgrc.
cat > hgrc <<HGRC
[ui]
username = Demo User <demo@example.com>
[extensions]
hgext_envdeploy =
HGRC
export HGRCPATH="$work/hgrc" HGENCODING=utf-8
unset HGPLAIN

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Echo the command as it could be typed again: quoting kept.
shellword() {
  case $1 in
    ''|*[!A-Za-z0-9_./=:@%+,-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
    *) printf '%s' "$1" ;;
  esac
}
run() { printf '$'; for a in "$@"; do printf ' '; shellword "$a"; done; printf '\n'; "$@"; }

say "A central repository with a Django project, branches staging and live"
hg init central
cp -R "$here/demo/project/." central/
# How every environment deploys, versioned with the code.
cat > central/.hgenvironments <<'ENVS'
[envdeploy]
migrate = python manage.py migrate --noinput
check = python manage.py check

[environments]
staging.reload = touch mysite/wsgi.py
live.reload = touch mysite/wsgi.py
ENVS
( cd central && hg add -q && hg commit -qm "initial project"
  hg branch -q staging && hg commit -qm "create staging"
  hg update -q default && hg branch -q live && hg commit -qm "create live"
  hg update -q default )
run hg -R central log -G -T '{rev}:{node|short} {branch} {desc}\n'

say "The environments' sites: clones of the central repository (hg clone -U)"
run hg clone -q -U central staging-site
run hg clone -q -U central live-site

say "The environments: commands in the tracked .hgenvironments, where this machine keeps the sites in .hg/hgrc (local: no hosts)"
run cat central/.hgenvironments
cat >> central/.hg/hgrc <<HGRC
[environments]
staging.path = $work/staging-site
live.path = $work/live-site
HGRC
sed -n '/^\[environments\]/,$p' central/.hg/hgrc
cd central

say "Deploy staging: update, migrate on SQLite, reload, check"
run hg envdeploy staging
run hg -R ../staging-site log -r . -T '{node|short} {branch} {desc}\n'
( cd ../staging-site && run python manage.py showmigrations bar )

say "A new migration on staging, then deploy again"
hg update -q staging
cat > bar/migrations/0004_bar_slug.py <<'PY'
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bar", "0003_bar_created")]
    operations = [
        migrations.AddField("bar", "slug", models.SlugField(default="", blank=True)),
    ]
PY
hg add -q bar/migrations/0004_bar_slug.py
run hg commit -m "bar: add slug"
hg update -q default
run hg envdeploy staging
( cd ../staging-site && run python manage.py showmigrations bar )

say "Someone edits a file on the server; the next deploy saves the edit as a patch"
echo "# hotfix typed on the server" >> ../staging-site/mysite/urls.py
run hg -R ../staging-site status
run hg envdeploy staging
run hg -R ../staging-site status
run cat ../staging-site/.hg/envdeploy/patches/*.patch

say "Deploying again changes nothing (only the check runs)"
run hg envdeploy staging

say "What runs where? (hg envstatus reads every host's journal and state)"
run hg envstatus

say "A deploy whose health check fails rolls itself back (migrations first)"
hg update -q staging
cat > bar/migrations/0005_bar_rank.py <<'PY'
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bar", "0004_bar_slug")]
    operations = [
        migrations.AddField("bar", "rank", models.IntegerField(default=0)),
    ]
PY
hg add -q bar/migrations/0005_bar_rank.py
run hg commit -m "bar: add rank"
hg update -q default
# A check that fails with the new code only: the rollback's own check passes.
run hg envdeploy staging --config "environments.staging.check=test ! -f bar/migrations/0005_bar_rank.py || { echo 'site is down'; exit 1; }" || true
( cd ../staging-site && run python manage.py showmigrations bar )

say "Deploy it for real, then roll back: hg envrollback reverts 0005, then the code"
run hg envdeploy staging
run hg envrollback staging
( cd ../staging-site && run python manage.py showmigrations bar )

say "The history of staging, newest first (hg envlog)"
run hg envlog staging -l 4

say "Promote a feature into live with one command (merge, commit, push, deploy)"
hg update -q default
hg branch -q feature-about
echo "# about page" > about.txt
hg add -q about.txt
hg commit -qm "about page"
hg update -q default
run hg envmerge feature-about --into live --no-push
run hg envdeploy live

say "What would a deploy of live do now? (--dry-run changes nothing)"
run hg envdeploy live --dry-run

say "The journal on the staging target (.hg/envdeploy/journal.jsonl): each run writes ahead (begin), then completes its record (end)"
python - ../staging-site/.hg/envdeploy/journal.jsonl <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("phase", "end") != "end":
        print("%s %-9s %s" % (r["started"] if "started" in r else " " * 20,
                              r["phase"], r.get("migrations", {}).get("before", "")))
        continue
    print("%s %-9s %s -> %s  %s" % (r["started"], r["outcome"],
          (r["from"] or "(empty)")[:12], r["to"][:12],
          " ".join("%s:%d" % (s["name"], s["status"]) for s in r["steps"])))
PY

say "Done. Everything is in $work"
