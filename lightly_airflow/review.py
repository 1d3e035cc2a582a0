"""Review before commit: a run proposes its selection, a person commits or discards it, then the run ends.

A datapool version is what downstream DAGs label and train on (their runs start on its asset event), so a team may
want a person to look at a run's picks before they count. With review (the example DAG's ``LIGHTLY_REVIEW``), the
select task **proposes**: it selects and writes the report as usual, commits nothing and keeps the run's staging
files, and records the proposal (the pool version it read and the picks in order, :func:`proposal_record`). Airflow's
Human-in-the-loop task then waits for a reviewer (``Commit`` or ``Discard`` in Airflow's Required Actions), and a
second select task **decides**: it selects again on the pool as it is then and commits only when the picks are
the proposal's, in the same order; a pool that changed meanwhile so that the picks differ is an error that commits
nothing (:func:`mismatch`), and so is a reviewer's answer that cannot be committed as given (:meth:`Review.keep`):
the Commit is recorded as refused, with the reason and the fix (:meth:`Review.refusing`, :func:`refused_record`), so
the run no longer reads "awaiting review". A discard commits nothing, records the run's summary and removes its
staging files.

The Airflow layer reads the reviewer's answer (the Human-in-the-loop task's XCom) into a :class:`Review`; this
module stays free of Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from lightly_airflow.run_origin import short_time

__all__ = ["AWAITING_REVIEW", "COMMIT", "answered_before", "COMMITTED_AFTER_REVIEW", "DISCARD", "DISCARDED_IN_REVIEW", "DROP_LABEL", "DROP_PARAM",
           "DRY_RUN_NOTE",
           "NOT_COMMITTED_AFTER_REVIEW", "PROPOSAL_FILE", "Review", "ReviewError", "mismatch", "parse_proposal",
           "proposal_record", "recorded_review", "refused_record", "review_body", "review_short",
           "sequences_as_reviewed"]

#: the reviewer's two answers (the Human-in-the-loop task's options)
COMMIT, DISCARD = "Commit", "Discard"
#: the review form's field for the picks to leave out of a commit (their keys; the Human-in-the-loop task's param),
#: and its label in the form (what the review's text names: the form shows the label, not the field's name)
DROP_PARAM, DROP_LABEL = "leave_out", "Picks to leave out"
#: the proposal's record, in the run's report folder (``<datapool>/_reports/<run>/``)
PROPOSAL_FILE = "proposal.json"
#: a reviewed run's states (:attr:`Review.state`): proposed, committed after a reviewer approved, discarded, and
#: approved but refused at the commit (the datapool changed so that the picks differ, or the answer cannot be
#: committed as given: :meth:`Review.refusing`); nothing committed
AWAITING_REVIEW, COMMITTED_AFTER_REVIEW, DISCARDED_IN_REVIEW, NOT_COMMITTED_AFTER_REVIEW = (
    "awaiting review", "committed after review", "discarded in review", "approved, not committed")


class ReviewError(RuntimeError):
    """The reviewed proposal cannot be committed as it was reviewed (or there is none); nothing was committed.

    :ivar summary: a reviewer's Commit refused at the commit: the run's summary (the proposal's, with the refused
        decision; :meth:`RunSummary.to_dict <lightly_airflow.pipeline.RunSummary.to_dict>`), what the select task
        sends as the run's metrics before it fails; ``None`` otherwise."""

    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class Review:
    """Where a reviewed run is.

    :param step: ``propose`` (select, report, commit nothing, keep the staging files) or ``decide`` (the reviewer
        answered: commit the proposal, or discard it).
    :param approved: ``decide``: commit (True) or discard (False).
    :param by: who answered (the Airflow user's name, else id).
    :param at: when (ISO 8601).
    :param dropped: keys of proposed picks the reviewer left out of the commit (:data:`DROP_PARAM`): committed as
        not selected; the other picks keep their ranks.
    :param refused: why an approved proposal was not committed (a :class:`ReviewError`'s message, with its fix:
        :meth:`refusing`); ``None`` otherwise.
    :param earlier: ``propose``: the Commit of this run's previous proposal that was refused (:meth:`proposing_after`:
        who, when, why, and what changed since), so that the reviewer asked again reads it; ``None`` otherwise.
    """

    step: Literal["propose", "decide"]
    approved: bool = False
    by: str | None = None
    at: str | None = None
    dropped: tuple[str, ...] = ()
    refused: str | None = None
    earlier: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.step not in ("propose", "decide"):
            raise ValueError(f"review step must be 'propose' or 'decide', not {self.step!r}")
        if self.dropped and not (self.step == "decide" and self.approved):
            raise ValueError("only a review that commits leaves picks out")
        if self.refused is not None and not (self.step == "decide" and self.approved):
            raise ValueError("only a review that commits can be refused")
        if self.earlier is not None and self.step != "propose":
            raise ValueError("only a proposal follows an earlier refused one")

    def proposing_after(self, record: Mapping[str, Any] | None, version: int | None, picks: Sequence[str]) -> Review:
        """This proposal (``picks`` on pool ``version``), made after ``record`` (the run's previous
        :data:`PROPOSAL_FILE`, read back before this one replaces it): when a reviewer's Commit of that one was refused
        (:func:`refused_record`; the select task cleared to propose again), or it followed such a refusal itself,
        the proposal says so (:attr:`earlier`: who, when, why, the version and picks then, how many picks differ
        now); else it is unchanged. Without it the reviewer asked again read the form as if nobody had answered."""
        if self.step != "propose" or not isinstance(record, Mapping):
            return self
        decision = recorded_review(record)
        if decision.get("state") == NOT_COMMITTED_AFTER_REVIEW:
            then = [str(k) for k in record.get("picks") or []]
            now = set(picks)
            before = set(then)
            earlier = {"by": decision.get("by"), "at": decision.get("at"), "refused": decision.get("refused"),
                       "proposed_at": record.get("proposed_at"), "version": record.get("version"),
                       "picks": len(then), "now_version": version, "new_picks": len(now - before),
                       "gone_picks": len(before - now)}
        else:  # (proposed again before anyone answered, or the proposal retried: the refusal before it still stands;
            # the picks that differ are known only while they are this record's picks)
            carried = decision.get("earlier")
            if not isinstance(carried, Mapping):
                return self
            same = list(record.get("picks") or []) == list(picks)
            earlier = {k: v for k, v in carried.items() if same or k not in ("new_picks", "gone_picks")}
            earlier["now_version"] = version
        return replace(self, earlier=earlier)

    def refusing(self, reason: str) -> Review:
        """This approval, refused at the commit for ``reason`` (a :class:`ReviewError`'s message: the datapool
        changed so that the picks differ, a key left out that is no pick, part of a sequence left out; it names the
        fix): what the run records, so that it says the decision was taken and why nothing was committed, not
        "awaiting review" (:func:`refused_record`)."""
        return replace(self, refused=" ".join(str(reason).split()))

    @classmethod
    def from_response(cls, response: Any, task_id: str = "the review task") -> Review:
        """The reviewer's answer from the Human-in-the-loop task's result (its XCom): ``chosen_options``
        (:data:`COMMIT` or :data:`DISCARD`), ``responded_by_user`` (``{"id", "name"}``), ``responded_at``.

        :raises ReviewError: no answer (the task did not run or returned nothing) or one that is neither."""
        if not isinstance(response, Mapping) or "chosen_options" not in response:
            raise ReviewError(f"{task_id} left no answer (its result is {response!r}): the run commits nothing "
                              "until a reviewer answers Commit or Discard in Airflow's Required Actions.")
        chosen = response.get("chosen_options")
        chosen = [chosen] if isinstance(chosen, str) else list(chosen or [])
        if len(chosen) != 1 or chosen[0] not in (COMMIT, DISCARD):
            raise ReviewError(f"{task_id} answered {chosen!r}; expected exactly one of {COMMIT!r} or {DISCARD!r}.")
        user = response.get("responded_by_user")
        by = None
        if isinstance(user, Mapping):
            by = str(user.get("name") or user.get("id") or "") or None
        elif user:
            by = str(user)
        at = response.get("responded_at")
        approved = chosen[0] == COMMIT
        dropped = _dropped_keys((response.get("params_input") or {}).get(DROP_PARAM), task_id)
        return cls("decide", approved=approved, by=by,
                   at=at.isoformat() if isinstance(at, datetime) else (str(at) if at else None),
                   dropped=dropped if approved else ())

    @property
    def state(self) -> str:
        """``awaiting review``, ``committed after review``, ``discarded in review`` or, an approval refused at the
        commit, ``approved, not committed``."""
        if self.step == "propose":
            return AWAITING_REVIEW
        if self.refused is not None:
            return NOT_COMMITTED_AFTER_REVIEW
        return COMMITTED_AFTER_REVIEW if self.approved else DISCARDED_IN_REVIEW

    def text(self) -> str:
        """One line for the report and the logs."""
        if self.step == "propose":
            text = ("awaiting review: nothing is committed until a reviewer answers Commit or Discard in Airflow's "
                    "Required Actions")
            return text if self.earlier is None else f"{text}; {_earlier_text(self.earlier)}"
        who = f" by {self.by}" if self.by else ""
        when = f" at {short_time(self.at)}" if self.at else ""
        if self.approved:
            approved = f"approved{who}{when}"
            if self.dropped:
                shown = ", ".join(self.dropped[:5]) + (f" and {len(self.dropped) - 5} more" if len(self.dropped) > 5 else "")
                n = len(self.dropped)
                approved += f", leaving out {n} pick{'s' if n != 1 else ''}: {shown}"
            if self.refused is not None:
                return f"{approved}; not committed: {self.refused}"
            return approved
        if not self.by:  # (Airflow's scheduler answered the timeout's default: nobody did)
            return f"discarded{when}: nobody answered before the review's timeout; nothing committed"
        return f"discarded{who}{when}: nothing committed"

    def to_dict(self) -> dict[str, Any]:
        """For the run summary and the commit's metadata: ``state``, ``by``, ``at``, the ``text``, (when the
        reviewer left picks out) ``dropped`` and (an approval refused at the commit) ``refused``, the reason."""
        out: dict[str, Any] = {"state": self.state, "by": self.by, "at": self.at, "text": self.text()}
        if self.dropped:
            out["dropped"] = list(self.dropped)
        if self.refused is not None:
            out["refused"] = self.refused
        if self.earlier is not None:
            out["earlier"] = dict(self.earlier)
        return out

    def keep(self, picks: Sequence[str], sequences: Sequence[Mapping[str, Any]] = ()) -> set[str]:
        """The picks to commit: ``picks`` (the reviewed proposal's) without those the reviewer left out.

        :param sequences: with ``selected_sequence_length``, the selected sequences (``frames``: their keys): a
            sequence is committed whole or not at all, so its frames are left out together.
        :raises ReviewError: a key left out is not among the picks (a typo, or a sample of another run), or only
            some frames of a sequence are: nothing is committed rather than something the reviewer did not mean."""
        picked = set(picks)  # (once: a review may leave out thousands of keys)
        unknown = [k for k in self.dropped if k not in picked]
        if unknown:
            widest = {sep: max(k.count(sep) for k in picked) + 1 if picked else 1 for sep in (",", ";")}
            joined = next((k for k in unknown[:20] if _several_picks(k, picked, widest)), None)
            hint = (f" A line holds several picks ({_shown(joined)}): give one key per line (a key may hold commas)."
                    if joined is not None else "")
            raise ReviewError(f"The reviewer left out {len(unknown)} key(s) that are not among the proposal's "
                              f"{len(picks)} picks: {', '.join(_shown(k) for k in unknown[:5])}.{hint} Nothing was "
                              "committed; clear the review task and answer again with keys from the proposal's "
                              "report, one per line.")
        dropped = set(self.dropped)
        cut = [s for s in sequences if dropped.intersection(s["frames"]) and not dropped.issuperset(s["frames"])]
        if cut:
            first = list(cut[0]["frames"])
            raise ReviewError(f"The reviewer left out some frames of {len(cut)} selected sequence(s), and a sequence is "
                              f"committed whole or not at all: {cut[0].get('video')!r} has the frames "
                              f"{', '.join(first)} ({len(set(first) & dropped)} of {len(first)} left out). Nothing was "
                              "committed; clear the review task and answer again, leaving out all of a sequence's "
                              "frames or none.")
        return picked.difference(dropped)


