"""The embedded broker never hands a worker a half-written message.

kombu's filesystem transport writes a message file in place, so a worker polling the
folder could take it empty and die on the JSON ("Unrecoverable error:
JSONDecodeError"), which stopped `make run`. Real kombu connections here: one thread
queues large messages while another takes them as fast as it can.
"""

from __future__ import annotations

import threading
from pathlib import Path
from queue import Empty
from typing import Any

from kombu import Connection

from config import broker_filesystem
from config.celery_app import app

MESSAGES = 40
# Large enough that writing one takes a while: a reader that can see a message
# before it is whole gets to see it so.
PADDING = "x" * 2_000_000


def _options(folder: Path) -> dict[str, Any]:
    (folder / "queue").mkdir(parents=True)
    (folder / "control").mkdir()
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def test_a_reader_racing_a_writer_gets_every_message_whole(tmp_path: Path) -> None:
    options = _options(tmp_path / "broker")
    written = threading.Event()

    def write() -> None:
        with Connection("filesystem://localhost/", transport_options=options) as connection:
            queue = connection.SimpleQueue("race")
            for index in range(MESSAGES):
                queue.put({"index": index, "padding": PADDING})
            queue.close()
        written.set()

    writer = threading.Thread(target=write)
    received: list[int] = []
    errors: list[Exception] = []
    with Connection("filesystem://localhost/", transport_options=options) as connection:
        assert isinstance(connection.transport, broker_filesystem.Transport)
        queue = connection.SimpleQueue("race")
        writer.start()
        while len(received) < MESSAGES:
            try:
                message = queue.get_nowait()
            except Empty:
                if written.is_set() and not any(Path(options["data_folder_in"]).iterdir()):
                    break
                continue
            except Exception as exc:  # the JSONDecodeError of a half-written file
                errors.append(exc)
                break
            body = message.decode()
            assert body["padding"] == PADDING
            received.append(body["index"])
            message.ack()
        queue.close()
    writer.join()

    assert not errors, errors
    assert received == list(range(MESSAGES))


def test_the_celery_app_serves_filesystem_urls_with_this_transport(tmp_path) -> None:
    options = _options(tmp_path / "broker")

    with app.connection_for_write("filesystem://localhost/") as connection:
        connection.transport_options.update(options)
        assert isinstance(connection.transport, broker_filesystem.Transport)
        # The URL the worker's banner and "Connected to" line show is unchanged.
        assert connection.as_uri() == "filesystem://:**@localhost//"
