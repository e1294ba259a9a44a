"""Train a tiny character-level GPT with Lightning and track it with the causal-LM metrics of torchmetrics-ext.

Run it from the repository root; with the defaults it takes one to two minutes on two CPU cores::

    python examples/train_tiny_lm.py

The model reads ``examples/data/tiny_corpus.txt`` (about 38 KB of plain English), trains on its first 90 % and
validates on the last 10 %. The validation step hands the metrics the logits and the *unshifted* input ids,
exactly as ``labels=input_ids`` is passed to a Hugging Face model: ``CausalLMPerplexity``, ``CausalLMCrossEntropy``
and ``CausalLMTokenAccuracy`` shift the labels themselves. After each epoch the script prints one line of
validation metrics, and at the end it compares the final perplexity with that of a uniform guess over the
vocabulary, which is the vocabulary size.

Trained much longer (``--epochs 8 --steps-per-epoch 200``) the model overfits its 34 KB of training text: the
validation perplexity bottoms out near 5.8 after about 600 steps and climbs back above 7, while the token accuracy
stays near 0.49, because the model grows confidently wrong on the characters it misses. Perplexity sees this;
accuracy does not.
"""

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from torchmetrics_ext.callbacks import BestMetricCheckpoint, TrainingHealthMonitor, ValidationMetrics
from torchmetrics_ext.text import CausalLMCrossEntropy, CausalLMPerplexity, CausalLMTokenAccuracy

CORPUS = Path(__file__).resolve().parent / "data" / "tiny_corpus.txt"
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def load_corpus(path: Path) -> tuple[Tensor, list[str]]:
    """Read a text file and encode it one character per token.

    Args:
        path: a plain-text file.

    Returns:
        The token ids of the whole text as an int64 tensor, and the vocabulary: the sorted distinct characters,
        so that token ``i`` is ``vocab[i]``.
    """
    text = path.read_text(encoding="utf-8")
    vocab = sorted(set(text))
    index = {char: i for i, char in enumerate(vocab)}
    return torch.tensor([index[char] for char in text], dtype=torch.long), vocab


class TextWindows(Dataset):
    """Windows of ``context`` consecutive tokens, starting every ``stride`` tokens.

    With ``stride=1`` and a shuffling loader every epoch sees fresh random windows of the training text; with
    ``stride=context`` the windows tile the validation text once, so each epoch scores the same tokens.

    Args:
        ids: the encoded text, a 1-D int64 tensor.
        context: tokens per window.
        stride: distance between the starts of consecutive windows.
    """

    def __init__(self, ids: Tensor, context: int, stride: int) -> None:
        if len(ids) < context:
            raise ValueError(f"the text has {len(ids)} tokens, fewer than one window of {context}")
        self.ids, self.context, self.stride = ids, context, stride

    def __len__(self) -> int:
        return (len(self.ids) - self.context) // self.stride + 1

    def __getitem__(self, index: int) -> Tensor:
        start = index * self.stride
        return self.ids[start : start + self.context]


