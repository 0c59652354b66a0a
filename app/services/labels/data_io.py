"""Import and export of preference pairs between JSONL files and the store.

A pair becomes a Task (the prompt), two Candidates, a Comparison (a = chosen, b = rejected) and a
human Label choosing ``a``. Every row is keyed by a content hash, so importing the same file twice
adds nothing, and the whole import is one transaction: a bad line (without ``skip_invalid``) writes
nothing at all. Exported pairs keep their original format and file order unless asked otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from app.audit import append_audit
from app.errors import InvalidInput
from app.models import Candidate, Comparison, Label, Task, utcnow
from reward_models.pairs import FORMATS, Message, PairParseError, PreferencePair, iter_pairs, pair_to_record

__all__ = ["ImportReport", "import_pairs", "import_file", "export_pairs", "export_file", "prompt_hash", "text_hash"]

_CHUNK = 500


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_hash(messages: list[dict], kind: str = "prompt", decision_type: str | None = None, context: dict | None = None) -> str:
    payload = json.dumps([kind, decision_type, messages, context or {}], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text_hash(payload)


@dataclass
class ImportReport:
    read: int = 0
    added: int = 0
    existing: int = 0
    invalid: list[dict] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"read": self.read, "added": self.added, "existing": self.existing, "invalid": self.invalid, "formats": self.formats}


def _existing(session: Session, column, values: list[str]) -> dict[str, object]:  # noqa: ANN001
    found: dict[str, object] = {}
    model = column.class_
    for i in range(0, len(values), _CHUNK):
        chunk = values[i : i + _CHUNK]
        for row in session.exec(select(model).where(column.in_(chunk))).all():
            found[getattr(row, column.key)] = row
    return found


def import_pairs(session: Session, pairs: Iterable[tuple[int, PreferencePair]], source: str, actor: str = "cli",
                 errors: list[PairParseError] | None = None) -> ImportReport:
    """Add pairs (with their line numbers) in the caller's transaction."""
    items = list(pairs)
    report = ImportReport(read=len(items) + len(errors or []))
    report.invalid = [{"line": e.line, "error": str(e)} for e in (errors or [])]
    by_hash: dict[str, tuple[int, PreferencePair]] = {}
    for line, pair in items:
        report.formats[pair.format] = report.formats.get(pair.format, 0) + 1
        by_hash.setdefault(pair.content_hash(), (line, pair))
    known = _existing(session, Comparison.pair_hash, list(by_hash))
    report.existing = len(items) - len([h for h in by_hash if h not in known])
    new = [(h, lp) for h, lp in by_hash.items() if h not in known]
    if not new:
        return report

    task_hashes = {h: prompt_hash([m.to_dict() for m in lp[1].prompt]) for h, lp in new}
    tasks: dict[str, Task] = _existing(session, Task.content_hash, sorted(set(task_hashes.values())))  # type: ignore[assignment]
    candidates: dict[tuple[str, str], Candidate] = {}
    task_ids = [t.id for t in tasks.values()]
    for i in range(0, len(task_ids), _CHUNK):
        for c in session.exec(select(Candidate).where(col(Candidate.task_id).in_(task_ids[i : i + _CHUNK]))).all():
            candidates[(c.task_id, c.content_hash)] = c

    # Comparisons get increasing timestamps in file order so that an export gives the file back.
    base = utcnow()
    rows: list[object] = []

    def candidate(task: Task, content: str) -> Candidate:
        key = (task.id, text_hash(content))
        if key not in candidates:
            candidates[key] = Candidate(task_id=task.id, content=content, produced_by=f"dataset:{source}", content_hash=key[1])
            rows.append(candidates[key])
        return candidates[key]

    for h, (line, pair) in new:
        th = task_hashes[h]
        task = tasks.get(th)
        if task is None:
            task = Task(kind="prompt", prompt=[m.to_dict() for m in pair.prompt], content_hash=th, source=f"dataset:{source}", source_format=pair.format)
            tasks[th] = task
            rows.append(task)
        a, b = candidate(task, pair.chosen), candidate(task, pair.rejected)
        comparison = Comparison(task_id=task.id, candidate_a_id=a.id, candidate_b_id=b.id, pair_hash=h,
                                source=f"dataset:{source}", created_at=base + timedelta(microseconds=line))
        rows.append(comparison)
        rows.append(Label(comparison_id=comparison.id, choice="a", confidence=1.0, source="human",
                          producer=f"dataset:{source}", details={"line": line, "format": pair.format}))
        report.added += 1
    # The tables have no ORM relationships, so the unit of work does not order their inserts:
    # flush parents before children so that foreign keys hold.
    for kind in (Task, Candidate, Comparison, Label):
        session.add_all([r for r in rows if type(r) is kind])
        session.flush()
    append_audit(session, actor, "data.imported", "dataset", source,
                 {"added": report.added, "existing": report.existing, "invalid": len(report.invalid), "formats": report.formats})
    return report


