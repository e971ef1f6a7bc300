from rp_pipeline.training.dpo import fit_prompts


def _m(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def test_long_prompts_lose_their_oldest_exchanges_and_keep_persona_and_latest_turn() -> None:
    prompt = [_m("system", "s" * 10)]
    for i in range(5):
        prompt += [_m("user", f"u{i}" + "x" * 8), _m("assistant", f"a{i}" + "y" * 8)]
    prompt.append(_m("user", "last" + "z" * 6))
    pair = {"prompt": prompt, "chosen": [_m("assistant", "c" * 10)], "rejected": [_m("assistant", "r" * 4)]}

    (fitted,), shortened = fit_prompts([pair], len, max_length=70)

    # 10 system + 10 (longer answer) + 10 last user = 30; two exchanges of 20 each fit beside them
    assert shortened == 1
    assert [m["content"][:2] for m in fitted["prompt"]] == ["ss", "u3", "a3", "u4", "a4", "la"]
    assert fitted["chosen"] == pair["chosen"] and fitted["rejected"] == pair["rejected"]


def test_prompts_that_fit_are_untouched_and_an_unfittable_one_keeps_only_its_latest_turn() -> None:
    short = {
        "prompt": [_m("system", "s"), _m("user", "hi")],
        "chosen": [_m("assistant", "ok")],
        "rejected": [_m("assistant", "no")],
    }
    huge = {
        "prompt": [_m("system", "s" * 50), _m("user", "u"), _m("assistant", "a"), _m("user", "q" * 50)],
        "chosen": [_m("assistant", "c")],
        "rejected": [_m("assistant", "r")],
    }

    fitted, shortened = fit_prompts([short, huge], len, max_length=20)

    assert fitted[0] == short
    assert fitted[1]["prompt"] == [_m("system", "s" * 50), _m("user", "q" * 50)]  # still too long: TRL drops it
    assert shortened == 1
