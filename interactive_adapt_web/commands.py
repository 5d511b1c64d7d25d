"""`interactive-adapt serve`: the web front end, registered through the entry point
`interactive_adapt.commands` (installed with the `web` extra)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path

from InteractiveAdaptLib.app import settings as prefs
from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.store.site_store import default_store_root

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
TEST_FAULTS = ("callback", "pump")  # where the hidden --test-fault fails on purpose (lifecycle.py)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `serve`."""
    p = subparsers.add_parser(
        "serve",
        help="segment, learn and roll back in a web browser (three slice views, the module's panel)",
        description="Serve InteractiveAdapt to a web browser on this computer. Open the address it prints.",
    )
    p.add_argument(
        "study", nargs="?", help="volume file or DICOM folder to open at start (inside the studies folder)"
    )
    p.add_argument(
        "--studies",
        type=Path,
        help="folder of the studies the page offers: its volume files and DICOM series, nothing outside it "
        "(default: the folder that holds STUDY; needed without a study)",
    )
    p.add_argument("--site", default="default", help="site whose learned weights are used and saved")
    p.add_argument("--user", default="", help="learn in this user's own profiles of the site")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free port)")
    p.add_argument(
        "--host",
        default=LOCALHOST,
        help="address to listen on (default: this computer only; any other needs --allow-remote)",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="let --host be an address other computers reach: they then open the page with the printed "
        "address and its token, over unencrypted http (a trusted network only)",
    )
    p.add_argument(
        "--server-name",
        action="append",
        default=[],
        metavar="NAME",
        help="with --allow-remote: a further name or address by which browsers reach this server "
        "(its host name and addresses are accepted already)",
    )
    p.add_argument("--root", type=Path, help="site store folder (default: the user data folder)")
    p.add_argument("--device", default="auto", choices=prefs.DEVICES, help="where the network runs")
    p.add_argument(
        "--torch-threads",
        type=int,
        help="threads for the network (default: all cores but one, which draws and streams the views)",
    )
    p.add_argument("--exit-after", type=float, metavar="S", help="stop the server after S seconds")
    p.add_argument("--event-log", type=Path, help=argparse.SUPPRESS)  # JSON lines for tests and benchmarks
    p.add_argument("--draw-every-view", action="store_true", help=argparse.SUPPRESS)  # bench-web's ablation
    # Tests only: each Refresh after the first fails on purpose, once per WHERE (lifecycle.py's test hook).
    p.add_argument("--test-fault", action="append", default=[], choices=TEST_FAULTS, help=argparse.SUPPRESS)
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # no screen needed
    os.environ["TRAME_ARGS"] = ""  # trame reads only what is passed here, never this command's own arguments
    from interactive_adapt_web.security import PageGuard, check_listening, is_loopback, own_names
    from interactive_adapt_web.studies import StudiesFolder, studies_from_command_line

    root, study = studies_from_command_line(args.study, args.studies)
    check_listening(args.host, args.allow_remote)
    if not is_loopback(args.host):
        log.warning(
            "Listening on %s (--allow-remote): other computers can reach this page and the patient images it "
            "shows, with the printed address and its token, which crosses the network unencrypted. Use "
            "this only on a trusted network.",
            args.host,
        )
    guard = PageGuard(own_names(args.host, args.server_name))
    try:
        import torch

        # The network shares the cores with the loop that draws and streams the views: on 2 cores, a
        # second torch thread delayed the frame with the mask by hundreds of ms (bench-web).
        torch.set_num_threads(args.torch_threads or max(1, (os.cpu_count() or 2) - 1))
        settings = prefs.ModuleSettings(site=args.site, user=args.user, device=args.device)
        from trame.app import get_server

        from interactive_adapt_web.app import WebApp
    except ImportError as exc:
        raise InteractiveAdaptError(
            f"The web front end is not installed ({exc.name} is missing): pip install 'interactive-adapt[web]'."
        ) from exc
    for noisy in ("trame_server", "trame_client", "wslink", "aiohttp.access"):  # their INFO is per message
        logging.getLogger(noisy).setLevel(logging.WARNING)
    server = get_server("interactive_adapt", client_type="vue3")
    guard.install(server)
    app = WebApp(
        server,
        settings,
        args.root or default_store_root(),
        StudiesFolder(root),
        event_log=args.event_log,
        exit_after_s=args.exit_after,
        view_priority=not args.draw_every_view,
        test_faults=args.test_fault,
    )
    if study is not None:
        server.controller.on_server_ready.add(lambda **_: app.open_study(study))

    def announce(**_: object) -> None:
        name = args.host if is_loopback(args.host) else socket.gethostname()
        where = "on this computer" if is_loopback(args.host) else "(the token is the page's only lock)"
        print(
            f"InteractiveAdapt for site '{args.site}', studies of '{root}'. Open this address in a web "
            f"browser {where}:\n  {guard.url(name, server.port)}",
            flush=True,
        )

    server.controller.on_server_ready.add(announce)
    try:
        server.start(port=args.port, host=args.host, open_browser=False, show_connection_info=False)
    finally:
        app.close()
    return 0
