#!/usr/bin/env bash
# Run pytest on the host (not in the runtime) for checks that drive host services:
# podman (tests/test_image.py) and SLURM (tests/test_slurm.py).
#
#   fem/runtime/host-pytest.sh MARKER [PYTEST ARGS...]
#
# Debian's own Python (/usr/bin/python3) with python3-pytest and python3-numpy from the
# host's apt, installed when missing (as root); the host's pyenv or virtualenv is not used.
# BONEFEM_HOST_TESTS=1 turns a missing host tool into a failure instead of a skip.
set -euo pipefail
project=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
marker=${1:?usage: host-pytest.sh MARKER [PYTEST ARGS...]}
shift
if ! /usr/bin/python3 -c 'import pytest, numpy' 2>/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "host-pytest.sh: needs python3-pytest and python3-numpy (apt-get install)" >&2; exit 2; }
    echo "host-pytest.sh: installing host packages: python3-pytest python3-numpy" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pytest python3-numpy >/dev/null
fi
cd "$project"
# A private --basetemp: pytest prunes the shared /tmp/pytest-of-USER folders of other
# runs on the same machine, which would pull the job folders from under running jobs.
exec env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV BONEFEM_HOST_TESTS=1 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /usr/bin/python3 -m pytest -p no:cacheprovider --basetemp "/tmp/bonefem-host-pytest-$marker" -m "$marker" "$@"
