# Sourced by the set-up scripts: adds Debian trixie as a package source pinned at priority 100,
# so that only what is asked for with `-t trixie` comes from it (runsc, docker-compose).
add_trixie_source() {
  [ -f /etc/apt/sources.list.d/warden-trixie.sources ] && return 0
  cat > /etc/apt/sources.list.d/warden-trixie.sources <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/warden-trixie
}
