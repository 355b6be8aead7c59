"""hf_emms.load_task on hostile inputs (issue 17): each repro of the probe now gives a correct Task or a one-line
InvalidInputError naming the file, the problem and the fix; fingerprints follow the content; too few distinct inputs
to cross-validate are refused by check_distinct."""

from __future__ import annotations

import json
import os
import shutil
import time
import tracemalloc
from pathlib import Path

import datasets
import numpy as np
import pytest

from hf_emms.errors import InvalidInputError
from hf_emms.tasks import check_distinct, check_media, distinct_inputs, load_task

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def _csv(path, labels, *, header="text,label"):
    rows = [f"{WORDS[i % len(WORDS)]} {i},{label}" for i, label in enumerate(labels)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert message and "\n" not in message
    return message


# ---- item 2: integer labels are re-encoded to the classes present, never sized by the largest id ------------------
def test_sparse_huge_integer_labels_become_the_classes_present(tmp_path):
    labels = [5 if i % 3 else 100_000_000 for i in range(60)]
    path = _csv(tmp_path / "sparse.csv", labels)
    assert path.stat().st_size < 2048
    tracemalloc.start()
    try:
        t = load_task(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # was 8 GB: a name for every id up to 100000000
    assert t.kind == "classification"
    assert t.class_names == ["5", "100000000"] and t.class_ids == [5, 100_000_000]
    assert isinstance(t.dataset.features["label"], datasets.ClassLabel)
    ids = t.dataset["label"]
    assert [t.class_ids[i] for i in ids] == labels  # the mapping is kept


@pytest.mark.parametrize(("labels", "names"), [
    ([-1, 0, 1, 0, -1, 1], ["-1", "0", "1"]),   # an integer column: -1 is a class (sentiment -1/0/1)
    ([0, 2, 2, 0, 7, 7], ["0", "2", "7"]),       # gaps
])
def test_other_integer_ids_are_re_encoded_in_numeric_order(labels, names):
    t = load_task(datasets.Dataset.from_dict({"text": WORDS[: len(labels)], "label": labels}))
    assert t.class_names == names and t.class_ids == [int(n) for n in names]
    assert [t.class_ids[i] for i in t.dataset["label"]] == labels


def test_ids_already_0_to_c_minus_1_are_kept_as_they_are():
    ds = datasets.Dataset.from_dict({"text": WORDS[:6], "label": [0, 1, 2, 2, 1, 0]})
    t = load_task(ds)
    assert t.dataset is ds and t.class_names == ["0", "1", "2"] and t.class_ids == [0, 1, 2]


def test_booleans_are_two_classes_false_and_true(tmp_path):
    for given in (_csv(tmp_path / "bool.csv", [True, False] * 5),
                  datasets.Dataset.from_dict({"text": WORDS, "label": [True, False] * 4})):
        t = load_task(given)
        assert t.kind == "classification" and t.class_names == ["False", "True"] and t.class_ids == [False, True]
        assert t.dataset["label"][:2] == [1, 0]  # True == 1 in python: the type is what tells them apart
        assert isinstance(t.dataset.features["label"], datasets.ClassLabel)
        assert {type(v) for v in t.dataset["label"]} == {int}  # a bool column reached the extraction, which refused it


@pytest.mark.parametrize("kind", ["numpy", "torch", "pandas"])
def test_a_dataset_set_to_another_format_is_read_as_rows(kind):
    # with_format("numpy") handed numpy arrays to the tokenizer: every candidate was skipped, "unexpected ValueError"
    ds = datasets.Dataset.from_dict({"text": WORDS, "label": [0, 1] * 4})
    for given in (ds.with_format(kind), datasets.DatasetDict(train=ds.with_format(kind))):
        t = load_task(given)
        assert t.dataset["text"] == WORDS and t.dataset[0] == {"text": WORDS[0], "label": 0}
    assert load_task(ds).dataset is ds  # an unformatted dataset is kept, its fingerprint (the caches' key) too


def test_split_on_one_in_memory_split_is_refused_not_recorded(tmp_path):
    # rank(dataset, split="test") scored every row of `dataset` and recorded them as the "test" split
    ds = datasets.Dataset.from_dict({"text": WORDS, "label": [0, 1] * 4})
    with pytest.raises(InvalidInputError, match=r"split='test' picks a split .*\(dataset_dict\['test'\]"):
        load_task(ds, split="test")
    assert load_task(ds).source["split"] is None
    train = datasets.load_dataset("csv", data_files={"train": str(_csv(tmp_path / "t.csv", [0, 1] * 4))})["train"]
    assert load_task(train, split="train").source["split"] == "train"  # its own split, named: fine
    assert load_task(datasets.DatasetDict(train=ds, test=ds.select(range(4))), split="test").dataset.num_rows == 4


def test_numbers_written_as_strings_are_regression_targets_not_captions(tmp_path):
    # A JSON export with "label": "3.47" was a "text" task: each number embedded as a caption by the F-label encoder
    path = tmp_path / "scores.jsonl"
    values = [f"{1 + 0.37 * i:.2f}" for i in range(len(WORDS))]
    path.write_text("".join(json.dumps({"text": w, "label": v}) + "\n" for w, v in zip(WORDS, values)))
    t = load_task(path)
    assert t.kind == "regression" and t.dataset.features["label"] == datasets.Value("float64")
    assert "regression label 'label' (numbers written as text)" in t.describe()  # said where a person sees it
    assert t.dataset["label"] == [float(v) for v in values]
    ids = datasets.Dataset.from_dict({"text": WORDS, "label": ["0", "1"] * (len(WORDS) // 2)})
    assert load_task(ids).kind == "classification"  # repeated: class ids, as before
    words = datasets.Dataset.from_dict({"text": WORDS, "label": [f"caption {w}" for w in WORDS]})
    assert load_task(words).kind == "text"
    mixed = datasets.Dataset.from_dict({"text": WORDS, "label": values[:-1] + ["about 3"]})
    assert load_task(mixed).kind == "text"  # not every value is a number: not detected as targets
    with pytest.raises(InvalidInputError, match=r"holds 'about 3' \(row 7"):
        load_task(mixed, task="regression")  # asked for: the value that is not a number is named
    gaps = datasets.Dataset.from_dict({"text": WORDS, "label": values[:2] + ["nan"] + values[3:]})  # str(NaN)
    with pytest.raises(InvalidInputError, match=r"1 of 8 rows have no regression target .*'nan'; rows 2,"):
        load_task(gaps)  # numbers with a gap: still targets, and the gap is named (it was a text task)


def test_an_infinite_regression_target_is_named_with_its_rows(tmp_path):
    # "inf" in a CSV parses as a float: it passed the missing-label check and failed later as "NaN or inf (first at
    # flat index 3)", naming neither the column nor the fix
    values = [0.5 + 0.25 * i for i in range(len(WORDS))]
    values[3], values[6] = float("inf"), float("-inf")
    path = tmp_path / "scores.csv"
    path.write_text("text,score\n" + "".join(f"{w},{v}\n" for w, v in zip(WORDS, values)))
    with pytest.raises(InvalidInputError) as exc_info:
        load_task(path)
    message = _one_line(exc_info)
    assert "2 of 8 rows hold an infinite regression target in column 'score' (rows 3, 6," in message
    assert "fix or drop them" in message
    values[3], values[6] = 1.0, 2.0
    path.write_text("text,score\n" + "".join(f"{w},{v}\n" for w, v in zip(WORDS, values)))
    t = load_task(path)  # 'score' is found as the label (sentence-transformers/stsb's name for its target)
    assert t.kind == "regression" and t.label_column == "score"
    both = datasets.Dataset.from_dict({"text": WORDS, "label": [0, 1] * 4, "score": values})
    assert load_task(both).label_column == "label"  # a score beside a label is not the label


def test_a_csv_multilabel_column_written_as_joined_names_is_read_as_lists(tmp_path):
    # "sports,politics" beside "sports" was classification with a class per combination ("a,b" and "b,a" apart)
    tags = [["sports"], ["sports", "politics"], ["politics", "sports"], ["tech"], ["tech", "health"], ["health"],
            ["politics"], ["health", "sports"]]
    path = tmp_path / "tags.csv"
    path.write_text("text,labels\n" + "".join(f"{w},\"{', '.join(t)}\"\n" for w, t in zip(WORDS, tags)))
    t = load_task(path)
    assert t.kind == "multilabel" and t.class_names == ["health", "politics", "sports", "tech"]
    assert t.dataset["labels"] == tags and "(names joined with ',', split), 4 classes" in t.describe()
    semi = datasets.Dataset.from_dict({"text": WORDS, "labels": [";".join(x) for x in tags]})
    assert load_task(semi).kind == "multilabel" and load_task(semi).dataset["labels"] == tags
    # a class name that holds a comma is one class: its parts are never labels on their own
    names = datasets.Dataset.from_dict({"text": WORDS, "label": ["Arts, Culture", "Science"] * 4})
    assert load_task(names).kind == "classification" and load_task(names).class_names == ["Arts, Culture", "Science"]
    asked = load_task(names, task="multilabel")  # asked for: split at the separator the column uses
    assert asked.class_names == ["Arts", "Culture", "Science"] and asked.dataset["label"][:2] == [
        ["Arts", "Culture"], ["Science"]]


def test_integers_that_rarely_repeat_are_targets_not_one_class_a_row(tmp_path):
    # 300 house prices were 300 classes of one row each: a "no candidate scores above no information" warning
    prices = [50_000 + 1_000 * ((i * 37) % 300) for i in range(300)]
    ds = datasets.Dataset.from_dict({"text": [f"house {i}" for i in range(300)], "label": prices})
    assert load_task(ds).kind == "regression"
    assert "regression label 'label' (whole numbers that rarely repeat, read as targets" in load_task(ds).describe()
    assert load_task(ds, task="classification").kind == "classification"  # asked for: ids they stay
    stars = datasets.Dataset.from_dict({"text": [f"review {i}" for i in range(300)], "label": [i % 5 + 1 for i in
                                                                                               range(300)]})
    assert load_task(stars).kind == "classification" and load_task(stars).class_names == ["1", "2", "3", "4", "5"]


def test_lists_of_repeated_names_are_classes_and_lists_of_distinct_texts_are_references():
    # ["toxic", "insult"] tags were read as reference texts; a row with no tag ([]) then failed inside the ranking
    tags = [[] if i % 3 == 0 else ["toxic"] if i % 3 == 1 else ["toxic", "insult"] for i in range(30)]
    words = [f"comment {i}" for i in range(30)]
    t = load_task(datasets.Dataset.from_dict({"text": words, "labels": tags}))
    assert t.kind == "multilabel" and t.class_names == ["insult", "toxic"] and t.dataset["labels"][0] == []
    captions = [[f"a photo {i} of a dog", f"dog picture number {i}"] for i in range(30)]
    assert load_task(datasets.Dataset.from_dict({"text": words, "caption": captions}), label_column="caption"
                     ).kind == "text"
    captions[4] = []  # a text task needs a reference in every row: named before any candidate loads
    with pytest.raises(InvalidInputError, match=r"1 of 30 rows .* no reference text in column 'caption' .*rows 4,"):
        load_task(datasets.Dataset.from_dict({"text": words, "caption": captions}), label_column="caption")


def test_a_folder_reads_its_split_files_and_leaves_a_metadata_file_beside_them_out(tmp_path):
    # train.jsonl + test.jsonl + task.json (this repo's own task folders): "CastError: Couldn't cast" for the folder
    rows = [json.dumps({"text": w, "label": i % 2}) for i, w in enumerate(WORDS)]
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join(rows[:4]) + "\n")
    (tmp_path / "task.json").write_text(json.dumps({"inputs": ["text"], "label": "label", "classes": ["a", "b"]}))
    with pytest.warns(UserWarning, match=r"left out task.json"):
        t = load_task(tmp_path)
    assert len(t.dataset) == len(WORDS) and t.source["split"] == "train"
    with pytest.warns(UserWarning):
        assert len(load_task(tmp_path, split="test").dataset) == 4
    loose = tmp_path / "loose"
    loose.mkdir()
    for name in ("part1.jsonl", "part2.jsonl"):  # no file named by a split: all of them are the train split
        (loose / name).write_text("\n".join(rows) + "\n")
    assert len(load_task(loose).dataset) == 2 * len(WORDS)


def test_multi_hot_rows_are_flags_per_class_not_class_ids():
    # [1, 1, 0, 1] (MultiLabelBinarizer's output) under task="multilabel" was read as the ids {0, 1}: 2 classes
    flags = [[1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 1]] * 2
    for given in (flags, [[float(v) for v in row] for row in flags]):
        ds = datasets.Dataset.from_dict({"text": WORDS, "labels": given})
        for task in (None, "multilabel"):
            t = load_task(ds, task=task)
            assert t.kind == "multilabel" and t.class_names == ["0", "1", "2", "3"]
            assert "multilabel label 'labels' (0/1 flags, one per class)" in t.describe()
            assert t.dataset["labels"][:4] == [[0, 1, 3], [], [1], [0, 2, 3]]
    ids = datasets.Dataset.from_dict({"text": WORDS, "labels": [[0, 2], [1], [2, 3], [0]] * 2})
    with pytest.raises(InvalidInputError, match="For a list of class ids per row pass task='multilabel'"):
        load_task(ids)  # class ids are never guessed (token ids look the same)
    assert load_task(ids, task="multilabel").dataset["labels"][:2] == [[0, 2], [1]]  # ids, kept
    one_hot = datasets.Dataset.from_dict({"text": WORDS, "labels": [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]] * 2})
    t = load_task(one_hot)  # one flag a row: one class each
    assert t.kind == "classification" and t.class_names == ["0", "1", "2"] and t.dataset["labels"][:4] == [2, 0, 1, 2]


def test_lists_pandas_wrote_into_csv_cells_are_read_as_lists(tmp_path):
    # df.to_csv of a list column writes "['health', 'sports']": each combination was its own class
    tags = [["sports"], ["sports", "politics"], ["tech"], ["health", "tech"]] * 2
    path = tmp_path / "tags.csv"
    path.write_text("text,labels\n" + "".join(f"{w},\"{t!r}\"\n" for w, t in zip(WORDS, tags)))
    t = load_task(path)
    assert t.kind == "multilabel" and t.class_names == ["health", "politics", "sports", "tech"]
    assert t.dataset["labels"] == tags
    flags = tmp_path / "flags.csv"  # MultiLabelBinarizer rows saved the same way
    rows = [[1, 0, 1], [0, 0, 0], [0, 1, 1], [1, 1, 0]] * 2
    flags.write_text("text,labels\n" + "".join(f"{w},\"{r}\"\n" for w, r in zip(WORDS, rows)))
    t = load_task(flags)
    assert t.kind == "multilabel" and t.class_names == ["0", "1", "2"] and t.dataset["labels"][:4] == [
        [0, 2], [], [1, 2], [0, 1]]
    prose = datasets.Dataset.from_dict({"text": WORDS, "label": ["[citation needed] " + w for w in WORDS]})
    assert load_task(prose).kind == "text"  # only whole cells that are list literals count; nothing is evaluated


def test_pre_tokenised_words_are_joined_into_the_text_input():
    # a CoNLL-style "tokens" column: "no input column found", and "not text" when named
    words = [w.split() for w in WORDS]
    ds = datasets.Dataset.from_dict({"tokens": words, "label": [0, 1] * 4})
    for given in (None, "tokens"):
        t = load_task(ds, input_column=given)
        assert t.dataset["tokens"] == WORDS and t.input_kind == "text"
        assert t.input_reason.endswith("its word lists joined with spaces")
    both = datasets.Dataset.from_dict({"tokens": words, "text": WORDS, "label": [0, 1] * 4})
    t = load_task(both)  # a text column is there: it is the input, and the word lists are left as they are
    assert t.input_column == "text" and t.dataset["tokens"] == words


def test_a_label_column_of_fields_says_to_flatten_it():
    # SQuAD's answers {"text": [...], "answer_start": [...]}: "Pass task=", which no task value fixes
    answers = [{"text": [f"answer {i}"], "answer_start": [i]} for i in range(len(WORDS))]
    ds = datasets.Dataset.from_dict({"text": WORDS, "answers": answers})
    with pytest.raises(InvalidInputError, match=r"flatten them \(dataset = dataset.flatten\(\)\) and pass one as "
                                                r"label_column= \('answers.text', 'answers.answer_start'\)"):
        load_task(ds, label_column="answers")
    assert load_task(ds.flatten(), label_column="answers.text").kind == "text"


def test_class_names_that_differ_only_in_case_or_spaces_are_warned_about():
    ds = datasets.Dataset.from_dict({"text": WORDS, "label": ["positive", "Positive ", "negative", "negative"] * 2})
    with pytest.warns(UserWarning, match=r"differ only in case or spaces \('Positive ' / 'positive'\)"):
        t = load_task(ds)
    assert len(t.class_names) == 3  # as the data says: the warning is the help, not a silent merge


def test_config_or_revision_for_local_or_loaded_data_is_refused_not_ignored(tmp_path):
    # they were ignored: a local copy of a multi-config dataset was scored whole, as if the config had been picked
    path = _csv(tmp_path / "data.csv", [0, 1] * 4)
    with pytest.raises(InvalidInputError, match=r"config='sst2' picks a Hub dataset's configuration or commit; a "
                                                r"local file or folder has neither"):
        load_task(path, config="sst2")
    with pytest.raises(InvalidInputError, match=r"config='a' and revision='main' pick .* data already loaded"):
        load_task(datasets.Dataset.from_dict({"text": WORDS, "label": [0, 1] * 4}), config="a", revision="main")


def test_whole_floats_that_repeat_are_class_ids_and_other_floats_are_targets(tmp_path):
    # A 0.0/1.0 column (pandas reads an id column as floats once it held a NaN) was ranked as regression.
    t = load_task(_csv(tmp_path / "floats.csv", [1.0, 0.0] * (len(WORDS) // 2)))
    assert t.kind == "classification" and t.class_names == ["0", "1"] and t.dataset["label"][:2] == [1, 0]
    many = len(WORDS)  # as many whole numbers as rows (counts, years): numbers, not classes
    counts = datasets.Dataset.from_dict({"text": WORDS, "label": [float(i) for i in range(many)]})
    assert load_task(counts).kind == "regression"
    assert load_task(_csv(tmp_path / "scores.csv", [1.5, 2.0] * (len(WORDS) // 2))).kind == "regression"
    asked = load_task(_csv(tmp_path / "floats.csv", [1.0, 0.0] * (len(WORDS) // 2)), task="regression")
    assert asked.kind == "regression"


def test_unlabelled_rows_are_an_error_that_counts_them():
    ds = datasets.Dataset.from_dict({"text": WORDS[:4], "label": [1, None, 0, None]})
    with pytest.raises(InvalidInputError) as exc_info:  # was TypeError: '>' not supported ... NoneType
        load_task(ds)
    message = _one_line(exc_info)
    assert "2 of 4 rows" in message and "column 'label'" in message and "rows 1, 3" in message
    assert "drop or fill them" in message


def test_a_class_label_minus_one_marks_unlabelled_rows():
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})
    ds = datasets.Dataset.from_dict({"text": WORDS[:3], "label": [0, -1, 1]}, features=features)
    with pytest.raises(InvalidInputError, match="1 of 3 rows .* no label"):
        load_task(ds)


def test_a_regression_target_with_one_value_is_refused_before_any_model_loads():
    with pytest.raises(InvalidInputError, match="regression target 'target' holds one value only \\(1.5\\)"):
        load_task(datasets.Dataset.from_dict({"text": WORDS[:4], "target": [1.5] * 4}))


def test_one_class_is_named():
    with pytest.raises(InvalidInputError, match="holds one class only"):
        load_task(datasets.Dataset.from_dict({"text": WORDS[:3], "label": [4, 4, 4]}))


# ---- item 4: the right diagnosis for bad labels and bad files ---------------------------------------------------
@pytest.mark.parametrize("bad", ["", "   ", "NaN", "nan"])
def test_blank_and_nan_string_labels_are_missing_labels(tmp_path, bad):
    path = tmp_path / "labels.csv"
    path.write_text("text,label\n" + "".join(f"{w},{'pos' if i % 2 else 'neg'}\n" for i, w in enumerate(WORDS))
                    + f"extra,{bad}\n")
    with pytest.raises(InvalidInputError) as exc_info:
        load_task(path)
    message = _one_line(exc_info)
    assert "1 of 9 rows of labels.csv have no label" in message and "row" in message and "8" in message
    assert "Encode string labels" not in message


def test_a_missing_data_file_is_named_as_a_file_not_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for name in ("reviews.csv", "runs/reviews.jsonl"):
        with pytest.raises(InvalidInputError, match=f"no file '{name}' \\(looked for '.*{name}'\\)"):
            load_task(name)


def test_an_empty_text_cell_is_a_missing_input_named_before_any_model_loads(tmp_path):
    # Read from a CSV, an empty cell is None: it used to reach the tokenizer and skip every candidate with a TypeError.
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "".join(f"{'' if i in (2, 5) else w},{i % 2}\n" for i, w in enumerate(WORDS)))
    with pytest.raises(InvalidInputError) as exc_info:
        load_task(path)
    message = _one_line(exc_info)
    assert "2 of 8 rows of reviews.csv have no input in column 'text'" in message and "rows 2, 5" in message
    assert "drop or fill them" in message


def test_a_missing_second_text_of_a_pair_is_named():
    ds = datasets.Dataset.from_dict({"premise": WORDS[:4], "hypothesis": ["a", None, "c", "d"], "label": [0, 1, 0, 1]})
    with pytest.raises(InvalidInputError, match="1 of 4 rows .* no input in column 'hypothesis'"):
        load_task(ds)


def test_an_empty_string_input_is_a_text_and_kept():
    task = load_task(datasets.Dataset.from_dict({"text": ["", *WORDS[:3]], "label": [0, 1, 0, 1]}))
    assert task.dataset["text"][0] == "" and len(task.dataset) == 4


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty.csv is empty"),
    (b"  \n\n ", r"empty.csv is empty \(only whitespace\)"),
    (b"text,label\n", "empty.csv holds no rows"),
])
def test_empty_files_are_named(tmp_path, content, message):
    (tmp_path / "empty.csv").write_bytes(content)
    with pytest.raises(InvalidInputError, match=message) as exc_info:
        load_task(tmp_path / "empty.csv")
    _one_line(exc_info)


def test_bytes_that_are_not_utf8_are_named_with_their_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncafé,1\nbon,0\n".encode("utf-8") + "crème,1\n".encode("latin-1"))
    with pytest.raises(InvalidInputError) as exc_info:
        load_task(path)
    message = _one_line(exc_info)
    assert "latin.csv is not UTF-8" in message and "byte 0xe8 at line 4" in message and "as UTF-8" in message


def test_a_utf16_file_is_named_as_such_with_the_command_that_converts_it(tmp_path):
    path = tmp_path / "excel.csv"  # Excel's "Unicode text" export, pandas' to_csv(encoding="utf-16")
    path.write_bytes("text,label\nbon,1\nmauvais,0\n".encode("utf-16"))
    with pytest.raises(InvalidInputError) as exc_info:
        load_task(path)
    message = _one_line(exc_info)
    assert "starts with a utf-16 byte-order mark" in message and "iconv -f utf-16 -t utf-8" in message


def test_a_broken_jsonl_line_is_named(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", label: 0}\n{"text": "c", "label": 1}\n')
    with pytest.raises(InvalidInputError) as exc_info:
        load_task(path)
    message = _one_line(exc_info)
    assert "data.jsonl is not valid JSON/JSONL: line 2" in message and "DatasetGenerationError" not in message


def test_a_broken_jsonl_file_prints_no_raw_parser_log(tmp_path):
    # datasets logged "Failed to load JSON from file ... <class 'pyarrow.lib.ArrowInvalid'>" to stderr above the
    # explained error: the CLI user saw a parser's internals first
    import logging

    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", label: 0}\n{"text": "c", "label": 1}\n')
    records: list[str] = []
    seen = logging.Handler()
    seen.emit = lambda record: records.append(record.getMessage())
    parser_log = logging.getLogger("datasets.packaged_modules.json.json")
    parser_log.addHandler(seen)
    try:
        with pytest.raises(Exception):
            datasets.load_dataset("json", data_files=str(path), cache_dir=str(tmp_path / "c1"))
        assert any(r.startswith("Failed to load JSON") for r in records)  # datasets does log it: the check can fail
        records.clear()
        with pytest.raises(InvalidInputError, match="line 2"):
            load_task(path)
        assert not any(r.startswith("Failed to load JSON") for r in records)
    finally:
        parser_log.removeHandler(seen)
    assert not parser_log.filters  # the filter is there only while hf-emms reads a file


def test_a_broken_json_document_is_named(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"text": "a", "label": 1},\n  {"text": "b", "label": 0,,}\n]\n')
    with pytest.raises(InvalidInputError, match="data.json is not valid JSON/JSONL: line 3"):
        load_task(path)


# ---- item 5: a pathological header is refused before pandas sees it ---------------------------------------------
def test_a_huge_header_is_refused_at_once(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(["label"] * 2_600_000) + "\n1" + ",1" * 2_599_999 + "\n")  # 5 MB header, was > 150 s
    start = time.perf_counter()
    with pytest.raises(InvalidInputError, match="wide.csv: the header line .* longer than 1 MiB") as exc_info:
        load_task(path)
    assert time.perf_counter() - start < 5
    _one_line(exc_info)


def test_too_many_or_repeated_column_names_are_refused(tmp_path):
    (tmp_path / "many.csv").write_text(",".join(f"c{i}" for i in range(20_000)) + "\n")
    with pytest.raises(InvalidInputError, match="many.csv: the header has 20000 columns"):
        load_task(tmp_path / "many.csv")
    (tmp_path / "dup.csv").write_text("text,label,label\na,1,2\nb,0,1\n")
    with pytest.raises(InvalidInputError, match="dup.csv: the header repeats the column name 'label'"):
        load_task(tmp_path / "dup.csv")


# ---- item 3: the fingerprint of local data is its content ---------------------------------------------------------
def test_an_edit_changes_the_fingerprint_even_with_the_mtime_restored(tmp_path):
    labels = ["pos" if i % 2 else "neg" for i in range(60)]
    path = _csv(tmp_path / "reviews.csv", labels)
    before = load_task(path).fingerprint
    stat = path.stat()
    flipped = [{"pos": "neg", "neg": "pos"}[v] if i < 15 else v for i, v in enumerate(labels)]
    _csv(path, flipped)  # the same size: 15 labels flipped
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `touch -d` would
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_size == stat.st_size
    after = load_task(path)
    assert after.fingerprint != before
    assert after.source["content_sha256"] != load_task(_csv(tmp_path / "again.csv", labels)).source["content_sha256"]


def test_a_copy_elsewhere_has_the_fingerprint_of_the_original(tmp_path):
    (tmp_path / "a").mkdir()
    path = _csv(tmp_path / "a" / "reviews.csv", [0, 1] * 10)
    copy = tmp_path / "b" / "renamed.csv"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert load_task(copy).fingerprint == load_task(path).fingerprint
    # Folders: their files' relative paths and contents.
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    assert load_task(tmp_path / "c").fingerprint == load_task(tmp_path / "a").fingerprint
    # Inside a folder the relative paths count (they name splits and image classes).
    (tmp_path / "c" / "reviews.csv").rename(tmp_path / "c" / "other.csv")
    assert load_task(tmp_path / "c").fingerprint != load_task(tmp_path / "a").fingerprint


def test_unknown_task_is_named():
    with pytest.raises(InvalidInputError, match="unknown task 'segmentation'"):
        load_task(datasets.Dataset.from_dict({"text": WORDS[:2], "label": [0, 1]}), task="segmentation")


# ---- item 6: too few distinct inputs to cross-validate -----------------------------------------------------------
def test_a_fully_duplicated_dataset_is_refused():
    ds = datasets.Dataset.from_dict({"text": WORDS[:4] * 10, "label": [0, 1, 0, 1] * 10})
    assert distinct_inputs(ds, "text") == 4
    with pytest.raises(InvalidInputError) as exc_info:
        check_distinct(ds, "text")
    message = _one_line(exc_info)
    assert "4 distinct values among 40 rows" in message and "at least 10 distinct inputs" in message
    assert "Give more samples" in message


def test_many_copies_per_input_pass_since_copies_are_held_out_together():
    # Refused before folds were grouped by input (copies in the training folds made the score measure memorisation);
    # now only the number of distinct inputs counts.
    texts = [f"{w} {i}" for i, w in enumerate(WORDS * 2)]  # 16 distinct inputs
    ds = datasets.Dataset.from_dict({"text": texts * 6, "label": [0, 1] * 48})
    assert check_distinct(ds, "text") == 16


def test_a_normal_dataset_passes_with_its_count():
    texts = [f"{w} {i}" for i, w in enumerate(WORDS * 5)]
    ds = datasets.Dataset.from_dict({"text": texts + texts[:10], "label": list(range(2)) * 25})
    assert check_distinct(ds, "text") == 40  # 10 repeats of 50 rows: allowed, the caller may warn
    assert check_distinct(ds.select(range(40)), "text", n_folds=5) == 40
    assert check_distinct(ds, "text", n_folds=20) == 40  # 2 distinct inputs per fold
    with pytest.raises(InvalidInputError, match="at least 42 distinct inputs"):
        check_distinct(ds, "text", n_folds=21)
    with pytest.raises(InvalidInputError, match="n_folds must be a positive integer"):
        check_distinct(ds, "text", n_folds=0)


def test_distinct_inputs_reads_images_and_audio_by_content(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(3)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=2)})
    images = datasets.Dataset.from_dict({"image": [pictures[i % 3] for i in range(12)], "label": [0, 1] * 6},
                                        features=features)
    assert distinct_inputs(images, "image") == 3
    waves = [rng.standard_normal(50).astype(np.float32) for _ in range(4)]
    audio = datasets.Dataset.from_dict({"audio": [waves[i % 4].tolist() for i in range(10)], "label": [0, 1] * 5})
    assert distinct_inputs(audio, "audio") == 4
    with pytest.raises(InvalidInputError, match="input column 'nope' is not in the dataset"):
        distinct_inputs(audio, "nope")


def _image_folder(root, n=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray((rng.random((16 + i, 16, 3)) * 255).astype(np.uint8)).save(root / c / f"{i}.png")
    return root


def test_broken_image_files_are_named_before_any_candidate_loads(tmp_path):
    # A truncated PNG used to fail inside every candidate's forward pass ("unexpected OSError ... please report it").
    root = _image_folder(tmp_path / "data")
    good = (root / "cat" / "0.png").read_bytes()
    (root / "cat" / "cut.png").write_bytes(good[: len(good) // 2])
    (root / "dog" / "empty.png").write_bytes(b"")
    task = load_task(root)
    with pytest.raises(InvalidInputError) as exc_info:
        check_media(task.dataset, task.input_columns)
    message = _one_line(exc_info)
    assert "2 of 26 files drawn for scoring in column 'image' cannot be read" in message
    assert "cut.png" in message and "empty.png: not an image" in message and "Remove or replace them" in message
    from hf_emms import rank

    with pytest.raises(InvalidInputError, match="cannot be read"):  # refused in the plan, before any candidate
        rank(root, ["/no/such/checkpoint"], encoders=None, progress=False, cache_dir=tmp_path / "cache")


def test_readable_images_pass_the_media_check_and_rows_are_named_in_the_whole_split(tmp_path):
    root = _image_folder(tmp_path / "data")
    task = load_task(root)
    check_media(task.dataset, task.input_columns)  # nothing raised
    (root / "dog" / "3.png").write_bytes(b"<html>not found</html>")  # an error page saved under an image name
    ds = load_task(root).dataset
    paths = [v["path"] for v in ds.cast_column("image", datasets.Image(decode=False))["image"]]
    where = next(i for i, p in enumerate(paths) if p.endswith(os.path.join("dog", "3.png")))
    drawn = [where, 0, 1]  # a budget's draw: its rows are named as rows of the whole split
    with pytest.raises(InvalidInputError, match=rf"1 of 3 files .* row {where} \(3\.png: not an image"):
        check_media(ds.select(drawn), ["image", "label"], rows=drawn)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_separated_by_semicolons_or_tabs_reads_as_its_comma_twin(tmp_path, sep):
    # A spreadsheet's CSV in a decimal-comma locale used to load as one column named 'text;label': "no label column".
    rows = [(f"{w} and more, with a comma", i % 2) for i, w in enumerate(WORDS)]
    (tmp_path / "comma.csv").write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows))
    (tmp_path / "other.csv").write_text(f"text{sep}label\n" + "".join(f"{t}{sep}{y}\n" for t, y in rows))
    comma, other = load_task(tmp_path / "comma.csv"), load_task(tmp_path / "other.csv")
    assert other.dataset.column_names == ["text", "label"] and other.dataset["text"] == comma.dataset["text"]
    assert other.dataset["label"] == comma.dataset["label"] and other.kind == "classification"
    (tmp_path / "folder").mkdir()
    (tmp_path / "other.csv").rename(tmp_path / "folder" / "train.csv")
    assert load_task(tmp_path / "folder").dataset["text"] == comma.dataset["text"]


def test_a_multilabel_column_without_classlabel_names_its_classes():
    # --task multilabel on a JSONL list column used to fail: "multilabel F-labels need classes=", with no CLI flag to
    # give them; its classes are the names it holds (sorted), or the ids 0..max.
    tags = datasets.Dataset.from_dict({"text": WORDS[:4], "labels": [["food"], ["sports", "food"], ["music"], []]})
    assert load_task(tags, task="multilabel").class_names == ["food", "music", "sports"]
    ids = datasets.Dataset.from_dict({"text": WORDS[:3], "labels": [[0, 3], [1], [3]]})
    assert load_task(ids, task="multilabel").class_names == ["0", "1", "2", "3"]
    with pytest.raises(InvalidInputError, match="class ids from 0 to 100000000"):
        load_task(datasets.Dataset.from_dict({"text": WORDS[:2], "labels": [[0], [10**8]]}), task="multilabel")


def test_a_folder_of_audio_files_says_how_to_load_it(tmp_path):
    (tmp_path / "yes").mkdir()
    (tmp_path / "yes" / "0.wav").write_bytes(b"RIFF")
    with pytest.raises(InvalidInputError, match=r"holds audio files \(yes/0\.wav, \.\.\.\).*audiofolder"):
        load_task(tmp_path)


def test_a_zip_of_class_subfolders_reads_with_the_subfolders_as_classes_and_a_broken_member_is_named(tmp_path):
    # The Space asks for "a .zip holds an image folder, one subfolder per class"; datasets labelled every member with
    # the zip's own folder name and failed ("Invalid string class label ..."): the zip is unpacked into the cache.
    import zipfile

    root = _image_folder(tmp_path / "data")
    with zipfile.ZipFile(tmp_path / "good.zip", "w") as archive:
        for f in sorted(root.rglob("*.png")):
            archive.writestr(f.relative_to(root).as_posix(), f.read_bytes())
    good = load_task(tmp_path / "good.zip")
    assert good.class_names == ["cat", "dog"] and sorted(set(good.dataset["label"])) == [0, 1]
    assert good.fingerprint == load_task(tmp_path / "good.zip").fingerprint  # unpacked once, the same data
    check_media(good.dataset, good.input_columns)  # every member readable: nothing raised
    with zipfile.ZipFile(tmp_path / "broken.zip", "w") as archive:
        for f in sorted(root.rglob("*.png")):
            broken = f.name == "5.png" and f.parent.name == "dog"
            archive.writestr(f.relative_to(root).as_posix(), b"not a png" if broken else f.read_bytes())
    task = load_task(tmp_path / "broken.zip")
    with pytest.raises(InvalidInputError, match=r"1 of 24 files .* \(5\.png: not an image PIL can read\)"):
        check_media(task.dataset, task.input_columns)


def test_local_data_is_copied_and_unpacked_into_the_given_cache_where_pruning_by_age_spares_what_is_in_use(tmp_path):
    # datasets' Arrow copy of every local file (each Space upload) went to its own cache for good, and a zip was
    # unpacked into the default hf-emms cache whatever cache_dir said (--cache-dir on a small home quota)
    import os
    import time
    import zipfile

    from hf_emms.paths import cache_usage, clear_cache

    cache = tmp_path / "cache"
    csv_file = _csv(tmp_path / "t.csv", [0, 1] * 4)
    task = load_task(csv_file, cache_dir=cache)
    tables = cache / "tables"
    assert [p.name for p in tables.iterdir()] == [task.source["content_sha256"][:32]]
    arrow = [Path(f["filename"]) for f in task.dataset.cache_files]
    assert arrow and all(tables in p.parents for p in arrow)  # the rows are read from the hf-emms cache
    root = _image_folder(tmp_path / "data", n=6)
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as archive:
        for f in sorted(root.rglob("*.png")):
            archive.writestr(f.relative_to(root).as_posix(), f.read_bytes())
    images = load_task(tmp_path / "images.zip", cache_dir=cache)
    assert (cache / "archives" / images.source["content_sha256"][:32] / "cat" / "0.png").is_file()
    assert cache_usage(cache)["tables"][0] == 2 and cache_usage(cache)["archives"][0] == 1
    old = time.time() - 30 * 86400
    for f in cache.rglob("*"):
        os.utime(f, (old, old))
    load_task(csv_file, cache_dir=cache)  # read again now: its entry is in use, the zip's are not
    assert clear_cache(["tables", "archives"], cache_dir=cache, older_than_days=7)[0] == 2
    assert [p.name for p in tables.iterdir()] == [task.source["content_sha256"][:32]]
    assert not any((cache / "archives").rglob("*.png"))
    assert load_task(csv_file, cache_dir=cache).dataset["label"] == task.dataset["label"]


def test_a_zip_member_that_would_land_outside_its_folder_is_refused(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("cat/0.png", b"x")
        archive.writestr("../../outside.png", b"x")
    with pytest.raises(InvalidInputError, match="'../../outside.png', a path outside the archive's folder"):
        load_task(tmp_path / "evil.zip")
    assert not (tmp_path.parent / "outside.png").exists()
    (tmp_path / "fake.zip").write_bytes(b"PK not really")
    with pytest.raises(InvalidInputError, match="fake.zip is not a readable zip archive"):
        load_task(tmp_path / "fake.zip")


def test_images_given_as_urls_into_an_archive_are_read_through_it(tmp_path):
    # A dataset whose images are members of an archive ('zip://0.png::/data.zip', as datasets writes them for a Hub
    # dataset's zip) is checked through fsspec, not reported as missing files.
    import zipfile

    root = _image_folder(tmp_path / "data", n=2)
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as archive:
        archive.writestr("a.png", (root / "cat" / "0.png").read_bytes())
        archive.writestr("b.png", b"<html>")
    urls = [f"zip://{name}::{tmp_path / 'imgs.zip'}" for name in ("a.png", "b.png")]
    ds = datasets.Dataset.from_dict({"image": [{"path": u, "bytes": None} for u in urls]},
                                    features=datasets.Features({"image": datasets.Image()}))
    check_media(ds.select([0]), ["image"])
    with pytest.raises(InvalidInputError, match=r"1 of 2 files .* row 1 \(b\.png: not an image"):
        check_media(ds, ["image"])


def test_an_image_past_pils_size_limit_is_named_not_an_unexpected_error():
    import io
    import struct
    import zlib

    from PIL import Image

    png = io.BytesIO()
    Image.new("L", (8, 8)).save(png, format="PNG")
    data = bytearray(png.getvalue())  # the header claims 20,000 x 20,000 (4e8 pixels): PIL refuses it when opening
    data[16:24] = struct.pack(">II", 20000, 20000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the IHDR chunk's CRC, over its type and data
    ds = datasets.Dataset.from_dict({"image": [{"bytes": bytes(data), "path": "huge.png"}]},
                                    features=datasets.Features({"image": datasets.Image()}))
    with pytest.raises(InvalidInputError, match=r"row 0 \(huge\.png: Image size \(400000000 pixels\) exceeds limit"):
        check_media(ds, ["image"])


def test_a_jsonl_label_column_mixing_ids_and_names_is_named(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(f'{{"text": "{w}", "label": {1 if i % 2 else json.dumps("neg")}}}\n'
                            for i, w in enumerate(WORDS)))
    with pytest.raises(InvalidInputError, match="the label column 'label' mixes int and str values"):
        load_task(path)


def test_a_tab_separated_txt_table_reads_like_a_tsv_and_plain_text_is_refused(tmp_path):
    # SICK ships as SICK.txt, tab-separated with a header line: read as it is, as its .tsv twin would be.
    rows = "".join(f"{w} one\t{w} two\t{i % 2}\n" for i, w in enumerate(WORDS))
    (tmp_path / "pairs.txt").write_text("sentence_A\tsentence_B\tlabel\n" + rows)
    (tmp_path / "pairs.tsv").write_text("sentence_A\tsentence_B\tlabel\n" + rows)
    txt, tsv = load_task(tmp_path / "pairs.txt"), load_task(tmp_path / "pairs.tsv")
    assert txt.input_columns == ("sentence_A", "sentence_B") and txt.dataset.to_dict() == tsv.dataset.to_dict()
    (tmp_path / "notes.txt").write_text("just a sentence\nanother one\n")
    with pytest.raises(InvalidInputError, match="cannot read notes.txt: .* a .txt table separated by tabs"):
        load_task(tmp_path / "notes.txt")
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04 not read")  # a spreadsheet: how to make the CSV it takes
    with pytest.raises(InvalidInputError, match=r"A spreadsheet: save it as CSV \(pandas.read_excel"):
        load_task(tmp_path / "book.xlsx")


def test_a_table_whose_name_has_no_extension_reads_like_a_tsv(tmp_path):
    # UCI's SMSSpamCollection: tab-separated with a header line, and no extension in its name.
    rows = "".join(f"{'spam' if i % 2 else 'ham'}\t{w} message\n" for i, w in enumerate(WORDS))
    (tmp_path / "SMSSpamCollection").write_text("Label\tSMS\n" + rows)
    (tmp_path / "sms.tsv").write_text("Label\tSMS\n" + rows)
    bare, tsv = load_task(tmp_path / "SMSSpamCollection"), load_task(tmp_path / "sms.tsv")
    assert (bare.input_column, bare.label_column) == ("SMS", "Label")
    assert bare.dataset.to_dict() == tsv.dataset.to_dict()
    (tmp_path / "README").write_text("just a sentence\nanother one\n")  # prose without separators: still refused
    with pytest.raises(InvalidInputError, match="cannot read README: give a CSV"):
        load_task(tmp_path / "README")


def test_label_first_lines_are_refused_with_a_conversion_that_reads(tmp_path):
    """SentEval's files (``LABEL text`` a line) are not a table; the error gives a command that makes one, and the
    command's CSV loads with the labels and texts of the lines."""
    import subprocess
    import sys

    lines = [f"{i % 3} {w} is sentence {i}, with a comma" for i, w in enumerate(WORDS * 4)]
    (tmp_path / "trec.all").write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match="look like 'LABEL text'") as info:
        load_task(tmp_path / "trec.all")
    command = str(info.value).split("e.g. python -c ")[1]
    code, name = command.rsplit(" ", 1)
    assert name == "trec.all" and code[0] == code[-1] == '"'
    subprocess.run([sys.executable, "-c", code[1:-1], name], cwd=tmp_path, check=True)  # as a shell passes it
    task = load_task(tmp_path / "data.csv")
    assert task.dataset["text"] == [line.split(" ", 1)[1] for line in lines]
    assert task.label_column == "label" and task.kind == "classification"
    assert [str(y) for y in task.dataset["label"]] == [line[0] for line in lines]
    (tmp_path / "notes.txt").write_text("\n".join(f"word{i} {w}" for i, w in enumerate(WORDS * 4)))  # no repeats
    with pytest.raises(InvalidInputError) as plain:
        load_task(tmp_path / "notes.txt")
    assert "LABEL text" not in str(plain.value)


def test_compressed_text_files_read_like_their_plain_twins_and_bad_ones_are_named(tmp_path):
    # x.csv.gz (how Kaggle and many exports ship tables) was "cannot read": datasets reads it; the checks read its text.
    import bz2
    import gzip
    import lzma

    rows = [{"text": f"{w} and more, with a comma", "label": i % 2} for i, w in enumerate(WORDS)]
    csv_text = "text,label\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in rows)
    jsonl_text = "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "plain.csv").write_text(csv_text)
    plain = load_task(tmp_path / "plain.csv").dataset.to_dict()
    for name, opener, text in [("a.csv.gz", gzip.open, csv_text), ("b.csv.bz2", bz2.open, csv_text),
                               ("c.jsonl.xz", lzma.open, jsonl_text)]:
        with opener(tmp_path / name, "wt") as fh:
            fh.write(text)
        assert load_task(tmp_path / name).dataset.to_dict() == plain, name
    (tmp_path / "split").mkdir()  # splits by name under the compression suffix
    for split in ("train", "test"):
        with gzip.open(tmp_path / "split" / f"{split}.csv.gz", "wt") as fh:
            fh.write(csv_text)
    assert load_task(tmp_path / "split", split="test").dataset.to_dict() == plain
    (tmp_path / "bad.csv.gz").write_bytes(b"text,label\nnot compressed,1\n")
    with pytest.raises(InvalidInputError, match="bad.csv.gz cannot be decompressed .* damaged or not what its name"):
        load_task(tmp_path / "bad.csv.gz")
    with gzip.open(tmp_path / "latin.csv.gz", "wb") as fh:
        fh.write("text,label\ncaf\xe9 au lait,1\nthe, 0\n".encode("latin-1"))
    with pytest.raises(InvalidInputError, match="latin.csv.gz is not UTF-8 text: byte 0xe9 at line 2"):
        load_task(tmp_path / "latin.csv.gz")


def test_a_json_document_with_its_records_under_one_key_reads_them(tmp_path):
    # {"version": 1, "data": [{...}, ...]} was read as one row ("the dataset split has 1 rows").
    rows = [{"text": f"{w} text", "label": i % 2} for i, w in enumerate(WORDS)]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    expected = load_task(tmp_path / "list.json").dataset.to_dict()
    (tmp_path / "one_line.json").write_text(json.dumps({"version": 1, "data": rows}))
    (tmp_path / "pretty.json").write_text(json.dumps({"version": 1, "data": rows}, indent=2))
    for name in ("one_line.json", "pretty.json"):
        assert load_task(tmp_path / name).dataset.to_dict() == expected, name
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in rows))  # JSON Lines named .json
    assert load_task(tmp_path / "lines.json").dataset.to_dict() == expected
    (tmp_path / "two.json").write_text(json.dumps({"train": rows, "test": rows}))
    with pytest.raises(InvalidInputError, match=r"two.json holds records under several keys \('train', 'test'\)"):
        load_task(tmp_path / "two.json")


def test_a_column_of_image_paths_or_urls_is_not_read_as_text_unless_asked():
    # A CSV of `path,label` used to be ranked as text: every candidate scored the file names.
    urls = datasets.Dataset.from_dict({"image_url": [f"https://example.com/{i}.JPG?w=200" for i in range(12)],
                                       "label": [i % 2 for i in range(12)]})
    with pytest.raises(InvalidInputError, match=r"column 'image_url' holds image file names or URLs .*"
                                                r"cast_column\('image_url', datasets\.Image\(\)\)"):
        load_task(urls)
    assert load_task(urls, input_column="image_url").modality == "text"  # asked for: read as text
    clips = datasets.Dataset.from_dict({"file": [f"clips/{i}.wav" for i in range(12)], "label": [0, 1] * 6})
    with pytest.raises(InvalidInputError, match=r"audio file names .* datasets\.Audio\(\)"):
        load_task(clips)
    prose = datasets.Dataset.from_dict({"text": [f"{w} one. two" for w in WORDS], "label": [0, 1] * (len(WORDS) // 2)})
    assert load_task(prose).modality == "text"


# ---- a regression target whose variance sits in a few rows -------------------------------------------------------
def test_a_target_held_by_a_few_rows_is_named_and_a_normal_one_is_not():
    from hf_emms.tasks.labels import dominated_target

    rng = np.random.default_rng(0)
    assert dominated_target(rng.normal(size=2000), "y") is None  # its top 1% hold about 5%
    assert dominated_target(rng.poisson(3, 2000), "y") is None
    prices = rng.normal(size=500)
    prices[7] = 1e6
    message = dominated_target(prices, "price")
    assert message.startswith("5 of 500 scored rows hold 100% of the variance of the target 'price' (row 7")
    assert "log1p" in message
    assert "scored rows hold" in dominated_target(rng.lognormal(0, 2, 2000), "price")  # heavy tails: log1p helps
    assert dominated_target(np.zeros(10), "y") is None and dominated_target(["a", "b"], "y") is None


def test_rank_warns_when_a_few_rows_hold_the_targets_variance(tmp_path):
    import _tiny_models
    from hf_emms.pipeline import rank

    rng = np.random.default_rng(1)
    y = rng.normal(size=60)
    y[3] = 1e5
    ds = datasets.Dataset.from_dict({"text": [f"sentence number {i} about {WORDS[i % len(WORDS)]}" for i in range(60)],
                                     "score": y.tolist()})
    model = str(_tiny_models.bert(tmp_path / "model", hidden=32, seed=1))
    with pytest.warns(UserWarning, match="1 of 60 scored rows hold 98% of the variance of the target 'score' \\(row 3"):
        rank(ds, [model], label_column="score", encoders=None, max_samples=None, progress=False,
             cache_dir=tmp_path / "c", layers="last")
