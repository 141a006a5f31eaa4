"""Every Unitalk name we could not confirm from the official docs, in one place.

Facts and sources: docs/unitalk.md. Labels: CONFIRMED (seen in the official docs),
CORROBORATED (2+ independent public clients), SECONDARY (one third party that read the docs),
UNCONFIRMED (guess). When a live check corrects a name, change it here and nowhere else; the
client, schema and services import from this module.
"""

from __future__ import annotations

# --- Webhook events (docs/unitalk.md §4.1, SECONDARY) ---------------------------------------------
EVENT_NEW = "CALL_NEW"
EVENT_REDIRECT = "CALL_REDIRECT"
EVENT_ANSWER = "CALL_ANSWER"
EVENT_END = "CALL_END"
EVENTS = (EVENT_NEW, EVENT_REDIRECT, EVENT_ANSWER, EVENT_END)

# --- Call directions (docs/unitalk.md §4.3, SECONDARY) --------------------------------------------
DIRECTION_IN = "IN"
DIRECTION_OUT = "OUT"
DIRECTION_INNER = "INNER"
DIRECTIONS = (DIRECTION_IN, DIRECTION_OUT, DIRECTION_INNER)

# --- Call states (docs/unitalk.md §4.3, SECONDARY "documented values") ----------------------------
# Only ANSWER is a conversation and the only state with a recording link. Unknown states are
# accepted (stored as sent) because this list is not confirmed; they are treated as not answered.
STATE_ANSWER = "ANSWER"
STATES = (
    "ANSWER",
    "BUSY",
    "FAIL",
    "NOANSWER",
    "CHANUNAVAIL",
    "NOMONEY",
    "BUSYOUT",
    "WRONGDIR",
    "BLOCKED",
    "DIALING",
    "UNREACHABLE",
    "NOT_EXIST",
)

# A directCall whose operator leg failed (the agent's line did not pick up or is not registered)
# ends without a conversation before the client rang: these states with no full time
# (UNCONFIRMED: how Unitalk reports a failed operator leg is not documented, docs/agents.md §5.2).
OPERATOR_LEG_FAILED_STATES = ("CHANUNAVAIL", "NOANSWER", "BUSY")

# --- Extra webhook fields (docs/unitalk.md §4.3) --------------------------------------------------
# Key of the directCall/originateNew `meta` echo inside `call` (UNCONFIRMED: assumed `call.meta`).
FIELD_META = "meta"
# Persistent call id, present once saved (SECONDARY).
FIELD_DBID = "dbid"
# `source` values other than REGULAR (UNCONFIRMED; stored as sent).
SOURCE_REGULAR = "REGULAR"

# --- "Custom template" (form) webhook bodies (docs/unitalk.md §4.3, UNCONFIRMED variable names) ---
# Form field -> key of the standard JSON `call` object. `call_to_N` fields collect into `to`.
FORM_EVENT_FIELD = "event"
FORM_FIELDS = {
    "call_id": "id",
    "call_dbid": "dbid",
    "call_from": "from",
    "call_direction": "direction",
    "call_state": "state",
    "call_secondstalk": "secondsTalk",
    "call_secondsfulltime": "secondsFullTime",
    "call_date": "date",
    "call_link": "link",
    "call_cause": "cause",
    "call_outernumber": "outerNumber",
    "call_lastgroupname": "lastGroupName",
    "call_source": "source",
    "call_meta": "meta",
}
FORM_TO_PREFIX = "call_to_"

# --- API error messages (docs/unitalk.md §2.4) ----------------------------------------------------
MSG_AUTH_INVALID = "Authorization invalid"  # CONFIRMED
MSG_INTERNAL = "Internal error"  # CONFIRMED
# Throttling answer: not in the stored docs (UNCONFIRMED); the docs only say bursts may trigger
# "DOS protection". Matched case-insensitively as substrings of the message.
RATE_LIMIT_PHRASES = ("too many requests", "dos protection", "rate limit", "limit exceeded")
# history/get validation messages of the 2017 ancestor (UNCONFIRMED today).
HISTORY_VALIDATION_MESSAGES = (
    "Query null",
    "Wrong FROM date",
    "Wrong TO date",
    "Limit range is 1-300",
    "Offset is less than 0",
)
# directCall with an unknown `sip` (UNCONFIRMED wording).
MSG_INNER_LINE_NOT_FOUND = "Inner line not found"

