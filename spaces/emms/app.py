"""The Space's widget: score a candidate's features against a task's references with the EMMS evaluate module.

Written with gradio Blocks because evaluate's own helper (``evaluate.utils.launch_gradio_widget``) uses gradio APIs
that gradio 6 removed.
"""

from pathlib import Path

import evaluate
import gradio as gr
import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_RULE = "default"  # the solver's default rule, whatever its name
metric = evaluate.load(str(HERE / "emms.py"))


def card() -> str:
    """The metric card (README.md) without its YAML header."""
    text = (HERE / "README.md").read_text(encoding="utf-8")
    return text.split("---", 2)[2] if text.startswith("---") else text


def read_features(path: str) -> np.ndarray:
    """An (N, D) array from a .npy file (no pickles) or a comma-separated text file, one row per sample."""
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    return np.loadtxt(path, delimiter=",", ndmin=2)


def read_references(text: str) -> list:
    """One reference per non-empty line: class ids when every line is an integer, class names otherwise."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        return [int(line) for line in lines]
    except ValueError:
        return lines


def score(features_file: str | None, references: str, rule: str, with_logme: bool) -> dict:
    if not features_file:
        raise gr.Error("Upload the features: a .npy array or a .csv file with one row per sample.")
    try:
        return metric.compute(
            references=read_references(references), features=read_features(features_file),
            rule=None if rule == DEFAULT_RULE else rule, logme=with_logme,
        )
    except ValueError as exc:  # bad input (hf-emms and evaluate raise ValueError subclasses): show why
        raise gr.Error(str(exc)) from None


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="EMMS: which checkpoint should you fine-tune?") as demo:
        gr.Markdown(
            "# EMMS\nHow well do a pre-trained model's features suit your labelled task? Upload the features the "
            "model gives your N samples and the samples' labels; higher scores mean a better starting point."
        )
        with gr.Row():
            features = gr.File(label="Features: .npy or .csv, N rows x D columns", file_types=[".npy", ".csv"],
                               type="filepath")
            references = gr.Textbox(label="References: one class id or class name per line, N lines", lines=8)
        with gr.Row():
            rule = gr.Radio(
                [("out of sample: fair across widths (default)", DEFAULT_RULE), ("in sample: the paper's objective", "in_sample")],
                value=DEFAULT_RULE, label="Score",
            )
            with_logme = gr.Checkbox(label="Also compute LogME")
        button = gr.Button("Compute EMMS", variant="primary")
        result = gr.JSON(label="Result")
        button.click(score, [features, references, rule, with_logme], result, api_name="score")
        with gr.Accordion("Metric card", open=False):
            gr.Markdown(card())
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.launch()
