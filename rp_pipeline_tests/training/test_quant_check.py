"""The corpus slices (held-out / calibration) and the held-out check every quantization reports."""

from __future__ import annotations

import math

import pytest

from rp_pipeline.training.common import load_model_and_tokenizer, load_tokenizer
from rp_pipeline.training.quant_check import compare_stats, corpus_slices, render_rows, token_stats
from rp_pipeline_tests.training.conftest import corpus_rows


def _ids(rows):
    return [r["id"] for r in rows]


def test_slices_are_seeded_disjoint_and_independent_of_file_order():
    rows = corpus_rows(40)
    held, cal = corpus_slices(rows, heldout_rows=8, calibration_rows=16, seed=3)
    assert len(held) == 8 and len(cal) == 16
    assert not set(_ids(held)) & set(_ids(cal))
    again = corpus_slices(list(reversed(rows)), heldout_rows=8, calibration_rows=16, seed=3)
    assert (_ids(again[0]), _ids(again[1])) == (_ids(held), _ids(cal))
    other_seed = corpus_slices(rows, heldout_rows=8, calibration_rows=16, seed=4)
    assert _ids(other_seed[0]) != _ids(held)
    # not simply the first rows of the file
    assert _ids(held) != _ids(rows[:8])


def test_heldout_slice_does_not_move_when_calibration_grows():
    rows = corpus_rows(40)
    held_small, cal_small = corpus_slices(rows, heldout_rows=8, calibration_rows=4, seed=0)
    held_big, cal_big = corpus_slices(rows, heldout_rows=8, calibration_rows=30, seed=0)
    assert _ids(held_small) == _ids(held_big)
    assert set(_ids(cal_small)) < set(_ids(cal_big))


def test_small_corpus_is_split_in_proportion_and_one_row_is_an_error():
    held, cal = corpus_slices(corpus_rows(10), heldout_rows=16, calibration_rows=64, seed=0)
    assert (len(held), len(cal)) == (2, 8)  # 10 * 16/80
    held, cal = corpus_slices(corpus_rows(2), heldout_rows=16, calibration_rows=64, seed=0)
    assert (len(held), len(cal)) == (1, 1)
    with pytest.raises(ValueError, match="at least 2"):
        corpus_slices(corpus_rows(1), heldout_rows=1, calibration_rows=1, seed=0)
    with pytest.raises(ValueError, match="row 1 has no 'messages'"):
        corpus_slices([corpus_rows(1)[0], {"id": "x"}], heldout_rows=1, calibration_rows=1, seed=0)


def test_rows_are_rendered_with_the_chat_template_and_cut_to_max_length(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    rows = corpus_rows(4)
    full = render_rows(rows, tokenizer, max_length=10_000)
    expected = tokenizer(tokenizer.apply_chat_template(rows[0]["messages"], tokenize=False), add_special_tokens=False)
    assert full[0] == expected["input_ids"]
    text = tokenizer.decode(full[0])
    assert text.startswith("<|im_start|>system\nYou are Mia") and "<|im_start|>assistant\n" in text
    assert all(len(ids) > 20 for ids in full)
    cut = render_rows(rows, tokenizer, max_length=20)
    assert [len(ids) for ids in cut] == [20] * 4 and [ids[:20] for ids in full] == cut


def test_check_is_exact_for_the_same_model_and_sees_a_damaged_one(tiny_model_dir):
    import torch

    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    model.eval()
    rows = render_rows(corpus_rows(6), tokenizer, max_length=64)
    ref = token_stats(model, rows)
    same = compare_stats(ref, token_stats(model, rows))
    assert same["top1_agreement"] == 1.0 and same["ppl_ratio"] == 1.0 and same["nll_max_abs_diff"] == 0.0
    assert same["heldout_rows"] == 6 and same["heldout_tokens"] == sum(len(r) - 1 for r in rows)

    torch.manual_seed(0)
    with torch.no_grad():  # noise as large as the weights on every matrix: the check must notice
        for p in model.parameters():
            if p.dim() == 2:
                p.add_(torch.randn_like(p) * p.std())
    damaged = compare_stats(ref, token_stats(model, rows))
    assert 0.0 <= damaged["top1_agreement"] < 1.0
    assert math.isfinite(damaged["ppl_ratio"]) and damaged["ppl_ratio"] != 1.0
    assert damaged["nll_max_abs_diff"] > 0.0


def test_check_refuses_stats_over_different_tokens(tiny_model_dir):
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    rows = render_rows(corpus_rows(3), tokenizer, max_length=64)
    with pytest.raises(ValueError, match="different tokens"):
        compare_stats(token_stats(model, rows), token_stats(model, rows[:2]))
