"""Tiny LightningModules for callback tests: a bigram language model on random tokens, CPU-fast."""

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

VOCAB = 50


def token_loader(n_sequences: int = 16, seq_len: int = 12, batch_size: int = 4, seed: int = 0) -> DataLoader:
    tokens = torch.randint(VOCAB, (n_sequences, seq_len), generator=torch.Generator().manual_seed(seed))
    return DataLoader(TensorDataset(tokens), batch_size=batch_size)


class BigramLM(L.LightningModule):
    """Returns ``{"logits", "labels", "loss"}`` from ``validation_step`` and records the logits it validated.

    ``val_scales`` multiplies the validation logits epoch by epoch: a scripted, non-monotonic validation curve.
    """

    def __init__(self, lr: float = 0.5, val_scales: tuple = (1.0,)) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, VOCAB)
        self.lr = lr
        self.val_scales = val_scales
        self.validated = []  # (logits, labels) of the batches outside the sanity check, this process only

    def forward(self, tokens):
        return 4 * self.embed(tokens)

    def _loss(self, logits, tokens):
        return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten())

    def training_step(self, batch, batch_idx):
        logits = self(batch[0])
        return self._loss(logits, batch[0])

    def validation_step(self, batch, batch_idx):
        logits = self(batch[0]) * self.val_scales[self.current_epoch % len(self.val_scales)]
        if not self.trainer.sanity_checking:
            self.validated.append((logits.detach().clone(), batch[0].clone()))
        return {"logits": logits, "labels": batch[0], "loss": self._loss(logits, batch[0])}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def trainer(**kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    return L.Trainer(**{**defaults, **kwargs})


class LeaveProcessGroup(L.Callback):
    """Destroys the process group at teardown: a spawned process that exits with it alive can abort in gloo."""

    def teardown(self, trainer, pl_module, stage):
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
