"""The report's ``index.html``: one self-contained page (inline CSS, no script, images by relative name).

Dark mode (``prefers-color-scheme``) keeps the figures white (their texts and grey points are drawn for a white
ground) but dims them to 80 %: a white block on the #111827 page stood out at 17.7:1, dimmed it is 11:1 while the
plots' black text keeps 13:1 on the dimmed ground. Transparent figures would need one text colour for both themes,
at best ~4.5:1 on each. The cards' red and amber numbers take lighter shades there (#b00020 on #111827 was 2.4:1,
#f87171 is 6.4:1; #fbbf24 10.6:1). On the light page "selected" is #b24f00, the map's vermillion darkened to 5.2:1
(#b36b00 was 4.2:1, under AA's 4.5:1 for its 600-weight 1.35rem text, which is not "large").

Every string that reaches the page goes through :func:`esc` (keys, reasons, config values, error texts).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightly_airflow.datasource.query import ListingSkips, RelevantApplied
from lightly_airflow.report.data import Counts
from lightly_airflow.report.problems import Problems
from lightly_airflow.run_metrics import skipped_files, unmatched_names

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:1rem 1.5rem;color:#222;background:#fff}
h1{font-size:1.4rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.sub{color:#666;font-size:.9rem}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:6.5rem}
.card .n{font-size:1.35rem;font-weight:600}.card .l{font-size:.8rem;color:#666}
.card.bad .n{color:#b00020}.card.sel .n{color:#b24f00}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #e3e3e3;padding:.25rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f6f6f6;overflow-wrap:normal}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.key{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
img{max-width:100%;height:auto;border:1px solid #eee}
.note{color:#666;font-size:.85rem}.warn{color:#8a4b00;background:#fff6e5;padding:.4rem .6rem;border-radius:4px}
.missed{border:1px solid #e8a0a0;background:#fff1f1;border-radius:6px;padding:.2rem .9rem .6rem;margin:1rem 0;
overflow-x:auto}
.missed h2{margin-top:.6rem;border:0;color:#b00020}.met{border:1px solid #9fd3a8;background:#effaf1;border-radius:6px;
padding:.5rem .9rem}
@media (prefers-color-scheme: dark){body{color:#e5e7eb;background:#111827}a{color:#8ab4f8}th{background:#1f2937}
th,td{border-color:#374151}.card{border-color:#374151}.sub,.note,.card .l{color:#9ca3af}img{border-color:#374151;
background:#fff;filter:brightness(.8);border-radius:4px}.card.bad .n{color:#f87171}.card.sel .n{color:#fbbf24}
.missed{background:#2b1414;border-color:#b91c1c}.missed h2{color:#fca5a5}.met{background:#10251a;border-color:#15803d}.warn{background:#2a2110;color:#fbbf24}h2{border-color:#374151}}
"""


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included, so it is safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class Figure:
    """One image of the page, or the reason it could not be drawn."""

    title: str
    filename: str | None
    error: str | None = None
    note: str | None = None
    alt: str | None = None


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            kind = classes[i] if i < len(classes) else ""
            cls = f' class="{kind}"' if kind else ""
            cells.append(f"<td{cls}>{esc(visible_key(v) if kind == 'key' and v is not None else v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def visible_key(key: Any) -> str:
    """A key with its control characters (newline, tab, …) written as escapes, so a hostile name shows as
    what it is instead of breaking a line; markup is escaped separately by :func:`esc`."""
    import re

    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], str(key))


def _pick_number(row: Mapping[str, Any], i: int) -> int:
    """A pick's number as the UI says it: 1 for the first (``pick_rank`` 0)."""
    rank = row.get("pick_rank")
    return (i if rank is None else int(rank)) + 1


