"""The base-model registry: the shipped entries load, a profile names one or gives a directory,
and what does not fit is an error naming the file, the model and the field."""

from __future__ import annotations

import pytest

from rp_pipeline.core.base_models import load_base_models, resolve_base_model
from rp_pipeline.settings import REPO_ROOT

REGISTRY = REPO_ROOT / "assets" / "models" / "base_models.yaml"


def test_the_shipped_registry_has_the_embedded_model_and_the_qwen_family():
    models = load_base_models(REGISTRY)
    assert {"embedded", "qwen2.5-7b-instruct", "qwen2.5-14b-instruct", "qwen2.5-32b-instruct"} <= set(models)
    assert models["embedded"].path is None and models["embedded"].lora_target_modules == "all-linear"
    seven = resolve_base_model("qwen2.5-7b-instruct", models, max_length=4096)
    assert seven.path == "/models/Qwen2.5-7B-Instruct" and "q_proj" in seven.lora_target_modules


def test_a_directory_is_a_base_model_too_and_what_does_not_fit_is_an_error(tmp_path):
    models = load_base_models(REGISTRY)
    own = resolve_base_model(str(tmp_path), models, max_length=2048)
    assert (own.path, own.max_length, own.lora_target_modules) == (str(tmp_path), 2048, "all-linear")
    with pytest.raises(ValueError, match=r"'llama-9b' is neither a registered model \(embedded, qwen2.5"):
        resolve_base_model("llama-9b", models, max_length=512)
    with pytest.raises(ValueError, match=r"max_length 65536 is over qwen2\.5-7b-instruct.s max_length 32768"):
        resolve_base_model("qwen2.5-7b-instruct", models, max_length=65536)


def test_every_shipped_profile_trains_a_registered_base_model_within_its_length():
    from rp_pipeline.core.profile import load_profile

    models = load_base_models(REGISTRY)
    for path in sorted((REPO_ROOT / "assets" / "profiles").glob("*.yaml")):
        training = load_profile(path).training
        assert resolve_base_model(training.base_model, models, training.max_length), path.name


def test_a_bad_entry_names_the_file_the_model_and_the_field(tmp_path):
    bad = tmp_path / "base_models.yaml"
    bad.write_text("mistral:\n  path: /models/m\n  max_length: 8\n")
    with pytest.raises(ValueError, match=r"(?s)base_models.yaml: base model 'mistral'.*max_length"):
        load_base_models(bad)
    bad.write_text("mistral:\n  max_length: 4096\n")
    with pytest.raises(ValueError, match="'mistral': path is required"):
        load_base_models(bad)