def _shown(key: str, limit: int = 200) -> str:
    """A key as a message names it: quoted, cut after ``limit`` characters (a reviewer who pasted every pick on one
    line gave a "key" of 400 kB, which the refusal's text carried into the record, the report and the run's XCom)."""
    return repr(key) if len(key) <= limit else f"{key[:limit]!r}… ({len(key)} characters)"


def _same_proposal(record: Any, summary: Mapping[str, Any]) -> bool:
    """Whether the proposal ``record`` is the one ``summary`` describes (the same run, pool version and count of
    picks): a record the select task replaced since, or of another run, is not."""
    return (isinstance(record, Mapping) and record.get("run_id") == summary.get("run_id")
            and record.get("version") == summary.get("version")
            and len(record.get("picks") or []) == summary.get("selected"))


def _several_picks(line: str, picked: Collection[str], widest: Mapping[str, int]) -> bool:
    """Whether ``line`` (a left-out key that is no pick) is two or more picks joined by commas or semicolons
    (``a.png, b.png``, as the report's review line lists them; the picks may hold commas themselves): a reviewer who
    typed several keys on one line, not a typo. ``widest``: per separator, the most parts a pick splits into (what
    bounds the search: a line of 10,000 picks is read in linear time)."""
    for sep in (",", ";"):
        parts = line.split(sep)
        # (ends[i]: how many picks the first i parts make at the most, joined back where a pick holds the separator)
        ends: list[int | None] = [0] + [None] * len(parts)
        for i in range(len(parts)):
            if ends[i] is None:
                continue
            for j in range(i + 1, min(len(parts), i + widest[sep]) + 1):
                if sep.join(parts[i:j]).strip() in picked:
                    ends[j] = max(ends[j] or 0, (ends[i] or 0) + 1)
        if (ends[-1] or 0) > 1:
            return True
    return False


