"""Import the 1,500 HH pairs into a fresh SQLite store; compare with a naive row-at-a-time import.

Prints one JSON line: pairs/s and seconds of `app.services.labels.data_io.import_file` (batched lookups,
one transaction) and of the obvious alternative (look up and insert each pair in its own
transaction), plus the ratio. Target: the batched import under 5 s here.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from app.db import make_engine, session_scope, upgrade_schema  # noqa: E402
from app.models import Candidate, Comparison, Label, Task  # noqa: E402
from app.services.labels.data_io import import_file, prompt_hash, text_hash  # noqa: E402
from reward_models.pairs import read_pairs  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh_harmless_dev.jsonl"


def naive_import(engine, path: Path) -> int:
    added = 0
    for pair in read_pairs(path):
        with session_scope(engine) as s:
            if s.exec(select(Comparison).where(Comparison.pair_hash == pair.content_hash())).first():
                continue
            th = prompt_hash([m.to_dict() for m in pair.prompt])
            task = s.exec(select(Task).where(Task.content_hash == th)).first()
            if task is None:
                task = Task(prompt=[m.to_dict() for m in pair.prompt], content_hash=th, source="naive")
                s.add(task)
                s.flush()
            cands = []
            for text in (pair.chosen, pair.rejected):
                c = s.exec(select(Candidate).where(Candidate.task_id == task.id, Candidate.content_hash == text_hash(text))).first()
                if c is None:
                    c = Candidate(task_id=task.id, content=text, content_hash=text_hash(text))
                    s.add(c)
                    s.flush()
                cands.append(c)
            comp = Comparison(task_id=task.id, candidate_a_id=cands[0].id, candidate_b_id=cands[1].id, pair_hash=pair.content_hash())
            s.add(comp)
            s.flush()
            s.add(Label(comparison_id=comp.id, choice="a", source="human", producer="naive"))
            added += 1
    return added


def main() -> None:
    if not DATA.exists():
        print(json.dumps({"bench": "import_pairs", "skipped": f"{DATA} absent", "machine": machine()}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/batched.db")
        upgrade_schema(engine)
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            report = import_file(s, DATA)
        batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            again = import_file(s, DATA)
        reimport = time.perf_counter() - t0

        naive_engine = make_engine(f"sqlite:///{tmp}/naive.db")
        upgrade_schema(naive_engine)
        t0 = time.perf_counter()
        naive_added = naive_import(naive_engine, DATA)
        naive = time.perf_counter() - t0
        with Session(naive_engine) as s:
            assert len(s.exec(select(Comparison)).all()) == naive_added == report.added
    print(json.dumps({
        "bench": "import_pairs", "pairs": report.added, "seconds": round(batched, 3),
        "pairs_per_s": round(report.added / batched, 1), "reimport_seconds": round(reimport, 3), "reimport_added": again.added,
        "naive_seconds": round(naive, 3), "naive_pairs_per_s": round(naive_added / naive, 1),
        "speedup_vs_naive": round(naive / batched, 2), "target_seconds": 5.0, "meets_target": batched < 5.0,
        "machine": machine(),
    }))


if __name__ == "__main__":
    main()
