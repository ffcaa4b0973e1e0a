"""``python -m witness serve --state DIR --name NAME --log VKEY`` (same as ``lab witness serve``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from witness.core import Witness
from witness.server import make_server


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
    args = ap.parse_args(argv)
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
