"""Loss forecast: "would training to 50k iterations help?" from a saturating power law L(t) = E + A t^-alpha.

The law is fitted to the steady-descent part of the train loss (after the first ``skip`` share of the steps,
where warmup and the fast initial drop do not follow it), on bin medians so spikes do not pull it. The interval
comes from a moving-block bootstrap of the bin residuals (they are autocorrelated), widened by a factor
``INTERVAL_SCALE`` tuned on half of the backtest runs (``benchmarks/forecast_backtest.py``), plus the noise of a
single logged point. The forecast refuses to extrapolate where the fit is poor and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .model import Run

#: tuned on the tuning half of the backtest runs (benchmarks/forecast_backtest.py --tune)
SKIP = 0.2
INTERVAL_SCALE = 10.0
LEVEL = 0.9  # two-sided interval
MAX_EXTRAPOLATION = 20.0  # times the last fitted step
MIN_POINTS = 12
MAX_MISFIT = 3.0  # rms bin residual / its white-noise level (from first differences); 1 = a perfect law
N_BINS = 120
N_BOOT = 100
_ALPHAS = np.exp(np.linspace(np.log(0.01), np.log(4.0), 80))


@dataclass
class PowerLaw:
    E: float
    A: float
    alpha: float

    def __call__(self, t: np.ndarray | float) -> np.ndarray | float:
        return self.E + self.A * np.power(np.asarray(t, dtype=np.float64), -self.alpha)


@dataclass
class Forecast:
    """What the fit says about training on to ``target_step``; ``ok`` False means it refused (``reason``)."""

    ok: bool
    reason: str
    target_step: float
    last_step: float
    last_loss: float
    fit_steps: tuple[float, float] = (0.0, 0.0)
    n_points: int = 0
    law: PowerLaw | None = None
    r2: float | None = None
    expected_loss: float | None = None
    interval: tuple[float, float] | None = None
    gain_per_10pct_compute: float | None = None
    gain_to_target: float | None = None
    worth_it: bool | None = None
    advice: str = ""
    tokens_per_step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ok": self.ok, "target_step": int(self.target_step), "last_step": int(self.last_step),
                             "last_loss": self.last_loss, "fit_steps": [int(x) for x in self.fit_steps],
                             "points": self.n_points}
        if not self.ok:
            d["reason"] = self.reason
            return d
        assert self.law is not None and self.interval is not None
        d.update({"expected_loss": self.expected_loss, "interval": list(self.interval), "level": LEVEL,
                  "E": self.law.E, "A": self.law.A, "alpha": self.law.alpha, "r2": self.r2,
                  "gain_to_target": self.gain_to_target, "gain_per_10pct_compute": self.gain_per_10pct_compute,
                  "worth_it": self.worth_it, "advice": self.advice})
        if self.tokens_per_step:
            d["target_tokens"] = int(self.target_step * self.tokens_per_step)
        return d

    def __str__(self) -> str:
        if not self.ok:
            return f"no forecast to step {int(self.target_step):,}: {self.reason}"
        lo, hi = self.interval  # type: ignore[misc]
        law = self.law
        assert law is not None
        tok = f" ({self.target_step * self.tokens_per_step:.3g} tokens)" if self.tokens_per_step else ""
        return (f"at step {int(self.target_step):,}{tok}: expected loss {self.expected_loss:.4f} "
                f"({LEVEL:.0%} interval {lo:.4f}..{hi:.4f}); now {self.last_loss:.4f} at step {int(self.last_step):,}\n"
                f"fit L(t) = {law.E:.4f} + {law.A:.4g} t^-{law.alpha:.3f} on steps {int(self.fit_steps[0]):,}.."
                f"{int(self.fit_steps[1]):,} ({self.n_points} points, R2 {self.r2:.3f}); irreducible level E = "
                f"{law.E:.4f}\n"
                f"gain per extra 10% compute at the target: {self.gain_per_10pct_compute:.4g}\n{self.advice}")


def _bins(t: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin medians by index (logged steps are near-uniform): robust to spikes, and fast on a million points."""
    if t.size <= n_bins:
        return t.astype(np.float64), y
    k = t.size // n_bins
    m = k * n_bins
    start = t.size - m  # drop the oldest remainder, keep the last point in
    tb = t[start:].reshape(n_bins, k).mean(axis=1)
    yb = np.median(y[start:].reshape(n_bins, k), axis=1)
    return tb, yb


