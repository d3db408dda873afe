"""Whole-curve detectors of the loss: phases, plateau, slow convergence, overfitting, initial loss,
too-good loss, data-order level shifts and growing instability."""

from __future__ import annotations

import math

import numpy as np

from ..findings import Finding
from ..model import Series
from ..context import LN_MAX_VOCAB
from ._stats import MAD_TO_SIGMA, diff_sigma, median
from .base import fmt_num
from .wholerun import WholeRunDetector, block_stats_cached, chunk_medians, clean, smoothed


def _span_improvement(steps: np.ndarray, values: np.ndarray, a: float, b: float) -> float | None:
    """Relative improvement of a robust linear fit of the points in [a, b] (positive = falling loss)."""
    sel = (steps >= a) & (steps <= b)
    if sel.sum() < 4:
        return None
    s, v = steps[sel].astype(float), values[sel]
    slope, icpt = np.polyfit(s, v, 1)
    start, end = slope * a + icpt, slope * b + icpt
    level = abs(float(np.median(v))) or 1.0
    return float((start - end) / level)


def _span_improvement_se(steps: np.ndarray, values: np.ndarray, a: float, b: float) -> float:
    """Standard error of :func:`_span_improvement`: the robust scatter of the points in [a, b] around their linear
    fit, through the fit's slope, over the span, relative to the level (inf for fewer than 4 points)."""
    sel = (steps >= a) & (steps <= b)
    if sel.sum() < 4:
        return math.inf
    s, v = steps[sel].astype(float), values[sel]
    slope, icpt = np.polyfit(s, v, 1)
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(v - (slope * s + icpt))))
    spread = float(np.std(s)) * math.sqrt(s.size)
    level = abs(float(np.median(v))) or 1.0
    return sigma * (b - a) / spread / level if spread > 0 else math.inf


class PhaseDetector(WholeRunDetector):
    """Fast descent, steady descent and convergence, with the share of the run each takes."""

    name = "phases"
    requires = ("train/loss",)

    def __init__(self, *, fast_share: float = 0.75, converged_within: float = 0.05) -> None:
        self.fast_share = fast_share
        self.converged_within = converged_within

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        steps, vals = clean(series.get("train/loss"))
        if vals.size < 10:
            return []
        s, v = smoothed(steps, vals)
        first, last = float(v[0]), float(v[-1])
        drop = first - last
        if drop <= 0.05 * abs(first):
            return []
        span = float(steps[-1] - steps[0]) or 1.0
        fast_end = float(s[np.argmax(v <= first - self.fast_share * drop)])
        # convergence: from where the curve stays within `converged_within` of the total drop from its end
        above = np.flatnonzero(v > last + self.converged_within * drop)
        conv_start = float(s[above[-1] + 1]) if above.size and above[-1] + 1 < s.size else float(s[-1])
        conv_start = max(conv_start, fast_end)
        bounds = [("fast_descent", float(steps[0]), fast_end), ("steady_descent", fast_end, conv_start),
                  ("convergence", conv_start, float(steps[-1]))]
        out = []
        for name, a, b in bounds:
            if b <= a and name != "fast_descent":
                continue
            share = (b - a) / span
            phase = {"name": name, "start_step": int(a), "end_step": int(b), "share": round(share, 4)}
            out.append(Finding("phase", "train/loss", int(a), int(b), "info",
                               f"{name.replace('_', ' ')}: steps {int(a)}-{int(b)} ({100 * share:.1f}% of the run)",
                               {"phase": phase}))
        return out


