"""Learning-rate schedule faults, read from the logged LR trace (or, without one, from the config):
no warmup, restarts / jumps back up, and a decay horizon shorter than the run."""

from __future__ import annotations


import numpy as np

from ..findings import Finding
from ..model import Series
from ._stats import MAD_TO_SIGMA, diff_sigma
from .base import fmt_num
from .wholerun import WholeRunDetector, clean


class LRScheduleDetector(WholeRunDetector):
    name = "lr_schedule"
    requires = ("train/lr", "train/loss")

    def __init__(self, *, warm_start: float = 0.5, jump: float = 0.2, floor_share: float = 0.25) -> None:
        self.warm_start = warm_start
        self.jump = jump
        self.floor_share = floor_share

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        steps, lr = clean(series.get("train/lr"))
        if lr.size < 5 or lr.max() <= 0:
            return self._from_config(series)
        out = []
        peak = float(lr.max())
        p = int(np.argmax(lr >= 0.98 * peak))  # the first time the schedule reaches its peak (restarts repeat it)
        if not self.context_.profile.covers_start:
            # an excerpt may begin after the schedule's peak, and then its highest LR is the restart itself: a rise
            # counts from the first fall below the LR logged before it (the decay the excerpt shows), once the excerpt
            # shows four points of that decay before the rise: fewer cannot tell a restart by design from a bug
            fell = np.flatnonzero(lr[1:] < 0.98 * np.maximum.accumulate(lr)[:-1])
            if fell.size and int(fell[0]) < p:
                q = int(fell[0])
                up = np.flatnonzero(lr[q:] - np.minimum.accumulate(lr[q:]) > self.jump * peak)
                if up.size and int(up[0]) >= 4:
                    p = q
        first, last = float(lr[0]), float(lr[-1])
        run_len = float(steps[-1] - steps[0]) or 1.0
        decays = last < 0.7 * peak
        ls, _lv = clean(series.get("train/loss"))
        run_start = float(min(steps[0], ls[0])) if ls.size else float(steps[0])
        early_log = steps[0] - run_start <= max(10, 0.02 * run_len) and self.context_.profile.covers_start
        n = int(self.context_.max_steps or steps[-1] - run_start + 1)
        w = max(1, round(0.02 * n))
        # the first logged LR must come early enough that the usual warmup would still show in it (half-way through
        # a 2 % warmup): an LR first logged at step 500 at its peak says nothing of a 300-step warmup before it
        early_log = early_log and steps[0] <= max(10, 0.5 * w)
        # a warmup the config sets, seen as a first logged LR below the peak: coarse logging caught its end only
        cfg = self.context_.config
        warm_in_config = (_positive(cfg.get("warmup_steps")) or _positive(cfg.get("warmup_ratio"))) and first < 0.98 * peak
        if first >= self.warm_start * peak and decays and early_log and not warm_in_config:
            # a warning when it hurts or is likely to: a pre-training-sized LR, or a loss that rose in the first
            # 5% of the run; a fine-tuning LR that started fine is only advice
            ls_, lv_ = clean(series.get("train/loss"))
            early = lv_[ls_ <= ls_[0] + 0.05 * run_len] if lv_.size else lv_
            # (one point above the start that the next steps fall back from is a noisy batch, not damage: the
            # rise must hold over two points or be a blow-up of 1.5x)
            above = early[1:] > 1.1 * float(early[0]) if early.size > 1 and float(early[0]) > 0 else np.zeros(0, bool)
            hurt = bool(above.sum() >= 2 or (above.any() and float(early[1:].max()) > 1.5 * float(early[0])))
            # warmup matters where the run context says so (Adam, from scratch); elsewhere (SGD RNNs, fine-tunes,
            # small classifiers) no warmup is advice unless the curve shows the damage
            prof = self.context_.profile
            # (1e-4: a pre-training-sized LR, where the handbook's 0.5-2 % warmup matters)
            severity = "warning" if hurt or (prof.warmup_needed and prof.first_is_initial and peak >= 1e-4) else "info"
            out.append(Finding("lr_schedule", "train/lr", int(steps[0]), int(steps[min(p, lr.size - 1)]), severity,
                               f"no LR warmup: the learning rate starts at {fmt_num(first)} ({100 * first / peak:.0f}% of "
                               f"its peak {fmt_num(peak)}); warm up over 0.5-2% of the steps (~{w} of {n})",
                               {"type": "no_warmup", "first_lr": first, "peak_lr": peak, "suggested_warmup": w}))
        # a rise after the schedule has started to decay: restarts or a wrong step counter
        running_min = np.minimum.accumulate(lr[p:])
        rise = lr[p:] - running_min
        j = np.flatnonzero(rise > self.jump * peak)
        if j.size:
            k = p + int(j[0])
            low_i = p + int(np.argmin(lr[p:k + 1]))
            n_restarts = int(np.sum(np.diff((rise > self.jump * peak).astype(int)) == 1) + (1 if rise[0] > 0 else 0))
            design = restarts_by_design(steps[p:], lr[p:], peak, self.jump, self.context_.config) or \
                unharmed_warm_restarts(steps[p:], lr[p:], peak, self.jump, series)
            out.append(Finding("lr_schedule", "train/lr", int(steps[low_i]), int(steps[k]),
                               "info" if design else "warning",
                               f"the learning rate jumps back up from {fmt_num(float(lr[low_i]))} at step "
                               f"{int(steps[low_i])} to {fmt_num(float(lr[k]))} at step {int(steps[k])} after decaying "
                               f"(schedule restarts{'' if n_restarts <= 1 else f', {n_restarts} times'})"
                               + (f"; {design}" if design else ""),
                               {"type": "restart", "low": float(lr[low_i]), "high": float(lr[k]), "at": int(steps[k]),
                                "restarts": max(1, n_restarts), "by_design": bool(design)}))
        elif decays:
            floor = float(lr[p:].min())
            at_floor = np.flatnonzero(lr[p:] <= floor + 0.01 * abs(floor) + 1e-30)  # abs: a decay may overshoot 0
            reach = p + int(at_floor[0])
            # the share of the run at the floor: in an excerpt the global step numbers still count from the run's
            # start, so its share is of everything up to the last step, not of the part that was logged
            span = float(steps[-1]) if not self.context_.profile.covers_start and steps[0] > 0 else run_len
            flat_share = (steps[-1] - steps[reach]) / (span or 1.0)
            # a staircase (StepLR / MultiStepLR: a few levels, each held for many logged points) holds its last
            # level for the last quarter to third of the run by design; only a last stage over half the run is long
            tail = lr[p:]
            changes = int(np.count_nonzero(np.abs(np.diff(tail)) > 1e-6 * peak))
            staircase = changes <= 5 and tail.size >= 4 * (changes + 1)
            if flat_share >= (max(self.floor_share, 0.5) if staircase else self.floor_share) and floor < 0.5 * peak:
                out.append(Finding("lr_schedule", "train/lr", int(steps[reach]), int(steps[-1]), "warning",
                                   f"the learning rate reached its floor {fmt_num(floor)} at step {int(steps[reach])} and "
                                   f"stayed there for the last {100 * flat_share:.0f}% of the run: the decay horizon is "
                                   f"shorter than the run", {"type": "short_decay", "floor": floor,
                                                             "reached_at": int(steps[reach]), "flat_share": flat_share}))
        return out

    def _from_config(self, series: dict[str, Series]) -> list[Finding]:
        cfg = self.context_.config
        out = []
        sched = str(cfg.get("schedule") or "").lower()
        decaying = sched not in ("", "constant", "none", "constant_with_warmup") or cfg.get("decay_lr") is True
        warm = cfg.get("warmup_steps")
        if warm == 0 and not cfg.get("warmup_ratio") and decaying and cfg.get("decay_lr") is not False:
            out.append(Finding("lr_schedule", "config", 0, 0, "info",
                               "no LR warmup in the config (warmup 0) for a decaying schedule; warm up over 0.5-2% of "
                               "the steps", {"type": "no_warmup", "source": "config"}))
        decay, total = cfg.get("decay_steps"), cfg.get("max_steps")
        if decay and total and decay < 0.8 * total and cfg.get("decay_lr") is not False:
            out.append(Finding("lr_schedule", "config", int(decay), int(total), "info",
                               f"the LR decay horizon ({decay} steps) is shorter than the run ({total} steps): the last "
                               f"{100 * (1 - decay / total):.0f}% trains at the floor LR or restarts",
                               {"type": "short_decay", "source": "config", "decay_steps": decay, "max_steps": total}))
        return out