class TinyGPT(nn.Module):
    """A small decoder-only transformer: token and position embeddings, pre-norm causal blocks, a linear head.

    Args:
        vocab_size: number of distinct tokens.
        context: longest sequence the position embedding covers.
        d_model: width of the embeddings and of every block.
        n_heads: attention heads per block.
        n_layers: number of blocks.
        dropout: dropout inside the blocks.
    """

    def __init__(
        self, vocab_size: int, context: int, d_model: int, n_heads: int, n_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(context, d_model)
        # nn.TransformerEncoderLayer with a causal mask is a GPT block; norm_first makes it pre-norm, which trains
        # stably at a high learning rate without warm-up.
        block = nn.TransformerEncoderLayer(
            d_model, n_heads, 4 * d_model, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        # Nested tensors only speed up padded batches at inference; with norm_first PyTorch cannot use them and
        # would warn that it does not.
        self.blocks = nn.TransformerEncoder(block, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = nn.Linear(d_model, vocab_size)
        self.register_buffer("causal_mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, input_ids: Tensor) -> Tensor:
        """Return the next-token logits ``[batch, seq_len, vocab_size]`` of ``input_ids`` ``[batch, seq_len]``."""
        seq_len = input_ids.shape[1]
        positions = torch.arange(seq_len, device=input_ids.device)
        hidden = self.token_embedding(input_ids) + self.position_embedding(positions)
        hidden = self.blocks(hidden, mask=self.causal_mask[:seq_len, :seq_len], is_causal=True)
        return self.head(hidden)


class CharLM(L.LightningModule):
    """Trains :class:`TinyGPT` on next-character prediction and validates it with the causal-LM metrics.

    Args:
        vocab_size: number of distinct characters.
        context: tokens per training window.
        d_model: width of the model.
        n_heads: attention heads per block.
        n_layers: number of transformer blocks.
        dropout: dropout inside the blocks.
        lr: AdamW learning rate.
    """

    def __init__(
        self,
        vocab_size: int,
        context: int,
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 2,
        dropout: float = 0.1,
        lr: float = 3e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPT(vocab_size, context, d_model, n_heads, n_layers, dropout)

    def forward(self, input_ids: Tensor) -> Tensor:
        """Return the logits ``[batch, seq_len, vocab_size]`` of ``input_ids``."""
        return self.model(input_ids)

    @staticmethod
    def _shifted_cross_entropy(logits: Tensor, input_ids: Tensor) -> Tensor:
        """Mean cross-entropy of every token after the first given the tokens before it."""
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), input_ids[:, 1:].flatten())

    def training_step(self, input_ids: Tensor, batch_idx: int) -> Tensor:
        """Return the training loss of one batch."""
        loss = self._shifted_cross_entropy(self(input_ids), input_ids)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, input_ids: Tensor, batch_idx: int) -> dict[str, Tensor]:
        """Return what the validation metrics need; the ``ValidationMetrics`` callback updates and logs them."""
        logits = self(input_ids)
        self.log("val/loss", self._shifted_cross_entropy(logits, input_ids))
        # The labels are the input ids themselves, unshifted, as with `model(input_ids, labels=input_ids)` in
        # Hugging Face: the metrics score logits[:, t] against input_ids[:, t + 1] on their own.
        return {"logits": logits, "labels": input_ids}

    def on_validation_end(self) -> None:
        """Print the validation metrics of the epoch, once they are logged, except during the sanity check."""
        if self.trainer.sanity_checking:
            return
        values = {name: float(value) for name, value in self.trainer.callback_metrics.items()}
        self.print(
            f"epoch {self.current_epoch}: val perplexity {values['val/perplexity']:.2f}, "
            f"cross-entropy {values['val/cross_entropy']:.2f} nats, token accuracy {values['val/token_accuracy']:.3f}"
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Return AdamW over all the parameters."""
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line; every option has a default that fits the time budget of a CPU."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="plain-text file to train on")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=100, help="training batches per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=128, help="characters per window")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="auto", help='"cpu", "gpu", "mps" or "auto"')
    parser.add_argument("--progress-bar", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--checkpoint-dir", type=Path, default=CHECKPOINTS, help="where the best checkpoint by val/perplexity goes"
    )
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train the model as ``args`` says and return its final validation metrics and the vocabulary size.

    Args:
        args: the options of :func:`parse_args`.

    Returns:
        ``{"perplexity", "cross_entropy", "token_accuracy", "vocab_size"}`` as floats, the metrics of the last
        validation epoch, with ``"best_path"`` and ``"best_perplexity"`` of the best checkpoint.
    """
    L.seed_everything(args.seed, workers=True)
    ids, vocab = load_corpus(args.corpus)
    # A contiguous split: validation text the model never saw, rather than windows interleaved with training.
    split = int(0.9 * len(ids))
    train_loader = DataLoader(
        TextWindows(ids[:split], args.context, stride=1), batch_size=args.batch_size, shuffle=True
    )
    val_loader = DataLoader(TextWindows(ids[split:], args.context, stride=args.context), batch_size=args.batch_size)

    module = CharLM(len(vocab), args.context, d_model=args.d_model, lr=args.lr)
    metrics = ValidationMetrics(
        {
            "perplexity": CausalLMPerplexity(),
            "cross_entropy": CausalLMCrossEntropy(),
            "token_accuracy": CausalLMTokenAccuracy(),
        },
        prefix="val/",
    )
    # mode "min" comes from CausalLMPerplexity.higher_is_better; the file is named ...-val_perplexity=5.8412.ckpt
    best = BestMetricCheckpoint(monitor="val/perplexity", dirpath=args.checkpoint_dir)
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=1,  # the model is tiny: more devices would only add start-up time
        max_epochs=args.epochs,
        limit_train_batches=args.steps_per_epoch,
        logger=False,
        # the monitor warns on a NaN loss, explosion, plateau, oscillation or overfitting (read from "val/loss",
        # logged by validation_step); with a logger it also records train/grad_norm, train/lr and train/perplexity
        callbacks=[metrics, best, TrainingHealthMonitor(log_perplexity=True)],
        enable_progress_bar=args.progress_bar,
    )
    with warnings.catch_warnings():
        # The windows are slices of a tensor in memory; worker processes would cost more than they save.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(module, train_loader, val_loader)

    values = {
        name.removeprefix("val/"): float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith("val/")
    }
    best_score = math.nan if best.best_model_score is None else float(best.best_model_score)  # None: never validated
    best_values = {"best_path": best.best_model_path, "best_perplexity": best_score}
    return {**values, **best_values, "vocab_size": float(len(vocab))}


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Train, print the final perplexity next to that of a uniform guess, and return the final metrics."""
    metrics = train(parse_args(argv))
    perplexity, uniform = metrics["perplexity"], metrics["vocab_size"]
    # A model that guesses every character with probability 1 / V has perplexity exactly V.
    print(
        f"final val perplexity {perplexity:.2f} vs {uniform:.0f} for a uniform guess over the vocabulary "
        f"({uniform / perplexity:.1f}x better)"
    )
    print(f"best checkpoint: {metrics['best_path']} (val perplexity {metrics['best_perplexity']:.2f})")
    if not math.isfinite(perplexity) or perplexity >= uniform:
        sys.exit("the model did not beat a uniform guess: try more --epochs or --steps-per-epoch")
    return metrics


if __name__ == "__main__":
    main()
