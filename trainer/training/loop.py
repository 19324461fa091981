"""The SPLADE training loop: AdamW + linear warm-up/decay, clipping, accumulation, GradCache, resume.

`Trainer` works on a `SpladeModel` and `TrainingExamples` you hand it; `run_training(config)` builds
both from a `TrainConfig` (what `splade-connectors train --config FILE` calls). Evaluation is a hook,
`evaluate(model) -> dict[str, float]`; the built-in one is `trainer.training.evaluate.BeirEvaluator`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from trainer.model import SpladeModel, resolve_device
from trainer.training.config import TrainConfig
from trainer.training.data import TrainingExamples, load_hf_examples, load_jsonl_examples
from trainer.training.gradcache import Features, cached_backward, full_precision
from trainer.training.losses import LossParts, RegularizerSchedule, SpladeLoss
from trainer.training.metrics import MetricsLog, active_dims
from trainer.training.mixed_precision import AutocastPlan, cached_measure, resolve_autocast
from trainer.training.sampler import NoDuplicatesBatchSampler
from trainer.training.state import (
    TrainerState,
    capture_rng,
    list_checkpoints,
    load_trainer_state,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
    seed_everything,
)

logger = logging.getLogger(__name__)

Evaluate = Callable[[SpladeModel], dict[str, float]]
FINAL_DIR = "final"


def linear_schedule(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor: linear 0->1 over warm-up, then linear 1->0 at `total_steps` (as transformers' "linear")."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def build_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and LayerNorm weights (the transformers convention).

    The query token weights of an inference-free model get `optim.query_weights_learning_rate` when set
    (sentence-transformers' `learning_rate_mapping` for the SparseStaticEmbedding; typically ~1e-3).
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    static: list[nn.Parameter] = []
    norm_params = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    o = config.optim
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("query_static.") and o.query_weights_learning_rate is not None:
            static.append(param)
            continue
        (no_decay if name.endswith("bias") or id(param) in norm_params else decay).append(param)
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if static:
        groups.append({"params": static, "weight_decay": o.weight_decay, "lr": o.query_weights_learning_rate})
    return torch.optim.AdamW(
        groups, lr=o.learning_rate, betas=(o.adam_beta1, o.adam_beta2), eps=o.adam_epsilon,
        fused=True if device.type == "cuda" else None,
    )


class Trainer:
    """Trains a `SpladeModel` with SpladeLoss(SparseMNRL) on (query, positive[, negatives]) examples."""

    def __init__(
        self,
        model: SpladeModel,
        examples: TrainingExamples,
        config: TrainConfig,
        *,
        evaluate: Evaluate | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(config.optim.device)
        self.model = model.to(device=self.device, dtype=torch.float32)
        if config.model.max_seq_length:
            self.model.max_seq_length = config.model.max_seq_length
        self.examples = examples
        self.evaluate = evaluate
        if model.is_inference_free and config.model.freeze_query_weights is not None:
            assert model.query_static is not None
            model.query_static.frozen = config.model.freeze_query_weights
            model.query_static.weight.requires_grad_(not config.model.freeze_query_weights)
        self.output_dir = Path(config.output_dir)
        o = config.optim
        self.sampler = NoDuplicatesBatchSampler(examples.rows, o.batch_size, seed=o.seed)
        per_epoch = len(self.sampler.epoch_batches(0)) // o.gradient_accumulation_steps
        if per_epoch == 0 and o.max_steps is None:
            raise ValueError(f"{len(examples)} examples give no full batch of {o.batch_size} (after removing duplicates)")
        self.total_steps = o.max_steps or per_epoch * o.epochs
        warmup = o.warmup_steps if o.warmup_steps is not None else math.ceil(self.total_steps * o.warmup_ratio)
        self.optimizer = build_optimizer(self.model, config, self.device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_schedule(warmup, self.total_steps))
        lc = config.loss
        lambda_query = lc.lambda_query
        if model.is_inference_free and "lambda_query" not in lc.model_fields_set:
            # as sentence-transformers trains inference-free models: no FLOPS on the static query side
            lambda_query = 0.0
            logger.info("inference-free model: no query regulariser (set loss.lambda_query to have one)")
        self.loss = SpladeLoss(
            scale=lc.scale, lambda_query=lambda_query, lambda_corpus=lc.lambda_corpus,
            query_threshold=lc.query_threshold, document_threshold=lc.document_threshold,
        )
        self.regularizer = RegularizerSchedule(
            lambda_query, lc.lambda_corpus, self.total_steps, lc.regularizer_warmup_ratio, lc.regularizer_schedule
        )
        self.step = 0
        self.metrics = MetricsLog(self.output_dir)
        self._accepts_type_ids = "token_type_ids" in getattr(model.tokenizer, "model_input_names", [])
        self._autocast_plan: AutocastPlan | None = None

    # ---- batches ------------------------------------------------------------------------------------
    def _tokenize(self, texts: Sequence[str], role: str) -> Features:
        prompt = self.model.prompts.get(role, "")
        texts = [prompt + t for t in texts]
        if self.model.do_lower_case:
            texts = [t.lower() for t in texts]
        limit = self.model.max_seq_length
        if role == "query" and self.config.model.query_max_seq_length:
            limit = min(limit, self.config.model.query_max_seq_length)
        static = self.model.query_static
        if role == "query" and static is not None:
            # the static query side sees tokens as at inference: no special tokens, its own length limit
            limit = min(static.max_seq_length, self.config.model.query_max_seq_length or static.max_seq_length)
            encoded = static.tokenizer(
                list(texts), padding=True, truncation=True, max_length=limit, add_special_tokens=False, return_tensors="pt"
            )
            return {k: encoded[k].to(self.device) for k in ("input_ids", "attention_mask")}
        encoded = self.model.tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
        keys = ["input_ids", "attention_mask"] + (["token_type_ids"] if self._accepts_type_ids else [])
        return {k: encoded[k].to(self.device) for k in keys if k in encoded}

    def _columns(self, indices: list[int]) -> list[Features]:
        rows = [self.examples[i] for i in indices]
        return [self._tokenize([r[c] for r in rows], "query" if c == 0 else "document") for c in range(len(rows[0]))]

    def _micro_batches(self) -> Iterator[list[int]]:
        """Batches from the sampler's state on, through epochs; endless when `max_steps` bounds the run."""
        while self.config.optim.max_steps is not None or self.sampler.state.epoch < self.config.optim.epochs:
            produced = False
            for batch in self.sampler:
                produced = True
                yield batch
            if not produced and len(self.sampler.epoch_batches(self.sampler.state.epoch)) == 0:
                return

    # ---- one step -----------------------------------------------------------------------------------
    @property
    def autocast_plan(self) -> AutocastPlan:
        """The precision of the forward passes (`optim.precision`; "auto" times a micro-step on first use)."""
        if self._autocast_plan is None:
            micro_batch = self.config.loss.mini_batch_size or self.config.optim.batch_size
            measure = cached_measure(self.model, self.device, micro_batch)
            self._autocast_plan = resolve_autocast(self.config.optim.precision, self.device, measure=measure)
        return self._autocast_plan

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        return self.autocast_plan.autocast(self.device)

    def _embed(self, features: Features, role: str = "document") -> torch.Tensor:
        with self._autocast():
            return self.model.embed(features, role)

    def _embed_query(self, features: Features) -> torch.Tensor:
        return self._embed(features, "query")

    def _backward(self, columns: list[Features], grad_scale: float) -> tuple[LossParts, list[torch.Tensor]]:
        mini = self.config.loss.mini_batch_size
        if mini is not None:
            embeds = [self._embed_query] + [self._embed] * (len(columns) - 1)
            return cached_backward(embeds, columns, self.loss, mini, device=self.device, grad_scale=grad_scale)
        embeddings = [full_precision(self._embed(c, "query" if i == 0 else "document")) for i, c in enumerate(columns)]
        parts = self.loss(embeddings[0], embeddings[1:])
        (parts.total * grad_scale).backward()
        return parts, [e.detach() for e in embeddings]

    def _train_step(self, micro_batches: list[list[int]]) -> dict[str, float]:
        _ = self.autocast_plan  # "auto" probes (and clears gradients) before this step accumulates any
        self.regularizer.apply(self.loss, self.step)
        accum = len(micro_batches)
        logged: dict[str, float] = {}
        for indices in micro_batches:
            parts, embeddings = self._backward(self._columns(indices), 1.0 / accum)
            values = parts.as_floats()
            values["query_active_dims"] = active_dims(embeddings[0])
            values["corpus_active_dims"] = active_dims(torch.cat(embeddings[1:]))
            self.metrics.add(values)
            logged = values
        max_norm = self.config.optim.max_grad_norm
        if max_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
            self.metrics.add({"grad_norm": float(norm)})
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return logged

    # ---- checkpoints --------------------------------------------------------------------------------
    def save(self, directory: Path | None = None) -> Path:
        directory = directory or self.output_dir / f"checkpoint-{self.step}"
        state = TrainerState(
            step=self.step,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            sampler=self.sampler.state_dict(),
            rng=capture_rng(),
            total_steps=self.total_steps,
        )
        save_checkpoint(directory, self.model, state)
        return directory

    def _cuda_devices(self) -> list[int]:
        if self.device.type != "cuda":
            return []
        return [self.device.index if self.device.index is not None else torch.cuda.current_device()]

    def resume(self, checkpoint: Path) -> None:
        """Load weights, optimiser, scheduler, sampler and RNG states from a checkpoint directory."""
        state = load_trainer_state(checkpoint)
        if state.total_steps != self.total_steps:
            raise ValueError(f"{checkpoint} was made for {state.total_steps} steps, this run has {self.total_steps}")
        saved = SpladeModel.from_pretrained(checkpoint)
        self.model.mlm.load_state_dict(saved.mlm.state_dict())
        if self.model.query_static is not None:
            if saved.query_static is None:
                raise ValueError(f"{checkpoint} has no query token weights; this run trains an inference-free model")
            with torch.no_grad():
                self.model.query_static.weight.copy_(saved.query_static.weight)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.sampler.load_state_dict(state.sampler)
        restore_rng(state.rng)
        self.step = state.step
        logger.info("resumed from %s at step %d of %d", checkpoint, self.step, self.total_steps)

    def _run_eval(self) -> dict[str, float]:
        if self.evaluate is None:
            return {}
        with torch.random.fork_rng(devices=self._cuda_devices()):
            self.model.eval()
            try:
                with torch.no_grad():
                    result = self.evaluate(self.model)
            finally:
                self.model.train()
        self.metrics.write(self.step, "eval", result)
        return result

    # ---- the loop -----------------------------------------------------------------------------------
    def train(self, resume_from: Path | None = None) -> Path:
        """Train to `total_steps`; returns the final model directory (`output_dir/final`)."""
        o, r = self.config.optim, self.config.run
        if resume_from is not None:
            self.resume(Path(resume_from))
        else:
            seed_everything(o.seed)
            if r.eval_at_start:
                self._run_eval()
        self.model.train()
        logger.info(
            "training %d steps: batch %d x %d accumulation, %d examples, GradCache mini-batch %s, device %s, %s (%s)",
            self.total_steps, o.batch_size, o.gradient_accumulation_steps, len(self.examples),
            self.config.loss.mini_batch_size, self.device, self.autocast_plan.precision, self.autocast_plan.reason,
        )
        batches = self._micro_batches()
        started, window_start = time.perf_counter(), self.step
        while self.step < self.total_steps:
            group = [b for _, b in zip(range(o.gradient_accumulation_steps), batches)]
            if len(group) < o.gradient_accumulation_steps:
                logger.info("data exhausted at step %d", self.step)
                break
            self._train_step(group)
            if self.step % r.logging_steps == 0 or self.step == self.total_steps:
                elapsed = time.perf_counter() - started
                extra = {
                    "lr": float(self.scheduler.get_last_lr()[0]),
                    "lambda_query": self.loss.lambda_query,
                    "lambda_corpus": self.loss.lambda_corpus,
                    "epoch": float(self.sampler.state.epoch),
                    "steps_per_second": (self.step - window_start) / elapsed if elapsed else 0.0,
                }
                self.metrics.flush(self.step, extra)
                started, window_start = time.perf_counter(), self.step
            if r.eval_steps and self.step % r.eval_steps == 0 and self.step < self.total_steps:
                self._run_eval()
            if r.save_steps and self.step % r.save_steps == 0 and self.step < self.total_steps:
                self.save()
                prune_checkpoints(self.output_dir, r.save_total_limit)
        if self.evaluate is not None:
            self._run_eval()
        final = self.output_dir / FINAL_DIR
        self.model.save(final)
        logger.info("saved final model to %s", final)
        return final


