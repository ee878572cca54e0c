# webtemplates.py - the templates of the hgweb environments page
#
# Copyright 2026 hgext_envdeploy authors
#
# This software may be used and distributed according to the terms of the
# GNU General Public License version 2 or any later version.

"""Template fragments of web.py, in Mercurial's template language.

Added to the request's templater (``tmpl.cache``) under names starting
with ``envdeploy_``; the style's own fragments (``header``, ``footer``,
``urlparameter``, ``breadcrumb``, ``searchform``) do the rest, so the page
looks like the style's other pages.  Every value is escaped.
"""

# Shared by the HTML styles: one environment, its hosts, pending, runs.
_HTML = {
    b'envdeploy_env': b'''
<div class="envdeploy-env" id="env-{name|escape}">
<h3>{name|escape}</h3>
<table class="envdeploy-summary">
<tr><th>branch</th><td class="envdeploy-branch">{if(branch, '<a href="{url|urlescape}log/{branch|urlescape}{sessionvars%urlparameter}">{branch|escape}</a>')}
{if(hashead, 'head <a class="envdeploy-head" href="{url|urlescape}rev/{headshort}{sessionvars%urlparameter}">{headshort}</a> {headdesc|escape}')}
{if(note, '<span class="envdeploy-note">({note|escape})</span>')}</td></tr>
{if(promotefrom, '<tr><th>promoted from</th><td class="envdeploy-promotion">{promotefrom|escape}: head {ifeq(tested, "yes", "tested there", "NOT tested there")}</td></tr>')}
</table>
<h4>hosts</h4>
<table class="bigtable envdeploy-hosts">
<tr><th>host</th><th>deployed</th><th>when</th><th>by</th><th>how</th></tr>
{hosts % envdeploy_host}
</table>
<h4>pending: {pendingcount} {ifeq(pendingcount, "1", "changeset", "changesets")} not deployed everywhere</h4>
{ifeq(pendingcount, '0', '', '<table class="bigtable envdeploy-pending">{pending % envdeploy_pendingrow}</table>')}
<h4>last runs</h4>
{if(runs, '<table class="bigtable envdeploy-runs">
<tr><th>run</th><th>kind</th><th>who</th><th>when</th><th>outcome</th><th>hosts</th></tr>
{runs % envdeploy_run}</table>', '<p class="envdeploy-none">no run recorded in this repository</p>')}
</div>
''',
    b'envdeploy_host': b'''<tr class="envdeploy-hostrow">
<td class="envdeploy-hostname">{host|escape}{if(role, ' ({role|escape})')}</td>
<td>{if(known, if(nodelinked, '<a href="{url|urlescape}rev/{nodeshort}{sessionvars%urlparameter}">{nodeshort}</a> {nodedesc|escape}', '{nodeshort} {nodedesc|escape}'), 'unknown here')}</td>
<td>{date|escape}</td><td>{user|obfuscate}</td><td>{kind|escape} {outcome|escape}</td>
</tr>
''',
    b'envdeploy_pendingrow': b'''<tr class="envdeploy-pendingrow">
<td><a href="{url|urlescape}rev/{short}{sessionvars%urlparameter}">{short}</a></td>
<td>{desc|escape}</td><td>{user|obfuscate}</td><td>{date|escape}</td>
</tr>
''',
    b'envdeploy_run': b'''<tr class="envdeploy-runrow">
<td>{id|escape}</td><td>{kind|escape}</td><td>{user|obfuscate}</td>
<td>{date|escape}</td><td>{outcome|escape}</td><td>{hosts|escape}</td>
</tr>
''',
    b'envdeploy_body': b'''
{if(count, environments % envdeploy_env, '<p class="envdeploy-none">no environments are configured for this repository</p>')}
''',
    b'envdeploy_deployment': (
        b'<span class="envdeploy-deployment">{env|escape}@{host|escape} '
        b'{date|escape} {user|obfuscate}</span><br />\n'),
    b'envdeploy_csetrow': b'''<tr class="envdeploy-deployed">
 <th class="deployed">deployed</th>
 <td class="deployed">{envdeployments % envdeploy_deployment}
 <a href="{url|urlescape}environments{sessionvars%urlparameter}">environments</a></td>
</tr>''',
    b'envdeploy_csetnote': b'''<div class="envdeploy-deployed">
<p>deployed: {envdeployments % envdeploy_deployment}
<a href="{url|urlescape}environments{sessionvars%urlparameter}">environments</a></p>
</div>''',
}

# paper and coal: the menu and layout of paper's other pages.
PAPER = dict(_HTML)
PAPER.update({
    b'envdeploy_page': b'''{header}
<title>{repo|escape}: environments</title>
</head>
<body>
<div class="container">
<div class="menu">
<div class="logo">
<a href="{logourl}">
<img src="{staticurl|urlescape}{logoimg}" alt="mercurial" /></a>
</div>
<ul>
<li><a href="{url|urlescape}shortlog{sessionvars%urlparameter}">log</a></li>
<li><a href="{url|urlescape}graph{sessionvars%urlparameter}">graph</a></li>
<li><a href="{url|urlescape}tags{sessionvars%urlparameter}">tags</a></li>
<li><a href="{url|urlescape}bookmarks{sessionvars%urlparameter}">bookmarks</a></li>
<li><a href="{url|urlescape}branches{sessionvars%urlparameter}">branches</a></li>
<li class="active">environments</li>
</ul>
<ul>
<li><a href="{url|urlescape}help{sessionvars%urlparameter}">help</a></li>
</ul>
</div>
<div class="main">
<h2 class="breadcrumb"><a href="/">Mercurial</a> {pathdef%breadcrumb}</h2>
<h3>environments</h3>
{searchform}
{envdeploy_body}
</div>
</div>
{footer}
''',
})

# Any other HTML style: its header and footer around a plain page.
FALLBACK = dict(_HTML)
FALLBACK.update({
    b'envdeploy_page': b'''{header}
<title>{repo|escape}: environments</title>
</head>
<body>
<div class="envdeploy-page">
<p><a href="{url|urlescape}{sessionvars%urlparameter}">{repo|escape}</a> &gt; environments</p>
<h2>environments</h2>
{envdeploy_body}
</div>
{footer}
''',
})

# raw, and styles that are no HTML: text.
TEXT = {
    b'envdeploy_page': b'''{environments % envdeploy_env}''',
    b'envdeploy_env': b'''{name}: branch {branch}{if(hashead, ' at {headshort}')}{if(note, ' ({note})')}
{hosts % '  {host}: {if(known, nodeshort, "unknown")} {date} {kind} {outcome}\n'}  pending: {pendingcount}
''',
}
