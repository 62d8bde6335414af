# Shared by scripts/start and scripts/test: find Python 3.11+, make the
# virtual environment in .venv and install the pinned requirements into it,
# again only when a requirements file has changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "Mailroom needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    return 1
}

# bootstrap REQUIREMENTS_FILE: the venv exists and holds that file's pins.
bootstrap() {
    local requirements="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Creating virtual environment in $VENV"
        "$(find_python)" -m venv "$VENV"
    fi
    local stamp="$VENV/.installed-$(basename "$requirements")"
    local wanted
    wanted="$(cat requirements*.txt | "$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
        echo "Installing $requirements"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
        echo "$wanted" > "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}
