"""What the Hub scanner reads for recall: a checkpoint's head labels (``config.json`` ``id2label``: its source task)
and its model card's ``model-index`` results, from the local Hub-API server and from local folders, and how they reach
the transfer space (metadata of unseen candidates; history from self-reported results)."""

from __future__ import annotations

import json
import struct

import numpy as np

from hf_emms.hub import scan
from hf_emms.hub.candidate import Candidate, eval_results, head_labels
from hf_emms.hub.retry import RetryPolicy
from hf_emms.recall import HashingEmbedder, ModelMeta, RecallConfig, build_space, history_from_candidates, shortlist

FAST = RetryPolicy(attempts=3, timeout=5.0, backoff=0.01)
CARD = """---
license: apache-2.0
model-index:
- name: {name}
  results:
  - task: {{type: text-classification}}
    dataset: {{name: GLUE SST-2, type: glue, config: sst2}}
    metrics:
    - {{type: accuracy, value: {acc}}}
    - {{type: f1, value: 0.5}}
  - task: {{type: text-classification}}
    dataset: {{name: Rotten Tomatoes, type: rotten_tomatoes}}
    metrics:
    - {{type: accuracy, value: not-a-number}}
---
# {name}
"""


def files(params: int, labels: dict | None, card: str | None = None) -> dict[str, bytes | str]:
    """A sequence-classification checkpoint's files: config (with ``id2label`` when given), a complete safetensors
    file of ``params`` zeros, and a model card."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [params], "data_offsets": [0, 4 * params]}})
    config = {"model_type": "bert", "architectures": ["BertForSequenceClassification"]}
    if labels is not None:
        config["id2label"] = labels
    out = {"config.json": json.dumps(config), "model.safetensors": struct.pack("<Q", len(header)) + header.encode()
           + bytes(4 * params)}
    if card:
        out["README.md"] = card
    return out


def test_head_labels_and_eval_results_parse_what_configs_and_cards_hold():
    assert head_labels({"id2label": {"1": "positive", "0": "negative", "10": "x"}}) == ("negative", "positive", "x")
    assert head_labels({"id2label": {"a": "b"}}) == () and head_labels({}) == () and head_labels(None) == ()
    index = [{"results": [{"dataset": {"type": "glue", "config": "sst2"}, "metrics": [
        {"type": "accuracy", "value": 0.91}, {"type": "f1", "value": "n/a"}, {"value": 1.0}]},
        {"dataset": "not a mapping"}, {"metrics": [{"type": "accuracy", "value": 0.1}]}]}, "junk"]
    assert eval_results(index) == (("glue/sst2", "accuracy", 0.91),)
    assert eval_results(None) == () and eval_results({"results": []}) == ()


def test_the_scanner_reads_model_index_from_the_hub_and_labels_from_folders(hub_server, tmp_path):
    hub_server.add_model("acme/bert-sst2", files=files(1000, {"0": "negative", "1": "positive"},
                                                 CARD.format(name="acme/bert-sst2", acc=0.93)),
                         tags=["text-classification"], pipeline_tag="text-classification", downloads=5)
    hub_server.add_model("acme/bert-plain", files=files(2000, None), tags=["text-classification"],
                         pipeline_tag="text-classification", downloads=1)
    result = scan(tags=["text-classification"], limit=10, dedupe=False, retry=FAST)
    by_id = {c.model_id: c for c in result.kept}
    assert by_id["acme/bert-sst2"].eval_results == (("glue/sst2", "accuracy", 0.93), ("glue/sst2", "f1", 0.5))
    assert by_id["acme/bert-plain"].eval_results == ()
    listing = hub_server.requests_to("/api/models", method="GET")[0]
    assert "model-index" in listing.query["expand"]
    assert not [r for r in hub_server.requests if "/resolve/" in r.path]  # still no file downloaded to decide

    folder = tmp_path / "emotion-model"
    folder.mkdir()
    for name, content in files(3000, {"0": "sadness", "1": "joy"}, CARD.format(name="e", acc=0.8)).items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    local = scan(folders=[folder], dedupe=False).kept[0]
    assert local.num_parameters == 3000
    assert local.labels == ("sadness", "joy") and local.eval_results[0] == ("glue/sst2", "accuracy", 0.8)
    assert Candidate.from_dict(json.loads(json.dumps(local.to_dict()))) == local
    assert ModelMeta.from_candidate(local).labels == ("sadness", "joy")  # the cold-start side sees its source task


def test_scanned_results_and_labels_feed_the_transfer_space(tmp_path):
    def cand(i: int, acc: float | None, labels: tuple[str, ...]) -> Candidate:
        results = (("glue/sst2", "accuracy", acc), ("glue/sst2", "f1", 0.1)) if acc is not None else ()
        return Candidate(f"org/model-{i}", "0" * 40, "hub", model_type="bert", num_parameters=10**6 * (i + 1),
                         labels=labels, eval_results=results)

    pool = [cand(0, 0.95, ("negative", "positive")), cand(1, 70.0, ()), cand(2, 0.85, ("joy",)), cand(3, None, ())]
    h = history_from_candidates(pool)
    assert h.tasks == ("glue/sst2",) and h.column("glue/sst2") == {"org/model-0": 0.95, "org/model-1": 0.70,  # 70%
                                                                  "org/model-2": 0.85}
    assert h.meta["org/model-0"].labels == ("negative", "positive") and "org/model-3" in h.meta
    assert "reports" in history_from_candidates([cand(3, None, ())]).messages[0]
    space = build_space(candidates=pool, path=tmp_path / "space.safetensors", embed=HashingEmbedder(),
                        config=RecallConfig())
    assert space.tasks == ["glue/sst2"] and (tmp_path / "space.safetensors").is_file()
    kept, scores, _ = shortlist(space, pool[:3], "glue/sst2", k=3)  # a known task: its own measurements
    assert [c.model_id for c in kept] == ["org/model-0", "org/model-2", "org/model-1"] and np.all(np.diff(scores) < 0)


def test_cli_build_learns_from_the_listed_models_cards(hub_server, tmp_path, capsys):
    """``hf-emms recall --build --tags T``: the Hub listing's model-index results are history in the built space,
    and the same listing is the pool short-listed."""
    from hf_emms.cli import main
    from hf_emms.recall import TransferSpace

    for i, acc in enumerate((0.95, 0.70, 0.85)):
        hub_server.add_model(f"cards/bert-{i}", files=files(1000 * (i + 1), {"0": "negative", "1": "positive"},
                                                            CARD.format(name=f"cards/bert-{i}", acc=acc)),
                             tags=["recall-cli-test"], pipeline_tag="text-classification", downloads=3 - i)
    path = tmp_path / "space.safetensors"
    assert main(["recall", "glue/sst2", "--describe", "--build", "--tags", "recall-cli-test", "--space", str(path),
                 "-k", "3", "--json"]) == 0
    space = TransferSpace.load(path)
    assert space.tasks == ["glue/sst2"] and {f"cards/bert-{i}" for i in range(3)} <= set(space.models)
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["cards/bert-0", "cards/bert-2", "cards/bert-1"]  # their own results' order
    assert not [r for r in hub_server.requests if "/resolve/" in r.path and "cards/" in r.path]  # no file fetched