def load_examples(config: TrainConfig) -> TrainingExamples:
    """The configured training examples (JSONL under data_root, or a Hugging Face dataset)."""
    d = config.data
    if d.format == "jsonl":
        return load_jsonl_examples(
            config.resolve_path(d.path),
            query=d.query_column or "query",
            positive=d.positive_column or "positive",
            negatives=d.negative_columns if d.negative_columns is not None else ("negative",),
            limit=d.limit,
        )
    local = config.resolve_path(d.path)
    return load_hf_examples(
        str(local) if local.exists() else d.path, subset=d.subset, split=d.split, query=d.query_column,
        positive=d.positive_column, negatives=d.negative_columns, limit=d.limit,
    )


def build_evaluator(config: TrainConfig) -> Evaluate | None:
    if config.eval is None:
        return None
    from trainer.training.evaluate import BeirEvaluator

    e = config.eval
    return BeirEvaluator.from_folder(
        config.resolve_path(e.beir_dir), e.split, batch_size=e.batch_size, max_length=e.max_length,
        max_queries=e.max_queries, extra_documents=e.extra_documents, seed=e.seed,
    )


def resolve_resume(config: TrainConfig) -> Path | None:
    if config.resume_from is None:
        return None
    if config.resume_from == "latest":
        found = list_checkpoints(Path(config.output_dir))
        if not found:
            logger.info("no checkpoint in %s; starting fresh", config.output_dir)
            return None
        return found[-1]
    return Path(config.resume_from)


def run_training(config: TrainConfig, *, evaluate: Evaluate | None = None) -> Path:
    """Load model and data from the config, train, and return the final model directory."""
    seed_everything(config.optim.seed)
    query_weights = config.resolve_path(config.model.query_weights) if config.model.query_weights else None
    model = SpladeModel.from_pretrained(
        config.model.resolve(), max_seq_length=config.model.max_seq_length, query_weights=query_weights
    )
    examples = load_examples(config)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "training_config.json").write_text(config.model_dump_json(indent=2), encoding="utf-8")
    trainer = Trainer(model, examples, config, evaluate=evaluate or build_evaluator(config))
    return trainer.train(resume_from=resolve_resume(config))
