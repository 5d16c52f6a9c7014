#!/usr/bin/env python3
"""Item 3p of `npm run bench`: pantalaimon decrypting the very /sync bodies Kirjava's page gets.

Run by bench/run.ts with .venv-pantalaimon's Python (pantalaimon from PyPI, see
scripts/pantalaimon-venv.sh). In-process, no homeserver, no network, as in
../shared/reference/pantalaimon-bench/bench.py: a pantalaimon PanClient (temporary
SqliteStore, like the daemon) holds the bench's megolm sessions, imported from the Node
receiver's key export (`session_key` of the export format →
`InboundGroupSession.import_session`), and the senders' devices as known and unverified
(the normal state after pantalaimon's keys/query).

Argument: a JSON file {"user_id", "device_id", "room_keys": [exported keys],
"devices": [{"user_id", "device_id", "curve25519", "ed25519"}], "rooms": [room ids]}.
Then one line per /sync body on stdin, a path to the body's file; the answer, one JSON
line: {"ms": time of json.loads + PanClient.decrypt_sync_body + json.dumps (what
pantalaimon's daemon does around aiohttp for a /sync), "events": m.room.encrypted events
in the body, "decrypted": events pantalaimon decrypted}.
"""

import json
import sys
import tempfile
import time

import logbook
from nio.crypto import InboundGroupSession, OlmDevice
from nio.rooms import MatrixRoom
from pantalaimon.client import PanClient
from pantalaimon.log import logger as pan_logger
from pantalaimon.store import PanStore


def main():
    with open(sys.argv[1]) as f:
        setup = json.load(f)
    # pantalaimon's default LogLevel=warning.
    pan_logger.level = logbook.WARNING
    logbook.StderrHandler(level=logbook.WARNING).push_application()

    me, device = setup["user_id"], setup["device_id"]
    # As the daemon makes it: its PanStore (SQLite, where it keeps the media keys of
    # encrypted attachments) and media cache, and the nio store beside them.
    data_dir = tempfile.mkdtemp(prefix="pan-kirjava-bench-")
    pan_store = PanStore(data_dir)
    client = PanClient("bench", pan_store, None, "http://127.0.0.1:1", None, me, device,
                       store_path=data_dir, media_info=pan_store.load_media_cache("bench"))
    client.user_id = me
    client.restore_login(me, device, "bench-token")
    for d in setup["devices"]:
        dev = OlmDevice(d["user_id"], d["device_id"], {"ed25519": d["ed25519"], "curve25519": d["curve25519"]})
        client.olm.device_store.add(dev)
        client.olm.store.save_device_keys({d["user_id"]: {d["device_id"]: dev}})
    imported = 0
    for key in setup["room_keys"]:
        session = InboundGroupSession.import_session(
            key["session_key"],
            key["sender_claimed_keys"]["ed25519"],
            key["sender_key"],
            key["room_id"],
            key.get("forwarding_curve25519_key_chain", []),
        )
        if client.olm.inbound_group_store.add(session):
            imported += 1
    for room in setup["rooms"]:
        client.rooms[room] = MatrixRoom(room, me, encrypted=True)
    print(json.dumps({"ready": True, "sessions": imported}), flush=True)

    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        with open(path, "rb") as f:
            raw = f.read()
        t0 = time.perf_counter_ns()
        body = json.loads(raw)
        body = client.decrypt_sync_body(body, ignore_failures=True)
        out = json.dumps(body)
        t1 = time.perf_counter_ns()
        assert out
        events = decrypted = 0
        for room in body.get("rooms", {}).get("join", {}).values():
            for event in room.get("timeline", {}).get("events", []):
                if event.get("decrypted") is True:
                    decrypted += 1
                    events += 1
                elif event.get("type") == "m.room.encrypted":
                    events += 1
        print(json.dumps({"ms": (t1 - t0) / 1e6, "events": events, "decrypted": decrypted}), flush=True)


if __name__ == "__main__":
    main()