#: Schedule names in a config that restart the LR on purpose (SGDR, cyclic / one-cycle policies).
RESTART_SCHEDULES = ("restart", "sgdr", "cyclic", "cycle", "triangular")


def restarts_by_design(steps: np.ndarray, lr: np.ndarray, peak: float, jump: float, cfg) -> str:
    """Why LR restarts look deliberate, or "" when they do not. The config names a restarting schedule; or the
    trace is SGDR's (Loshchilov & Hutter 2017, T_mult 2 in their runs): the LR jumps back to its peak in one
    logged step, at least twice, and each cycle is clearly longer than the one before. A step counter that wraps
    at the decay horizon restarts with equal cycles (and with its warmup, a ramp rather than a jump)."""
    sched = str(cfg.get("schedule") or cfg.get("lr_scheduler_type") or "").lower()
    if any(w in sched for w in RESTART_SCHEDULES):
        return f"the config's schedule ({sched}) restarts the LR by design"
    up = np.flatnonzero((np.diff(lr) > jump * peak) & (lr[1:] >= 0.9 * peak)) + 1
    if up.size < 2:
        return ""
    edges = np.concatenate([[float(steps[0])], steps[up].astype(float)])
    cycles = np.diff(edges)
    if np.all(cycles[1:] >= 1.5 * cycles[:-1]):
        return ("cycles of " + ", ".join(str(int(c)) for c in cycles) + " steps, each longer than the last: "
                "cosine annealing with warm restarts (SGDR), restarts by design")
    return ""