def import_file(session: Session, path: str | Path, skip_invalid: bool = False, actor: str = "cli") -> ImportReport:
    """Import a JSONL file in any of the three pair formats.

    Raises InvalidInput naming the line of the first malformed record, and writes nothing, unless
    ``skip_invalid`` is set.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    errors: list[PairParseError] = []
    try:
        with open(path, encoding="utf-8") as fh:
            pairs = list(iter_pairs(fh, skip_invalid=skip_invalid, errors=errors))
    except PairParseError as exc:
        raise InvalidInput(f"{path}: {exc}; nothing was imported (use --skip-invalid to import the valid lines)",
                           details={"line": exc.line}) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text ({exc.reason}); nothing was imported") from None
    return import_pairs(session, pairs, source=path.name, actor=actor, errors=errors)


def _winner(labels: list[Label]) -> str | None:
    """The side a comparison's labels prefer: human labels first, then the most confident decisive one."""
    decisive = [lb for lb in labels if lb.choice in ("a", "b")]
    if not decisive:
        return None
    rank = {"human": 0, "reviewer": 1, "llm_judge": 2, "local_model": 3}
    decisive.sort(key=lambda lb: (rank.get(lb.source, 9), -lb.confidence))
    return decisive[0].choice


def export_pairs(session: Session, source: str | None = None) -> Iterator[PreferencePair]:
    """Labeled comparisons as preference pairs, oldest first."""
    query = select(Comparison).order_by(Comparison.created_at, Comparison.id)
    if source:
        query = query.where(Comparison.source == f"dataset:{source}")
    comparisons = session.exec(query).all()
    for i in range(0, len(comparisons), _CHUNK):
        chunk = comparisons[i : i + _CHUNK]
        ids = [c.id for c in chunk]
        labels: dict[str, list[Label]] = {}
        for lb in session.exec(select(Label).where(col(Label.comparison_id).in_(ids))).all():
            labels.setdefault(lb.comparison_id, []).append(lb)
        cand_ids = [x for c in chunk for x in (c.candidate_a_id, c.candidate_b_id)]
        cands = {c.id: c for c in session.exec(select(Candidate).where(col(Candidate.id).in_(cand_ids))).all()}
        tasks = {t.id: t for t in session.exec(select(Task).where(col(Task.id).in_({c.task_id for c in chunk}))).all()}
        for comp in chunk:
            side = _winner(labels.get(comp.id, []))
            if side is None:
                continue
            a, b = cands[comp.candidate_a_id].content, cands[comp.candidate_b_id].content
            chosen, rejected = (a, b) if side == "a" else (b, a)
            task = tasks[comp.task_id]
            prompt = tuple(Message(m["role"], m["content"]) for m in task.prompt)
            yield PreferencePair(prompt, chosen, rejected, task.source_format or "prompt")


def export_file(session: Session, path: str | Path, fmt: str | None = None, source: str | None = None) -> int:
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    n = 0
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for pair in export_pairs(session, source=source):
            try:
                record = pair_to_record(pair, fmt)
            except ValueError as exc:
                raise InvalidInput(f"cannot write pair as {fmt}: {exc}") from None
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n