def _earlier_text(earlier: Mapping[str, Any]) -> str:
    """A proposal's :attr:`Review.earlier` in one line: ``the Commit of this run's previous proposal (approved by
    alice at …) was not committed: <why>`` (the refusal's cause, without its fix: the select task was cleared and
    proposed again, as it said)."""
    who = f" by {earlier['by']}" if earlier.get("by") else ""
    when = f" at {short_time(earlier['at'])}" if earlier.get("at") else ""
    return f"the Commit of this run's previous proposal (approved{who}{when}) was not committed: {_cause(earlier)}"


def _cause(earlier: Mapping[str, Any]) -> str:
    """Why a Commit was refused (:attr:`Review.refused`) without the run's name before it and the fix after it."""
    reason = str(earlier.get("refused") or "the datapool changed after the proposal")
    if reason.startswith("Run '") and "': " in reason:
        reason = reason.split("': ", 1)[1]
    return reason.split(" Nothing was committed", 1)[0].rstrip(" .;") or reason


def _earlier_lines(earlier: Mapping[str, Any]) -> list[str]:
    """The review form's paragraph on the refused Commit before this proposal (:meth:`Review.proposing_after`): who,
    when, why, and what changed since (the pool version each read, how many picks differ)."""
    def name(v: Any) -> str:
        return "an empty datapool" if v is None else f"datapool version {v}"

    then, now = earlier.get("version"), earlier.get("now_version")
    changed = (f"This proposal was made on {name(now)}"
               + (f" (the refused one on {name(then)})" if then != now else ", as the refused one"))
    if isinstance(earlier.get("new_picks"), int):
        new, gone = earlier["new_picks"], earlier.get("gone_picks") or 0
        changed += (f": {new} of its picks were not in the refused proposal, and {gone} of the refused proposal's "
                    f"{earlier.get('picks', '?')} picks are not in this one" if new or gone
                    else ": it picks the same samples as the refused proposal")
    return [f"**Asked again: {_earlier_text(earlier)}.**", "", f"{changed}. Review these picks as a new proposal.", ""]


