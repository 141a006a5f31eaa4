"""Start the three simulators: `start(...)` for tests (threads, free ports), used by the command.

handle = start(app_url="http://127.0.0.1:8000", state_path=tmp / "state.json")
handle.bitrix_url, handle.oauth_url, handle.unitalk_url; handle.stop()
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox.bitrix.portal import PortalApp
from sandbox.httpcore import serve
from sandbox.oauth import OAuthApp
from sandbox.store import Store
from sandbox.unitalk.app import UnitalkApp
from sandbox.world import Settings, World

DEFAULT_STATE = Path("var") / "sandbox" / "state.json"
DEFAULT_UNITALK_KEY = "SandboxKey01"


@dataclass
class Handle:
    world: World
    portal: PortalApp
    oauth: OAuthApp
    unitalk: UnitalkApp
    servers: list[ThreadingHTTPServer] = field(default_factory=list)

    @property
    def bitrix_url(self) -> str:
        return self.world.bitrix_url

    @property
    def oauth_url(self) -> str:
        return self.world.oauth_url

    @property
    def unitalk_url(self) -> str:
        return self.world.unitalk_url

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.world.pool.shutdown(wait=False, cancel_futures=True)
        self.world.store.close()


def state_path_default() -> Path:
    """SANDBOX_STATE, else under the app's writable folder (APP_VAR_DIR), else ./var/."""
    if os.environ.get("SANDBOX_STATE"):
        return Path(os.environ["SANDBOX_STATE"])
    if os.environ.get("APP_VAR_DIR"):
        return Path(os.environ["APP_VAR_DIR"]) / "sandbox" / "state.json"
    return DEFAULT_STATE


def start(
    *,
    app_url: str = "http://127.0.0.1:8000",
    state_path: str | Path | None = None,
    host: str = "127.0.0.1",
    bitrix_port: int = 0,
    oauth_port: int = 0,
    unitalk_port: int = 0,
    unitalk_key: str | None = DEFAULT_UNITALK_KEY,
    **settings: Any,
) -> Handle:
    """Serve portal, OAuth and Unitalk on threads; port 0 picks a free port.

    `state_path=None` keeps state in memory only; extra keyword arguments override `Settings`
    (client_id, client_secret, token_lifetime, burst, drain, operating_limit, ...).
    """
    store = Store(state_path)
    world = World(store, Settings(app_url=app_url.rstrip("/"), **settings))
    portal, oauth = PortalApp(world), OAuthApp(world)
    bitrix_server, _ = serve(portal, host, bitrix_port)
    oauth_server, _ = serve(oauth, host, oauth_port)
    world.bitrix_url, world.oauth_url = portal.base_url, oauth.base_url
    unitalk = UnitalkApp(world, default_key=unitalk_key)
    unitalk_server, _ = serve(unitalk, host, unitalk_port)
    world.unitalk_url = unitalk.base_url
    apps = [portal, oauth, unitalk]
    for app in apps:
        app.siblings = apps  # type: ignore[attr-defined]
    return Handle(world, portal, oauth, unitalk, [bitrix_server, oauth_server, unitalk_server])
