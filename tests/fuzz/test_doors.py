"""Every door under generated bad input (issue 11): never a 5xx, a 4xx that names the problem,
no row written by a rejected request, no secret in the captured logs.

Doors: the event door, the install page, the app and placement pages, each JSON action with a
valid page token, the Unitalk webhook door with a valid secret, healthz. Inputs: wrong types,
Unicode digits, deep nesting, huge values, missing and repeated fields, wrong content types.
Each door is bounded to a few hundred examples (derandomized, so CI sees the same inputs every
run); the figures per door are printed at the end and written to var/fuzz/report.json.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitrixapp.models import BitrixEvent, Portal, PortalOptions
from integration.agents.models import AgentState, AgentTransition
from integration.bitrix import binding
from integration.bitrix import users as bitrix_users
from integration.calls import failed
from integration.calls.models import FailedCall
from integration.campaigns import services as campaign_services
from integration.campaigns.models import Campaign, CampaignAgent, CampaignItem
from integration.core.log import ContextFilter, JsonFormatter
from integration.models import Job, Notification
from integration.routing.models import Reroute, RoutingOverride, RoutingPolicy
from integration.unitalk import selectors as unitalk_selectors
from integration.unitalk import services as unitalk_services
from integration.unitalk.models import OperatorMapping, UnitalkEvent
from tests.fuzz.conftest import record
from tests.integration.bitrix.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    PORTAL_HOST,
    _bitrix_settings,
    fake_user,
    portal,
    rsps,
    sent,
    user_token,
)
from tests.pages.conftest import token

pytestmark = pytest.mark.django_db

FUZZ = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}
PAYLOADS = ("call_new_in", "call_answer_in", "call_end_in", "call_end_out_noanswer")

# --- values from outside ----------------------------------------------------------------------

ODD_DIGITS = st.sampled_from(["²", "٣", "５", "Ⅻ", "𝟗", "¹²", "੭", "߃"])  # noqa: RUF001 (look-alike digits are the point)
HUGE = st.sampled_from(["9" * 20, "1" * 400, "9" * 5000, "-1", "1e30", "0x10", "1_000", " 7 "])
NUMBERS = st.one_of(ODD_DIGITS, HUGE, st.integers(-(2**70), 2**70).map(str))
TEXT = st.text(max_size=24)
PLACEHOLDER = st.sampled_from(["{MEMBER}", "{APPTOKEN}", "{USERTOKEN}", "{ITEM}", "{JOB}"])
VALUES = st.one_of(NUMBERS, TEXT, PLACEHOLDER, st.just(""), st.sampled_from(["Y", "1", "true"]))
DEEP = st.integers(30, 3000).map(lambda n: "[" * n)
JSON_TEXT = st.one_of(
    DEEP,
    st.integers(30, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(["{", "[1,", '{"ID": 1e400}', "NaN", '{"ID": "' + "9" * 5000 + '"}', "null"]),
    TEXT,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    NUMBERS,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(TEXT, st.sampled_from(["ids", "id", "user_id"])), inner, max_size=4
        ),
    ),
    max_leaves=12,
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=BoUnDaRy",
        "application/octet-stream",
    ]
)


def fill(text: str, ctx: dict[str, str]) -> str:
    for key, value in ctx.items():
        text = text.replace("{" + key + "}", value)
    return text


def form_body(pairs: list[tuple[str, str]], ctx: dict[str, str]) -> str:
    return urlencode([(fill(k, ctx), fill(v, ctx)) for k, v in pairs])


# --- the world each door is tried against -------------------------------------------------------


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.stream = io.StringIO()
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")


@pytest.fixture
def world(portal, rsps, settings):
    settings.UNITALK_WEBHOOK_REFUSALS_BURST = 10_000
    unitalk_selectors.webhook_target_cache_clear()
    fake_user(rsps, user_id="1", admin=True)
    connection = unitalk_services.connection_create(portal=portal, api_key="Kfz" + uuid.uuid4().hex)
    bitrix_users.users_directory_store(portal=portal, users={1: "Anna", 2: "Oleg"})
    item = failed.failed_call_open(
        portal=portal,
        kind=FailedCall.Kind.MISSED,
        dedupe_key=f"missed:{uuid.uuid4().hex}",
        reason="missed",
        phone_number="380501112233",
        owner_user_id=1,
    )
    job = unitalk_services.connection_test_enqueue(portal=portal)
    campaign = campaign_services.campaign_create(portal=portal, name="Fuzz", agent_user_ids=[1])
    capture = LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    ctx = {
        "MEMBER": portal.member_id,
        "APPTOKEN": portal.application_token,
        "USERTOKEN": user_token(portal),
        "ITEM": str(item.pk),
        "JOB": str(job.pk),
        "CAMPAIGN": str(campaign.pk),
    }
    secrets = {
        portal.application_token,
        portal.access_token,
        portal.refresh_token,
        connection.webhook_secret,
        connection.api_key,
        settings.BITRIX24_CLIENT_SECRET,
        ctx["USERTOKEN"],
    }
    yield {
        "client": Client(raise_request_exception=False),
        "portal": portal,
        "connection": connection,
        "ctx": ctx,
        "secrets": secrets,
        "log": capture.stream,
    }
    root.removeHandler(capture)
    leaked = [s[-4:] for s in secrets if s and s in capture.stream.getvalue()]
    cache.clear()
    assert not leaked, f"secrets in the captured logs (tails): {leaked}"


def rows() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (
            Portal,
            BitrixEvent,
            Job,
            Notification,
            UnitalkEvent,
            FailedCall,
            OperatorMapping,
            PortalOptions,
            Campaign,
            CampaignAgent,
            CampaignItem,
            RoutingPolicy,
            RoutingOverride,
            Reroute,
            AgentState,
            AgentTransition,
        )
    )


def check(door: str, method: str, response, before: tuple[int, ...]) -> None:
    """The rules every answer of every door keeps."""
    status = response.status_code
    record(door, status)
    assert status < 500, f"{door}: {status} {response.content[:300]!r}"
    if 400 <= status < 500:
        assert rows() == before, f"{door}: a rejected request ({status}) wrote rows"
        if method != "HEAD":
            named = response.content.strip() or (status == 405 and response.has_header("Allow"))
            assert named, f"{door}: {status} without a reason"
            if response.get("Content-Type", "").startswith("application/json"):
                answer = json.loads(response.content)
                # "error" says what is wrong; the settings form's "errors" says it per field
                assert answer.get("error") or answer.get("errors"), response.content[:200]


# --- the doors ----------------------------------------------------------------------------------

EVENT_KEYS = st.sampled_from(
    [
        "event",
        "auth[member_id]",
        "auth[application_token]",
        "auth[access_token]",
        "auth[refresh_token]",
        "auth[expires_in]",
        "auth[user_id]",
        "auth[client_endpoint]",
        "data[CALL_ID]",
        "data[USER_ID]",
        "data[CRM_ENTITY_ID]",
        "data[CALL_LIST_ID]",
        "data[CLEAN]",
        "data[PHONE_NUMBER]",
        "ts",
        "auth",
        "data",
        "auth[]",
        "data[a][b][c][d][e][f][g][h][i]",
        "a]b[",
    ]
)
EVENTS = st.sampled_from(
    ["ONAPPINSTALL", "ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART", "ONAPPUNINSTALL", "X"]
)


@st.composite
def event_requests(draw):
    pairs = [("event", draw(EVENTS))] if draw(st.booleans()) else []
    if draw(st.booleans()):
        pairs += [("auth[member_id]", "{MEMBER}"), ("auth[application_token]", "{APPTOKEN}")]
    if draw(st.booleans()):
        pairs += [
            ("auth[access_token]", "{USERTOKEN}"),
            ("auth[client_endpoint]", "https://acme.bitrix24.com/rest/"),
        ]
    for numeric in ("auth[expires_in]", "auth[user_id]", "data[USER_ID]", "data[CRM_ENTITY_ID]"):
        if draw(st.booleans()):
            pairs.append((numeric, draw(st.one_of(NUMBERS, VALUES))))
    pairs += draw(st.lists(st.tuples(EVENT_KEYS, VALUES), max_size=10))
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)), draw(CONTENT_TYPES)
    content_type = draw(st.one_of(st.just("application/x-www-form-urlencoded"), CONTENT_TYPES))
    return pairs, content_type


@given(request=event_requests())
@settings(max_examples=300, **FUZZ)
def test_event_door(world, request):
    body, content_type = request
    data = body if isinstance(body, bytes) else form_body(body, world["ctx"])
    before = rows()
    response = world["client"].post("/bitrix/events/", data, content_type=content_type)
    check("events", "POST", response, before)


ROBOT_KEYS = st.sampled_from(
    [
        "code",
        "document_id[2]",
        "document_id",
        "properties[campaign]",
        "properties",
        "workflow_id",
        "event_token",
        "auth[user_id]",
        "auth[member_id]",
        "auth",
        "a]b[",
    ]
)
DOCUMENTS = st.one_of(
    st.sampled_from(["LEAD_1", "DEAL_7", "DYNAMIC_128_4", "LEAD_", "TASK_5", "LEAD_" + "9" * 30]),
    TEXT,
)


@st.composite
def robot_requests(draw):
    pairs: list[tuple[str, str]] = []
    if draw(st.booleans()):  # a genuine run, then whatever is drawn on top of it
        pairs += [
            ("auth[member_id]", "{MEMBER}"),
            ("auth[application_token]", "{APPTOKEN}"),
            ("code", binding.ROBOT_CODE),
            ("document_id[2]", "LEAD_1"),
            (f"properties[{binding.ROBOT_PROPERTY}]", "{CAMPAIGN}"),
            ("workflow_id", draw(TEXT) or "w.1"),
            ("event_token", draw(TEXT) or "t.1"),
        ]
    if draw(st.booleans()):
        pairs += [("auth[member_id]", "{MEMBER}"), ("auth[application_token]", "{APPTOKEN}")]
    if draw(st.booleans()):
        pairs.append(("code", draw(st.sampled_from([binding.ROBOT_CODE, "x", ""]))))
    if draw(st.booleans()):
        pairs.append(("document_id[2]", draw(DOCUMENTS)))
    if draw(st.booleans()):
        campaign = st.one_of(st.just("{CAMPAIGN}"), NUMBERS, VALUES)
        pairs.append((f"properties[{binding.ROBOT_PROPERTY}]", draw(campaign)))
    for name in ("workflow_id", "event_token"):
        if draw(st.booleans()):
            pairs.append((name, draw(st.one_of(TEXT, st.just("w.1")))))
    pairs += draw(st.lists(st.tuples(ROBOT_KEYS, VALUES), max_size=8))
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)), draw(CONTENT_TYPES)
    content_type = draw(st.one_of(st.just("application/x-www-form-urlencoded"), CONTENT_TYPES))
    return pairs, content_type


@given(request=robot_requests())
@settings(max_examples=300, **FUZZ)
def test_robot_door(world, request):
    # {CAMPAIGN} is the world's campaign of the portal, which the robot may name
    body, content_type = request
    data = body if isinstance(body, bytes) else form_body(body, world["ctx"])
    before = rows()
    response = world["client"].post(
        "/bitrix/robots/add-to-campaign/", data, content_type=content_type
    )
    check("robot", "POST", response, before)


INSTALL_KEYS = st.sampled_from(
    [
        "member_id",
        "AUTH_ID",
        "AUTH_EXPIRES",
        "REFRESH_ID",
        "APPLICATION_TOKEN",
        "SERVER_ENDPOINT",
        "APPLICATION_SCOPE",
        "PLACEMENT",
        "event",
        "auth[member_id]",
        "auth[access_token]",
        "auth[expires_in]",
    ]
)
DOMAINS = st.sampled_from(
    [
        PORTAL_HOST,
        "evil.example.com",
        "",
        "acme.bitrix24.com.evil.io",
        "x.bitrix24.com:99999",
        "[::1]",
    ]
)


@given(
    pairs=st.lists(st.tuples(INSTALL_KEYS, VALUES), max_size=10),
    genuine=st.booleans(),
    domain=st.one_of(DOMAINS, TEXT),
    protocol=st.sampled_from(["0", "1", "", "²"]),
    content_type=st.one_of(st.just("application/x-www-form-urlencoded"), CONTENT_TYPES),
)
@settings(max_examples=250, **FUZZ)
def test_install_door(world, pairs, genuine, domain, protocol, content_type):
    if genuine:
        pairs = [("member_id", "{MEMBER}"), ("AUTH_ID", "{USERTOKEN}"), *pairs]
    query = urlencode({"DOMAIN": domain, "PROTOCOL": protocol, "LANG": "en"})
    before = rows()
    response = world["client"].post(
        f"/bitrix/install/?{query}", form_body(pairs, world["ctx"]), content_type=content_type
    )
    check("install", "POST", response, before)


PAGE_PATHS = st.sampled_from(
    [
        "/bitrix/app/",
        "/bitrix/app/failed/",
        "/bitrix/app/settings/",
        "/bitrix/placement/",
        # the pages of issues 13-17
        "/bitrix/app/history/",
        "/bitrix/app/agents/",
        "/bitrix/app/campaigns/",
        "/bitrix/app/routing/",
    ]
)
PAGE_KEYS = st.sampled_from(
    ["member_id", "AUTH_ID", "PLACEMENT", "PLACEMENT_OPTIONS", "kind", "LANG", "AUTH_EXPIRES"]
)
PLACEMENTS = st.sampled_from(
    ["CRM_LEAD_DETAIL_TAB", "CRM_DEAL_DETAIL_TAB", "CALL_CARD", "DEFAULT", "CRM__DETAIL_TAB"]
)


@st.composite
def placement_options(draw):
    if draw(st.booleans()):
        return draw(JSON_TEXT)
    options = {"ID": draw(st.one_of(NUMBERS, SCALARS)), "CALL_ID": draw(st.one_of(TEXT, SCALARS))}
    return json.dumps(options)


@given(
    path=PAGE_PATHS,
    genuine=st.booleans(),
    placement=PLACEMENTS,
    options=placement_options(),
    pairs=st.lists(st.tuples(PAGE_KEYS, VALUES), max_size=6),
    method=st.sampled_from(["POST", "POST", "POST", "GET"]),
)
@settings(max_examples=250, **FUZZ)
def test_app_and_placement_pages(world, path, genuine, placement, options, pairs, method):
    base = [("member_id", "{MEMBER}"), ("AUTH_ID", "{USERTOKEN}")] if genuine else []
    fields = [*base, ("PLACEMENT", placement), *pairs]
    data = form_body(fields, world["ctx"]) + "&" + urlencode({"PLACEMENT_OPTIONS": options})
    client = world["client"]
    before = rows()
    if method == "GET":
        response = client.get(f"{path}?{data}")
    else:
        url = f"{path}?DOMAIN={PORTAL_HOST}&PROTOCOL=1&LANG=en"
        response = client.post(url, data, content_type="application/x-www-form-urlencoded")
    check("pages", method, response, before)


ACTIONS = st.sampled_from(
    [
        ("GET", "/bitrix/actions/overview/"),
        ("GET", "/bitrix/actions/failed/"),
        ("POST", "/bitrix/actions/failed/retry/"),
        ("POST", "/bitrix/actions/failed/{ID}/retry/"),
        ("POST", "/bitrix/actions/failed/{ID}/resolve/"),
        ("POST", "/bitrix/actions/settings/"),
        ("POST", "/bitrix/actions/settings/key/"),
        ("POST", "/bitrix/actions/settings/test/"),
        ("POST", "/bitrix/actions/operators/sync/"),
        ("POST", "/bitrix/actions/operators/"),
        ("GET", "/bitrix/actions/operators/rows/"),
        ("POST", "/bitrix/actions/problems/{ID}/dismiss/"),
        ("GET", "/bitrix/actions/jobs/{ID}/"),
        ("GET", "/bitrix/actions/call-card/"),
        ("GET", "/bitrix/actions/crm-calls/"),
        ("GET", "/bitrix/install/status/"),
        # the actions of issues 13-17 (agents, live calls and history, campaigns, routing)
        ("GET", "/bitrix/actions/settings/status/"),
        ("GET", "/bitrix/actions/agents/"),
        ("GET", "/bitrix/actions/agents/me/"),
        ("POST", "/bitrix/actions/agents/me/"),
        ("POST", "/bitrix/actions/agents/settings/"),
        ("POST", "/bitrix/actions/agents/{ID}/toggle/"),
        ("POST", "/bitrix/actions/agents/{ID}/retry/"),
        ("GET", "/bitrix/actions/calls/live/"),
        ("GET", "/bitrix/actions/calls/history/"),
        ("GET", "/bitrix/actions/calls/history.csv"),
        ("POST", "/bitrix/actions/campaigns/"),
        ("POST", "/bitrix/actions/campaigns/{ID}/csv/"),
        ("POST", "/bitrix/actions/campaigns/{ID}/start/"),
        ("POST", "/bitrix/actions/campaigns/{ID}/pause/"),
        ("POST", "/bitrix/actions/campaigns/{ID}/x/"),
        ("POST", "/bitrix/actions/campaigns/{ID}/agent/pause/"),
        ("POST", "/bitrix/actions/routing/policy/"),
        ("POST", "/bitrix/actions/routing/overrides/"),
        ("POST", "/bitrix/actions/routing/overrides/{ID}/delete/"),
        ("POST", "/bitrix/actions/routing/reroutes/{ID}/dial/"),
    ]
)
IDS = st.one_of(
    st.sampled_from(["{ITEM}", "{JOB}", "{CAMPAIGN}", "0", "1", "²", "-1"]),
    st.integers(0, 10**30).map(str),
)
QUERY_KEYS = st.sampled_from(
    [
        "page",
        "user",
        "kind",
        "state",
        "id",
        "type",
        "call_id",
        "reason",
        "date_from",
        "date_to",
        "direction",
        "outcome",
        "number",
    ]
)


@st.composite
def action_bodies(draw):
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return draw(JSON_TEXT)
    if choice == 1:
        return json.dumps({"ids": draw(JSON_VALUES)})
    if choice == 2:
        keys = st.sampled_from(
            [
                "card_mode",
                "missed_owner_rule",
                "default_user_id",
                "notify_user_ids",
                "api_key",
                "user_id",
                "line",
                "resolution",
                "stakeholder_emails",
                "create_leads",
                "name",
                "agent_user_ids",
                "source",
                "toggle",
                "note",
                "steps",
                "mode",
            ]
        )
        return json.dumps(draw(st.dictionaries(keys, JSON_VALUES, max_size=6)))
    return json.dumps(draw(JSON_VALUES))


@given(
    action=ACTIONS,
    item=IDS,
    body=action_bodies(),
    query=st.lists(st.tuples(QUERY_KEYS, VALUES), max_size=4),
    content_type=st.one_of(st.just("application/json"), CONTENT_TYPES),
    admin=st.sampled_from([True, True, True, False]),
)
@settings(max_examples=700, **FUZZ)
def test_json_actions_with_a_valid_page_token(
    world, action, item, body, query, content_type, admin
):
    method, path = action
    ctx = world["ctx"]
    url = fill(path.replace("{ID}", item), ctx) + "?" + form_body(query, ctx)
    headers = token(world["portal"], user_id=1, admin=admin)
    client = world["client"]
    before = rows()
    if method == "GET":
        response = client.get(url, **headers)
    else:
        response = client.post(url, fill(body, ctx), content_type=content_type, **headers)
    check("actions", method, response, before)


def _mutations():
    targets = st.sampled_from(
        [
            "id",
            "dbid",
            "from",
            "to",
            "direction",
            "date",
            "secondsTalk",
            "secondsFullTime",
            "cause",
            "state",
            "link",
            "meta",
            "outerNumber",
            "lastGroupName",
            "source",
        ]
    )
    return st.lists(
        st.tuples(targets, st.one_of(JSON_VALUES, NUMBERS, st.just("__delete__"))), max_size=4
    )


@given(
    sample=st.sampled_from(PAYLOADS),
    mutations=_mutations(),
    event=st.one_of(st.sampled_from(["CALL_NEW", "CALL_END", "CALL_ANSWER"]), JSON_VALUES),
    raw=st.one_of(st.none(), JSON_TEXT, st.binary(max_size=100).map(lambda b: b.hex())),
    content_type=st.one_of(st.just("application/json"), CONTENT_TYPES),
    header=st.sampled_from([None, None, "wrong", "{SECRET}"]),
)
@settings(max_examples=300, **FUZZ)
def test_webhook_door_with_a_valid_secret(
    world, sample, mutations, event, raw, content_type, header
):
    from tests.integration.unitalk.conftest import payload

    secret = world["connection"].webhook_secret
    if raw is not None:
        body = raw
    else:
        data = payload(sample)
        data["event"] = event
        for key, value in mutations:
            if value == "__delete__":
                data["call"].pop(key, None)
            else:
                data["call"][key] = value
        body = json.dumps(data)
    extra = {"HTTP_X_UNITALK_SECRET": header.replace("{SECRET}", secret)} if header else {}
    before = rows()
    response = world["client"].post(
        f"/unitalk/webhook/{secret}/", body, content_type=content_type, **extra
    )
    check("webhook", "POST", response, before)


@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    query=st.lists(st.tuples(TEXT, VALUES), max_size=3),
    body=st.binary(max_size=64),
)
@settings(max_examples=100, **FUZZ)
def test_healthz(world, method, query, body):
    url = "/healthz?" + form_body(query, world["ctx"])
    before = rows()
    response = world["client"].generic(method, url, body)
    assert response.status_code != 503, "the broker or database is down in the test run"
    check("healthz", method, response, before)