def _dropped_keys(value: Any, task_id: str) -> tuple[str, ...]:
    """The review form's :data:`DROP_PARAM`: a list of keys (Airflow's form sends one per line of its text box), or
    text with one key per line (a form of another task); blanks ignored, each key once, in order. A line is one
    key whatever it holds: keys may hold commas and spaces (``a, b.jpg`` is one S3 key), and a line holding several
    keys is named by :meth:`Review.keep` as such."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: list[Any] = value.splitlines()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ReviewError(f"{task_id} answered {DROP_PARAM}={value!r}; expected a list of sample keys.")
    keys = [str(k).strip() for k in items if k is not None and str(k).strip()]
    return tuple(dict.fromkeys(keys))


def review_body(summary: Mapping[str, Any], report_url: str, discard_after: timedelta | None = None,
                record: Mapping[str, Any] | None = None) -> str:
    """What the reviewer reads in Airflow's Required Actions (Markdown): the proposal's counts, its warnings and
    the link to its report (``summary``: the proposing task's :class:`~lightly_airflow.pipeline.RunSummary` dict),
    and first, when a reviewer's Commit was refused before, why (``record``: the run's proposal record as read back,
    :func:`refused_record`, for a Commit of this proposal; ``summary``'s ``review.earlier`` for one of the proposal
    before it, :meth:`Review.proposing_after`)."""
    version = summary.get("version")
    decided = _decided(summary)
    if decided:
        return f"{decided}\n\n[Open the curation report]({report_url}) to see the run's picks and its review."
    review = summary.get("review")
    earlier = review.get("earlier") if isinstance(review, Mapping) else None
    metrics = summary.get("metrics")
    metrics = metrics if isinstance(metrics, Mapping) else {}
    length, sequences = metrics.get("selected_sequence_length"), metrics.get("sequences_selected")
    in_sequences = (f" ({sequences} sequence{'s' if sequences != 1 else ''} of {length} frames)"
                    if isinstance(length, int) and isinstance(sequences, int) else "")
    refused = recorded_review(record) if isinstance(record, Mapping) else {}
    lines = [
        *([DRY_RUN_NOTE, ""] if summary.get("dry_run") else []),
        *([f"**Asked again: a Commit of this proposal was not committed.** The review: "
           f"{str(refused.get('text')).rstrip('.')}.", ""]
          if refused.get("state") == NOT_COMMITTED_AFTER_REVIEW and _same_proposal(record, summary) else []),
        *(_earlier_lines(earlier) if isinstance(earlier, Mapping) else []),
        f"**{summary.get('selected', 0)}** samples selected{in_sequences} of {summary.get('candidates', 0)} candidates "
        f"({_processed(summary)} in this run, {summary.get('pool_selected_before', 0)} "
        f"selected before), on {'an empty datapool' if version is None else f'datapool version {version}'}.",
        "",
        *(f"- Warning: {w}" for w in summary.get("warnings") or []),
        *([""] if summary.get("warnings") else []),
        f"[Open the curation report]({report_url}) to see the picks, why each was picked and what the run missed.",
        "",
        "**Commit** adds exactly these picks to the datapool (if the datapool changed meanwhile so that the "
        "selection differs, nothing is committed and the task says why); **Discard** commits nothing. To commit "
        f"without some of the picks, list their keys (as the report shows them, one per line) in **{DROP_LABEL}** "
        f"(`{DROP_PARAM}`), "
        "then Commit: they are committed as not selected."
        + (" A sequence is left out whole or not at all: list every frame of each sequence you leave out (the report "
           "lists them); leaving out part of a sequence commits nothing." if in_sequences else "")
        + (f" Without an answer within {_duration(discard_after)} the proposal is discarded." if discard_after else ""),
    ]
    return "\n".join(lines)


#: what the reviewer of a dry run reads first: the Commit below it commits nothing either (it told them "Commit adds
#: exactly these picks to the datapool", and a Commit recorded the approval and committed nothing)
DRY_RUN_NOTE = ("**This is a dry run** (`worker_config.datasource.enable_datapool_update: false`): nothing is "
                "committed whichever you answer; your answer is recorded in the run's report. Trigger the run "
                "without the dry run to commit a selection.")


def _processed(summary: Mapping[str, Any]) -> str:
    """``63 files processed``; with videos ``2 files processed (62 samples, video frames included)``: a run's
    ``processed`` counts its samples, every frame of a video one (a video run of 2 files said "62 files")."""
    samples = int(summary.get("processed") or 0)
    listing = summary.get("listing")
    files = listing.get("processed_files") if isinstance(listing, Mapping) else None
    if not isinstance(files, int) or files == samples:
        return f"{samples} files processed"
    return f"{files} files processed ({samples} samples, video frames included)"


def _decided(summary: Mapping[str, Any]) -> str | None:
    """The body for a run whose proposal was decided before (its tasks cleared after the decision: the select task
    then answers with the recorded commit or discard, and so does the deciding task whatever the answer now), else
    None. Without it the reviewer was asked again as if nothing had been decided, and a Discard of a committed run,
    or a Commit of a discarded one, changed nothing without a word."""
    recorded = summary.get("review") or {}
    state = recorded.get("state") if isinstance(recorded, Mapping) else None
    if state not in (COMMITTED_AFTER_REVIEW, DISCARDED_IN_REVIEW):
        return None
    result = (f"committed datapool version {summary.get('version')}" if summary.get("committed")
              else "committed nothing" + (" (a dry run)" if summary.get("dry_run") else ""))
    return (f"**This run was reviewed before: {recorded.get('text') or state}.** It {result}, and answering again "
            "changes nothing (either answer ends the run as it was decided); trigger a new run to propose a new "
            "selection.")


def _duration(span: timedelta) -> str:
    """``72 hours``, ``90 minutes``, ``2 days`` …"""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def review_short(recorded: Mapping[str, Any] | None) -> str | None:
    """A commit's recorded review (:meth:`Review.to_dict`) in a few words, for ``datapool history``: ``approved
    by alice``; None for a run committed without review."""
    if not recorded:
        return None
    state = str(recorded.get("state") or "")
    word = {COMMITTED_AFTER_REVIEW: "approved", DISCARDED_IN_REVIEW: "discarded",
            NOT_COMMITTED_AFTER_REVIEW: "approved, not committed"}.get(state, state or "reviewed")
    return f"{word} by {recorded['by']}" if recorded.get("by") else word


def proposal_record(run_id: str, version: int | None, picks: Sequence[str], summary: Mapping[str, Any],
                    proposed_at: datetime | None = None) -> bytes:
    """The proposal's record (:data:`PROPOSAL_FILE`): the pool version the selection read, the picks in order, the
    run's summary (what the reviewer was shown) and when it was proposed (``proposed_at``, default now: an answer
    given before it answered an earlier proposal, :func:`answered_before`)."""
    at = (proposed_at or datetime.now(UTC)).astimezone(UTC).isoformat()
    return json.dumps({"run_id": run_id, "version": version, "picks": list(picks), "summary": dict(summary),
                       "proposed_at": at}).encode()


def answered_before(proposal: Mapping[str, Any], review: Review) -> str | None:
    """Why a reviewer's Commit cannot be the answer to ``proposal`` (:func:`proposal_record`): it was given before
    the proposal was recorded, so it answered an earlier one (the select task proposed again after the answer, and
    the review task was not asked again: cleared without its downstream tasks); committing it would commit picks
    nobody reviewed. ``None`` when it can be, or when either time is unknown (a record written before
    ``proposed_at``, an answer without its time)."""
    if review.step != "decide" or not review.approved:
        return None
    answered, proposed = _utc(review.at), _utc(proposal.get("proposed_at"))
    if answered is None or proposed is None or answered >= proposed:
        return None
    who = f" by {review.by}" if review.by else ""
    return (f"the reviewer's Commit{who} at {answered:%Y-%m-%d %H:%M:%S} UTC was given before this proposal was made "
            f"(at {proposed:%Y-%m-%d %H:%M:%S} UTC): the select task proposed again after that answer, and nobody has "
            "reviewed these picks. Nothing was committed; clear the review task to review the new proposal (its "
            "report shows the picks), with its downstream tasks.")


def _utc(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive: UTC); ``None`` when there is none or it is not one."""
    if not value:
        return None
    try:
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)


