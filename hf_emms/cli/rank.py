"""``hf-emms rank``: rank candidate checkpoints for a dataset, print the table, save JSON/CSV/markdown and a plot."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..options import BOX_FORMATS, DEFAULT_METRICS, LAYERS, METRICS, SORTS, TASK_KINDS, ExtractSpec
from .units import parse_bytes, parse_count, parse_samples


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rank", help="rank checkpoints for your dataset by EMMS (no fine-tuning)",
        description="Rank checkpoints by how well their features explain your labels (EMMS), before fine-tuning any. "
        "Candidates are Hub ids, local folders, Hub models found by tags, or what is in your HF cache; each is pinned "
        "to a revision. Finished candidates are stored: an interrupted run resumes where it stopped. The Hub token "
        "comes from HF_TOKEN or `hf auth login` (never a flag).",
        epilog="examples:\n"
        "  hf-emms rank stanfordnlp/sst2 --split train --tags sentence-transformers --limit 10\n"
        "  hf-emms rank ./reviews.csv --models sentence-transformers/all-MiniLM-L6-v2 ./my-checkpoint --max-samples 1000\n"
        "  accelerate launch -m hf_emms.cli rank ./data --models a/b c/d   # several GPUs/processes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", help="Hub dataset id, local folder (imagefolder, CSV/JSON/parquet files) or file")
    data = parser.add_argument_group("dataset")
    data.add_argument("--config", help="Hub dataset config")
    data.add_argument("--split", help="split to score (default: train, or the only one)")
    data.add_argument("--revision", help="Hub dataset revision")
    data.add_argument("--task", choices=TASK_KINDS,
                      help="label kind (default: detected from the label column: class names or ids that repeat "
                      "-> classification; other numbers -> regression; lists, joined names ('a,b') or 0/1 flags per "
                      "class -> multilabel; free text -> text; boxes only when asked)")
    data.add_argument("--input-column", action="append", metavar="COLUMN",
                      help="default: detected (the image/audio column, the text column, or a known pair such as "
                      "premise/hypothesis). Repeat it for two inputs, in order: a text pair (--input-column "
                      "sentence_A --input-column sentence_B) or an image and a text")
    data.add_argument("--label-column", help="default: the ClassLabel column, or one named label/target/...")
    data.add_argument("--group-column", metavar="COLUMN",
                      help="rows sharing a value here (a speaker, a patient, a source document) are held out "
                      "together in the cross-validation, so no row is scored by a fit that saw a sibling of it "
                      "(rows repeating an input always are)")
    cands = parser.add_argument_group("candidates")
    cands.add_argument("--models", nargs="+", default=[], metavar="ID_OR_DIR",
                       help="Hub ids (org/name[@revision]) and checkpoint folders")
    cands.add_argument("--tags", nargs="+", default=[], metavar="TAG", help="also rank Hub models with these tags")
    cands.add_argument("--pipeline-tag", help="with --tags: e.g. feature-extraction")
    cands.add_argument("--sort", default="downloads", choices=SORTS)
    cands.add_argument("--limit", type=int, default=10, help="Hub models to list (default 10)")
    cands.add_argument("--include-cache", action="store_true", help="also rank compatible models in your HF cache")
    cands.add_argument("--max-params", type=parse_count, metavar="N", help="skip larger candidates, e.g. 150M")
    cands.add_argument("--allow-remote-code", action="store_true", help="allow checkpoints that run repository code")
    cands.add_argument("--allow-pickle", action="store_true", help="allow checkpoints without safetensors weights")
    cands.add_argument("--recall", type=int, metavar="K",
                       help="two phases: short-list K candidates from transfer history and metadata (no forward pass; "
                       "`hf-emms recall --build` makes the history space), then score only those with EMMS")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--encoders", nargs="+", metavar="ID_OR_DIR",
                         help="F-label encoders (default: CLIP/BERT/GPT-2 on a GPU online, else all-MiniLM-L6-v2); "
                         "'none' for no encoder: class labels one-hot, regression targets and boxes their own "
                         "numbers")
    scoring.add_argument("--prompt", default="{}", help='class-name template, e.g. "a photo of a {}"')
    scoring.add_argument("--box-format", choices=BOX_FORMATS, default="xyxy",
                         help="with --task boxes: corners x0,y0,x1,y1 (default), COCO's x,y,w,h, or centre cx,cy,w,h; "
                              "pixel coordinates are divided by each image's size")
    scoring.add_argument("--max-samples", type=parse_samples, default=2000,
                         help="stratified, seeded budget of samples, e.g. 5k (default 2000; 0 or 'all' = every row)")
    scoring.add_argument("--seed", type=int, default=0)
    scoring.add_argument("--metrics", nargs="+", default=["emms", "logme"],
                         choices=METRICS, help="default: " + " ".join(DEFAULT_METRICS))
    run_opts = parser.add_argument_group("run")
    run_opts.add_argument("--batch-size", type=int, default=32, help="halved automatically on out-of-memory")
    run_opts.add_argument("--max-length", type=int, help="text tokens per sample (default: the checkpoint's limit)")
    run_opts.add_argument("--device", help="default: the GPU accelerate gives this process, else CPU")
    run_opts.add_argument("--layers", type=_layers, default=ExtractSpec.layers, metavar="{auto,last,all,I,J,...}",
                          help="hidden layers read from the one forward pass: 'auto' (the last and up to 7 more), "
                          "'last', 'all', or indices such as 4,6 (0 = the embeddings' output, -1 = the last); with "
                          "several, emms is layer-aware (chosen on training folds) and emms_last and best_layer are "
                          "shown (default: %(default)s)")
    run_opts.add_argument("--max-stats-memory", type=parse_bytes, metavar="BYTES",
                          help="bytes the statistics of one candidate may take, all layers together, e.g. 2GB, 4GiB "
                          "(default: $HF_EMMS_MAX_STATS_BYTES or 8 GiB)")
    run_opts.add_argument("--output-dir", type=Path, help="where ranking.{json,csv,md,png} go (default ./hf-emms-results)")
    run_opts.add_argument("--cache-dir", type=Path, help="statistics, label embeddings, records (default $HF_EMMS_CACHE)")
    run_opts.add_argument("--quiet", action="store_true", help="no progress bars")
    run_opts.add_argument("--profile", action="store_true",
                          help="time every phase of every candidate; print the table, save profile.{json,png}")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..options import RankSpec
    from ..pipeline import rank_spec

    out = args.output_dir or Path("hf-emms-results") / Path(args.dataset.rstrip("/")).name
    options = {name: value for name, value in vars(args).items() if name in RankSpec.option_names()}
    options.update(
        encoders="default" if args.encoders is None else args.encoders,
        tags=[t for v in args.tags for t in v.split(",") if t], max_samples=args.max_samples or None,
        output_dir=out, progress=not args.quiet,
    )
    ranking = rank_spec(args.dataset, args.models, RankSpec.from_options(options))
    print(ranking.to_markdown())
    if ranking.warning:
        print(f"\nwarning: {ranking.warning}")
    print(f"\n{ranking.verdict()}")
    print(f"saved: {out}/ranking.json, ranking.csv, ranking.md, ranking.png", file=sys.stderr)
    if ranking.profile():
        from .._io import atomic_write
        from ..profile import plot_profile, profile_table

        print("\nprofile (seconds):\n" + profile_table(ranking.profile()))
        atomic_write(Path(out) / "profile.json", json.dumps(ranking.profile(), indent=1))
        plot_profile(ranking.profile(), Path(out) / "profile.png")
        print(f"saved: {out}/profile.json, profile.png", file=sys.stderr)
    return 0 if ranking.best else 1


def command_line(dataset: str, options: dict[str, Any], *, always: tuple[str, ...] = ()) -> list[str]:
    """The ``hf-emms rank`` command (as a list of words) that runs ``dataset`` with these flat options (those of
    :class:`~hf_emms.options.RankSpec`, plus ``models``): each option is written as the flag this parser gives it,
    so the command always matches the CLI. Options that are None, or at the parser's default and not named in
    ``always``, are omitted."""
    parser = argparse.ArgumentParser(add_help=False)
    register(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["rank"]
    words = ["hf-emms", "rank", dataset]
    for action in sub._actions:
        if not action.option_strings or action.dest not in options:
            continue
        value = options[action.dest]
        if value is None or value == [] or value == () or (value == action.default and action.dest not in always):
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # a switch
            words += [flag] if value else []
        elif isinstance(action, argparse._AppendAction):  # a repeated flag
            words += [w for v in (value if isinstance(value, (list, tuple)) else [value]) for w in (flag, str(v))]
        elif action.nargs in ("+", "*"):
            words += [flag, *map(str, value if isinstance(value, (list, tuple)) else [value])]
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return words


def _layers(value: str) -> str | tuple[int, ...]:
    """``--layers``: a name, or comma-separated layer indices."""
    if value in LAYERS:
        return value
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(LAYERS)} nor layer indices such as "
                                         "4,6 or -1") from None
