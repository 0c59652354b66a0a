"""`arbiter init`, `arbiter serve`, `keys ...`, `data ...`, `audit ...` (verify, head, list)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from sqlmodel import select

from app.audit import Checkpoint, audit_key, head_checkpoint, parse_checkpoint, verify_chain
from app.auth import create_key, list_keys, revoke_key
from app.cli.common import JsonOpt, cli_context, emit, fail, handle_errors
from app.db import session_scope
from app.errors import InvalidInput
from app.models import ROLES, ApiKey, ApiKeyPublic, AuditEntry
from app.services.labels.data_io import export_file, import_file


def _prepare_model(models_dir: Path) -> dict:
    """Convert the embedded policy model (SmolLM2's GGUF file) to a checkpoint once, ahead of `serve`."""
    # transformers (seconds to import) only for this step, not for every `arbiter` call.
    from reward_models.local_models import smollm2_dir

    try:
        return {"path": str(smollm2_dir(models_dir))}
    except Exception as exc:  # noqa: BLE001 - the store is ready; the model is reported, and loads on start-up instead
        return {"error": f"{type(exc).__name__}: {exc}"}


def init(
    admin_key: bool = typer.Option(True, "--admin-key/--no-admin-key", help="Create an admin key if none exists (shown once)."),
    model: bool = typer.Option(True, "--model/--no-model", help="Convert the embedded policy model (SmolLM2) now, so `serve` starts faster."),
    as_json: bool = JsonOpt,
) -> None:
    """Create the store (or migrate it to the newest schema), the working directories and the local policy model."""
    settings, engine = cli_context()
    for d in (settings.var_dir, settings.models_dir, settings.artifacts_dir):
        Path(d).mkdir(parents=True, exist_ok=True)
    result: dict = {"database": engine.url.render_as_string(hide_password=True), "var_dir": str(settings.var_dir)}
    if admin_key:
        with session_scope(engine) as session:
            has_admin = session.exec(select(ApiKey).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))).first()  # type: ignore[union-attr]
            if has_admin is None:
                key, secret = create_key(session, "admin", "initial admin", actor="cli:init")
                result["admin_key"] = secret
    if model:
        result["model"] = _prepare_model(settings.models_dir)
    model_line = ([] if "model" not in result else [f"policy model ready: {result['model']['path']}"] if "path" in result["model"]
                  else [f"policy model not prepared ({result['model']['error']}); `arbiter serve` will try again"])
    emit(result, as_json, lambda: "\n".join(
        [f"store ready: {result['database']}", *model_line]
        + ([f"admin key (shown once, keep it): {result['admin_key']}"] if "admin_key" in result else [])))