def refused_record(proposal: Mapping[str, Any], review: Review) -> bytes:
    """The proposal's record (:func:`proposal_record`, as read back) with the reviewer's Commit that was refused
    (``review``: :meth:`Review.refusing`): its ``decision`` and its summary's ``review`` say the decision was taken
    and why nothing was committed, so what reads the record (the report folder's proposal, the UI) no longer shows
    the run as awaiting review. The picks stay: a retry of the deciding task compares with them again. A new
    proposal (the select task cleared) writes a new record."""
    if review.refused is None:
        raise ValueError("refused_record records a refused review (Review.refusing)")
    decision = review.to_dict()
    summary = proposal.get("summary")
    return json.dumps({**proposal, "decision": decision,
                       "summary": {**(summary if isinstance(summary, Mapping) else {}), "review": decision}}).encode()


def recorded_review(record: Mapping[str, Any]) -> dict[str, Any]:
    """Where a proposal's record (:func:`parse_proposal`) stands: its refused decision (:func:`refused_record`),
    else its summary's review (``awaiting review``); ``{}`` for a record without either."""
    decision = record.get("decision")
    if isinstance(decision, Mapping):
        return dict(decision)
    summary = record.get("summary")
    review = summary.get("review") if isinstance(summary, Mapping) else None
    return dict(review) if isinstance(review, Mapping) else {}


