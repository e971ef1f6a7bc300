"""Which Trainer checkpoint a resumed run trusts: only one whose trainer_state.json (the file
the Trainer writes last, in place) is whole."""

from __future__ import annotations

import json

from rp_pipeline.training.common import last_checkpoint


def test_a_checkpoint_killed_while_writing_its_state_is_passed_over(tmp_path):
    state = json.dumps({"global_step": 8, "log_history": [{"loss": 1.5, "step": 4}, {"loss": 1.2, "step": 8}]})
    for step, text in ((4, state), (8, state[: len(state) // 2]), (12, None)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if text is not None:  # checkpoint-12 died before its state file, checkpoint-8 halfway through it
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(text)
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    (tmp_path / "checkpoint-8" / "trainer_state.json").write_text(state)
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-8"
