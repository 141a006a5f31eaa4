import os

from kombu import Connection

from bitrixapp import broker


def _channel(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    conn = Connection(
        "filesystem://",
        transport=broker.Transport,
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(tmp_path),
        },
    )
    return conn, conn.default_channel, folder


def test_a_message_is_never_visible_to_readers_before_it_is_complete(tmp_path, monkeypatch):
    conn, channel, folder = _channel(tmp_path)
    seen_before_rename: list[list[str]] = []
    real_replace = os.replace

    def spy(src, dst):
        seen_before_rename.append(sorted(os.listdir(folder)))
        real_replace(src, dst)

    monkeypatch.setattr(broker.os, "replace", spy)
    channel._put("jobs", {"body": "x" * 10_000})

    # while the file was being written, no file carried the queue's reader-visible name
    assert all(not name.endswith(".jobs.msg") for name in seen_before_rename[0])
    assert [n for n in os.listdir(folder) if n.endswith(".jobs.msg")]
    assert channel._get("jobs") == {"body": "x" * 10_000}
    conn.release()
