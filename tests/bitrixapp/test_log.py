import json
import logging
import uuid

from integration.core.log import (
    ContextFilter,
    JsonFormatter,
    log_context,
    mask,
    mask_secrets,
    secret_note,
)


def _render(message, *args, **extra):
    record = logging.LogRecord("app.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    ContextFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_mask_keeps_only_the_last_four_characters():
    assert mask("abcdef123456") == "****3456"
    assert mask("abc") == "****"
    assert mask("") == ""


def test_secrets_in_free_text_are_masked():
    text = 'refresh with access_token=0a1b2c3d4e5f6a7b8c9d and "api_key": "sk-live-999988887777"'
    masked = mask_secrets(text)
    assert "0a1b2c3d4e5f6a7b8c9d" not in masked
    assert "sk-live-999988887777" not in masked
    assert "access_token=****8c9d" in masked
    assert "****7777" in masked


def test_long_ids_are_kept_in_full():
    request_id, member_id, task_id = "a" * 32, "0123456789abcdef" * 2, str(uuid.uuid4())
    text = f"request {request_id} portal {member_id} task {task_id} idempotency_key=sync:42:ab"
    assert mask_secrets(text) == text


def test_a_known_secret_is_masked_wherever_it_sits():
    token = uuid.uuid4().hex + uuid.uuid4().hex
    secret_note(token)
    masked = mask_secrets(f"GET /x?code={token}&y=1 and {token}.")
    assert token not in masked
    assert masked.count("****" + token[-4:]) == 2


def test_fields_named_like_secrets_are_masked_whole():
    line = _render("m", api_key="k-123456789", payload={"access_token": "at-98765"}, pause_key="u")
    assert line["api_key"] == "****6789"
    assert line["payload"] == {"access_token": "****8765"}
    assert line["pause_key"] == "u"


def test_json_line_carries_context_fields_and_masks_message():
    with log_context(portal="p1.bitrix24.ua", call=42), log_context(job=7, attempt=2):
        line = _render("auth=%s failed", "supersecretvalue123")
    assert line["level"] == "INFO"
    assert line["logger"] == "app.test"
    assert (line["portal"], line["call"], line["job"], line["attempt"]) == (
        "p1.bitrix24.ua",
        42,
        7,
        2,
    )
    assert "supersecretvalue123" not in line["message"]
    assert "time" in line


def test_context_is_gone_after_the_block():
    with log_context(portal="x"):
        pass
    assert "portal" not in _render("plain")


def test_explicit_extra_wins_over_context():
    with log_context(call=1):
        assert _render("m", call=2)["call"] == 2
