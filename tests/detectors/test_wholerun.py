"""Whole-run detectors sharing their point buffers (a live guard) decide exactly as each buffering for itself."""

import json

from lossdx.detectors import default_detectors
from lossdx.detectors.base import Context, iter_steps
from lossdx.detectors.wholerun import WholeRunDetector, share_point_buffers
from lossdx.testing.synthetic import make_curve


def _keys(findings):
    return [json.dumps(f.to_dict(), sort_keys=True) for f in findings]


def test_shared_buffers_give_the_findings_of_private_ones_and_survive_a_restore():
    run, _ = make_curve("overfit", n=1200, seed=2)
    ctx = Context.from_run(run)
    metrics = tuple({m for d in default_detectors() for m in d.requires})
    steps = list(iter_steps(run, metrics))
    private, shared = default_detectors(), default_detectors()
    for d in private + shared:
        d.reset(ctx)
    share_point_buffers(shared)
    for st, values in steps[:600]:
        for d in private + shared:
            d.update(st, {m: v for m, v in values.items() if m in d.requires})
    # a restore hands each detector its own copies: sharing again makes one of them the shared buffer
    states = [d.state_dict() for d in shared]
    for d, s in zip(shared, states):
        d.load_state_dict(s)
    share_point_buffers(shared)
    for st, values in steps[600:]:
        for d in private + shared:
            d.update(st, {m: v for m, v in values.items() if m in d.requires})
    whole = [d for d in shared if isinstance(d, WholeRunDetector)]
    loss_buffers = {id(d.buffers_["train/loss"]) for d in whole if "train/loss" in d.buffers_}
    assert len(loss_buffers) == 1
    for p, s in zip(private, shared):
        assert _keys(p.finalize()) == _keys(s.finalize()), p.name
