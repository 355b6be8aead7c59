"""The Space's widget (spaces/emms/app.py, gradio 6 Blocks) serves the metric: launched on 127.0.0.1 and called
through gradio_client like a visitor's browser would, it returns what hf_emms.emms_score returns, and shows
bad input as an error message. The Space's README carries the header a Hub Space needs and the card's sections.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

from hf_emms import emms_score

SPACE = Path(__file__).resolve().parents[1] / "spaces" / "emms"


@pytest.fixture(scope="module")
def space_url():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # gradio would report usage over the internet
        spec = importlib.util.spec_from_file_location("emms_space_app", SPACE / "app.py")
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        _, url, _ = app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        yield url
        app.demo.close()


def test_widget_scores_uploaded_features_like_emms_score(space_url, tmp_path):
    from gradio_client import Client, handle_file

    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 80)
    x = np.eye(3)[y] * 2 + rng.standard_normal((80, 3))
    np.save(tmp_path / "features.npy", x)
    np.savetxt(tmp_path / "features.csv", x, delimiter=",", fmt="%.17g")  # round-trips float64 exactly
    client = Client(space_url, verbose=False)
    names = ["neg", "neu", "pos"]
    ref = emms_score(x, y)
    for upload, references in (("features.npy", y.astype(str)), ("features.csv", [names[i] for i in y])):
        out = client.predict(handle_file(str(tmp_path / upload)), "\n".join(references), "default", True,
                             api_name="/score")
        # Names sort as the ids do, so both give the same class ids: the numbers are the solver's exactly.
        assert {k: out[k] for k in ("emms", "emms_se", "emms_weights")} == {
            "emms": ref.score, "emms_se": ref.se, "emms_weights": [1.0]}
        assert np.isfinite(out["logme"])
    in_sample = client.predict(handle_file(str(tmp_path / "features.npy")), "\n".join(y.astype(str)), "in_sample",
                               False, api_name="/score")
    assert in_sample == {"emms": emms_score(x, y, rule="in_sample").score, "emms_se": None, "emms_weights": [1.0]}

    with pytest.raises(Exception, match="features have 80 rows but there are 79 references"):
        client.predict(handle_file(str(tmp_path / "features.npy")), "\n".join(y[1:].astype(str)), "default", False,
                       api_name="/score")


def test_space_readme_has_the_hub_header_and_the_card_sections():
    text = (SPACE / "README.md").read_text(encoding="utf-8")
    _, header, card = text.split("---", 2)
    meta = yaml.safe_load(header)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (SPACE / meta["app_file"]).is_file()
    assert {"evaluate", "metric"} <= set(meta["tags"])
    for section in ("Metric Description", "How to Use", "Inputs", "Output Values", "Examples",
                    "Limitations and Bias", "Citation"):
        assert f"## {section}" in card or f"### {section}" in card, section
    assert "2308.06262" in card
    requirements = (SPACE / "requirements.txt").read_text().split()
    assert any(r.startswith("hf-emms") for r in requirements)