def _listing_section(listing: ListingSkips) -> list[str]:
    """Entries of the datasource the listing skipped (not read: links leaving the datasource, …), first few.

    Its count is of files on disk the listing did not list: not the archived and expiring files (listed, and
    counted with the files not processed), nor the names of the relevant-filenames file that match no file (not on
    disk: its line says them), nor Live Photo clips when the listed line counts them (:func:`_clips_listed`)."""
    out: list[str] = []
    skipped, examples = listing.skipped_count, listing.skipped
    unsupported, os_files = listing.unsupported, listing.os_files
    clips = 0 if _clips_listed(listing) else listing.live_photo_clips
    if not skipped and not unsupported and not os_files and not clips:
        return out
    # (archived and expiring files are skipped entries, yet listed: counted with the files not processed, not here)
    listed, unmatched = listing.archived + listing.expiring, unmatched_names(listing)
    on_disk = skipped_files(listing) + unsupported + os_files + clips
    out.append(f"<h2>Not listed from the datasource ({esc(f'{on_disk:,}')})</h2>")
    if skipped:
        also = [f"{_files(listed, 'archived or expiring file')} {_is(listed)} listed: counted above with the files "
                "not processed"] if listed else []
        also += [f"{_files(unmatched, 'name')} of the relevant-filenames file {_is(unmatched)} no file on disk: "
                 "counted apart, as said above"] if unmatched else []
        also_text = f" (of them, {'; '.join(also)})" if also else ""
        out.append(f'<p class="warn">{esc(_files(skipped, "entry", "entries"))} '
                   f"{_is(skipped, 'was', 'were')} skipped and never read{esc(also_text)}; every one is in the "
                   "problems file (stage <code>listing</code>).</p>")
        out.append(_table(("key", "reason"), ([visible_key(k), r] for k, r in examples), ("key", "")))
        if skipped > len(examples):
            out.append(f'<p class="note">… and {esc(f"{skipped - len(examples):,}")} more not shown.</p>')
    if unsupported:
        keys = ", ".join(visible_key(k) for k in listing.unsupported_examples)
        out.append(f'<p class="note">{esc(_files(unsupported))} {_is(unsupported, "has", "have")} an extension '
                   f"this run does not list (e.g. {esc(keys)}).</p>")
        from lightly_airflow.datasource.records import unlisted_image_hint

        per_ext = dict(listing.unlisted_images)
        if not per_ext:  # a summary written before the listing counted them: the examples' extensions, no totals
            per_ext = {k.rsplit(".", 1)[-1].lower(): 0 for k in listing.unsupported_examples
                       if "." in k.rsplit("/", 1)[-1]}
        for ext, n in sorted(per_ext.items()):
            hint = unlisted_image_hint(ext)
            if hint:
                count = f"{_files(n, f'.{ext} file')} {_is(n)} not listed: " if n else ""
                out.append(f'<p class="warn">{esc(count + hint)}.</p>')
    if os_files:
        keys = ", ".join(visible_key(k) for k in listing.os_files_examples)
        out.append(f'<p class="note">{esc(_files(os_files, "OS or tool metadata file"))} '
                   f"{_is(os_files, 'was', 'were')} skipped: they are not samples (macOS <code>._*</code> and "
                   "<code>__MACOSX/</code>, <code>.DS_Store</code>, "
                   f"<code>Thumbs.db</code>, hidden folders such as <code>.git/</code>; e.g. {esc(keys)}).</p>")
    if clips:
        out.append(_clips_paragraph(listing))
    return out


def _clips_listed(skips: ListingSkips) -> bool:
    """Whether the listed line counts the Live Photo clips (a summary that counts the listed files): they are
    listed files, not processed, there and in the table and the summary (``listing.listed`` holds them); a summary
    without that line counts them under "Not listed from the datasource"."""
    return bool(skips.listed)


def _clips_paragraph(skips: ListingSkips) -> str:
    """The Live Photo clips, what they are and the fix, with the first few pairs: said once, where they count."""
    from lightly_airflow.datasource.live_photos import clips_note

    pairs = [(visible_key(c), visible_key(p)) for c, p in skips.live_photo_clips_examples]
    return f'<p class="note clips">{esc(clips_note(skips.live_photo_clips, pairs))}.</p>'