def serve(
    host: Optional[str] = typer.Option(None, help="Bind address (default ARBITER_HOST)."),
    port: Optional[int] = typer.Option(None, help="Port (default ARBITER_PORT)."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Run the API server (migrates the store first)."""
    import uvicorn

    settings, _ = cli_context()
    uvicorn.run("app.api.asgi:app", host=host or settings.host, port=port or settings.port, workers=workers, log_level="info")


keys = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@keys.command("create")
@handle_errors
def keys_create(role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}"),
                name: str = typer.Option("", help="A label for the key."), as_json: bool = JsonOpt) -> None:
    """Create a key; its secret is printed once and never stored."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        key, secret = create_key(session, role, name, actor="cli")
        out = {**ApiKeyPublic.model_validate(key, from_attributes=True).model_dump(mode="json"), "secret": secret}
    emit(out, as_json, f"{secret}\n(role {role}, id {out['id']}, created {_when(out['created_at'])}; "
                       "this is the only time the key is shown)")


@keys.command("list")
def keys_list(as_json: bool = JsonOpt) -> None:
    """List keys (never their secrets)."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        rows = [ApiKeyPublic.model_validate(k, from_attributes=True).model_dump(mode="json") for k in list_keys(session)]
    emit(rows, as_json, lambda: "\n".join(
        [f"{'PREFIX':<15}  {'ROLE':<9} {'ID':<32}  {'CREATED':<20} NAME"]
        + [f"{r['prefix'] + '…':<15}  {r['role']:<9} {r['id']}  {_when(r['created_at']):<20} {r['name']}"
           f"{'  (revoked ' + _when(r['revoked_at']) + ')' if r['revoked_at'] else ''}" for r in rows]) if rows else "no keys")


def _when(iso: str) -> str:
    """One rendering of a stored time for every text output: minutes, UTC."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@keys.command("revoke")
@handle_errors
def keys_revoke(key_id: str = typer.Argument(..., help="Key id or prefix."), as_json: bool = JsonOpt) -> None:
    """Revoke a key; requests with it get 401 from then on."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        key = revoke_key(session, key_id, actor="cli")
        out = ApiKeyPublic.model_validate(key, from_attributes=True).model_dump(mode="json")
    emit(out, as_json, f"revoked {out['id']}")


data = typer.Typer(help="Preference pairs in and out (JSONL: prompt/chosen/rejected, TRL conversational, or HH).", no_args_is_help=True)


@data.command("import")
@handle_errors
def data_import(file: Path = typer.Argument(..., help="JSONL file of preference pairs."),
                skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Import the valid lines and report the others."),
                as_json: bool = JsonOpt) -> None:
    """Import pairs; importing the same file again adds nothing."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        report = import_file(session, file, skip_invalid=skip_invalid)
    out = report.to_dict()
    emit(out, as_json, lambda: f"read {out['read']}, added {out['added']}, already present {out['existing']}, invalid {len(out['invalid'])}"
         + "".join(f"\n  line {e['line']}: {e['error']}" for e in out["invalid"][:20]))


@data.command("export")
@handle_errors
def data_export(file: Path = typer.Argument(..., help="Output JSONL file."),
                fmt: Optional[str] = typer.Option(None, "--format", help="prompt | conversational | hh (default: each pair's own)."),
                source: Optional[str] = typer.Option(None, help="Only pairs imported from this file name."),
                as_json: bool = JsonOpt) -> None:
    """Export labeled pairs (the preferred response as `chosen`)."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        n = export_file(session, file, fmt=fmt, source=source)
    emit({"written": n, "file": str(file)}, as_json, f"wrote {n} pairs to {file}")


audit = typer.Typer(help="The hash-chained, keyed audit trail.", no_args_is_help=True)


def _expected_head(value: str) -> Checkpoint:
    """``SEQ:HASH``, the JSON of `audit head --json`, or a file whose last line is either (a cron log)."""
    try:
        is_file = not value.strip().startswith("{") and Path(value).is_file()
    except OSError:
        is_file = False
    if is_file:
        path = Path(value)
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            raise InvalidInput(f"{value} holds no exported head")
        value = lines[-1]
    return parse_checkpoint(value)


@audit.command("verify")
@handle_errors
def audit_verify(expect_head: Optional[str] = typer.Option(
                     None, "--expect-head",
                     help="An exported head (SEQ:HASH, the JSON of `audit head --json`, or a file whose last line is one): "
                          "it must still be in the chain, unchanged (detects the newest entries cut off and the head rewound)."),
                 as_json: bool = JsonOpt) -> None:
    """Check the chain and the entries' MACs; exits 1 and names the first bad entry if any row was altered,
    forged, removed or reordered."""
    settings, engine = cli_context()
    expect = _expected_head(expect_head) if expect_head else None
    with session_scope(engine) as session:
        report = verify_chain(session, key=audit_key(settings), expect=expect)
    out = report.to_dict()

    def text() -> str:
        if not report.ok:
            return f"AUDIT TRAIL BROKEN at entry {out['first_bad_seq']}: {out['problem']}"
        lines = [f"audit trail intact: {out['entries']} entries ({out['keyed_entries']} keyed, {out['unkeyed_legacy']} unkeyed legacy), "
                 f"head {out['head_seq']}:{out['head_hash'][:16]}…"
                 + (f", contains the exported head {out['expected_head']}" if expect else "")]
        return "\n".join(lines + [f"warning: {w}" for w in out["warnings"]])

    emit(out, as_json, text)
    if not report.ok:
        raise typer.Exit(1)


@audit.command("head")
@handle_errors
def audit_head(as_json: bool = JsonOpt) -> None:
    """Export the head (after verifying the chain) to anchor it outside the database; prints SEQ:HASH,
    or with --json the checkpoint MACed with the audit key. `audit verify --expect-head` takes either."""
    settings, engine = cli_context()
    key = audit_key(settings)
    with session_scope(engine) as session:
        report = verify_chain(session, key=key)
        if not report.ok:
            fail(f"not exporting the head of a broken chain: entry {report.first_bad_seq}: {report.problem}",
                 as_json=as_json, error_code="audit_broken")
        checkpoint = head_checkpoint(session, key)
    emit(checkpoint.to_dict(), as_json, f"{checkpoint.seq}:{checkpoint.hash}")


@audit.command("list")
def audit_list(limit: int = typer.Option(50, help="Newest N entries."), action: Optional[str] = None, as_json: bool = JsonOpt) -> None:
    """Show the newest entries."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        q = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)  # type: ignore[union-attr]
        if action:
            q = q.where(AuditEntry.action == action)
        rows = [e.model_dump(mode="json") for e in session.exec(q).all()][::-1]
        # API actors are recorded as key:<id> (the id never changes, a name might); show whose key it is.
        key_ids = {r["actor"][4:] for r in rows if r["actor"].startswith("key:")}
        names = {k.id: k.name for k in session.exec(select(ApiKey).where(ApiKey.id.in_(key_ids)))} if key_ids else {}  # type: ignore[attr-defined]
    for r in rows:
        if r["actor"].startswith("key:"):
            r["actor_name"] = names.get(r["actor"][4:])
    emit(rows, as_json, lambda: "\n".join(
        f"{r['seq']:>6} {_when(r['ts'])} {_actor(r):<28} {r['action']:<22} {r['subject_type']}:{r['subject_id']}" for r in rows))


def _actor(row: dict) -> str:
    name = row.get("actor_name")
    return f"{name} (key:{row['actor'][4:12]})" if name else row["actor"]


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    cli.command()(init)
    cli.command()(serve)
    cli.add_typer(keys, name="keys")
    cli.add_typer(data, name="data")
    cli.add_typer(audit, name="audit")


__all__ = ["register", "fail"]
