"""What runs leave behind: the SQL tables, the read models (traces), the run store, verifier stats, and the
attempt log the give-up rule learns from.

    from seasoned.runs import RunStore
    with RunStore.open() as store:
        for run in store.list_runs(limit=5):
            print(run.id, run.status, run.tokens)
"""

from seasoned.errors import CandidateNotFound, RunNotFound, RunStoreError

from .attempts import AttemptLog
from .store import FinishedRun, RunStore
from .tables import RUN_ID_MAX
from .traces import (
    UNTAGGED,
    CallTrace,
    CandidateTrace,
    EventTrace,
    FeedbackTrace,
    RunDetail,
    RunSummary,
    RunTrace,
    SpendKey,
    SubtaskTrace,
    VerdictTrace,
    group_spend,
)
from .verifier_stats import VerifierStats

__all__ = [
    "RUN_ID_MAX", "UNTAGGED", "AttemptLog", "CallTrace", "CandidateNotFound", "CandidateTrace", "EventTrace", "FeedbackTrace",
    "FinishedRun", "RunDetail", "RunNotFound", "RunStore", "RunStoreError", "RunSummary", "RunTrace", "SpendKey",
    "SubtaskTrace", "VerdictTrace", "VerifierStats", "group_spend",
]