def _listed_line(skips: ListingSkips, samples: int) -> str:
    """How many files the datasource lists, and of them how many this run processed and did not: the two add up
    to the first. The number listed is the summary's ``listing.listed``, the table's too: Live Photo clips are
    listed files this run never processes (counted with the files not processed, said once below the table), so
    this line and "Not listed from the datasource" add up to what the datasource holds. Each reason for not
    processing comes with its count (the summary's parts: :meth:`ListingSkips.adds_up`); a summary written before
    they were counted gets :func:`_older_line`.

    :param samples: the samples the run processed (the "processed" card; a video adds one per frame)."""
    listed = skips.listed
    # (clips are never processed: an older process_all summary counted 0 not processed)
    not_processed = min(listed, max(skips.not_processed, skips.live_photo_clips))
    processed = listed - not_processed
    head = f"The datasource lists {listed:,} files; this run processed"
    if not skips.adds_up():
        return _older_line(skips, head, processed, not_processed, _frames(samples, processed))
    if not not_processed:
        return f"{head} each of them{_frames(samples, processed)}."
    return f"{head} {processed:,}{_frames(samples, processed)} and did not process {not_processed:,}: {_why(skips)}."


def _why(skips: ListingSkips) -> str:
    """Why the files of :func:`_listed_line` were not processed, each reason with its count."""
    held, changed = skips.unchanged + skips.changed_under_key, skips.changed_under_key
    why = []
    if held:
        them = "them" if held == skips.not_processed else f"{held:,} of them"
        kinds = (f"unchanged since: {skips.unchanged:,}; changed under the same key, which the new-file policy 'key' "
                 f"leaves: {changed:,}, a note names them" if changed else "unchanged since")
        why.append(f"the datapool processed {them} before ({kinds})")
    clips = skips.live_photo_clips
    why += [f"{n:,} {text}" for n, text in (
        (clips, f"Live Photo motion clip{'s' if clips != 1 else ''} (never a sample: the photo is; see below)"),
        (skips.archived, "archived, not restored"), (skips.expiring, "expiring (input_expiration SKIP)")) if n]
    return "; ".join(why)


def _older_line(skips: ListingSkips, head: str, processed: int, not_processed: int, frames: str) -> str:
    """:func:`_listed_line` of a summary without the parts: ``process_all`` counted 0 not processed, and files the
    new-file policy ``key`` left although they changed were counted with the unchanged."""
    skipped = ", or the listing skipped them as said below" if skips.skipped_count else ""
    if not not_processed and skips.skipped_count:  # (process_all counted 0: how many skipped files it listed is unsaid)
        return f"{head} them, but for those the listing skipped as said below."
    if not not_processed:
        return f"{head} each of them{frames}."
    return (f"{head} {processed:,}{frames} and did not process {not_processed:,}: the datapool processed them before "
            "(unchanged since, or, under the new-file policy 'key', changed under the same key: a note then counts "
            f"those){skipped}.")


def _problems_tail(unmatched: int) -> str:
    return "" if not unmatched else f"; the other{' is' if unmatched == 1 else 's are'} in the problems file"


def _frames(samples: int, processed: int) -> str:
    return f" ({samples:,} samples, video frames included)" if samples > processed else ""


#: the rows of the listed files' table: ``(count, label, depth)``: a part (depth 1) is shown when not 0, and one of
#: a part's own (depth 2, 3: ``moved`` of the new keys, ``moved_sample`` of those) too; the counts are
#: :meth:`ListingSkips.file_counts` and :func:`_moved_counts`
_FILE_ROWS = (
    ("listed", "listed in the datasource", 0),
    ("processed_files", "processed", 0),
    ("new_keys", "new: a key the datapool does not hold", 1),
    ("moved", "of them, moved or renamed: the content of a file gone from the datasource", 2),
    ("moved_sample", "of those, took over the gone file's sample (its selection and tags)", 3),
    ("replaced", "replaced: new content under a key the datapool holds", 1),
    ("processed_again", "unchanged, processed again (process_all)", 1),
    ("not_processed", "not processed", 0),
    ("unchanged", "unchanged since the datapool processed them", 1),
    ("changed_under_key", "changed under a key the datapool holds (new-file policy 'key')", 1),
    ("live_photo_clips", "Live Photo motion clips (never samples: the photo is)", 1),
    ("archived", "archived, not restored (in the problems file)", 1),
    ("expiring", "expiring under input_expiration SKIP (in the problems file)", 1),
)


