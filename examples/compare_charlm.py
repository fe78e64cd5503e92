"""Does pre-training help a character LM? `lsc.compare` on a 3x128 nn.LSTM, the README's
"Does it help my model?" example, as printed there (offline: the Python standard library's
own sources are the corpus).

    python examples/compare_charlm.py      # a few minutes on one core; resumes from runs/compare-charlm
"""

import math

import torch
from torch import nn

import lsc
from lsc.tasks.text import build_vocab, stdlib_corpus, to_ids

torch.set_num_threads(1)
text, _ = stdlib_corpus(200_000)
vocab = build_vocab(list(text))
ids = to_ids(list(text), vocab, vocab[0])
windows = ids[: len(ids) // 65 * 65].view(-1, 65)  # 65-character windows: input 64, target shifted by one
split = int(0.9 * len(windows))
train, held_out = (windows[:split, :-1], windows[:split, 1:]), (windows[split:, :-1], windows[split:, 1:])


class CharLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(vocab), 32)
        self.lstm = nn.LSTM(32, 128, num_layers=3, batch_first=True)
        self.head = nn.Linear(128, len(vocab))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(x))[0])


def bits(logits: torch.Tensor, item: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:  # bits per character
    return nn.functional.cross_entropy(logits.flatten(0, 1), item[1].flatten()) / math.log(2)


c = lsc.compare(
    lambda seed: CharLM(),
    train,
    loss=bits,
    eval_data=held_out,
    inits=("default", 0.5, 1.0),
    steps=300,
    seeds=3,
    out="runs/compare-charlm",
    pretrain_options={"kinds": ["time", "depth"]},
)
print(c.table())
print(c)
c.plot("compare-charlm.png")