# --- API envelopes (docs/unitalk.md §3) -----------------------------------------------------------
STATUS_ERROR = "Error"  # CONFIRMED
STATUS_SUCCESS = "Success"  # CORROBORATED
# users/list: bare list or one of these wrappers (envelope UNCONFIRMED, docs/unitalk.md §3.6).
USERS_LIST_KEYS = ("users", "items", "data", "list", "result")
USER_LINE_FIELD = "line"  # CORROBORATED

# directCall is sent form-encoded by every client found; whether JSON works is UNCONFIRMED.
DIRECT_CALL_AS_FORM = True

# --- Autodialer actions (docs/unitalk.md §3.5) ----------------------------------------------------
# Only GET_WITH_DATA is CONFIRMED; the rest are UNCONFIRMED.
AUTODIAL_ACTIONS = {
    "get_with_data": "GET_WITH_DATA",  # CONFIRMED
    "add_numbers": "ADD_NUMBERS",
    "delete_numbers": "DELETE_NUMBERS",
    "start": "START",
    "stop": "STOP",
    "get_calls_history": "GET_CALLS_HISTORY",
}
# Autodialer per-number result states (`callState`, UNCONFIRMED).
AUTODIAL_CALL_STATES = (
    "ANSWER",
    "NOANSWER",
    "BUSY",
    "ANSW_RJCT",
    "ANSW_NF_OP",
    "ANSW_OP_NA",
    "UNREACHABLE",
    "ANSWERING_MACHINE",
    "FAIL",
    "BUSYOUT",
    "AUDIO_ERR",
    "WRONG_DIR",
    "CLIENT_CALLED",
    "CANCEL",
    "AUTOCANCEL",
    "NOT_EXIST",
)

# --- Recordings (docs/unitalk.md §3.7) ------------------------------------------------------------
# Format, auth and lifetime are UNCONFIRMED: accept audio/* and octet-stream.
RECORDING_CONTENT_TYPES = ("audio/", "application/octet-stream")
# Hosts that may receive our API key when a recording needs auth (the link comes from a webhook
# body, so it must not be able to send the key anywhere else).
RECORDING_KEY_HOST_SUFFIXES = ("unitalk.cloud", "nextel.com.ua")

# --- Timestamps (docs/unitalk.md §2.6) ------------------------------------------------------------
# Local wall-clock without zone (CORROBORATED); the zone itself is UNCONFIRMED (per connection).
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# --- Operator status (docs/agents.md §3, §5.1 item 3: UNCONFIRMED, low reliability) ---------------
# Whether Unitalk has such an API at all is unknown: the app pushes only behind the per-portal
# switch, after a probe. Path and field names come from one unreliable third-party repository.
OPERATOR_STATUS_SET = "phones/inner/setStatus"  # UNCONFIRMED
OPERATOR_STATUS_GET = "phones/inner"  # UNCONFIRMED
OPERATOR_STATUS_LINE_FIELD = "number"  # UNCONFIRMED
OPERATOR_STATUS_FIELD = "status"  # UNCONFIRMED
# Our effective state -> the value sent (UNCONFIRMED). Busy and wrap-up count as "online": the
# operator is at work, Unitalk sees their call itself.
OPERATOR_STATUS_VALUES = {
    "available": "ONLINE",
    "busy": "ONLINE",
    "wrap_up": "ONLINE",
    "paused": "PAUSE",
    "no_line": "OFFLINE",
    "inactive": "OFFLINE",
}
# How an account without the API answers (an error envelope; wording UNCONFIRMED). Matched
# case-insensitively as substrings; an HTTP 404 means the same.
UNKNOWN_METHOD_PHRASES = ("unknown method", "method not found", "no such method")
