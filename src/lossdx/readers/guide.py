"""What each input format looks like and what lossdx takes from it: the table ``lossdx formats`` prints.

Data only. Every format a reader or text dialect can report in ``run.source["format"]`` has an entry, and
every one-line example is read back by the test of this module, so the guide cannot drift from the parsers.
"""

from __future__ import annotations

from typing import NamedTuple


class FormatGuide(NamedTuple):
    name: str  # the value of --input-format and of run.source["format"]
    kind: str  # the reader that holds it: a file format, or "text" for a stdout dialect
    example: str  # a typical record (a line, or a header and a line; a file name for binary formats)
    reads: str  # what is taken from it


GUIDE: tuple[FormatGuide, ...] = (
    FormatGuide("tensorboard", "file", "events.out.tfevents.1700000000.host.1234.0",
                "every scalar tag (loss, lr, grad norm, loss scale ...) by step; each run of a directory kept apart; "
                "corrupt records skipped with a note"),
    FormatGuide("hf_trainer_state", "file",
                '{"best_metric": null, "global_step": 10, "log_history": [{"loss": 2.1, "step": 10}]}',
                "log_history train rows, eval rows (eval_<set>_loss too), the run's max_steps, batch size, "
                "eval/save steps; the closing summary row is not a training point"),
    FormatGuide("json", "file", '{"loss": [2.31, 1.94, 1.72], "val_loss": [2.25, 2.01, 1.90]}',
                "one JSON document: a Keras history (one value per epoch; a shorter list spread over the longest, "
                "with a note), a list of {step, loss, ...} records, or either under one key"),
    FormatGuide("jsonl", "file", '{"step": 10, "loss": 3.21, "lr": 0.0006, "grad_norm": 1.4}',
                "every numeric field per record (nested keys joined with /), step from step/iter/global_step/_step"),
    FormatGuide("csv", "file", "step,train_loss,val_loss,lr\n10,3.21,,0.0006",
                "every numeric column by the step column (or row order); empty cells are 'not logged'"),
    FormatGuide("lightning_csv", "file", "epoch,step,train_loss,lr-AdamW,val_loss\n0,49,2.31,0.001,",
                "Lightning CSVLogger metrics.csv: sparse rows merged by step, the LearningRateMonitor column as LR"),
    FormatGuide("wandb_csv", "file", '"Step","run-a - train/loss","run-a - train/loss__MIN"\n"10","3.21","3.2"',
                "a W&B chart export: one run per '<run> - <metric>' column group, __MIN/__MAX companions dropped"),
    FormatGuide("wandb_history", "file", "_step,_runtime,_timestamp,train/global_step,train/loss\n0,0.41,1764000000.4,10,3.21",
                "a run's history saved as CSV: the trainer's step when logged (else _step), W&B's clock columns dropped"),
    FormatGuide("nanogpt", "text", "iter 10: loss 3.2210, time 893.76ms, mfu 16.68%",
                "train loss, step time (ms), MFU; 'step N: train loss X, val loss Y' evaluations"),
    FormatGuide("buildnanogpt_logtxt", "text", "250 val 6.1696",
                "build-nanogpt log.txt: train, val and HellaSwag lines by step"),
    FormatGuide("modded_nanogpt", "text", "step:125/1750 val_loss:4.2011 train_time:61000ms step_avg:488.00ms",
                "train/val loss, step time; the run's planned length"),
    FormatGuide("llmc", "text", "s:10 trl:10.9612 lr:0.000060 norm:15.37",
                "llm.c main.log: train loss (trl), val loss (tel), LR, grad norm"),
    FormatGuide("buildnanogpt", "text",
                "step    10 | loss: 10.955010 | lr 8.39e-07 | norm: 15.3421 | dt: 235.83ms | tok/sec: 22264.81",
                "build-nanogpt stdout: loss, LR, grad norm, step time, tokens/s; 'validation loss:' lines"),
    FormatGuide("megatron", "text",
                " iteration       10/  500000 | consumed samples:          640 | elapsed time per iteration (ms): "
                "1234.5 | learning rate: 1.500E-05 | global batch size:    64 | lm loss: 1.023400E+01 | "
                "loss scale: 65536.0 | grad norm: 5.123 | number of skipped iterations:   0 | "
                "number of nan iterations:   0 |",
                "Megatron-LM / DeepSpeed / GPT-NeoX: lm loss, LR, grad norm, loss scale, skipped and NaN iterations, "
                "step time, batch size, consumed samples; validation loss lines"),
    FormatGuide("fairseq", "text",
                "epoch 001 | loss 9.772 | ppl 873.1 | wps 4512 | ups 1.1 | wpb 4096 | bsz 8 | num_updates 100 | "
                "lr 0.0005 | gnorm 1.2",
                "fairseq (legacy, hydra, tqdm layouts) and fairseq-lua: loss by update, valid loss, LR, gnorm, "
                "loss scale"),
    FormatGuide("hf_console", "text", "{'loss': 1.112, 'grad_norm': 0.83, 'learning_rate': 0.0002, 'epoch': 0.06}",
                "the Trainer's printed dicts: train and eval rows; steps from logging_steps when a "
                "training_args.json is beside, else record numbers (said in a note)"),
    FormatGuide("keras", "text", "Epoch 3/150\n518/518 [==============================] - 536s 1s/step - loss: 6.5920 - val_loss: 6.2037",
                "Keras fit() per-epoch lines (also verbose=2 '4s - loss: ...'): loss, val_loss, per epoch"),
    FormatGuide("generic", "text", "epoch 3 | step 1200 | loss: 2.3140 | lr: 3.0e-04 | grad_norm: 0.91",
                "any 'name: value' / 'name value' line with a loss-like name: the step from step/iter/batch "
                "keys (epoch-relative counters made global), every other number by its name"),
    FormatGuide("md_logbook", "text", "## Loss  (then bullets: - Begin: 3.76 / - End: 3.29)",
                "a Markdown logbook: one record per page, each '## <metric>' section's bullet values"),
)


def guide_lines(width: int = 100) -> list[str]:
    """The guide as terminal lines: name, example (cut to the width), what is read (wrapped)."""
    import textwrap

    out: list[str] = []
    for g in GUIDE:
        out.append(f"{g.name}  ({'text dialect' if g.kind == 'text' else 'file format'})")
        example = g.example.replace("\n", " \u23ce ")
        room = max(20, width - 12)
        out.append("  example: " + (example if len(example) <= room else example[:room - 3] + "..."))
        out += textwrap.wrap("reads: " + g.reads, width=max(20, width - 2), initial_indent="  ",
                             subsequent_indent="         ")
    return out


__all__ = ["FormatGuide", "GUIDE", "guide_lines"]