def _solve(alphas: np.ndarray, lt: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """E, A and the sum of squared errors of the least-squares law for each exponent in ``alphas`` (one row
    each; ``y`` one curve for all rows, or one curve per row). E is kept >= 0: where the free fit puts it below 0,
    A is fitted through the origin. Each row gives bit for bit what a one-exponent fit gives: the reductions run
    along contiguous rows, and row-wise calls cost what one call costs on curves of a few dozen points."""
    n = lt.size
    add = np.add.reduce
    x = np.exp(np.multiply.outer(-alphas, lt))
    xm = add(x, axis=1) / n
    xc = x - xm[:, None]
    vx = add(xc * xc, axis=1)
    if y.ndim == 1:
        ym = add(y) / n
        yc = y - ym
    else:
        ym = add(y, axis=1) / n
        yc = y - ym[:, None]
    cov = add(xc * yc, axis=1)
    pos = vx > 0
    a = cov / vx if pos.all() else np.where(pos, cov / np.where(pos, vx, 1.0), 0.0)
    e = ym - a * xm
    neg = e < 0
    if neg.any():  # constrained: E = 0, A by least squares through the origin
        xn = x[neg]
        yn = y[neg] if y.ndim == 2 else y
        a[neg] = add(xn * yn, axis=1) / np.maximum(add(xn * xn, axis=1), 1e-300)
        e = np.where(neg, 0.0, e)
    r = y - e[:, None] - a[:, None] * x
    return e, a, add(r * r, axis=1)


def _grid_start(lt: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The golden-section bracket (log exponents) around the best exponent of the grid, per curve (rows of y)."""
    x = np.exp(-_ALPHAS[:, None] * lt[None, :])  # every exponent of the grid at once
    xm, ym = x.mean(axis=1, keepdims=True), y.mean(axis=-1)[..., None, None]
    xc = x - xm
    yy = y[..., None, :]
    a_all = (xc * (yy - ym)).sum(axis=-1) / np.maximum((xc * xc).sum(axis=1), 1e-300)
    e_all = ym[..., 0] - a_all * xm[:, 0]
    neg = e_all < 0
    if neg.any():
        rows, cols = np.nonzero(np.atleast_2d(neg))
        xn = x[cols]
        yn = np.atleast_2d(y)[rows]
        a2 = np.atleast_2d(a_all)
        a2[rows, cols] = (xn * yn).sum(axis=1) / np.maximum((xn ** 2).sum(axis=1), 1e-300)
        e_all = np.where(neg, 0.0, e_all)
    sses = ((yy - e_all[..., None] - a_all[..., None] * x) ** 2).sum(axis=-1)
    i = np.argmin(sses, axis=-1)
    last = len(_ALPHAS) - 1
    return np.log(_ALPHAS[np.maximum(0, i - 1)]), np.log(_ALPHAS[np.minimum(last, i + 1)])


def _golden(lt: np.ndarray, y: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exponent, E, A and SSE of the best law for each curve (rows of ``y``): grid, then golden section on the
    log exponent; the two probes of every curve are solved in one call."""
    lo, hi = _grid_start(lt, y)
    if y.ndim == 1:
        return _golden_one(lt, y, float(lo), float(hi), iterations)
    lo, hi = lo.copy(), hi.copy()
    m = lo.size
    y2 = np.vstack([y, y])
    g = (np.sqrt(5) - 1) / 2
    for _ in range(iterations):
        c, d = hi - g * (hi - lo), lo + g * (hi - lo)
        sse = _solve(np.exp(np.concatenate([c, d])), lt, y2)[2]
        left = sse[:m] < sse[m:]
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
    alpha = np.exp((lo + hi) / 2)
    e, a, sse = _solve(alpha, lt, y)
    return alpha, e, a, sse


_LOOKAHEAD = 4  # golden-section steps decided per solve call on one curve: 15 probe pairs (measured best of 2..5)


def _golden_one(lt: np.ndarray, y: np.ndarray, lo: float, hi: float,
                iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Golden section on one curve, ``_LOOKAHEAD`` steps per call: every bracket the next steps can reach is
    probed at once (a tree of 2^k brackets), then the path the comparisons take is walked. Each bracket is
    computed by the same float operations as one step after another would, so the result is bit for bit the
    sequential search's; on a curve of a few dozen points one call costs what one probe costs."""
    g = float((np.sqrt(5) - 1) / 2)
    done = 0
    while done < iterations:
        k = min(_LOOKAHEAD, iterations - done)
        nodes: list[tuple[float, float, float, float]] = []  # (lo, hi, c, d) breadth first: children 2i+1, 2i+2
        level = [(lo, hi)]
        for _ in range(k):
            nxt: list[tuple[float, float]] = []
            for lo_, hi_ in level:
                c, d = hi_ - g * (hi_ - lo_), lo_ + g * (hi_ - lo_)
                nodes.append((lo_, hi_, c, d))
                nxt += [(lo_, d), (c, hi_)]
            level = nxt
        m = len(nodes)
        sse = _solve(np.exp(np.array([nd[2] for nd in nodes] + [nd[3] for nd in nodes])), lt, y)[2]
        i = 0
        for _ in range(k):
            lo_, hi_, c, d = nodes[i]
            if sse[i] < sse[m + i]:
                lo, hi, i = lo_, d, 2 * i + 1
            else:
                lo, hi, i = c, hi_, 2 * i + 2
        done += k
    alpha = np.exp(np.array([(lo + hi) / 2]))
    e, a, sse = _solve(alpha, lt, y)
    return alpha, e, a, sse


def fit_power_law(t: np.ndarray, y: np.ndarray, iterations: int = 30) -> tuple[PowerLaw, float]:
    """Least squares over a grid of exponents (E and A are linear given alpha), refined by golden section.

    E is kept >= 0 (a cross-entropy cannot go below 0). Returns the law and its sum of squared errors.
    """
    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    alpha, e, a, sse = _golden(np.log(t), y, iterations)
    return PowerLaw(float(e[0]), float(a[0]), float(alpha[0])), float(sse[0])


def _fit_power_laws(t: np.ndarray, ys: np.ndarray, iterations: int = 30) -> list[PowerLaw]:
    """:func:`fit_power_law` of each row of ``ys`` (one shared ``t``), all rows at once: the bootstrap's fits."""
    t = np.asarray(t, dtype=np.float64)
    alpha, e, a, _ = _golden(np.log(t), np.asarray(ys, dtype=np.float64), iterations)
    return [PowerLaw(float(ei), float(ai), float(al)) for ei, ai, al in zip(e, a, alpha)]


def forecast_curve(steps: np.ndarray, losses: np.ndarray, target_step: float, skip: float = SKIP,
                   interval_scale: float = INTERVAL_SCALE, tokens_per_step: int | None = None,
                   seed: int = 0) -> Forecast:
    """Forecast the loss at ``target_step`` from a loss curve (steps ascending)."""
    steps = np.asarray(steps, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    ok = np.isfinite(losses) & (steps > 0)
    steps, losses = steps[ok], losses[ok]
    last_step = float(steps[-1]) if steps.size else 0.0
    last_loss = float(losses[-1]) if losses.size else float("nan")
    base: dict[str, Any] = dict(target_step=float(target_step), last_step=last_step, last_loss=last_loss,
                                tokens_per_step=tokens_per_step)
    if steps.size < MIN_POINTS:
        return Forecast(False, f"only {steps.size} finite loss points (need {MIN_POINTS})", **base)
    if target_step <= last_step:
        return Forecast(False, f"the target step {int(target_step):,} is not beyond the last logged step "
                               f"{int(last_step):,}", **base)
    t0 = steps[0] + skip * (steps[-1] - steps[0])
    win = steps >= t0
    t, y = steps[win], losses[win]
    base["fit_steps"] = (float(t[0]), float(t[-1])) if t.size else (0.0, 0.0)
    base["n_points"] = int(t.size)
    if t.size < MIN_POINTS:
        return Forecast(False, f"only {t.size} loss points after the first {skip:.0%} of the run (need {MIN_POINTS})",
                        **base)
    ratio = target_step / t[-1]
    if ratio > MAX_EXTRAPOLATION:
        return Forecast(False, f"the target is {ratio:.0f}x the last step; a fit on this run cannot say that far "
                               f"(at most {MAX_EXTRAPOLATION:g}x)", **base)
    tb, yb = _bins(t, y, N_BINS)
    law, sse = fit_power_law(tb, yb)
    sst = float(((yb - yb.mean()) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else 0.0
    base.update(law=law, r2=r2)
    resid_raw = y - law(t)
    sigma_obs = float(np.std(resid_raw))
    drop = float(law(t[0]) - law(t[-1]))
    res_b = yb - law(tb)
    d = np.diff(res_b)  # white noise level from first differences, robustly (MAD): one jump must not inflate it
    white = float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2)) if res_b.size > 2 else 0.0
    misfit = float(np.sqrt(np.mean(res_b ** 2)) / white) if white > 0 else float("inf")
    base["extra"] = {"misfit": misfit}
    if misfit > MAX_MISFIT:
        return Forecast(False, f"the loss after step {int(t[0]):,} bends away from a power law (residuals "
                               f"{misfit:.1f}x their noise level, limit {MAX_MISFIT:g}): a schedule change, restart "
                               f"or instability that a forecast would extrapolate wrongly", **base)
    sigma_bin = float(np.std(yb - law(tb)))
    if law.A <= 0 or drop <= 2 * sigma_bin:  # the fitted descent is within the noise of the bin medians
        return Forecast(False, "the loss is not descending in the fitted window (converged or on a plateau): "
                               "a power law has nothing to extrapolate; more steps of this run will not help "
                               "by themselves", **base)
    if law.alpha <= _ALPHAS[0] * 1.05 or law.alpha >= _ALPHAS[-1] * 0.95:
        return Forecast(False, f"the exponent is not constrained by the data (alpha at the search bound "
                               f"{law.alpha:.3g})", **base)
    # interval: moving-block bootstrap of the bin residuals around the fit
    rng = np.random.default_rng(seed)
    fitted = law(tb)
    res = yb - fitted
    n = res.size
    block = max(2, n // 10)
    nblocks = int(np.ceil(n / block))
    starts = np.array([rng.integers(0, n - block + 1, size=nblocks) for _ in range(N_BOOT)])
    boots = res[(starts[:, :, None] + np.arange(block)).reshape(N_BOOT, -1)[:, :n]]
    preds = np.array([law_b(target_step) for law_b in _fit_power_laws(tb, fitted + boots, iterations=6)])
    point = float(law(target_step))
    q = (1 - LEVEL) / 2
    lo_b, hi_b = np.quantile(preds, [q, 1 - q])
    z = 1.6448536269514722  # the 95th percentile of a normal: a 90 % two-sided interval
    half_lo = np.hypot(interval_scale * (point - lo_b), z * sigma_obs)
    half_hi = np.hypot(interval_scale * (hi_b - point), z * sigma_obs)
    interval = (point - float(half_lo), point + float(half_hi))
    gain10 = float(law(target_step) - law(1.1 * target_step))
    now = float(law(last_step))
    gain = now - point
    rel = gain / max(abs(now), 1e-12)
    rel10 = gain10 / max(abs(point), 1e-12)
    worth = bool(rel >= 0.01 and gain > (interval[1] - interval[0]) / 4)
    gap = now - law.E
    advice = (f"training on to step {int(target_step):,} ({target_step / last_step:.2g}x the steps) should lower "
              f"the loss by {gain:.4f} ({rel:.1%}); each further 10% of compute then buys {gain10:.4g} "
              f"({rel10:.2%}); {gap:.4f} above the irreducible level E: ")
    advice += ("worth it" if worth else "probably not worth it: the gain is small against the loss and the "
               "forecast's uncertainty; a bigger model or more data moves E, more steps do not")
    return Forecast(True, "", expected_loss=point, interval=interval, gain_per_10pct_compute=gain10,
                    gain_to_target=gain, worth_it=worth, advice=advice, **base)


def train_loss(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    s = run.get("train/loss") or run.get("val/loss")
    if s is None or len(s) == 0:
        return None
    return s.steps.astype(np.float64), s.values.astype(np.float64)


def forecast(run: Run, to_step: float | None = None, to_tokens: float | None = None, **kw: Any) -> Forecast:
    """Forecast ``run``'s train loss at ``to_step`` (or ``to_tokens``, using the config's tokens per step)."""
    from .exceptions import InputError
    from .facts import tokens_per_step

    curve = train_loss(run)
    if curve is None:
        raise InputError("the run has no train/loss (or val/loss) series to forecast")
    tps = tokens_per_step(run.config)
    if to_tokens is not None:
        if not tps:
            raise InputError("--to in tokens needs tokens per step: pass a --config with batch size and block size")
        to_step = to_tokens / tps
    if to_step is None:
        to_step = 2 * float(curve[0][-1])
    return forecast_curve(curve[0], curve[1], float(to_step), tokens_per_step=tps, **kw)


def forecast_for_report(run: Run) -> dict[str, Any] | None:
    """The forecast the analyze report carries: to the configured ``max_steps`` when the run stopped short of
    it, else to twice the steps; only where the fit is good (``None`` otherwise)."""
    curve = train_loss(run)
    if curve is None or curve[0].size < MIN_POINTS:
        return None
    last = float(curve[0][-1])
    max_steps = run.config.get("max_steps")
    target = float(max_steps) if isinstance(max_steps, (int, float)) and max_steps > last * 1.05 else 2 * last
    try:
        fc = forecast(run, to_step=target)
    except Exception:  # a forecast is an extra: it must never break the analysis  # noqa: BLE001
        return None
    if not fc.ok:
        return None
    d = fc.to_dict()
    if target == 2 * last:
        d["advice"] += ("; this assumes the LR schedule is stretched to the new length (past the end of a decayed "
                        "schedule the loss would not fall this way)")
    return d


__all__ = ["Forecast", "PowerLaw", "fit_power_law", "forecast", "forecast_curve", "forecast_for_report"]