#: Share of its peak an LR must have annealed down to before a restart for the restart to end a full anneal.
ANNEALED = 0.05


def unharmed_warm_restarts(steps: np.ndarray, lr: np.ndarray, peak: float, jump: float,
                           series: dict[str, Series]) -> str:
    """Why hard restarts with equal cycles look deliberate, or "" when they do not. SGDR with T_mult 1 (HF's
    cosine_with_restarts) anneals the LR smoothly to ~0 and jumps back to its peak in one logged step; a step
    counter wrapping at the decay horizon can look the same, so the loss decides: after a deliberate warm restart
    it goes on as before, after a harmful one it rises (the held-out loss above its last value before the restart,
    the training loss above its level before by more than its own noise). A restart that repeats a warmup ramp, one
    from a staircase (StepLR) floor, or one from the middle of a decay (a resumed job) is none of this."""
    up = np.flatnonzero((np.diff(lr) > jump * peak) & (lr[1:] >= 0.9 * peak)) + 1
    if not up.size:
        return ""
    edges = np.concatenate([[0], up])
    for a, b in zip(edges[:-1], edges[1:]):
        cycle = lr[a:b]
        # annealed: down to a few % of the peak, through many values (a cosine or linear decay, not a staircase)
        if cycle[-1] > ANNEALED * peak or np.unique(cycle).size < 4 or np.any(np.diff(cycle) > 0):
            return ""
    ls, lv = clean(series.get("train/loss"))
    if lv.size < 8:
        return ""
    vs, vv = clean(series.get("val/loss"))
    noise = diff_sigma(lv)
    judged = 0
    for i, (start, k) in enumerate(zip(edges[:-1], up)):
        at = float(steps[k])
        # compare a quarter cycle on each side (at least three logging intervals)
        half = max(3 * float(steps[k] - steps[k - 1]), (at - float(steps[start])) / 4)
        before = lv[(ls < at) & (ls >= at - half)]
        after = lv[(ls >= at) & (ls < at + half)]
        # a coarse log (a logging interval that varies, or every 5th point kept) may hold fewer than three points in
        # that window: the last / first three logged points of the cycle on either side are then the window
        if before.size < 3:
            before = lv[(ls < at) & (ls >= float(steps[start]))][-3:]
        if after.size < 3:
            nxt = float(steps[up[i + 1]]) if i + 1 < up.size else np.inf
            after = lv[(ls >= at) & (ls < nxt)][:3]
        if before.size < 3 or after.size < 3:
            continue  # (a restart at an end of the log: the loss cannot say)
        judged += 1
        # medians: one noisy batch just after the restart (a loss near 0 where one batch logs 100x) is no rise of
        # the loss's level (the median's standard error is ~1.25x the mean's)
        m_before, m_after = float(np.median(before)), float(np.median(after))
        if m_after - m_before > max(0.02 * abs(m_before), 2.5 * noise * np.sqrt(1 / before.size + 1 / after.size)):
            return ""
        vb, va = vv[vs < at], vv[(vs >= at) & (vs < at + 2 * half)]
        if vb.size and va.size and float(va.max()) > 1.02 * float(vb[-1]):
            return ""
    if not judged:
        return ""
    after = "them" if judged == up.size else f"the {judged} the log shows both sides of"
    return (f"{up.size} hard restart(s), each at the end of a full anneal (to <= {100 * ANNEALED:.0f}% of the peak), "
            f"with no rise of the loss after {after}: cosine annealing with warm restarts, restarts by design")