def sequences_as_reviewed(metrics: Mapping[str, Any], sequences: Sequence[Mapping[str, Any]],
                          left_out: Collection[str], listed: int) -> dict[str, Any]:
    """The selection's ``metrics`` of a sequence run (``selected_sequence_length``) as the review leaves them:
    ``sequences`` lists only the sequences committed (at most ``listed``, ``sequences_listed`` saying a cut),
    each with its ``sequence`` number (the pool's column: the number the reviewer saw), ``sequences_selected``
    counts them, and ``sequences_left_out_in_review`` lists those the reviewer left out (``video``, ``frames``,
    ``sequence``). Without sequences or picks left out: ``metrics`` as they are.

    :param sequences: every selected sequence, in pick order (``frames``: their keys).
    :param left_out: the picks the reviewer left out (a sequence is left out whole: :meth:`Review.keep`)."""
    gone = set(left_out)
    if not sequences or not gone:
        return dict(metrics)
    numbered = [{**s, "sequence": i} for i, s in enumerate(sequences)]
    kept = [s for s in numbered if not gone.intersection(s["frames"])]
    out = {k: v for k, v in metrics.items() if k != "sequences_listed"}
    out["sequences"] = kept[:listed]
    if len(kept) > listed:
        out["sequences_listed"] = listed
    out["sequences_selected"] = len(kept)
    out["sequences_left_out_in_review"] = [{k: s[k] for k in ("video", "frames", "sequence") if k in s}
                                           for s in numbered if gone.intersection(s["frames"])][:listed]
    return out


