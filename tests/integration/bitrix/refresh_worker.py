"""One worker process of the refresh-stampede test: wait for the go file, call, print the outcome.

python -m tests.integration.bitrix.refresh_worker <portal_pk> <go_file>
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    portal_pk, go_file = int(sys.argv[1]), Path(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitrixapp.settings")
    import django

    django.setup()
    from bitrixapp.models import Portal
    from integration.bitrix import client

    portal = Portal.objects.get(pk=portal_pk)
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + 60
    while not go_file.exists():  # start line shared with the test's threads
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)
    try:
        result = client.call(portal, "profile")
        print(json.dumps({"ok": True, "result": result}), flush=True)
    except Exception as exc:
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)


if __name__ == "__main__":
    main()
