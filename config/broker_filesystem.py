"""kombu's filesystem transport (the embedded mode's broker), with messages that
appear in the queue folder only once they are whole.

kombu's own ``Channel._put`` creates the message file under its final name, then
writes it. A worker polling the folder (every 50 ms here) can move and read the file
in between: it reads nothing, fails on the JSON ("Unrecoverable error:
JSONDecodeError"), and the worker process exits, which stops ``make run``. Here a
message is written under a name consumers skip (``.<name>.part``: they take only
``*.<queue>.msg``) and renamed into place, which is atomic on one filesystem.

``register()`` makes this the transport behind ``filesystem://`` URLs, so broker
URLs, the worker's banner and the settings stay as they are.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

import kombu.transport
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

ALIAS = "filesystem"


class Channel(filesystem.Channel):
    # kombu names the argument "message" in its base class, "payload" in this one.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Put ``payload`` onto ``queue``: written aside, then renamed into place."""
        # kombu's naming: the time first, so that consumers take messages in order.
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Serve ``filesystem://`` with this module's transport in this process."""
    kombu.transport.TRANSPORT_ALIASES[ALIAS] = f"{__name__}:Transport"
    kombu.transport._transport_cache.pop(ALIAS, None)  # resolved before, by kombu itself
