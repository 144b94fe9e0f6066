#!/usr/bin/env bash
# apt_mirror_uri CODENAME [FILE...]: the archive URI this machine's apt sources already use for CODENAME's own
# suite (e.g. the URI of the `bookworm` entry), so that an added suite such as bookworm-backports goes through the
# same mirror or proxy. Machines have their own mirrors and proxies: a hard-coded host may be unreachable there.
#
# Reads deb822 files (*.sources: `Types:`, `URIs:`, `Suites:`, `Enabled:`) and one-line files (sources.list,
# *.list: `deb [options] URI SUITE COMPONENT…`); by default /etc/apt/sources.list.d/*.sources, then
# /etc/apt/sources.list, then /etc/apt/sources.list.d/*.list (the order Debian 12's installer favours). Entries for
# other suites (-security, -updates, -backports), deb-src only, disabled or cdrom: entries are passed over. Prints
# the first match, or http://deb.debian.org/debian when there is none.
#
# Source this file (scripts/setup-system.sh does); running it prints the URI for the machine's own codename.

apt_mirror_uri() {
  local codename=$1
  shift
  local files=("$@")
  if [ ${#files[@]} -eq 0 ]; then
    shopt -s nullglob
    files=(/etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list)
    shopt -u nullglob
  fi
  local f uri
  for f in "${files[@]}"; do
    [ -r "$f" ] || continue
    case "$f" in
      *.sources) uri=$(_apt_mirror_deb822 "$codename" <"$f") ;;
      *) uri=$(_apt_mirror_oneline "$codename" <"$f") ;;
    esac
    if [ -n "$uri" ]; then
      printf '%s\n' "$uri"
      return 0
    fi
  done
  printf '%s\n' 'http://deb.debian.org/debian'
}

# deb822 stanzas on stdin: the first URI of the first enabled `deb` stanza whose Suites include the codename.
_apt_mirror_deb822() {
  awk -v cn="$1" '
    function finish() {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no" && (" " suites " ") ~ (" " cn " ")) {
        n = split(uris, u, /[ \t]+/)
        for (i = 1; i <= n; i++) if (u[i] != "" && u[i] !~ /^cdrom:/) { print u[i]; found = 1; exit }
      }
      types = ""; uris = ""; suites = ""; enabled = ""; field = ""
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { finish(); next }
    /^[ \t]/ {
      # A continuation line extends the previous field.
      if (field == "types") types = types " " $0
      else if (field == "uris") uris = uris " " $0
      else if (field == "suites") suites = suites " " $0
      next
    }
    {
      colon = index($0, ":")
      if (colon == 0) { field = ""; next }
      name = tolower(substr($0, 1, colon - 1))
      value = substr($0, colon + 1)
      field = name
      if (name == "types") types = value
      else if (name == "uris") uris = value
      else if (name == "suites") suites = value
      else if (name == "enabled") { enabled = value; gsub(/[ \t]/, "", enabled) }
    }
    END { if (!found) finish() }
  ' | head -n 1
}

# One-line entries on stdin: `deb [opt=val …] URI SUITE COMPONENT…`; the URI of the first whose suite is the codename.
_apt_mirror_oneline() {
  awk -v cn="$1" '
    /^[ \t]*#/ { next }
    $1 == "deb" {
      i = 2
      if (substr($i, 1, 1) == "[") { while (i <= NF && substr($i, length($i), 1) != "]") i++; i++ }
      uri = $i; suite = $(i + 1)
      sub(/\/$/, "", suite)
      if (suite == cn && uri != "" && uri !~ /^cdrom:/) { print uri; exit }
    }
  '
}

# Run rather than sourced (`return` fails outside a function or sourced file): print the machine's own.
if ! (return 0 2>/dev/null); then
  . /etc/os-release
  apt_mirror_uri "${VERSION_CODENAME:-bookworm}" "$@"
fi
