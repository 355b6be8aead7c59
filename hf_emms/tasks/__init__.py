"""A user's dataset -> a :class:`Task`: the split to score, its input column(s) and their kind, its label column and
kind.

Inputs (:mod:`hf_emms.tasks.inputs`): one column, or an ordered pair -- two text columns (a text pair: premise and
hypothesis, question and context; encoded jointly) or an image and a text column (an image and its question or
prompt). :attr:`Task.input_kind` is one of :data:`hf_emms.options.INPUT_KINDS` and :attr:`Task.input_columns` the
columns; common pairs are detected by their names, and :meth:`Task.describe` says what was chosen and why.

Datasets come as a Hub id (with config, split, revision), a local folder or file (imagefolder, CSV, JSON/JSONL,
parquet), or an in-memory ``datasets.Dataset``/``DatasetDict``. Detection reads the ``datasets`` features, and every
choice can be overridden (``task=``, ``label_column=``, ``input_column=``):

==========================================  ===========================  ==============
label column feature                        kind                         F-labels
==========================================  ===========================  ==============
``ClassLabel``                              classification               class-name tables
``List(ClassLabel)``                        multilabel                   per sample
integer ``Value`` that repeats              classification (ids)         class-name tables
integer ``Value``, mostly distinct          regression                   the numbers
string ``Value``, joined names ("a,b")      multilabel (split at , ; |)  per sample
string ``Value``, few distinct values       classification (encoded)     class-name tables
string ``Value``, mostly distinct numbers   regression (read as floats)  the numbers
string ``Value``, mostly distinct           text                         per sample
``List(Value("string"))``, repeated names   multilabel                   per sample
``List`` of 0/1 flags, one per class        multilabel (multi-hot)       per sample
``List`` of 0/1 flags, one set a row        classification (one-hot)     class-name tables
``List(Value("string"))``                   text (several references)    per sample
float ``Value``, repeated whole numbers     classification (ids)         class-name tables
float ``Value``                             regression                   the numbers
==========================================  ===========================  ==============

Boxes (referring expressions, detection) are never guessed: pass ``task="boxes"``.

Labels. Class ids are re-encoded to the classes present when they are not already 0..C-1 (sparse or huge ids
such as 5 and 100000000, negative ids): the class names are the original ids as strings, in numeric order, and
:attr:`Task.class_ids` keeps the original values, so nothing is ever sized by the largest id. Booleans are two
classes, ``"False"`` (id 0) and ``"True"`` (id 1), as an ML engineer reads a yes/no column. Rows without a label
(None, NaN, an empty or blank string, a ``ClassLabel`` -1) are an error that counts them and says how to drop or
fill them: they are never dropped silently, since a missing label usually means a parsing problem (a shifted CSV
column, an unquoted comma), and :func:`hf_emms.metric.compute` refuses them the same way.

Local files are checked before ``datasets`` parses them, so that a bad file gets a one-line error naming the file,
the problem and the fix: empty files, bytes that are not UTF-8 (with the line), a CSV header longer than 1 MiB,
with more than 10,000 fields or with repeated column names (pandas would take minutes, or rename them silently),
and JSON that does not parse (with the line).

Fingerprints. A local file or folder is identified by its content (SHA-256 of every file, streamed in blocks,
with the relative paths inside a folder and how the files are read), not by its path or modification time: an
edited file gets new results even when its mtime is restored, and a copy elsewhere reuses the records of the
original. Other datasets use the ``datasets`` fingerprint with the source (Hub id, revision, config, split).

:func:`check_distinct` (and :func:`distinct_inputs`) refuse data with too few distinct inputs to cross-validate.
:func:`check_media` refuses image or audio files that cannot be read, before any candidate loads.
"""

# The parts: load.py (dataset -> Task, fingerprint), files.py (local file checks and content digest), columns.py
# (column and kind detection), inputs.py (input columns: one, a text pair, an image + text), labels.py (label checks
# and encoding), distinct.py (distinct inputs), media.py (unreadable image and audio files). The private names of
# the old single module stay importable from here (noqa: re-exports).
from ..options import TASK_KINDS
from .columns import _LABEL_NAMES, _TEXT_NAMES, _detect_kind, _feature_type, _pick_input, _pick_label  # noqa: F401
from .distinct import _feed, check_distinct, check_group_column, distinct_inputs  # noqa: F401
from .media import check_media  # noqa: F401
from .inputs import PAIR_NAMES, PROMPT_NAMES, InputChoice, pick_inputs  # noqa: F401
from .files import (  # noqa: F401
    _BLOCK,
    _FILE_BUILDERS,
    _IMAGE_EXTS,
    _MAX_COLUMNS,
    _MAX_HEADER_BYTES,
    _SHOWN,
    _check_csv_header,
    _csv_delimiter,
    _json_error,
    _load_local,
    _local_failure,
    _root_message,
    _scan_file,
)
from .labels import _check_labels, _check_two_classes, _class_names, _encode_classes  # noqa: F401
from .load import Task, _dataset_sha, _default_split, _fingerprint, _load, _pick_split, load_task  # noqa: F401

__all__ = ["TASKS", "Task", "check_distinct", "check_group_column", "check_media", "distinct_inputs", "load_task"]

TASKS = TASK_KINDS  # the old name
