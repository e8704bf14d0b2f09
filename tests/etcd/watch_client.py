#!/usr/bin/env python3
"""The client side of tests/etcd_watch.rs: PyPI's etcd3gw, unchanged, watching
one fresh key through a grpc-gateway style JSON API (etcd's own gateway or
protogate in front of etcd) while it puts and then deletes that key through
the same API, after letting the watch idle for --quiet seconds.

Prints one JSON line on stdout per event the watch delivers:
    {"type": "PUT" | "DELETE", "key": "...", "value": "..." | null}
and progress notes on stderr. Exits 0 after both events arrived and the
watch was cancelled, 1 when an event did not arrive within --timeout
seconds or the watch failed, 2 when etcd3gw cannot be imported.

Every wait is bounded; the caller also kills the process after its own
deadline.
"""

import argparse
import json
import queue
import sys
import threading
import time

try:
    import etcd3gw
except ImportError as err:  # the Rust test turns this into an install hint
    print(f"cannot import etcd3gw: {err}", file=sys.stderr)
    sys.exit(2)


def note(text):
    print(f"watch_client: {text}", file=sys.stderr, flush=True)


def emit(event):
    kv = event["kv"]
    value = kv.get("value")
    line = {
        # proto3 JSON leaves the default enum value (PUT) out.
        "type": event.get("type", "PUT"),
        "key": kv["key"].decode("utf-8"),
        "value": None if value is None else value.decode("utf-8"),
    }
    print(json.dumps(line), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", required=True, help="a prefix no other run uses")
    parser.add_argument("--value", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument(
        "--quiet", type=float, default=0.0, help="seconds the watch idles before the put"
    )
    args = parser.parse_args()

    # api_path given: no GET /version discovery (protogate serves no such
    # route, as etcd's KV and Watch protos declare none).
    client = etcd3gw.client(
        host="127.0.0.1", port=args.port, api_path="/v3/", timeout=args.timeout
    )
    key = args.prefix + "key"
    marker = args.prefix + "marker"

    # A revision to start from, so that the watch sees the put even if etcd
    # registers the watcher only after the put went through: a marker key
    # written just before, read back for its mod_revision.
    client.put(marker, "m")
    [(_, meta)] = client.get(marker, metadata=True)
    start = int(meta["mod_revision"]) + 1
    note(f"marker at revision {start - 1}; watching {key} from {start}")

    events, cancel = client.watch(key, start_revision=start)
    received = queue.Queue()

    def consume():
        try:
            for event in events:
                received.put(event)
        except Exception as err:  # noqa: BLE001 - reported by the main thread
            received.put(err)

    threading.Thread(target=consume, daemon=True).start()

    def next_event(what):
        try:
            event = received.get(timeout=args.timeout)
        except queue.Empty:
            note(f"no event within {args.timeout} s while waiting for {what}")
            return None
        if isinstance(event, Exception):
            note(f"watch failed while waiting for {what}: {event!r}")
            return None
        emit(event)
        return event

    # A watch mostly sits idle; it must outlive idle periods.
    time.sleep(args.quiet)
    code = 0
    client.put(key, args.value)
    note("put done")
    # The delete is sent only once the put's event arrived: the DELETE
    # event can only come from a watch that is still streaming.
    if next_event("the PUT event") is None:
        code = 1
    else:
        client.delete(key)
        note("delete done")
        if next_event("the DELETE event") is None:
            code = 1
    # Nothing else may arrive: give a late event a moment to show.
    try:
        extra = received.get(timeout=0.5)
    except queue.Empty:
        extra = None
    if extra is not None and not isinstance(extra, Exception):
        emit(extra)
    cancel()
    client.delete(marker)
    note(f"cancelled; exiting {code}")
    return code


if __name__ == "__main__":
    started = time.monotonic()
    status = main()
    note(f"took {time.monotonic() - started:.2f} s")
    sys.exit(status)