def _moved_counts(skips: ListingSkips, moved: int | None) -> dict[str, int]:
    """The new files with a gone file's content (the listing's ``gone_moved``) and, of them, those whose new key
    took over the gone key's sample (the summary's ``moved``, counted by the commit: only a sample that was ok is
    taken over; ``None``, a run that committed nothing or a summary without it: not shown)."""
    return {"moved": skips.gone_moved, "moved_sample": moved or 0}


def _files_table(skips: ListingSkips, moved: int | None = None) -> list[str]:
    """The listed files' counts (the run summary's ``listing``: :meth:`ListingSkips.file_counts`, and
    :func:`_moved_counts`), each total with its parts; none for a summary written before the parts were counted
    (they would not add up)."""
    if not skips.adds_up():
        return []
    counts = {**skips.file_counts(), **_moved_counts(skips, moved)}
    rows = [("\u2003" * depth + label, f"{counts[name]:,}") for name, label, depth in _FILE_ROWS
            if counts[name] or not depth]
    return [_table(("files", "count"), rows, ("", "num")).replace("<table>", '<table class="files">', 1)]


def _relevant_line(relevant: RelevantApplied, listed: int) -> str:
    """Which relevant-filenames file the listing applied, what it names and how many of its names matched."""
    names = (f"{_files(relevant.names, 'file name')} ({relevant.names_matched:,} of them in the datasource"
             f"{_problems_tail(relevant.names - relevant.names_matched)})")
    patterns = f"{relevant.patterns:,} folder or pattern line{'' if relevant.patterns == 1 else 's'}"
    return (f"Relevant filenames: {relevant.file} lists {names} and {patterns}; the datasource's listing kept the "
            f"{_files(listed)} it selects.")


