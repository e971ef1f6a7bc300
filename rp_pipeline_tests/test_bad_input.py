"""Bad input, one table: every authored file a data team edits (seed tables, persona cards,
prompt templates, rule lists, profiles, model maps, base models, launchers), `rp clean` input
lines and CLI arguments. Each case must fail with a message that names the file (and line or
field) and what was expected, never a bare traceback from deep inside a library."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rp_pipeline.cli import main as rp
from rp_pipeline.core.base_models import load_base_models
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.profile import load_profile
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import load_seed_variables
from rp_pipeline.defs.launchers import load_launcher
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline.settings import REPO_ROOT


@dataclass(frozen=True)
class Case:
    id: str
    file: str  # under the copied assets/ (or the tmp dir for rp clean input)
    content: str
    load: Callable[[Path], object]  # given the assets dir
    expect: str  # a regex the error message must match (after the file name)


def seeds(a: Path):
    return load_seed_variables(a / "seeds")


def persona(name: str):
    return lambda a: load_persona_file(a / "personas" / name)


def rules(a: Path):
    return RuleSet.load(a / "rules")


def prompt(name: str, **context):
    return lambda a: Prompts(a / "prompts").render(name, **context)


def profile(a: Path):
    return load_profile(a / "profiles" / "bad.yaml")


def models(a: Path):
    return load_llm_config(a / "models" / "bad.yaml")


CARD = (REPO_ROOT / "assets" / "personas" / "theo-barnes.yaml").read_text(encoding="utf-8")
CASES = [
    Case("seed-yaml-syntax", "seeds/scenes.yaml", "- [unclosed", seeds, r"scenes\.yaml"),
    Case(
        "seed-weight-negative", "seeds/languages.yaml", "- {code: zh, weight: -1}\n", seeds, r"languages\.yaml.*weight"
    ),
    Case("seed-unknown-language", "seeds/languages.yaml", "- {code: xx, weight: 1}\n", seeds, r"languages\.yaml.*code"),
    Case("seed-not-a-list", "seeds/emotions.yaml", "happy: 1\n", seeds, r"emotions\.yaml"),
    Case("persona-yaml-syntax", "personas/broken.yaml", "name: [", persona("broken.yaml"), r"broken\.yaml"),
    Case(
        "persona-missing-field",
        "personas/nameless.yaml",
        CARD.replace("name: Theo Barnes\n", ""),
        persona("nameless.yaml"),
        r"nameless\.yaml.*name",
    ),
    Case(
        "persona-bad-age",
        "personas/theo-barnes.yaml",
        CARD.replace("age: 38", "age: -3"),
        persona("theo-barnes.yaml"),
        r"theo-barnes\.yaml.*age",
    ),
    Case(
        "persona-unknown-language",
        "personas/theo-barnes.yaml",
        CARD.replace("language: en", "language: xx"),
        persona("theo-barnes.yaml"),
        r"theo-barnes\.yaml.*language",
    ),
    Case("persona-id-not-file-name", "personas/other.yaml", CARD, persona("other.yaml"), r"other\.yaml: field 'id'"),
    Case("prompt-syntax", "prompts/scene_agent.j2", "ok\n{% if %}", prompt("scene_agent"), r"scene_agent\.j2:2: "),
    Case(
        "prompt-undefined-variable",
        "prompts/moderator.j2",
        "{{ nobody_passes_this }}",
        prompt("moderator"),
        r"moderator\.j2.*nobody_passes_this",
    ),
    Case("rules-yaml-syntax", "rules/goodbye.yaml", "zh: [再见", rules, r"goodbye\.yaml"),
    Case("rules-not-a-mapping", "rules/goodbye.yaml", "- 再见\n", rules, r"goodbye\.yaml.*mapping"),
    Case(
        "rules-bad-regex",
        "rules/assistant_patterns.yaml",
        "en: ['(unclosed']\n",
        rules,
        r"assistant_patterns\.yaml.*en",
    ),
    Case("rules-missing-file", "rules/sentence_heads.yaml", None, rules, r"sentence_heads\.yaml"),
    Case(
        "profile-unknown-field",
        "profiles/bad.yaml",
        "name: bad\nseed: 1\nsimulaton: {}\n",
        profile,
        r"bad\.yaml.*simulaton",
    ),
    Case(
        "profile-bad-value",
        "profiles/bad.yaml",
        "name: bad\nseed: 1\ntraining: {sft_steps: 0}\n",
        profile,
        r"bad\.yaml.*sft_steps",
    ),
    Case(
        "profile-deepspeed-without-gpu",
        "profiles/bad.yaml",
        "name: bad\nseed: 1\ntraining: {deepspeed: zero3}\n",
        profile,
        r"bad\.yaml.*deepspeed needs gpus",
    ),
    Case(
        "models-missing-role",
        "models/bad.yaml",
        "roles: {character: {model: embedded}}\n",
        models,
        r"bad\.yaml.*roles missing",
    ),
    Case("models-unknown-role", "models/bad.yaml", "roles: {narrator: {model: x}}\n", models, r"bad\.yaml.*narrator"),
    Case(
        "models-bad-temperature",
        "models/bad.yaml",
        (REPO_ROOT / "assets/models/embedded.yaml").read_text().replace("temperature: 0.9", "temperature: 9"),
        models,
        r"bad\.yaml.*temperature",
    ),
    Case(
        "base-models-no-path",
        "models/base_models.yaml",
        "mistral: {max_length: 4096}\n",
        lambda a: load_base_models(a / "models" / "base_models.yaml"),
        r"base_models\.yaml.*mistral.*path",
    ),
    Case(
        "launcher-bad-kind",
        "launcher.yaml",
        "kind: slurm\n",
        lambda a: load_launcher(a / "launcher.yaml", a),
        r"launcher\.yaml.*kind",
    ),
    Case(
        "launcher-bad-gpus",
        "launcher.yaml",
        "kind: docker\ngpus: -1\n",
        lambda a: load_launcher(a / "launcher.yaml", a),
        r"launcher\.yaml.*gpus",
    ),
]


@pytest.fixture
def assets(tmp_path) -> Path:
    copy = tmp_path / "assets"
    shutil.copytree(REPO_ROOT / "assets", copy)
    return copy


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_bad_authored_file_is_an_error_naming_it_and_what_was_expected(case: Case, assets: Path):
    path = assets / case.file
    if case.content is None:
        path.unlink()
    else:
        path.write_text(case.content, encoding="utf-8")
    with pytest.raises(Exception) as raised:
        case.load(assets)
    assert raised.type.__module__.split(".")[0] in ("builtins", "rp_pipeline", "pydantic_core", "jinja2")
    message = str(raised.value)
    assert re.search(case.expect, message, re.S), message


CLEAN_LINES = [
    ("not-json", "{not json", r":1: not valid JSON"),
    ("no-messages", json.dumps({"id": "a", "language": "en"}), r":1: field messages"),
    (
        "bad-role",
        json.dumps({"id": "a", "language": "en", "messages": [{"role": "bot", "content": "x"}]}),
        r":1: field messages\.0\.role",
    ),
    (
        "bad-language",
        json.dumps({"id": "a", "language": "xx", "messages": [{"role": "user", "content": "x"}]}),
        r":1: field language",
    ),
    (
        "late-system",
        json.dumps(
            {
                "id": "a",
                "language": "en",
                "messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}],
            }
        ),
        r":1: field messages",
    ),
]


@pytest.mark.parametrize(("name", "line", "expect"), CLEAN_LINES, ids=[c[0] for c in CLEAN_LINES])
def test_a_bad_rp_clean_line_names_its_line_and_field_and_the_good_lines_are_cleaned(
    name, line, expect, tmp_path, capsys
):
    exchanges = [("Hi!", "Hey you<emotion>happy</emotion>"), ("How are you?", "Tired, you?<emotion>sad</emotion>")]
    roles = ("user", "assistant")
    messages = [{"role": role, "content": text} for pair in exchanges for role, text in zip(roles, pair, strict=True)]
    good = {"id": "ok", "language": "en", "messages": messages}
    source = tmp_path / "in.jsonl"
    source.write_text(line + "\n" + json.dumps(good) + "\n", encoding="utf-8")
    assert rp(["clean", str(source), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert re.search(rf"{source.name}{expect}", err), err
    kept = (tmp_path / "out" / "kept.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(k)["id"] for k in kept] == ["ok"]


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["clean"], "the following arguments are required: input, --out"),
        (["eval", "calibrate", "--profile", "/nonexistent/profile.yaml"], "profile.yaml"),
        (["lineage", "trace"], "required"),
    ],
)
def test_bad_cli_arguments_say_what_is_missing(argv, expect, capsys):
    with pytest.raises((SystemExit, ValueError)) as raised:
        rp(argv)
    said = capsys.readouterr().err + str(raised.value)
    assert expect in said
