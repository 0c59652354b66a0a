"""Entry point that runs INSIDE argilla-server's virtual environment: bootstrap, serve, worker.

argilla-server 2.8 pins older FastAPI/pydantic than Arbiter, so it lives in its own virtual
environment and Arbiter drives it as a subprocess (`labeling.argilla.server`). This script is what
that subprocess runs, with this folder on `sys.path` (Python puts a script's folder there) so that
`inprocess_search` is importable without Arbiter. Configuration comes the way argilla-server
expects it, from `ARGILLA_*` environment variables set by the launcher
(database URL, home path, Redis URL, `ARGILLA_SEARCH_ENGINE=arbiter-inprocess`).

    python server_main.py bootstrap < spec.json   # migrate the database, create workspaces + users
    python server_main.py serve --host 127.0.0.1 --port 6900 [--bootstrap < spec.json]
    python server_main.py worker                  # rq worker for webhooks and background jobs

It does not decide ports, paths or credentials: the launcher does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import inprocess_search  # noqa: F401  (registers the "arbiter-inprocess" search engine)


async def _ensure_user(db, spec: dict) -> tuple[object, str]:
    """Create the user, or bring an existing one back to the given role, password and API key."""
    from argilla_server.contexts import accounts
    from argilla_server.models import User

    user = await accounts.get_user_by_username(db, spec["username"])
    if user is None:
        user = await User.create(
            db,
            first_name=spec.get("first_name") or spec["username"],
            last_name=None,
            username=spec["username"],
            role=spec["role"],
            password_hash=accounts.hash_password(spec["password"]),
            api_key=spec["api_key"],
        )
        action = "created"
    else:
        changes = {}
        if str(user.role) != spec["role"]:
            changes["role"] = spec["role"]
        if user.api_key != spec["api_key"]:
            changes["api_key"] = spec["api_key"]
        if not accounts.verify_password(spec["password"], user.password_hash):
            changes["password_hash"] = accounts.hash_password(spec["password"])
        if changes:
            user = await user.update(db, **changes)
        action = "updated" if changes else "unchanged"
    return user, action


async def _bootstrap_users(spec: dict) -> dict:
    """Users, workspaces, and exactly the memberships the spec names in those workspaces.

    `workspaces` maps a workspace to its members; a user listed in none of a managed workspace's members is
    removed from it (that is what keeps annotators out of the reviewers' workspace). An older spec with one
    `workspace` puts every user in it."""
    from argilla_server.database import AsyncSessionLocal
    from argilla_server.models import Workspace, WorkspaceUser

    members = spec.get("workspaces") or {spec["workspace"]: [u["username"] for u in spec["users"]]}
    async with AsyncSessionLocal() as db:
        workspaces = {}
        for name in members:
            workspace = await Workspace.get_by(db, name=name)
            workspaces[name] = workspace if workspace is not None else await Workspace.create(db, name=name)
        result = {}
        for entry in spec["users"]:
            user, result[entry["username"]] = await _ensure_user(db, entry)
            for name, workspace in workspaces.items():
                link = await WorkspaceUser.get_by(db, workspace_id=workspace.id, user_id=user.id)
                if entry["username"] in members[name] and link is None:
                    await WorkspaceUser.create(db, workspace_id=workspace.id, user_id=user.id)
                elif entry["username"] not in members[name] and link is not None:
                    await link.delete(db)
        return result


def bootstrap() -> None:
    """Migrate the database to head, then ensure the workspace and users in the JSON on stdin."""
    from argilla_server.cli.database.migrate import migrate_db

    spec = json.load(sys.stdin)
    migrate_db(revision="head")
    result = asyncio.run(_bootstrap_users(spec))
    print(json.dumps({"users": result}), flush=True)


def serve(host: str, port: int, with_bootstrap: bool) -> None:
    """Serve the API and UI; with `--bootstrap`, first do what `bootstrap` does (one start-up
    instead of two: importing argilla-server takes seconds)."""
    import uvicorn

    if with_bootstrap:
        bootstrap()

    uvicorn.run("argilla_server:app", host=host, port=port, access_log=False, log_level="warning")


def worker() -> None:
    """One rq worker on argilla-server's queues (webhook deliveries, dataset status updates).

    argilla-server's own `worker` command starts a pool of two; one is enough on one machine.
    """
    from argilla_server.jobs.queues import DEFAULT_QUEUE, HIGH_QUEUE, REDIS_CONNECTION
    from rq import Worker

    Worker([HIGH_QUEUE, DEFAULT_QUEUE], connection=REDIS_CONNECTION).work(with_scheduler=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bootstrap")
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=6900)
    serve_parser.add_argument("--bootstrap", action="store_true", help="migrate and create users first (stdin)")
    sub.add_parser("worker")
    args = parser.parse_args(argv)

    if args.command == "bootstrap":
        bootstrap()
    elif args.command == "serve":
        serve(args.host, args.port, args.bootstrap)
    else:
        worker()


if __name__ == "__main__":
    main()