def _files(n: int, noun: str = "file", plural: str | None = None) -> str:
    """``1 file``, ``2 files`` (a count's sentence read "1 files … are")."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _is(n: int, one: str = "is", many: str = "are") -> str:
    """The verb (or pronoun) of a count's sentence: "1 file is", "2 files are"; ``_is(n, "has", "have")``,
    ``_is(n, "its", "their")``: the one way this page says a plural, beside :func:`_files`."""
    return one if n == 1 else many


def _gone_section(listing: ListingSkips, moved: int | None = None, moves: Mapping[str, int] | None = None) -> list[str]:
    """The warning box of files the datapool holds that the datasource no longer has (``datasource.gone``), and
    the new files that are some of them moved (``moved``: the summary's count of those that took a sample over;
    ``moves``: the commit's counts of its moves, :func:`~lightly_airflow.datapool.moves.move_counts`)."""
    if not listing.gone:
        return []
    samples = (f" ({listing.gone_samples:,} samples, video frames included)"
               if listing.gone_samples != listing.gone else "")
    keys = [visible_key(k) for k in listing.gone_examples]
    more = f" and {listing.gone - len(keys):,} more" if listing.gone > len(keys) else ""
    return [
        f'<div class="missed"><h2>Files gone from the datasource ({esc(f"{listing.gone:,}")})</h2>',
        f"<p>{esc(_files(listing.gone))} this datapool processed{esc(samples)} {_is(listing.gone)} no longer in the "
        "datasource (this run's listing did not find them although its filters would list them), e.g. "
        f"{esc(', '.join(keys))}"
        f"{esc(more)}. {esc(_gone_selected(listing, moved, moves or {}))}The pool keeps their rows (it is history; "
        "nothing is deleted). Every gone key is in <code>gone.parquet</code> beside this report.</p>",
        *([f"<p>{esc(_files(listing.gone_moved, 'new file'))} of this run {_is(listing.gone_moved, 'has', 'have')} "
           "the content of a file that left its key (moved or renamed?): the key is gone, or holds a new file now "
           "(a rename while a new file took the old name), e.g. "
           + esc(", ".join(f"{visible_key(n)} (was {visible_key(o)})" for n, o in listing.gone_moved_examples))
           + f": {esc(_took_over(listing.gone_moved, moved, moves or {}))}.</p>"]
          if listing.gone_moved else []),
        "<p><b>What to do:</b> restore the files (undo the cleanup, or a lifecycle rule's expiry, e.g. from the "
        "bucket's versioning), or leave their samples out of labelling tasks; files moved within the datasource "
        "(same store, same bytes) take over their samples by themselves, while a datasource moved to another bucket "
        "or store is a new datasource for the pool (see docs/datapool.md).</p></div>",
    ]


#: what a gone selected sample means to a labelling task
_EXPORT_GONE = ("an export of those images hands a labelling tool paths that no longer exist (selected video frames "
                "are exported as their PNGs, which stay), and datapool export names each one. ")


def _gone_selected(listing: ListingSkips, moved: int | None, moves: Mapping[str, int]) -> str:
    """The gone samples still selected: the listing's selected gone samples less those the commit handed to the new
    keys (``moves["moved_selected"]``, counted by the commit: the listing's ``gone_moved_selected`` counted those of
    every moved pair, taken over or not). A commit before the count (``moved`` without it) hands over an unknown
    number: the box says the listing's count and that some of them may have moved."""
    from lightly_airflow.datapool.moves import MOVED_REPLACED_SELECTED, MOVED_SELECTED

    selected = listing.gone_selected
    if moved and MOVED_SELECTED not in moves and listing.gone_moved_selected:
        return (f"{selected:,} of their samples {_is(selected, 'was', 'were')} selected "
                f"(initial-tag) when this run listed them; up to {listing.gone_moved_selected:,} of those, of moved "
                "files, may have moved with their files, but this run's commit (made before commits counted it) "
                f"does not say how many: if any is still selected, {_EXPORT_GONE}")
    # (a move onto a key the run wrote anew hands over a selection that was never a gone sample's)
    handed = min(moves.get(MOVED_SELECTED, 0) - moves.get(MOVED_REPLACED_SELECTED, 0), selected) if moved else 0
    still = selected - handed
    text = (f"{still:,} of their samples {_is(still)} selected (initial-tag): "
            f"{_EXPORT_GONE}" if still else "None of their samples is selected. ")
    if not handed:
        return text
    return (f"{_files(handed, 'selected sample')} moved with {_is(handed, 'its file', 'their files')}: the new "
            f"{_is(handed, 'key holds', 'keys hold')} the selection now. "
            + text.replace("None of their", "None of the other"))


def _took_over(found: int, moved: int | None, moves: Mapping[str, int] | None = None) -> str:
    """How many of the ``found`` moved files took over their former key's sample (``moved``, the commit's count;
    ``None``, a run that committed nothing or a summary without it: what a commit does), and how many the commit
    refused because the image has objects (``moves``' :data:`~lightly_airflow.datapool.moves.OBJECTS_NOT_CARRIED`)."""
    from lightly_airflow.datapool.moves import OBJECTS_NOT_CARRIED

    what = "(its selection and tags; the former key's row is ended, and earlier versions still show it)"
    if moved is None:
        return f"each one takes over its former key's sample {what} when a run commits it and that sample was ok"
    if moved >= found:
        return f"{_is(found, 'it', 'each one')} took over its former key's sample {what}"
    left, objects = found - moved, (moves or {}).get(OBJECTS_NOT_CARRIED, 0)
    refused = (f"; {_files(objects, 'of them an image', 'of them images')} with objects, which a move does not "
               f"carry: {_is(objects, 'its', 'their')} former {_is(objects, 'key keeps its', 'keys keep their')} "
               "selection and objects" if objects else "")
    return (f"{moved:,} took over {_is(moved, 'its', 'their')} former key's sample {what}; {left:,} did not{refused} "
            "(the select task's log names each with why: a former sample that was not ok, an image with objects, "
            "another new file of the same content, a new file that cannot be read)")


def _video_streams_section(listing: ListingSkips) -> list[str]:
    """Video streams the run did not use (a second camera, a cover picture): one row per stream, first few."""
    count, examples = listing.video_streams_count, listing.video_streams
    if not count:
        return []
    out = [f"<h2>Video streams not used ({esc(f'{count:,}')})</h2>",
           '<p class="note">These videos hold more than one video stream; the frames are those of the stream a '
           "player shows (FFmpeg's best video stream, never a cover picture).</p>",
           _table(("video", "stream"), examples, ("key", ""))]
    if count > len(examples):
        out.append(f'<p class="note">… and {esc(f"{count - len(examples):,}")} more not shown.</p>')
    return out


def _problems_section(problems: Problems | None) -> list[str]:
    """The run's input problems (``problems.parquet``) by kind: count, files, the first examples with key, file,
    problem and fix; where the full list is."""
    if problems is None:
        return []
    total = problems.total
    where = ("<code>problems.parquet</code> beside this report" if not problems.uri
             or problems.uri.rstrip("/").endswith("/problems.parquet") or problems.uri == "problems.parquet"
             else f"<code>{esc(problems.uri)}</code>")
    out = [f"<h2>Problems with input files ({esc(f'{total:,}')})</h2>"]
    if problems.error:
        out.append(f'<p class="warn">The run recorded {esc(f"{total:,}")} problems, but the problems file could not '
                   f"be read for this page: {esc(problems.error)}. Open {where} to see them.</p>")
        return out
    if not total:
        out.append('<p class="note">No stage reported a problem with an input file (a prediction or metadata file, '
                   "a file it could not read).</p>")
        return out
    kinds = problems.kinds
    n_kinds = len(kinds) + problems.other_kinds
    out.append(f'<p class="warn">{esc(f"{total:,}")} problem{"s" if total != 1 else ""} of {esc(f"{n_kinds:,}")} '
               f"kind{'s' if n_kinds != 1 else ''} with the run's input files (a prediction or metadata file, a file "
               "it could not list or read), each naming its file and, below, the fix: what a problem names was not "
               f"used as given. Every problem, with its file and reason, is in {where}.</p>")
    out.append(_table(("stage", "field", "kind", "problems", "samples/files"),
                      ([g.stage, g.field, g.kind, f"{g.count:,}", f"{g.files:,}"] for g in kinds),
                      ("", "", "", "num", "num")))
    if problems.other_kinds:
        out.append(f'<p class="note">… and {esc(f"{problems.other_kinds:,}")} more kinds '
                   f"({esc(f'{problems.other_count:,}')} problems) not shown: see {where}.</p>")
    for g in kinds:
        out.append(f"<h3>{esc(g.stage)} · {esc(g.field)}: {esc(g.kind)} ({esc(f'{g.count:,}')})</h3>")
        out.append(_table(("key", "file", "problem", "fix"),
                          ([e.get("key"), e.get("path"), e.get("problem"), e.get("fix") or "—"] for e in g.examples),
                          ("key", "key", "", "")))
        if g.count > len(g.examples):
            out.append(f'<p class="note">… and {esc(f"{g.count - len(g.examples):,}")} more of this kind, in '
                       f"{where}.</p>")
    return out


def _figure(f: Figure) -> str:
    parts = [f"<h3>{esc(f.title)}</h3>"] if f.title else []
    if f.filename:
        parts.append(f'<img src="{esc(f.filename)}" alt="{esc(f.alt or f.title)}">')
    if f.error:
        parts.append(f'<p class="warn">This plot could not be drawn: {esc(f.error)}</p>')
    if f.note:
        parts.append(f'<p class="note">{esc(f.note)}</p>')
    return "\n".join(parts)


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _count(value: Any) -> str:
    return "" if value is None else f"{int(value):,}"


def render(
    *,
    title: str,
    counts: Counts,
    sections: Sequence[tuple[str, Sequence[Figure], str | None]],
    metrics: Sequence[tuple[str, str]],
    not_ok: tuple[list[dict[str, Any]], int],
    selected: tuple[list[dict[str, Any]], int],
    limit: int,
    generated_at: str,
    missed: Sequence[Mapping[str, Any]] | None = None,
    links: Mapping[str, str] | None = None,
    listing: Mapping[str, Any] | None = None,
    notes: Sequence[str] | None = None,
    problems: Problems | None = None,
    moved: int | None = None,
    moves: Mapping[str, int] | None = None,
) -> str:
    """The whole page.

    :param sections: ``(heading, figures, note when empty)`` per plot section.
    :param metrics: the selection engine's metrics as ``(key, value)`` text rows.
    :param not_ok: first rows of not-ok files and their total.
    :param selected: first selected rows in pick order and their total.
    :param missed: the goals the run missed (:func:`lightly_airflow.report.goals.missed_goals`); ``None``: not checked.
    :param links: ``label -> URL`` shown under the title.
    :param listing: what the listing did not list (``RunSummary.listing``): skipped entries and unsupported files.
    :param notes: ``RunSummary.notes``: options that have no effect here (with the reason) and other notes.
    :param problems: the run's input problems by kind (:func:`lightly_airflow.report.problems.read_problems`);
        ``None``: the run has no problems file.
    :param moved: ``RunSummary.moved``: new files that took over a moved file's sample (``None``: not counted).
    :param moves: ``RunSummary.moves``: the commit's counts of its moves (selected samples handed over, pairs
        refused for objects: :func:`~lightly_airflow.datapool.moves.move_counts`); empty: not counted.
    """
    c = counts
    cards = [
        ("processed", c.processed, ""), ("ok", c.ok, ""), ("corrupt", c.corrupt, "bad" if c.corrupt else ""),
        ("duplicate", c.duplicate, "bad" if c.duplicate else ""), ("missing", c.missing, "bad" if c.missing else ""),
        ("selected", c.selected, "sel"), ("selected before", c.preselected, ""),
    ]
    skips = ListingSkips.from_summary(listing)
    if skipped_files(skips):  # (as the list.skipped gauge: not archived or expiring files, nor names of no file)
        cards.insert(5, ("files on disk skipped in listing", skipped_files(skips), "bad"))
    if skips.gone:
        cards.insert(5, ("gone from datasource", skips.gone, "bad"))
    if problems is not None and problems.total:
        cards.insert(5, ("input problems", problems.total, "bad"))
    card_html = "".join(
        f'<div class="card {cls}"><div class="n">{esc(_fmt(n))}</div><div class="l">{esc(label)}</div></div>'
        for label, n, cls in cards
    )
    # (a dry run's or a proposal's "tag: t · version: 2" beside "nothing was committed: no datapool version, no tag"
    # read as committed: its version is the one it read, its tag not created)
    labels = ({"version": "selected from datapool version", "tag": "tag (not created)"}
              if c.extra.get("dry_run") is True or c.extra.get("committed") is False else {})
    info = [f"{labels.get(k, k.replace('_', ' '))}: {v}" for k, v in c.extra.items()
            if k not in ("started_by", "review", "dry_run", "committed")]
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{esc(" · ".join(info))}{" · " if info else ""}generated {esc(generated_at)}</p>',
        f'<div class="cards">{card_html}</div>',
        f"<p><b>Stop reason:</b> {esc(c.stop_reason if c.stop_reason else 'not reported')}</p>",
    ]
    if skips.listed:  # (the cards count the samples processed: not how many files the datasource holds)
        out.append(f'<p class="listed">{esc(_listed_line(skips, c.processed))}</p>')
        out.extend(_files_table(skips, moved))
        if skips.live_photo_clips and _clips_listed(skips):
            out.append(_clips_paragraph(skips))
    if skips.relevant:
        out.append(f'<p class="listed">{esc(_relevant_line(skips.relevant, skips.listed))}</p>')
    if c.extra.get("dry_run") is True:  # (a grey "dry run: True" in the line above read like a committed run)
        tag = c.extra.get("tag")
        out.append('<p class="warn dry"><b>Dry run:</b> nothing was committed: no datapool version'
                   f"{f', no tag {esc(repr(str(tag)))}' if tag else ', no tag'}. &quot;selected&quot; is what the run "
                   "would have selected; run it again without dry_run to commit it.</p>")
    if c.extra.get("started_by"):
        out.append(f'<p class="started"><b>Started by:</b> {esc(str(c.extra["started_by"]))}</p>')
    if c.extra.get("review"):
        out.append(f'<p class="review"><b>Review:</b> {esc(str(c.extra["review"]))}</p>')
    if links:
        out.insert(6, '<p class="sub">' + " · ".join(
            f'<a href="{esc(u)}"{" target=_top" if u.startswith("/") else ""}>{esc(k)}</a>'
            for k, u in links.items()) + "</p>")
    if missed is not None:
        if missed:
            items = "".join(
                f"<tr><td>{esc(g.get('goal'))}</td><td>{esc(g.get('outcome'))}</td><td>{esc(g.get('cause'))}</td>"
                f'<td class="num">{esc(_count(g.get("count")))}</td></tr>'
                for g in missed
            )
            out.append(f'<div class="missed"><h2>Missed goals ({esc(len(missed))})</h2><table><thead><tr><th>goal</th>'
                       f"<th>outcome</th><th>cause</th><th>count</th></tr></thead><tbody>{items}</tbody></table></div>")
        else:
            out.append('<p class="met"><b>Every goal of the config was met</b> (sample count, BALANCE targets within '
                       "±5 %, no strategy input missing).</p>")
    out.extend(_gone_section(skips, moved, moves))
    if notes:
        out.append(f"<h2>Notes ({esc(len(notes))})</h2><p>Options that have no effect here, with the reason, what "
                   "the run changed beyond its counts (e.g. rows of replaced videos), and what a stage guessed or "
                   "left out without failing a file (e.g. predictions without probabilities).</p><ul>"
                   + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    for heading, figures, empty_note in sections:
        out.append(f"<h2>{esc(heading)}</h2>")
        if figures:
            out.extend(_figure(f) for f in figures)
        else:
            out.append(f'<p class="note">{esc(empty_note or "Nothing to show.")}</p>')
    if metrics:
        out.append("<h2>Selection metrics</h2>")
        out.append(_table(("metric", "value"), metrics, ("key", "num")))
    rows, total = not_ok
    out.append(f"<h2>Files not ok ({esc(f'{total:,}')})</h2>")
    if total:
        out.append(_table(("key", "status", "reason", "duplicate of"),
                          ([r.get("key"), r.get("status"), r.get("status_reason"), r.get("duplicate_of")] for r in rows),
                          ("key", "", "", "key")))
        if total > len(rows):
            out.append(f'<p class="note">… and {esc(f"{total - len(rows):,}")} more not shown.</p>')
    else:
        # (not "without problems": a file can be ok and still have a problem with its input files, listed below)
        out.append('<p class="note">Every file of this run is ok: none corrupt, duplicate or missing.</p>')
    out.extend(_problems_section(problems))
    out.extend(_listing_section(skips))
    out.extend(_video_streams_section(skips))
    rows, total = selected
    out.append(f"<h2>Selected in pick order ({esc(f'{total:,}')})</h2>")
    if total and any(r.get("video") is not None for r in rows):  # video frames show as frames
        from lightly_airflow.video.report import frame_columns

        out.append(_table(("pick", "key", "video", "frame", "time (s)"),
                          ((_pick_number(r, i), r.get("key"), *frame_columns(r)) for i, r in enumerate(rows)),
                          ("num", "key", "key", "num", "num")))
    elif total:
        out.append(_table(("pick", "key"), ((_pick_number(r, i), r.get("key")) for i, r in enumerate(rows)),
                          ("num", "key")))
        if total > len(rows):
            out.append(f'<p class="note">… and {esc(f"{total - len(rows):,}")} more not shown '
                       f"(first {esc(limit)} listed).</p>")
    else:
        out.append('<p class="note">This run selected no samples.</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"