class PlateauDetector(WholeRunDetector):
    """The loss stopped improving over the last part of the run while the optimizer was still moving."""

    name = "plateau"
    requires = ("train/loss", "val/loss", "train/lr")

    def __init__(self, *, tail: float = 1 / 3, min_improvement: float = 0.015, band: float = 0.05,
                 long_flat_share: float = 0.9, stuck_share: float = 0.6, min_long_improvement: float = 0.05) -> None:
        self.min_long_improvement = min_long_improvement
        self.tail = tail
        self.min_improvement = min_improvement
        self.band = band
        self.long_flat_share = long_flat_share
        self.stuck_share = stuck_share

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        vs, vv = clean(series.get("val/loss"))
        ts, tv = clean(series.get("train/loss"))
        frozen = self._frozen(vs, vv, tv, series.get("train/lr"))
        if frozen:
            return frozen
        if 5 <= tv.size < 30 and vv.size < 6:
            return self._pinned(ts, tv) or self._short_stall(ts, tv)
        use_val = vv.size >= 6
        if use_val:
            # a validation loss that climbs after its minimum is overfitting, not a plateau, and one that jumps by
            # more than 10 % from eval to eval says nothing about a level: judge the train loss
            use_val = not (int(np.argmin(vv)) < vv.size - 2 and float(np.mean(vv[-2:])) > 1.03 * float(np.min(vv))
                           and tv.size >= 30) and _rel_noise(vv) < 0.1
        if use_val and tv.size >= 30 and int(np.sum(vs >= vs[-1] - self.tail * (vs[-1] - vs[0]))) < 4:
            # too few evaluations in the tail to fit a slope: the train loss says more, unless the last evaluations
            # still improve (then it is no plateau whatever the noisy train loss does)
            if vv.size >= 3 and float(vv[-1]) < 0.99 * float(vv[-3]):
                return []
            use_val = False
        if use_val:
            metric, steps, vals = "val/loss", vs, vv
        elif tv.size >= 30:
            metric, steps, vals = "train/loss", *smoothed(ts, tv)
        else:
            return []
        a, b = float(steps[0]), float(steps[-1])
        if b <= a:
            return []
        tail_start = b - self.tail * (b - a)
        if steps.size >= 6 and int(np.sum(steps >= tail_start)) < 4 and float(steps[-4]) >= a + 0.5 * (b - a):
            # a sparse log (an evaluation every eighth of the run, a train loss printed every 20 steps): the last
            # third holds fewer points than a slope needs; the last four points, still within the second half of
            # the run, are the late part of the curve
            tail_start = float(steps[-4])
        imp = _span_improvement(steps, vals, tail_start, b)
        if imp is None:
            return []
        final = float(np.median(vals[-max(2, vals.size // 10):]))
        out_of_band = np.flatnonzero(np.abs(vals - final) > self.band * abs(final))
        if not out_of_band.size:
            flat_from = a  # never out of the band: flat over everything logged
        else:
            flat_from = float(steps[out_of_band[-1] + 1]) if out_of_band[-1] + 1 < steps.size else b
        long_flat = (b - flat_from) / (b - a) >= self.long_flat_share
        long_imp = _span_improvement(steps, vals, a + (b - a) / 3, b)
        slow_long = long_imp is not None and long_imp < self.min_long_improvement
        if imp >= self.min_improvement and not long_flat and not slow_long:
            return []
        level = float(np.median(vals[steps >= tail_start]))
        if level < 0.05:
            return []  # near zero: memorisation / too-good territory, not a plateau
        lr_s, lr_v = clean(series.get("train/lr"))
        if lr_v.size >= 3 and lr_v.max() > 0:
            tail_lr = lr_v[lr_s >= tail_start]
            if tail_lr.size and float(np.mean(tail_lr)) < 0.05 * float(lr_v.max()):
                return []  # the LR had already decayed to ~0: the run converged as scheduled
        # when did it get stuck: the first point from which the curve stays near its final level
        if long_flat:
            start = flat_from
        elif slow_long and imp >= self.min_improvement:
            start = a + (b - a) / 3
        else:
            above = np.flatnonzero(vals > final + 0.02 * abs(final))
            start = float(steps[above[-1] + 1]) if above.size and above[-1] + 1 < steps.size else tail_start
            start = min(start, tail_start)
        share = (b - start) / (b - a)
        # "well above what the run should reach" needs a yardstick: an error when stuck most of the run far
        # above what a from-scratch model reaches (ln V known); a warning when the loss barely left where it
        # started (nothing learned) or sits at a uniform guess; otherwise a curve that fell and then flattened
        # is convergence as far as the log can tell (fine-tunes, excerpts, converged pre-training): info
        prof = self.context_.profile
        # the starting level: the median of the first train losses (robust to one heavy-tailed first batch), or the
        # first point of a sparse validation curve
        # (only points within the first 2 % of the log stand for the start: five points of a coarse log already
        # reach far down the fast descent)
        k_first = int(np.sum(ts <= ts[0] + 0.02 * (ts[-1] - ts[0]))) if tv.size else 0
        first = float(np.median(tv[:max(1, min(5, k_first))])) if tv.size >= 5 else float(vals[0])
        expected = prof.expected_init_loss
        # the first loss is a yardstick only where it is a uniform guess: token-level models from scratch
        scratch = prof.first_is_initial and prof.kind in ("lm_pretrain", "rnn_lm", "unknown")
        if expected is None and scratch and first > 0 and prof.kind != "unknown":
            expected = first  # from scratch, the first loss is the untrained model's: the yardstick
        # token-level models reach ~0.2-0.35 ln V; byte/char-level ones (V < 1000) sit at 1-2 nats, 0.3-0.45 ln V,
        # because text has ~1 nat of entropy per character
        frac = 0.45 if expected is not None and expected < math.log(1000) else 0.35
        # a training loss held up by dropout (and by the noise of tiny batches) can sit well above what the model
        # reaches in eval mode: where the last evaluations are lower, they are the level the model reached
        reached = min(final, float(np.median(vv[-2:]))) if metric == "train/loss" and vv.size >= 2 else final
        high = expected is not None and scratch and reached > frac * expected
        lr_s, lr_v = clean(series.get("train/lr"))
        tail_lr = lr_v[lr_s >= tail_start]
        end_lr = float(tail_lr[-1]) if tail_lr.size else math.inf
        if tail_lr.size >= 3 and float(lr_s[-1]) < b and float(tail_lr[-1]) < float(tail_lr[-2]):
            # a coarse log whose last LR point comes before the end of the judged curve: the straight decay of its
            # last two points carries on to that end (a linear / polynomial schedule reaching 0 at the last step)
            rate = (float(tail_lr[-2]) - float(tail_lr[-1])) / float(lr_s[-1] - lr_s[-2])
            end_lr = max(0.0, float(tail_lr[-1]) - rate * (b - float(lr_s[-1])))
        if high and tail_lr.size >= 3 and end_lr < 0.05 * float(lr_v.max()) and \
                bool(np.all(np.diff(tail_lr) <= 0)) and float(tail_lr[0]) > float(tail_lr[-1]):
            # the schedule anneals the LR to ~0 over the tail (linear / cosine to zero): the steps shrink toward
            # nothing, and a loss that flattens while they do is where this schedule converges, whatever the yardstick
            # of a longer run says; a loss that barely left its start is still judged below, and so is one still near
            # a uniform guess over the vocabulary (above 0.8 ln V: no schedule converges there; a from-scratch T5
            # starts a nat above ln V, so its first loss is no measure of how little it left)
            high = reached > 0.8 * expected
        # (and the judged curve itself must have stayed near its own first point: a validation loss that fell 35 %
        # from its first evaluation learned, even where the median of the first train points of a sparse log lies
        # well below the start)
        # (the start of a short log is its first points: the median of the first five of ten points is mid-run)
        start_level = float(np.median(tv[:max(1, min(5, tv.size // 10))])) if tv.size else first
        barely = prof.first_is_initial and first > 0 and final > 0.8 * first and prof.kind != "lm_finetune" \
            and final > 0.8 * float(vals[0]) and final > 0.8 * start_level
        uniform = _uniform_guess(final, prof.n_classes) if prof.kind == "classifier" or prof.n_classes else None
        # (a run taken for a fine-tune from its low start that never left that start is judged the same way: a
        # fine-tuned model that learned nothing at all, with train and held-out loss both at one ln C, is a C-class
        # head predicting the uniform distribution, not a pretrained model already converged)
        never_left = prof.kind == "lm_finetune" and first > 0 and abs(final - first) <= 0.02 * first and share >= 0.9
        if uniform is None and (prof.kind == "unknown" or never_left) and vv.size >= 2 and share >= self.stuck_share:
            # what the run is is unknown (an excerpt without config), but training and held-out losses both sitting
            # at the same ln C of a small C say it: a C-class model predicting the uniform distribution
            c = _uniform_guess(final)
            uniform = c if c is not None and _uniform_guess(float(np.median(vv[-3:]))) == c else None
        if share >= self.stuck_share and high:
            sev = "error"
        elif high or barely or (uniform is not None and share >= self.stuck_share):
            sev = "warning"
        else:
            sev = "info"
        # a held-out loss that falls at every evaluation over the flat stretch (by a hair each time, as a train loss
        # noisier than the fall hides it) is a model still learning, slowly: what it learns carries over
        held = vv[vs >= start] if metric == "train/loss" else np.empty(0)
        steady = bool(held.size >= 4 and np.all(np.diff(held) < 0))
        return [Finding("plateau", metric, int(start), int(b), sev,
                        f"{metric} stopped improving at ~{fmt_num(final)}: it changed {-100 * imp:+.1f}% over the last "
                        f"{100 * (b - tail_start) / (b - a):.0f}% of the run and has stayed near that level since step {int(start)} "
                        f"({100 * share:.0f}% of the run)" + (
                            f"; the held-out loss fell {held.size - 1} times in a row over its {held.size} evaluations "
                            f"since ({fmt_num(float(held[0]))} -> {fmt_num(float(held[-1]))})" if steady else ""),
                        {"level": final, "tail_improvement": imp, "two_thirds_improvement": long_imp,
                         "flat_since": int(start), "flat_share": share, "first": first,
                         "uniform_classes": uniform, "steady_descent": steady})]


    def _frozen(self, vs: np.ndarray, vv: np.ndarray, tv: np.ndarray, lr: Series | None) -> list[Finding]:
        """A held-out loss that does not move over every evaluation of a run logged from its start (all within
        0.2 % of its level) while the training loss does not fall either: what the model predicts is not
        changing — the weights barely move (an LR orders of magnitude too small) or are held in place (a
        weight decay that pulls them back to zero as fast as the data moves them). A trained model's held-out
        loss moves by percents between evaluations, however converged its training loss looks."""
        prof = self.context_.profile
        if vv.size < 4 or not prof.covers_start:
            return []
        level = float(np.median(vv))
        spread = float(vv.max() - vv.min())
        if level < 0.05 or spread > 0.002 * level:
            return []
        if tv.size >= 3:
            k = max(2, tv.size // 10) if tv.size >= 10 else 1
            if float(np.median(tv[-k:])) < 0.9 * float(np.median(tv[:k])):
                return []  # the training loss is learning: a frozen evaluation is a different fault
        lr_s, lr_v = clean(lr)
        if lr_v.size >= 3 and lr_v.max() > 0:
            during = lr_v[(lr_s >= vs[0]) & (lr_s <= vs[-1])]
            if during.size and float(np.mean(during)) < 0.05 * float(lr_v.max()):
                return []  # the LR was ~0: the schedule held the weights, not the model
        d = np.diff(vv)
        tiny = 1e-6 * level
        rising = float(np.mean(d > tiny))
        steady = rising == 0.0 and float(vv[-1]) < float(vv[0]) - tiny
        uniform = _uniform_guess(level, prof.n_classes) if prof.kind == "classifier" or prof.n_classes else None
        how = (f"it fell at every evaluation but by only {fmt_num(float(vv[0] - vv[-1]))} in all" if steady else
               "it wanders without a trend")
        at = f", ln({uniform}) = {math.log(uniform):.4f}: a uniform guess over {uniform} classes" if uniform else ""
        # (said of the training loss only where enough of it was read to tell)
        train = "does not fall either" if tv.size >= 3 else "is not logged often enough to tell whether it falls"
        return [Finding("plateau", "val/loss", int(vs[0]), int(vs[-1]), "warning",
                        f"val/loss has not moved: all {vv.size} evaluations from step {int(vs[0])} to {int(vs[-1])} lie "
                        f"within {100 * spread / level:.2f}% of {fmt_num(level)}{at} ({how}), and the training loss "
                        f"{train}: what the model predicts is not changing",
                        {"type": "frozen", "level": level, "first": float(vv[0]), "spread": spread,
                         "train_checked": tv.size >= 3,
                         "steady_descent": steady, "rising_share": rising, "flat_since": int(vs[0]), "flat_share": 1.0,
                         "tail_improvement": float(vv[0] - vv[-1]) / level, "uniform_classes": uniform})]

    def _short_stall(self, steps: np.ndarray, vals: np.ndarray) -> list[Finding]:
        """A short log (8-30 points, a few dozen window means) of a run from its start whose loss fell and then did
        not fall at all over the last two-thirds of the run (a robust linear fit, too few points to smooth): it
        stopped improving early. Info, as a plateau judged on a long log without a yardstick is: what the loss sits
        at says nothing by itself; rules weigh it with what else the run shows."""
        if vals.size < 8 or not self.context_.profile.covers_start:
            return []
        a, b = float(steps[0]), float(steps[-1])
        start = a + (b - a) / 3
        imp = _span_improvement(steps.astype(float), vals, start, b)
        if imp is None or imp > 0:
            return []
        level = float(np.median(vals[steps >= start]))
        if level <= 0:
            return []
        return [Finding("plateau", "train/loss", int(start), int(b), "info",
                        f"train/loss stopped improving at ~{fmt_num(level)}: it changed {-100 * imp:+.1f}% over the "
                        f"last two-thirds of the run ({vals.size} logged points)",
                        {"level": level, "flat_since": int(start), "flat_share": (b - start) / (b - a),
                         "tail_improvement": imp, "first": float(vals[0]), "short_log": True})]

    def _pinned(self, steps: np.ndarray, vals: np.ndarray) -> list[Finding]:
        """A short excerpt (5-30 points) whose loss does not move at all: pinned, whatever the shape."""
        level = median(vals)
        if level <= 0 or (float(vals.max()) - float(vals.min())) > 0.01 * level:
            return []
        if not self.context_.profile.covers_start:
            return []  # a few flat points from the middle of a long run are what convergence looks like
        return [Finding("plateau", "train/loss", int(steps[0]), int(steps[-1]), "warning",
                        f"train/loss is pinned at ~{fmt_num(level)} over all {vals.size} logged points (it varies by "
                        f"less than 1%): nothing is being learned", {"level": level, "flat_since": int(steps[0]),
                                                                      "flat_share": 1.0, "tail_improvement": 0.0,
                                                                      "pinned": True})]


def _number(v) -> bool:
    """A finite number (a config value may be anything: a string, None, a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class SlowConvergenceDetector(WholeRunDetector):
    """A from-scratch run whose loss is still falling but far slower than a healthy fast-descent phase."""

    name = "slow_convergence"
    requires = ("train/loss", "val/loss", "train/lr")

    def __init__(self, *, early_share: float = 0.1, min_early_drop: float = 0.25, min_steps: int = 100) -> None:
        self.early_share = early_share
        self.min_early_drop = min_early_drop
        self.min_steps = min_steps  # below this many steps, with no LR logged, a slow start may be the warmup

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        steps, vals = clean(series.get("train/loss"))
        if vals.size < 20:
            return []
        prof = self.context_.profile
        s, v = smoothed(steps, vals)
        # the untrained model's loss: the first point, or the median of the first few where the first is one low
        # draw of per-batch noise (a classifier's batch of 32 at ln C varies by a few %)
        first, early_med = float(vals[0]), median(vals[:5])
        if first < early_med <= 1.1 * first:
            first = early_med  # (a median far above the first point is a blow-up, judged below)
        # only a from-scratch run whose log holds its start has a known fast-descent yardstick: a first loss
        # near ln V (or, without V, a language model's or large first loss logged at step 0). A first window mean a
        # few steps in that the loss only falls from is the untrained model's loss too (as for the init check)
        near_start = prof.covers_start and int(steps[0]) <= 10 and first >= float(vals[1:5].max())
        if not (prof.first_is_initial or near_start) or prof.kind in ("lm_finetune", "vision"):
            return []
        if float(steps[-1]) < self.min_steps and (self.context_.max_steps or math.inf) > 2 * float(steps[-1]) \
                and not len(clean(series.get("train/lr"))[1]):
            # a log of a run's first few dozen steps, with no LR to show where the schedule is: those steps are
            # inside any usual warmup (hundreds to thousands of steps), where a slow start is the schedule's doing
            return []
        expected = prof.expected_init_loss
        if expected is None:
            # a classifier from scratch starts at ln C whatever C is: its first loss is the yardstick
            if not (prof.kind in ("lm_pretrain", "rnn_lm", "classifier") or first >= 3.0):
                return []
            expected = first
        if first <= 0 or first < 0.8 * expected:
            return []  # (a first loss of 0 is no start to fall from: no share of it can be measured)
        a, b = float(s[0]), float(s[-1])
        # a logged LR warmup (starting below half its peak) longer than the early window holds the step small by
        # design: the fast descent is judged at the warmup's end (a 20 % warmup has the run 10 % in at half the LR)
        lr_steps, lr = clean(series.get("train/lr"))
        # a run still going (the log ends before its planned max_steps): "10 % of the run" is of the planned run
        planned = self.context_.max_steps
        span = max(b - a, float(planned) - a) if _number(planned) and planned > b else b - a
        # (the fast descent takes optimizer steps, not a share of however short a log is: 10 % of a 22-step log
        # is two steps, in which no model falls far; the early window is never shorter than 10 % of the shortest
        # run this rule judges)
        early_span = self.early_share * max(span, float(self.min_steps))
        early_at = min(a + early_span, b)
        if lr.size >= 5 and float(lr.max()) > 0 and float(lr[0]) < 0.5 * float(lr.max()):
            early_at = min(max(early_at, float(lr_steps[int(np.argmax(lr >= 0.98 * float(lr.max())))])), b)
        at_early = float(np.interp(early_at, s, v))
        early_drop = (first - at_early) / first
        last = float(v[-1])
        tail_imp = _span_improvement(s, v, b - (b - a) / 3, b)
        if early_drop < -0.05 or early_drop >= self.min_early_drop or last < 0.5 * first or tail_imp is None \
                or tail_imp < 0.015:
            return []  # (a loss that rose at first is a blow-up, judged by the spike/divergence detectors)
        early_drop = max(early_drop, 0.0)  # a point-to-point wobble above the start is no fall, and no rise either
        # a run still going (the log ends before two thirds of its planned steps) is still falling by design: how far
        # from converged it ends, the log cannot show yet; the slow start alone is a reading to watch
        going = span > 1.5 * (b - a)
        return [Finding("slow_convergence", "train/loss", int(a), int(b), "info" if going else "warning",
                        f"after {100 * (early_at - a) / span:.0f}% of the run"
                        + (" (the end of the LR warmup)" if early_at > a + early_span else "")
                        + f" the loss had fallen only "
                        f"{100 * early_drop:.0f}% from {fmt_num(first)} (healthy from-scratch runs lose most of it in "
                        f"their first 5-10% of steps) and it is still falling ({100 * tail_imp:.1f}% over the last "
                        f"third): " + (f"the run is still going (step {int(steps[-1])} of {int(planned)}), at "
                                        f"{fmt_num(last)}" if going else
                                        f"the run is far from converged at {fmt_num(last)}"),
                        {"first": first, "early_drop": early_drop, "last": last, "tail_improvement": tail_imp})]


class OverfittingDetector(WholeRunDetector):
    """Validation loss rising after its minimum while the training loss keeps falling."""

    name = "overfitting"
    requires = ("train/loss", "val/loss", "train/epoch")

    def __init__(self, *, min_rise: float = 0.03, error_rise: float = 0.1) -> None:
        self.min_rise = min_rise
        self.error_rise = error_rise

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        vs, vv = clean(series.get("val/loss"))
        if vv.size < 4:
            return []
        ts, tv = clean(series.get("train/loss"))
        if self.context_.profile.first_is_initial and tv.size >= 10 and tv[0] > 0 and \
                float(np.median(tv[-max(3, tv.size // 10):])) >= tv[0]:
            return []  # the training loss ends above the untrained model's: it fits nothing, so it memorises nothing
        i = int(np.argmin(vv))
        after = vv.size - i - 1
        if after < 2:
            return self._gap_widening(series, vs, vv)
        vmin = float(vv[i])
        end = float(np.mean(vv[-2:]))
        rise = (end - vmin) / abs(vmin) if vmin else math.inf
        if rise < self.min_rise or vv[-1] <= vmin * (1 + self.min_rise / 2):
            return self._gap_widening(series, vs, vv)
        # a noisy validation curve (small eval sets, BatchNorm) wanders: the rise must stand out of that
        noise = diff_sigma(vv)
        if vv.size < 10:
            # a median of a few differences misses the excursions a short curve does show (an excerpt's 8
            # evaluations wandering by 10 % and back): the root mean square of those up to the minimum (not the
            # rise being judged) is the noise it has shown
            pre = np.diff(vv[: i + 1])
            if pre.size:
                noise = max(noise, float(np.sqrt(np.mean(pre ** 2) / 2.0)))
        if end - vmin < 2.0 * noise:
            return self._gap_widening(series, vs, vv)
        ts, tv = clean(series.get("train/loss"))
        # a rise that matters on the loss's own scale: validation 0.008 -> 0.016 after starting at 2.3 is two
        # near-perfect fits (a restart of the LR or a few over-confident examples), not memorisation; a large
        # train/validation gap is still judged below
        scale = max(abs(float(tv[0])) if tv.size else 0.0, abs(float(vv[0])))
        if end - vmin < 0.01 * scale:
            return self._gap_widening(series, vs, vv)
        if self.context_.profile.kind == "classifier" and end < NEAR_PERFECT_NATS:
            return []  # (in an excerpt too, where the first points are no untrained loss to scale the rise by)
        train_note = ""
        if tv.size >= 4:
            ss, sv = smoothed(ts, tv)
            t_at_min = float(np.interp(vs[i], ss, sv))
            t_end = float(sv[-1])
            if t_end > t_at_min * 1.05:
                return []  # training loss rose too: that is divergence, not overfitting
            fell = _span_improvement(ss, sv, float(vs[i]), float(vs[-1]))
            if vv.size < 6 and (t_end > t_at_min * 0.99 or fell is None
                                or fell <= 2 * _span_improvement_se(ss, sv, float(vs[i]), float(vs[-1]))):
                # a few evaluations measure no noise of their own, and a training loss that no longer falls (a
                # label-smoothed floor), or not by more than its own scatter can resolve, fits the training set no
                # further: nothing explains the rise as memorisation
                return self._gap_widening(series, vs, vv)
            train_note = f" while train loss went {fmt_num(t_at_min)} -> {fmt_num(t_end)}"
        sev = "error" if rise >= self.error_rise else "warning"
        return [Finding("overfitting", "val/loss", int(vs[i]), int(vs[-1]), sev,
                        f"validation loss rose {100 * rise:.0f}% after its minimum {fmt_num(vmin)} at step {int(vs[i])} "
                        f"(now {fmt_num(float(vv[-1]))}){train_note}",
                        {"val_min": vmin, "val_min_step": int(vs[i]), "val_end": float(vv[-1]), "rise": rise,
                         "points_after_min": after})]


    def _large_gap(self, ts: np.ndarray, tv: np.ndarray, vs: np.ndarray, vv: np.ndarray) -> list[Finding]:
        prof = self.context_.profile
        # an excerpt's first values are no scale for the gap (a converged classifier pasted from mid-run starts at
        # 0.003): a cross-entropy over two or more classes starts at ln 2 or more
        floor = math.log(2) if prof.kind in ("lm_pretrain", "lm_finetune", "rnn_lm", "classifier") and \
            not prof.covers_start else 0.0
        if prof.kind == "classifier" and vv.size and float(vv[-1]) < NEAR_PERFECT_NATS:
            return []  # validation below 0.05 nats still gives the right class >= 95 %: two near-perfect fits
        return _gap_finding(ts, tv, vs, vv, floor)

    def _gap_widening(self, series: dict[str, Series], vs: np.ndarray, vv: np.ndarray) -> list[Finding]:
        """Validation still at its best but no longer improving while the training loss keeps falling: the
        train/val gap opens up, the onset of overfitting before validation actually turns."""
        ts, tv = clean(series.get("train/loss"))
        if tv.size < 20 or vv.size < 6:
            return self._large_gap(ts, tv, vs, vv)
        ss, sv = smoothed(ts, tv)
        a, b = float(vs[0]), float(vs[-1])
        tail = a + 2 * (b - a) / 3
        val_imp = _span_improvement(vs.astype(float), vv, tail, b)
        train_imp = _span_improvement(ss, sv, tail, b)
        if val_imp is None or train_imp is None:
            # too few (smoothed) points in the last third for a slope: a gap at the end still tells, once validation
            # has stopped improving (its best is behind it; a validation still at its best is still learning)
            return self._large_gap(ts, tv, vs, vv) if int(np.argmin(vv)) < vv.size - 1 else []
        epochs = _epochs(self.context_, b, series.get("train/epoch"))
        # the training loss must still fall by an amount that matters on the loss's own scale: 18 % of a train
        # loss of 1e-4 (an LR decayed to 0) or 1 % of a label-smoothed floor at 0.51 is no fitting going on
        scale = max(abs(float(tv[0])), abs(float(vv[0])))
        t_fall = float(np.interp(tail, ss, sv)) - float(sv[-1])
        # the fall must stand out of the training loss's own scatter: a coarse log of noisy batch losses (a point
        # every few steps scattering by 30 %) fits a tail slope of +-20 %, and a 5 % "fall" there is no fitting
        resolved = train_imp > 2 * _span_improvement_se(ss, sv, tail, b)
        if epochs is not None and epochs >= 4 and val_imp < 0.02 and train_imp > val_imp and t_fall >= 0.01 * scale \
                and resolved:
            return [Finding("overfitting", "val/loss", int(tail), int(b), "warning",
                            f"validation stopped improving ({100 * val_imp:+.1f}% over the last third) after "
                            f"{epochs:.0f} epochs over the data, while training loss still fell {100 * train_imp:.0f}%",
                            {"type": "stalled_repeated", "epochs": epochs, "val_min": float(vv.min()),
                             "val_min_step": int(vs[int(np.argmin(vv))]), "val_end": float(vv[-1]), "rise": 0.0})]
        gap = self._large_gap(ts, tv, vs, vv)
        if gap:
            return gap
        if val_imp >= 0.01 or train_imp < 0.03 or not resolved:
            return []
        gap = vv - np.interp(vs, ss, sv)
        g0 = float(np.interp(tail, vs, gap))
        g1 = float(gap[-1])
        if g1 <= 0 or g1 < 1.5 * max(g0, 1e-12) or g1 - g0 < 0.04 * abs(float(vv[-1])):
            return []
        # a gap that closed from validation-below-training to a hair's width is no memorisation: the gap itself
        # must matter on the loss's scale, and before one epoch every training batch is new data the model
        # cannot have memorised
        if g1 < 0.04 * abs(float(vv[-1])) or (epochs is not None and epochs < 1):
            return []
        # likewise the training fall it measures: where the last third begins on the first pass (an excerpt or a run
        # of 1.2 epochs) part of that fall is new data learned, which generalises, not the repeated data memorised
        at_tail = _epochs(self.context_, tail, series.get("train/epoch")) if epochs is not None else None
        if at_tail is not None and at_tail < 1:
            return []
        return [Finding("overfitting", "val/loss", int(tail), int(b), "warning",
                        f"the train/validation gap widened from {fmt_num(g0)} to {fmt_num(g1)} over the last third: "
                        f"training loss fell {100 * train_imp:.0f}% while validation stopped improving "
                        f"({100 * val_imp:+.1f}%)", {"type": "gap_widening", "gap_from": g0, "gap_to": g1,
                                                     "val_min": float(vv.min()), "val_min_step": int(vs[int(np.argmin(vv))]),
                                                     "val_end": float(vv[-1]), "rise": 0.0})]


#: a cross-entropy below this many nats gives the targets >= 95 % probability: a near-perfect fit
NEAR_PERFECT_NATS = 0.05


def _gap_finding(ts: np.ndarray, tv: np.ndarray, vs: np.ndarray, vv: np.ndarray,
                 scale_floor: float = 0.0) -> list[Finding]:
    """Training loss a fraction of the validation loss at the end while validation no longer improves: the model
    has memorised its training set (train 0.01 against validation 0.8, or 0.07 against 0.19)."""
    if tv.size < 3 or vv.size < 3:
        return []
    k = max(1, tv.size // 10)
    t_end = float(np.median(tv[-k:]))
    v_end = float(vv[-1])
    v_min = float(vv.min())
    if t_end <= 0 or v_end <= 0:
        return []
    ratio = v_end / t_end
    stalled = v_end >= v_min and int(np.argmin(vv)) < vv.size - 1 and float(tv[-1]) < float(tv[0])
    # a gap that matters on the loss's own scale: 0.0013 against 0.014 is two near-perfect fits
    meaningful = v_end - t_end >= 0.1 * max(abs(float(tv[0])), abs(float(vv[0])), scale_floor)
    # (a validation loss at its best at its last evaluation is still learning: a gap alone, 10x, is memorisation
    # only once validation stopped improving, else the message's "has not improved since" would be untrue)
    if not meaningful or not ((ratio >= 2.0 and stalled) or (ratio >= 10.0 and int(np.argmin(vv)) < vv.size - 1)):
        return []
    i = int(np.argmin(vv))
    return [Finding("overfitting", "val/loss", int(vs[i]), int(vs[-1]), "warning",
                    f"training loss {fmt_num(t_end)} is {ratio:.1f}x below the validation loss {fmt_num(v_end)} at the "
                    f"end, and validation has not improved since step {int(vs[i])} ({fmt_num(v_min)}): the model fits "
                    f"its training set far better than new data", {
                        "type": "gap", "train_end": t_end, "val_end": v_end, "ratio": ratio, "val_min": v_min,
                        "val_min_step": int(vs[i]), "rise": (v_end - v_min) / v_min if v_min > 0 else 0.0})]


def _uniform_guess(level: float, n_classes: int | None = None) -> int | None:
    """The number of classes C when ``level`` is ln(C): the loss of a classifier that predicts the uniform (or
    class-prior) distribution and ignores its inputs. With C known, within 3 %; without, only C <= 20 within 0.01
    (ln C of larger C lie too close together to tell one from another)."""
    if n_classes and n_classes >= 2:
        return n_classes if abs(level - math.log(n_classes)) <= 0.03 * math.log(n_classes) else None
    if not math.isfinite(level) or level > math.log(20) + 0.01:
        return None  # (and exp of a huge level, a validation loss of 1e3, would overflow)
    c = round(math.exp(level))
    if 2 <= c <= 20 and abs(math.log(c) - level) <= 0.01:
        return c
    return None


def _epochs(context, last_step: float, logged: Series | None = None) -> float | None:
    """Passes over the dataset by ``last_step``: the trainer's own fractional epoch counter (HF: 0.42) where it is
    logged, else tokens per step x steps over the dataset size of the config. An integer counter (an epoch index)
    says which pass, not how far into it. (The diagnosis rules read epochs the same way: rules.generalization.)"""
    from ..facts import tokens_per_step

    es, ev_ = clean(logged)
    if ev_.size >= 2 and not bool(np.all(ev_ == np.round(ev_))):
        return float(np.interp(last_step, es, ev_))
    tps = tokens_per_step(context.config)
    data = context.config.get("dataset_tokens")
    if not tps or not data:
        return None
    return tps * (last_step + 1) / float(data)


class InitLossDetector(WholeRunDetector):
    """First loss far above ln(vocab_size): a broken initialisation or loss computation."""

    name = "init_loss"
    requires = ("train/loss", "train/grad_norm")

    def __init__(self, *, warn_ratio: float = 1.2, error_ratio: float = 1.5, logit_margin: float = 2.0) -> None:
        self.warn_ratio = warn_ratio
        self.error_ratio = error_ratio
        self.logit_margin = logit_margin

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        steps, vals = clean(series.get("train/loss"))
        prof = self.context_.profile
        if vals.size == 0:
            return []
        first = float(vals[0])
        # a first point a few steps in at full LR is the untrained model's loss too when the loss only falls from
        # it (a blow-up in those steps would rise on after it); an excerpt's first point never is
        near_start = prof.covers_start and int(steps[0]) <= 10 and vals.size >= 3 and first >= float(vals[1:5].max())
        if not prof.first_is_initial and not near_start:
            return []  # an excerpt, or a first point already at full LR: not the untrained model's loss
        # ln(V) for a language model, ln(C) for a C-class classifier: the loss of a uniform prediction
        vocab = self.context_.config.get("vocab_size") or self.context_.config.get("n_classes")
        if vocab and int(vocab) >= 2 and prof.expected_init_loss is not None:
            expected = prof.expected_init_loss
            what = f"the {fmt_num(expected)} = {prof.init_basis} of a uniform prediction"
            count = int(vocab)
        else:
            # no vocabulary known: no token count gives a uniform loss above ln(262,144) = 12.5, so a language
            # model's first loss far above that is a broken init or loss. Other losses (reconstruction,
            # regression, sums of terms) have no such ceiling.
            if prof.kind not in ("lm_pretrain", "rnn_lm", "classifier"):
                return []  # (a classifier's cross-entropy has the same ceiling: no label set is that large)
            expected, count = LN_MAX_VOCAB, None
            what = f"{fmt_num(expected)} = ln(262,144), the uniform loss of the largest vocabularies in use"
            grads = _early_grad_ratio(series.get("train/grad_norm"))
            if first >= 1.5 * expected and grads is not None and grads >= 20:
                what += (f", with the first gradient norms {grads:.0f}x their later level (large initial logits make "
                         "large gradients)")
            elif first < 3 * expected:
                return []  # without V only the impossible counts (mT5 fine-tunes start at ~2x and are fine)
        ratio = first / expected
        if ratio < self.warn_ratio:
            return []
        if count is not None and first - expected < self.logit_margin:
            # random logits of std s add ~s^2/2 nats to ln V whatever V is; default inits (T5's unit-scale output
            # layer, s ~1.5) start up to ~2 nats above a uniform guess, which is 1.5x ln V for a 16-token vocabulary
            return []
        sev = "error" if ratio >= self.error_ratio else "warning"
        return [Finding("init_loss", "train/loss", int(steps[0]), int(steps[0]), sev,
                        f"first loss {fmt_num(first)} is {ratio:.1f}x {what}: the initial logits are far too large "
                        f"(or the loss is computed wrong)",
                        {"first_loss": first, "expected": expected, "ratio": ratio, "vocab_size": count})]


def _early_grad_ratio(s: Series | None) -> float | None:
    """The largest gradient norm of the first 5 % of the log over the median of its second half."""
    steps, g = clean(s)
    if g.size < 10:
        return None
    later = float(np.median(g[g.size // 2:]))
    return float(np.max(g[: max(2, g.size // 20)])) / later if later > 0 else None


class TooGoodDetector(WholeRunDetector):
    """Loss near zero: memorisation, or targets that leak the input (then validation explodes)."""

    name = "too_good"
    requires = ("train/loss", "val/loss")

    def __init__(self, *, near_zero: float = 0.05, share_of_first: float = 0.02) -> None:
        self.near_zero = near_zero
        self.share_of_first = share_of_first

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        steps, vals = clean(series.get("train/loss"))
        if vals.size < 5:
            return []
        zero = float(np.mean(vals == 0.0))
        if zero >= 0.5:  # exactly zero: no task gives that; every target is masked out or the loss is not computed
            at = int(steps[int(np.argmax(vals == 0.0))])
            return [Finding("too_good", "train/loss", at, int(steps[-1]), "error",
                            f"train loss is exactly 0 on {100 * zero:.0f}% of the logged steps from step {at}: "
                            f"nothing is being learned (all targets masked/ignored, or the loss is not computed)",
                            {"min_loss": 0.0, "first_loss": float(vals[0]), "zero_share": zero, "leak_pattern": False,
                             "exact_zero": True})]
        s, v = smoothed(steps, vals)
        low = float(np.min(v))
        first = float(vals[0])
        if not (0 <= low < self.near_zero and low < self.share_of_first * abs(first)):
            return []
        at = int(s[int(np.argmax(v < self.near_zero))])
        vs, vv = clean(series.get("val/loss"))
        # leak pattern: validation far above a near-zero train loss and climbing away from a best it reached
        # at once — a model that learned to copy never got better on held-out data. A validation loss that
        # first fell well below its start and then rose is memorisation (overfitting), not a leak.
        leak = vv.size >= 3 and float(vv[-1]) > 0.5 * abs(first) and float(vv[-1]) > 1.2 * float(np.min(vv))
        if leak:
            vmin = float(np.min(vv))
            learned_first = vmin < 0.8 * float(vv[0])
            # ... unless it ends far worse than an untrained model: confident wrong answers on held-out data are
            # targets the model learned to copy (a from-scratch copy task first picks up the unigram statistics)
            untrained = max(float(vv[0]), self.context_.profile.expected_init_loss or 0.0)
            leak = float(vv[-1]) > 1.5 * vmin and (not learned_first or float(vv[-1]) > 1.5 * untrained)
        vocab = self.context_.config.get("vocab_size")
        language_model = int(vocab) >= 1000 if vocab else \
            self.context_.profile.kind in ("lm_pretrain", "lm_finetune", "rnn_lm")
        if not leak and not language_model:
            return []  # a classifier memorising its training set is normal; natural text never has ~0 loss
        start = float(np.median(vals[:3]))
        copied = (not leak and not self.context_.profile.covers_start and start < self.near_zero and vv.size >= 3
                  and float(np.min(vv)) >= 100 * max(start, 1e-12) and float(vv[-1]) >= float(np.min(vv)))
        if copied:
            # an excerpt that opens with a language model already predicting its training text almost perfectly
            # while held-out text stays 100x worse and never improves: targets it can copy fit that; memorising
            # natural text down to ~0 takes many epochs of a small dataset, which nothing in the log shows
            leak = True
            msg = (f"train loss is already {fmt_num(start)} where this excerpt begins (step {int(steps[0])}) and falls "
                   f"to {fmt_num(low)}, while validation loss is {fmt_num(float(np.min(vv)))}-"
                   f"{fmt_num(float(np.max(vv)))} ({float(np.min(vv)) / max(start, 1e-12):.0f}x higher) and never "
                   "improves: the training targets are predictable from the inputs (leaked or misaligned labels)")
        elif leak:
            msg = (f"train loss fell to {fmt_num(low)} (from {fmt_num(first)}) by step {at} while validation loss is "
                   f"{fmt_num(float(vv[-1]))}: the targets are predictable from the inputs in training only "
                   f"(leaked or misaligned labels)")
        else:
            msg = f"train loss fell to {fmt_num(low)} (from {fmt_num(first)}) by step {at}: near zero, check for memorisation or leakage"
        return [Finding("too_good", "train/loss", at, int(steps[-1]), "error" if leak else "warning", msg,
                        {"min_loss": low, "first_loss": first, "val_last": float(vv[-1]) if vv.size else None,
                         "leak_pattern": bool(leak), "from_excerpt": bool(copied)})]


class DataOrderDetector(WholeRunDetector):
    """Level shifts of the loss that persist for many steps: batches ordered by domain, not shuffled.

    Residuals around a slow trend are nearly independent when data is shuffled; with domain-ordered
    data they come in long runs. Two numbers must both say so: the variance ratio of block means of
    the residuals (about 1 for independent noise) and the size of those block-mean shifts relative to
    the loss level (sequential-but-homogeneous data such as FineWeb shards shows a high ratio with
    shifts of ~1 %, domain-ordered data shifts of 5 % and more).
    """

    name = "data_order"
    requires = ("train/loss", "train/epoch")

    def __init__(self, *, min_ratio: float = 2.5, min_amplitude: float = 0.05, skip: float = 0.2,
                 trend_chunk: int = 40, max_step_noise: float = 0.15, min_swings: int = 6) -> None:
        self.min_swings = min_swings
        self.max_step_noise = max_step_noise
        self.min_ratio = min_ratio
        self.min_amplitude = min_amplitude
        self.skip = skip
        self.trend_chunk = trend_chunk

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        steps, vals = clean(series.get("train/loss"))
        if self.context_.points_averaged > 1:
            return self._windowed(steps, vals)
        if vals.size < 100:
            return []
        first = abs(float(vals[0]))
        start = int(self.skip * vals.size)  # past the fast descent
        x, st = vals[start:], steps[start:].astype(float)
        m = 8 if x.size >= 400 else 4
        k = x.size // m
        if k < 25:
            return []
        es, ev = clean(series.get("train/epoch"))
        if ev.size >= 3 and float(ev[-1]) > float(ev[0]):
            # ordered data repeats within each epoch (each epoch sees every source): a block of m points that spans
            # a whole epoch averages over all sources however they are ordered, so its mean cannot show the order,
            # and blocks that still vary are the trend's misfit (a loss falling to ~0 over few-step epochs)
            per_epoch = float(es[-1] - es[0]) / float(ev[-1] - ev[0])
            block_span = m * float(np.median(np.diff(st))) if st.size > 1 else float(m)
            if per_epoch <= block_span:
                return []
        ts, tv = chunk_medians(st, x, max(6, x.size // self.trend_chunk))
        trend = np.interp(st, ts, tv)
        r = (x - trend)[: k * m]
        var = float(np.var(r))
        if var <= 0:
            return []
        means = r.reshape(k, m).mean(axis=1)
        ratio = float(np.var(means) * m / var)
        level = max(float(np.median(np.abs(trend))), 0.1 * first)
        if level <= 0:
            return []
        amplitude = float(np.std(means)) / level
        if ratio < self.min_ratio or amplitude < self.min_amplitude:
            return []
        # domains come and go: the loss shifts up and down many times; one excursion (a ramp before a
        # blow-up, a single long spike) is a different phenomenon
        strong = means[np.abs(means) > 2.0 * np.sqrt(var / m)]
        swings = int(np.sum(np.diff(np.sign(strong)) != 0))
        if k >= 60 and swings < self.min_swings:
            return []
        if k < 60 and amplitude < 2 * self.min_amplitude:
            return []  # too few blocks to count swings (a sparse log): ask for shifts twice as large instead
        block_steps = st[: k * m: m]
        jumps = np.abs(np.diff(means))
        top = np.sort(np.argsort(jumps)[-3:] + 1)
        at = [int(block_steps[i]) for i in top]
        return [Finding("data_order", "train/loss", int(st[0]), int(st[-1]), "warning",
                        f"the loss shifts level by ~{100 * amplitude:.0f}% and stays there for tens of steps (variance "
                        f"ratio {ratio:.1f}, ~1 when batches are shuffled), e.g. around steps "
                        f"{', '.join(map(str, at))}: batches look ordered by source/domain",
                        {"variance_ratio": ratio, "amplitude": amplitude, "block": m, "shift_steps": at})]


    def _windowed(self, steps: np.ndarray, vals: np.ndarray) -> list[Finding]:
        """Window means (HF logs a mean over `w` steps): independent batches would make them vary sqrt(w)
        times less than single steps. With LM-sized batches (>= 4k tokens, where one step's loss varies by a
        few %), window means that still vary by more than 15%/sqrt(w) mean consecutive batches are alike:
        the data arrives in same-source runs."""
        w = self.context_.points_averaged
        tokens = self.context_.config.get("tokens_per_step") or (
            (self.context_.config.get("batch_size") or 0) * (self.context_.config.get("seq_len") or 0))
        if vals.size < 60 or tokens < 4096:
            return []
        first = abs(float(vals[0]))
        start = int(self.skip * vals.size)
        x, st = vals[start:], steps[start:].astype(float)
        ts, tv = chunk_medians(st, x, max(6, x.size // 8))
        trend = np.interp(st, ts, tv)
        level = max(float(np.median(np.abs(trend))), 0.1 * first)
        if level <= 0:
            return []
        noise = MAD_TO_SIGMA * float(np.median(np.abs(x - trend))) / level
        implied = noise * np.sqrt(w)
        if implied < self.max_step_noise:
            return []
        return [Finding("data_order", "train/loss", int(st[0]), int(st[-1]), "warning",
                        f"{w}-step window means of the loss vary by {100 * noise:.0f}% of its level; with {tokens:,} "
                        f"tokens per batch independent batches would need {100 * implied:.0f}% step-to-step noise: "
                        f"consecutive batches are alike (data ordered by source/domain)",
                        {"window_noise": noise, "implied_step_noise": implied, "window": w})]


def _chunked_block_medians(steps: np.ndarray, values: np.ndarray, chunks: int,
                           use_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Chunk medians of the 16-point block medians (or block noises) the spike detector already
    computed: the same picture as chunk medians of the raw points, at a sixteenth of the cost."""
    level, noise = block_stats_cached(values, 16)
    per_block = noise if use_noise else level
    if per_block.size < chunks:
        return chunk_medians(steps.astype(float), values, chunks) if not use_noise else (np.empty(0), np.empty(0))
    block_steps = steps[: per_block.size * 16: 16].astype(float)
    return chunk_medians(block_steps, per_block, chunks)


def _rel_noise(v: np.ndarray) -> float:
    """Eval-to-eval noise of a short curve relative to its level: MAD-sigma of the differences over sqrt 2."""
    if v.size < 4:
        return 0.0
    level = float(np.median(np.abs(v)))
    if level <= 0:
        return 0.0
    return diff_sigma(v) / level


class InstabilityDetector(WholeRunDetector):
    """Training getting less stable over time: the gradient norm or the step-to-step loss noise grows; or a
    validation loss that swings from eval to eval while the training loss falls smoothly."""

    name = "instability"
    requires = ("train/loss", "train/grad_norm", "val/loss")

    def __init__(self, *, grad_growth: float = 1.5, noise_growth: float = 2.5, chunks: int = 10) -> None:
        self.grad_growth = grad_growth
        self.noise_growth = noise_growth
        self.chunks = chunks

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        out = []
        gs, gv = clean(series.get("train/grad_norm"))
        if gv.size >= 5 * self.chunks:
            mids, meds = _chunked_block_medians(gs, gv, self.chunks)
            meds, mids = meds[1:], mids[1:]  # the first chunk holds the large initial norms
            i = int(np.argmin(meds[:-1]))
            j = i + 1 + int(np.argmax(meds[i + 1:]))
            growth = float(meds[j] / meds[i]) if meds[i] > 0 else 0.0
            # fine-tunes often end with larger norms than they start with (a pretrained model sits near a minimum
            # with tiny gradients): only a clearly larger growth is instability there
            need = self.grad_growth * (2.0 if self.context_.profile.kind == "lm_finetune" else 1.0)
            ls_, lv_ = clean(series.get("train/loss"))
            if growth >= need and meds[-1] >= 1.3 * meds[i] and not self._leaving_start(ls_, lv_, mids[i]):
                # alone, a growing gradient norm is common in healthy runs (small models, decaying LR, weight decay):
                # information until the loss shows trouble with it (the rules promote it then) or it grows 5x
                sev = "warning" if growth >= 5 * need / self.grad_growth else "info"
                # a norm that dipped after the first steps and only climbed back to about the initial norm (a log
                # that covers the start; within the growth this rule itself calls flat) is the dip refilling, not a
                # norm growing past anything the run had seen
                start = float(np.median(gv[:5])) if self.context_.profile.first_is_initial else math.inf
                back = float(meds[j]) < need * start
                sev = "info" if back else sev
                out.append(Finding("instability", "train/grad_norm", int(mids[i]), int(mids[j]), sev,
                                   f"gradient norm grew {growth:.1f}x over training (median {fmt_num(float(meds[i]))} "
                                   f"around step {int(mids[i])} -> {fmt_num(float(meds[j]))} around step {int(mids[j])}); "
                                   + (f"within {need:.1f}x of the first steps' {fmt_num(start)}: the dip after the start refilled" if back else
                                      "healthy runs see it flat or falling"),
                                   {"growth": growth, "from": float(meds[i]), "to": float(meds[j]), "type": "grad_growth"}))
        ls, lv = clean(series.get("train/loss"))
        # each chunk's noise is a median of 16-point block noises: fewer than ~6 blocks a chunk and the estimator's
        # own scatter (a block noise is off by ~20 %) passes for growth
        chunks = min(self.chunks, lv.size // (16 * 6))
        if chunks >= 5:
            mids, noise = _chunked_block_medians(ls, lv, chunks, use_noise=True)
            noise, mids = noise[2:], mids[2:]  # past the fast descent, whose differences are trend
            if noise.size >= 3 and noise.min() > 0:
                i = int(np.argmin(noise[:-1]))
                j = i + 1 + int(np.argmax(noise[i + 1:]))
                growth = float(noise[j] / noise[i])
                # noise that is still a tiny fraction of the loss scale (a classifier near 0) is no instability
                meaningful = noise[j] >= 0.01 * abs(float(lv[0]))
                # heavy-tailed per-batch losses (tiny batches) make each block's noise a rough estimate: their
                # ordinary swings are wider by as much as their extremes are (as the spike margins widen)
                prof = self.context_.profile
                need = self.noise_growth * (min(4.0, prof.tail_factor) if prof.heavy_tailed else 1.0)
                if growth >= need and noise[-1] >= 1.5 * noise[i] and meaningful and \
                        not self._leaving_start(ls, lv, mids[i]):
                    out.append(Finding("instability", "train/loss", int(mids[i]), int(mids[j]), "warning",
                                       f"step-to-step loss noise grew {growth:.1f}x (noise sigma "
                                       f"{fmt_num(float(noise[i]))} -> {fmt_num(float(noise[j]))})",
                                       {"growth": growth, "type": "noise_growth"}))
        out += self._val_swings(ls, lv, *clean(series.get("val/loss")))
        return out

    def _leaving_start(self, ls: np.ndarray, lv: np.ndarray, step: float) -> bool:
        """The quiet reference was measured on a model still at its untrained loss (within 10 % of it) that has
        been falling since: a near-uniform prediction scores every batch alike and has tiny gradients, so noise
        and gradient norm grow as it starts to learn. That is a slow start, not instability."""
        if not self.context_.profile.first_is_initial or lv.size < 10 or lv[0] <= 0:
            return False
        k = max(3, lv.size // 20)
        at = float(np.median(lv[max(0, int(np.searchsorted(ls, step)) - k // 2):][:k]))
        end = float(np.median(lv[-k:]))
        return at >= 0.9 * float(lv[0]) and end < at

    def _val_swings(self, ts: np.ndarray, tv: np.ndarray, vs: np.ndarray, vv: np.ndarray) -> list[Finding]:
        """Held-out loss jumping >= 15 % from one eval to the next (second half of the run) while the train loss
        moves smoothly: the weights (or BatchNorm statistics) are swinging — the optimizer is not settling."""
        if vv.size < 8 or tv.size < 8:
            return []
        half_v = vv[vv.size // 2:]
        half_t = tv[tv.size // 2:]
        v_noise, t_noise = _rel_noise(half_v), _rel_noise(half_t)
        if v_noise < 0.15 or t_noise > v_noise / 3:
            return []
        return [Finding("instability", "val/loss", int(vs[vs.size // 2]), int(vs[-1]), "warning",
                        f"validation loss swings by ~{100 * v_noise:.0f}% from one evaluation to the next in the second "
                        f"half of the run (e.g. {fmt_num(float(half_v.min()))} .. {fmt_num(float(half_v.max()))}) while "
                        f"the training loss moves by ~{100 * t_noise:.0f}%", {"type": "val_swings",
                                                                             "val_noise": v_noise,
                                                                             "train_noise": t_noise})]


class ChanceLevelDetector(WholeRunDetector):
    """A classifier whose held-out accuracy sits at 1/C while its loss sits at ln C: it predicts the class prior and
    ignores its inputs — the signature of labels that do not pair with the inputs (Qwen2.5 post-mortem), whatever
    the training loss does (a model can memorise shuffled labels on its training set)."""

    name = "chance_level"
    requires = ("val/loss", "val/accuracy", "train/loss")

    def __init__(self, *, min_points: int = 4, tol: float = 0.35) -> None:
        self.min_points = min_points
        self.tol = tol

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        vs, vv = clean(series.get("val/loss"))
        as_, av = clean(series.get("val/accuracy"))
        if vv.size < self.min_points or av.size < self.min_points or self.context_.profile.kind != "classifier":
            return []
        half_v, half_a = vv[vv.size // 2:], av[av.size // 2:]
        acc = float(np.median(half_a))
        if acc > 1.0:
            acc /= 100.0  # logged in percent
        if not 0 < acc < 0.5:
            return []
        loss = float(np.median(half_v))
        # C from the config, else from a loss at ln C (a uniform guess), else from the accuracy (1/C is coarse:
        # 10.6 % rounds to 9 classes where the loss 2.30 says 10)
        c = self.context_.profile.n_classes or _uniform_guess(loss) or round(1 / acc)
        if c < 2:
            return []
        chance_acc = abs(acc * c - 1) <= self.tol
        chance_loss = 0.95 * math.log(c) <= loss <= 1.15 * math.log(c)
        if not (chance_acc and chance_loss):
            return []
        d = np.diff(vv)
        steady = bool(np.all(d <= 1e-6 * loss)) and float(vv[-1]) < float(vv[0])  # never rises: learning, slowly
        return [Finding("plateau", "val/loss", int(vs[0]), int(vs[-1]), "warning",
                        f"validation accuracy {100 * acc:.1f}% and loss {fmt_num(loss)} sit at chance for {c} classes "
                        f"(1/{c} = {100 / c:.1f}%, ln({c}) = {math.log(c):.3f}): the model predicts the class prior "
                        f"and ignores its inputs", {"level": loss, "flat_since": int(vs[0]), "flat_share": 1.0,
                                                     "uniform_classes": c, "val_accuracy": acc,
                                                     "type": "chance_level", "tail_improvement": 0.0,
                                                     "steady_descent": steady})]


class CreepDetector(WholeRunDetector):
    """A training loss that creeps up over the whole log: no single jump, but chunk after chunk a little higher —
    a run resumed with its LR schedule restarted at the peak, an LR too high to settle, a drifting data mix. A
    healthy run's loss never rises steadily over hundreds of points."""

    name = "creep"
    requires = ("train/loss", "val/loss")

    def __init__(self, *, chunks: int = 10, min_points: int = 200, min_rise: float = 0.03,
                 min_rank_corr: float = 0.85) -> None:
        self.chunks = chunks
        self.min_points = min_points
        self.min_rise = min_rise
        self.min_rank_corr = min_rank_corr

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        ts, tv = clean(series.get("train/loss"))
        if tv.size < self.min_points:
            return []
        mids, meds = chunk_medians(ts.astype(float), tv, self.chunks)
        if meds.size < 5 or meds[0] <= 0:
            return []
        rise = float(meds[-1] / meds[0] - 1)
        ranks = np.argsort(np.argsort(meds))
        corr = float(np.corrcoef(ranks, np.arange(meds.size))[0, 1])
        if rise < self.min_rise or corr < self.min_rank_corr:
            return []
        vs, vv = clean(series.get("val/loss"))
        if vv.size >= 3 and float(vv[-1]) < float(vv[0]):
            return []  # held-out loss still improving: a harder data mix, not a run going wrong
        return [Finding("divergence", "train/loss", int(ts[0]), int(ts[-1]), "warning",
                        f"train/loss crept up {100 * rise:.0f}% over the log ({fmt_num(float(meds[0]))} -> "
                        f"{fmt_num(float(meds[-1]))}), chunk after chunk (rank correlation {corr:.2f}) with no single "
                        f"jump", {"type": "creep", "best": float(meds[0]), "best_step": int(mids[0]),
                                  "peak": float(meds[-1]), "rise": rise, "rank_corr": corr})]


class PeakLRStallDetector(WholeRunDetector):
    """A from-scratch language model whose loss stalls far above what such models reach while the logged LR sits
    near its peak, and falls again only once the LR decays: steps too large to descend into the valley."""

    name = "peak_lr_stall"
    requires = ("train/loss", "train/lr")

    def __init__(self, *, at_peak: float = 0.7, min_share: float = 0.25, max_change: float = 0.03,
                 later_drop: float = 0.03) -> None:
        self.at_peak = at_peak
        self.min_share = min_share
        self.max_change = max_change
        self.later_drop = later_drop

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        prof = self.context_.profile
        expected = prof.expected_init_loss
        if not (prof.first_is_initial and prof.kind in ("lm_pretrain", "rnn_lm") and expected):
            return []  # (the yardstick of what such a model reaches needs ln V and the untrained start)
        ts, tv = clean(series.get("train/loss"))
        ls, lv = clean(series.get("train/lr"))
        if tv.size < 20 or lv.size < 10 or float(lv.max()) <= 0 or float(lv[-1]) > 0.3 * float(lv.max()):
            return []  # (no decay after the peak: nothing to compare the peak stretch with)
        s, v = smoothed(ts, tv)
        a, b = float(s[0]), float(s[-1])
        # from the end of any warmup (the LR within 5 % of its peak) to the last step within 30 % of it before the LR
        # first leaves that band (a cyclic schedule that dips to a fifth of its peak between its crests is not 'near
        # its peak' over the dips)
        start = max(float(ls[int(np.argmax(lv >= 0.95 * float(lv.max())))]), a + 0.05 * (b - a))
        dips = np.flatnonzero((ls >= start) & (lv < self.at_peak * float(lv.max())))
        end = float(ls[dips[0] - 1]) if dips.size and dips[0] > 0 else \
            float(ls[lv >= self.at_peak * float(lv.max())][-1])
        inside = v[(s >= start) & (s <= end)]
        if end - start < self.min_share * (b - a) or inside.size < 8 or end > b - 0.1 * (b - a):
            return []
        q = max(2, inside.size // 4)
        before, after = float(np.median(inside[:q])), float(np.median(inside[-q:]))
        last = float(np.median(v[-max(3, v.size // 10):]))
        # byte/char-level models reach 0.3-0.45 ln V, token-level ones 0.2-0.35 (as the plateau detector's yardstick)
        reach = (0.45 if expected < math.log(1000) else 0.35) * expected
        change = (before - after) / before if before > 0 else 0.0
        if change >= self.max_change or after <= reach or last > (1 - self.later_drop) * after:
            return []
        return [Finding("plateau", "train/loss", int(start), int(end), "warning",
                        f"train/loss stalled at ~{fmt_num(after)} (it changed {-100 * change:+.1f}%) while the LR stayed "
                        f"within {100 * (1 - self.at_peak):.0f}% of its peak {fmt_num(float(lv.max()))} (steps "
                        f"{int(start)}-{int(end)}), far above the ~{fmt_num(reach)} ({prof.init_basis} x "
                        f"{reach / expected:.2f}) such models reach; it fell again only as the LR decayed, to "
                        f"{fmt_num(last)}",
                        {"type": "peak_lr_stall", "level": after, "flat_since": int(start),
                         "flat_share": (end - start) / (b - a), "tail_improvement": change,
                         "first": float(np.median(tv[:5])), "uniform_classes": None, "steady_descent": False,
                         "end_level": last, "peak_lr": float(lv.max())})]