def parse_proposal(data: bytes | str, where: str) -> dict[str, Any]:
    """A :func:`proposal_record` read back (``where``: its URI, for the error).

    :raises ReviewError: it is not one (nothing can be committed as reviewed)."""
    try:
        recorded: Any = json.loads(data)
    except ValueError as exc:
        recorded = exc
    if not isinstance(recorded, dict) or not isinstance(recorded.get("picks"), list):
        raise ReviewError(f"The proposal record {where} is damaged ({recorded!r:.200}): clear the run's select task to "
                          "propose again. Nothing was committed.")
    return recorded


def mismatch(proposal: Mapping[str, Any], picks: Sequence[str], version: int | None) -> str | None:
    """Why the picks of a selection on pool ``version`` are not the reviewed proposal's, or ``None`` when they are
    (the same keys in the same order: the pool may have changed in ways that do not affect them)."""
    reviewed = list(proposal.get("picks") or [])
    picks = list(picks)
    if picks == reviewed:
        return None
    was = proposal.get("version")

    def name(v: Any) -> str:
        return "the empty datapool" if v is None else f"version {v}"

    changed = (f"the datapool changed after the proposal ({name(was)} was read for the review, now {name(version)})"
               if was != version else f"the selection picks differently on the same datapool ({name(version)})")
    if len(picks) != len(reviewed):
        diff = f"{len(picks)} picks now against {len(reviewed)} reviewed"
    else:
        i = next(i for i, (a, b) in enumerate(zip(picks, reviewed, strict=True)) if a != b)
        diff = f"pick {i + 1} is now {picks[i]!r}, the review showed {reviewed[i]!r}"
    return (f"{changed}, and the selection is no longer the reviewed one ({diff}). Nothing was committed; clear "
            "the run's select task to propose again on the pool as it is now.")
