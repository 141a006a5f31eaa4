"""`python manage.py sandbox`: run the local Bitrix24 portal, OAuth server and Unitalk simulators."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from sandbox import server


class Command(BaseCommand):
    help = "Serve the local Bitrix24 portal, Bitrix24 OAuth server and Unitalk simulators."

    def add_arguments(self, parser: Any) -> None:
        env = os.environ.get
        parser.add_argument("--host", default=env("SANDBOX_HOST", "127.0.0.1"))
        parser.add_argument(
            "--bitrix-port", type=int, default=int(env("SANDBOX_BITRIX_PORT", "8001"))
        )
        parser.add_argument(
            "--oauth-port", type=int, default=int(env("SANDBOX_OAUTH_PORT", "8003"))
        )
        parser.add_argument(
            "--unitalk-port", type=int, default=int(env("SANDBOX_UNITALK_PORT", "8002"))
        )
        parser.add_argument("--app-url", default=env("SANDBOX_APP_URL", "http://127.0.0.1:8000"))
        parser.add_argument(
            "--state",
            default=str(server.state_path_default()),
            help="state file (env SANDBOX_STATE); default $APP_VAR_DIR/sandbox/state.json or var/...",
        )
        parser.add_argument(
            "--client-id", default=env("SANDBOX_CLIENT_ID", server.Settings.client_id)
        )
        parser.add_argument(
            "--client-secret", default=env("SANDBOX_CLIENT_SECRET", server.Settings.client_secret)
        )
        parser.add_argument(
            "--unitalk-key", default=env("SANDBOX_UNITALK_KEY", server.DEFAULT_UNITALK_KEY)
        )
        parser.add_argument(
            "--token-lifetime", type=int, default=int(env("SANDBOX_TOKEN_LIFETIME", "3600"))
        )
        parser.add_argument("--reset", action="store_true", help="start from an empty state")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["reset"] and os.path.exists(options["state"]):
            os.remove(options["state"])
        handle = server.start(
            app_url=options["app_url"],
            state_path=options["state"],
            host=options["host"],
            bitrix_port=options["bitrix_port"],
            oauth_port=options["oauth_port"],
            unitalk_port=options["unitalk_port"],
            unitalk_key=options["unitalk_key"],
            client_id=options["client_id"],
            client_secret=options["client_secret"],
            token_lifetime=options["token_lifetime"],
        )
        self.stdout.write(
            f"Bitrix24 portal  {handle.bitrix_url}/  (REST {handle.bitrix_url}/rest/, "
            f"BX24.js {handle.bitrix_url}/bx24.js)\n"
            f"Bitrix24 OAuth   {handle.oauth_url}/oauth/token/\n"
            f"Unitalk API      {handle.unitalk_url}/api  (key {options['unitalk_key']})\n"
            f"App              {options['app_url']}   client_id {options['client_id']}\n"
            f"State            {options['state']}\n"
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            handle.stop()