class ClipSaturationDetector(WholeRunDetector):
    """Gradient clipping active on most steps: the effective step is smaller than the LR says."""

    name = "clip_saturation"
    requires = ("train/grad_norm", "train/loss", "val/loss")

    def __init__(self, *, share: float = 0.7, ratio: float = 1.5, skip: float = 0.05) -> None:
        self.share = share
        self.ratio = ratio
        self.skip = skip

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        clip = self.context_.config.get("grad_clip")
        steps, g = clean(series.get("train/grad_norm"))
        if not clip or clip <= 0 or g.size < 20:
            return []
        start = int(self.skip * g.size)
        frac = float(np.mean(g[start:] > clip))
        med = float(np.median(g[start:]))
        # norms hovering around the threshold are normal with clip 1.0; a median well above it is not
        if frac < self.share or med < self.ratio * clip:
            return []
        msg = (f"gradient clipping at {fmt_num(clip)} was active on {100 * frac:.0f}% of the steps (median "
               f"norm {fmt_num(med)}, {med / clip:.1f}x the threshold): updates are rescaled nearly every step")
        severity = "warning"
        prof = self.context_.profile
        if prof.heavy_tailed and med < 10 * clip:
            # the gradient of one or two samples carries the whole sampling noise that a batch mean averages away:
            # its norm sits several times above a clip set for averaged batches, and the loss says whether it hurts
            severity = "info"
            msg += ("; the per-point losses are heavy-tailed (tiny batches), whose gradient norms are that much "
                    "larger by nature")
        learned = _learned_under_clipping(series, prof)
        if severity == "warning" and learned:
            # the curve is the witness: clipped steps that took the loss to a quarter of its start and the held-out
            # loss to under half of its first evaluation did not hold training back (a seq2seq model leaving its
            # plateau: the gradient norm grows 10x as the loss drops)
            severity = "info"
            msg += f"; {learned}: the clipped updates still learned"
        return [Finding("grad_norm", "train/grad_norm", int(steps[start]), int(steps[-1]), severity, msg,
                        {"type": "clip_saturation", "clip": clip, "share_clipped": frac, "median_norm": med})]


