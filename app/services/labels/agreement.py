"""Agreement of the store's labels: judges against the human majority, annotators among themselves.

Reads `Label` rows and hands them to `labeling.agreement`. Human raters are the annotators
(`source="human"`); labels imported with a dataset (`producer="dataset:<name>"`) are left out
unless asked for, because they are the dataset's own verdicts (always "a" by construction) rather
than an annotator's. Judges are `llm_judge` and `local_model` labels, named by `Label.judge`
(or the producer). Only "a", "b" and "tie" count; "discarded" is not a preference.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.models import Label
from labeling.agreement import AgreementReport, Annotation, agreement_report

__all__ = ["compute_agreement"]

PREFERENCES = ("a", "b", "tie")


def compute_agreement(session: Session, include_imported: bool = False) -> AgreementReport:
    human: dict[tuple[str, str], Label] = {}
    judges: dict[tuple[str, str], Label] = {}
    rows = session.exec(select(Label).where(col(Label.choice).in_(PREFERENCES)).order_by(Label.updated_at)).all()
    for label in rows:
        if label.source == "human":
            if label.producer.startswith("dataset:") and not include_imported:
                continue
            human[(label.comparison_id, label.producer)] = label
        elif label.source in ("llm_judge", "local_model"):
            # A judge name may appear under two producers (e.g. a re-run with another model):
            # the newest label of that judge for the comparison counts.
            judges[(label.comparison_id, label.judge or label.producer)] = label
    return agreement_report(
        [Annotation(cid, rater, lb.choice) for (cid, rater), lb in human.items()],
        [Annotation(cid, rater, lb.choice) for (cid, rater), lb in judges.items()],
    )
