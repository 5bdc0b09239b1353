#!/bin/sh
# Install bonefem's Debian 13 packages (fem/runtime/debian-packages.txt) into this system.
# Used as is by the Dockerfile, by ./bonefem inside a fresh debootstrap root file system,
# and by ./bonefem on a native Debian 13 host, so all three runtimes install the same thing.
#
#   install-debian.sh [--register PROJECT_DIR]
#
# --register also makes `import fem` and the `bonefem` command work system-wide
# (a .pth file and a small launcher); the Docker image uses it. ./bonefem does not:
# it sets PYTHONPATH at run time, so one cached root file system serves any clone.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
list="$here/debian-packages.txt"
pkgs=$(sed -e 's/#.*//' "$list" | tr -s ' \t\n' ' ')

export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $pkgs

if [ "${1:-}" = "--register" ]; then
    project=$(cd "$2" && pwd)
    # Debian's Python reads /usr/local/lib/python3.X/dist-packages (not site-packages).
    site=$(/usr/bin/python3 -c 'import site; print(next(p for p in site.getsitepackages() if p.startswith("/usr/local/")))')
    mkdir -p "$site"
    echo "$project" > "$site/bonefem.pth"
    cat > /usr/local/bin/bonefem <<LAUNCH
#!/bin/sh
exec /usr/bin/python3 -m fem "\$@"
LAUNCH
    chmod 755 /usr/local/bin/bonefem
    # An image keeps no package lists.
    apt-get clean
    rm -rf /var/lib/apt/lists/*
fi