def _learned_under_clipping(series: dict[str, Series], prof=None) -> str:
    """How far the losses fell where they fell a long way (train to under 1/4 of its first points, held-out loss
    to under 1/2 of its first evaluation and still near its best at the end), or "" otherwise. A from-scratch run
    whose untrained loss is known (ln V, ln C) learned a long way once its training loss is under half of it with
    the held-out loss falling too: a language model converges at ~0.3-0.45 ln V, never at 1/4 of its start."""
    ts, tv = clean(series.get("train/loss"))
    vs, vv = clean(series.get("val/loss"))
    expected = getattr(prof, "expected_init_loss", None)
    if expected and prof.first_is_initial and tv.size >= 20 and vv.size >= 2 and float(vv[-1]) < float(vv[0]):
        last = float(np.median(tv[-max(3, tv.size // 10):]))
        if 0 < last < 0.5 * expected:
            return (f"the training loss fell to {fmt_num(last)}, under half of the untrained {prof.init_basis} = "
                    f"{fmt_num(expected)}, and the held-out loss {fmt_num(float(vv[0]))} -> {fmt_num(float(vv[-1]))}")
    if tv.size < 20 or vv.size < 3:
        return ""
    first, last = float(np.median(tv[:5])), float(np.median(tv[-max(3, tv.size // 10):]))
    if not (first > 0 and last < 0.25 * first and float(vv[-1]) < 0.5 * float(vv[0])
            and float(vv[-1]) <= 1.5 * float(vv.min())):
        return ""
    return (f"the training loss fell {fmt_num(first)} -> {fmt_num(last)} and the held-out loss "
            f"{fmt_num(float(vv[0]))} -> {fmt_num(float(vv[-1]))}")


class ThroughputDetector(WholeRunDetector):
    """Step time growing (or tokens/s falling) and staying that way."""

    name = "throughput"
    requires = ("perf/step_time", "perf/tokens_per_sec")

    def __init__(self, *, slowdown: float = 0.2, chunks: int = 10, noise_sigmas: float = 4.0) -> None:
        self.slowdown = slowdown
        self.chunks = chunks
        self.noise_sigmas = noise_sigmas

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        from .wholerun import chunk_medians

        stepped = step_change(series)
        if stepped:
            return stepped
        for metric, worse_is_higher in (("perf/step_time", True), ("perf/tokens_per_sec", False)):
            steps, v, positive = _timings(series, metric)
            if positive < 5 * self.chunks:
                continue
            mids, meds = chunk_medians(steps.astype(float), v, self.chunks)
            early = float(np.median(meds[:3]))
            late = float(np.median(meds[-3:]))
            change = (late / early - 1) if worse_is_higher else (early / late - 1)
            if change < self.slowdown:
                continue
            # the run's own timing noise: one step's time scatters by ~4-8 % on the GPU benchmark runs, by 20-30 %
            # on a shared CPU whose load comes and goes; a slowdown is a fault only when the level moved by several
            # of those scatters (log scale, so speed-ups and slow-downs weigh alike)
            noise = diff_sigma(np.log(v))
            shift = abs(float(np.log(late / early)))
            # a 20-50 % slower step is worth knowing (shared machines, data-loader stalls); a run twice as slow is
            # a fault to chase, unless its step time wanders that much anyway
            severe = change >= 0.5 and shift >= self.noise_sigmas * noise
            noisy = "" if severe or change < 0.5 else (
                f"; one step's time scatters by {100 * (np.exp(noise) - 1):.0f}% (machine load), so a drift of this "
                "size is within the run's own timing noise")
            # load that comes and goes in periods (a shared machine) moves whole chunks while one step's scatter
            # stays small: a late level the first half of the log had already reached is no slowdown that stayed
            half = meds[: max(1, meds.size // 2)]
            slow_before = half[(half >= late / (1 + self.slowdown)) if worse_is_higher else
                               (half <= late * (1 + self.slowdown))]
            if severe and slow_before.size:
                severe = False
                k = int(np.flatnonzero(half == slow_before[0])[0])
                noisy = (f"; the step time had been as slow before (chunk median {fmt_num(float(slow_before[0]))} "
                         f"around step {int(mids[k])}): the machine's load comes and goes")
            return [Finding("throughput", metric, int(mids[3]), int(mids[-1]), "warning" if severe else "info",
                            f"training got {100 * change:.0f}% slower: {metric} median {fmt_num(early)} early vs "
                            f"{fmt_num(late)} late{noisy}",
                            {"early": early, "late": late, "slowdown": change, "step_noise": noise})]
        return []


def _positive(v) -> bool:
    """A number above 0 (a config value the caller set may be anything: a string, None, a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def warmup_points(n: int) -> int:
    """Leading points of a step-time series left out as compilation / warm-up (torch.compile's first step)."""
    return max(1, n // 50)


def _timings(series: dict[str, Series], metric: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The positive points of a step-time or throughput series with its compilation / warm-up points left out,
    and how many positive points there were in all."""
    steps, v = clean(series.get(metric))
    keep = v > 0
    steps, v = steps[keep], v[keep]
    skip = warmup_points(v.size)
    return steps[skip:], v[skip:], int(v.size)


#: A step change of the step time worth a warning: at least this much slower (a slow GPU in a 384-GPU job cost
#: BLOOM 5 %), by this many times one step's own scatter around its level (so a shared CPU whose steps scatter
#: by 20-30 % never qualifies), lasting this many logged points, to the end of the log.
STEP_CHANGE_MIN = 0.03
STEP_CHANGE_SIGMAS = 6.0
STEP_CHANGE_MIN_AFTER = 2


def step_change(series: dict[str, Series]) -> list[Finding]:
    """The step time jumping to a slower level at one step and staying there to the end of the log: a machine
    that got slower (a throttled or failing GPU, a slow node, a degraded link), not the scattered slow steps of
    a loaded machine. The split is the least-squares one of log(step time); the scatter is the robust spread of
    each side around its own median; every point after the change must sit above most points before it."""
    for metric, sign in (("perf/step_time", 1.0), ("perf/tokens_per_sec", -1.0)):
        # (the first steps' compilation: one 25 s step among 100 ms ones would be the least-squares split itself)
        steps, v, _ = _timings(series, metric)
        if v.size < 2 + STEP_CHANGE_MIN_AFTER:
            continue
        x = sign * np.log(v)  # higher is slower
        n = x.size
        c1, c2 = np.cumsum(x), np.cumsum(x * x)
        k = np.arange(2, n - STEP_CHANGE_MIN_AFTER + 1)  # points before the change
        left = c2[k - 1] - c1[k - 1] ** 2 / k
        right = (c2[-1] - c2[k - 1]) - (c1[-1] - c1[k - 1]) ** 2 / (n - k)
        cut = int(k[int(np.argmin(left + right))])
        gaps = np.diff(steps.astype(float))
        if gaps[cut - 1] > 3 * float(np.median(gaps)):
            continue  # the change fell in steps the log leaves out: a jump there cannot be told from a drift
        before, after = x[:cut], x[cut:]
        shift = float(np.median(after) - np.median(before))
        if shift < np.log1p(STEP_CHANGE_MIN):
            continue
        resid = np.abs(np.concatenate([before - np.median(before), after - np.median(after)]))
        scatter = MAD_TO_SIGMA * float(np.median(resid))
        # a slower machine runs at its new level as steadily as before; a stretch whose own times scatter nearly
        # as widely as the step (a loaded machine, or a few points of a short or thinned log) shows no new level
        scatter = max(scatter, MAD_TO_SIGMA * float(np.median(np.abs(after - np.median(after)))))
        if shift < STEP_CHANGE_SIGMAS * scatter or float(after.min()) <= float(np.quantile(before, 0.9)):
            continue
        if float(x[-1]) < float(np.median(before)) + shift / 2:
            continue  # the last point is back nearer the old level: a slow stretch that ended, not one that stayed
        early, late = float(np.exp(sign * np.median(before))), float(np.exp(sign * np.median(after)))
        unit = " ms" if metric == "perf/step_time" else ""
        return [Finding("throughput", metric, int(steps[cut]), int(steps[-1]), "warning",
                        f"training got {100 * np.expm1(shift):.0f}% slower at step {int(steps[cut])} and stayed there "
                        f"({metric} median {fmt_num(early)}{unit} before vs {fmt_num(late)}{unit} after, "
                        f"{n - cut} points to the "
                        f"end of the log); one step's time scatters by only {100 * np.expm1(scatter):.1f}% around its "
                        "level: a machine that got slower, not load noise",
                        {"type": "step_change", "early": early, "late": late, "slowdown": float(np.expm1(shift)),
                         "step_noise": scatter, "change_step": int(steps[cut])})]
    return []
