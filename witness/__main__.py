"""``python -m witness serve --state DIR --name NAME --log VKEY`` (same as ``lab witness serve``);
``vkey`` prints the witness's verifier key; ``evidence`` prints the conflicts it kept (exit 1 if any)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from witness.core import Witness
from witness.server import make_server
from witness.state import State


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="witness", description="A C2SP tlog-witness")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the witness HTTP service")
    s.add_argument("--state", type=Path, required=True, help="directory of the key and SQLite state")
    s.add_argument("--name", required=True, help="the witness's key name, e.g. witness.example.org/w1")
    s.add_argument("--log", action="append", required=True, help="verifier key of a log to witness")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8390)
    k = sub.add_parser("vkey", help="print the witness's verifier key (creating the key if needed)")
    k.add_argument("--state", type=Path, required=True)
    k.add_argument("--name", required=True)
    e = sub.add_parser("evidence", help="print, as JSON, the log-signed checkpoints that contradicted ours")
    e.add_argument("--state", type=Path, required=True)
    e.add_argument("--origin", default=None, help="only this log origin")
    args = ap.parse_args(argv)
    if args.cmd == "evidence":
        items = [dataclasses.asdict(x) for x in State(args.state / "witness.sqlite").evidence(args.origin)]
        print(json.dumps(items, ensure_ascii=False, indent=2))  # noqa: T201
        return 1 if items else 0
    if args.cmd == "vkey":
        print(Witness.open(args.state, args.name, []).vkey)  # noqa: T201
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    w = Witness.open(args.state, args.name, args.log)
    server = make_server(w, args.host, args.port)
    print(f"witness {w.vkey} listening on http://{args.host}:{server.server_port}", flush=True)  # noqa: T201
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
