"""Benchmarks: each prints, from one run, the ratios its issue names (``uv run python -m bench.<name>``).

They measure routing, not keys: the services they start (in process or as subprocesses, which
inherit the environment) run with ``TABLEROUTER_AUTH=off`` unless the environment says otherwise.
A key check is one cached dictionary lookup per request.
"""

import os

os.environ.setdefault("TABLEROUTER_AUTH", "off")
