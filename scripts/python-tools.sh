#!/usr/bin/env bash
# The Python build tools (maturin, pytest, mypy), kept in
# $JETSTATION_CACHE/python-tools; prints that directory.
exec "$(dirname "$0")/pinned-venv.sh" python-tools \
  maturin==1.16.0 pytest==9.2.0 pytest-asyncio==1.5.0 pytest-timeout==2.4.0 mypy==2.4.1
