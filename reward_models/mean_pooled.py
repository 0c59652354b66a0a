"""A BERT reward model that reads the mean of its token states instead of the [CLS] token.

Sentence-embedding encoders such as all-MiniLM-L6-v2 were trained with *mean pooling*: their
[CLS] position and pooler were never trained to summarise a text, so the stock
``BertForSequenceClassification`` (pooler on [CLS]) starts a reward model from a poor
representation. This class keeps BERT's weights and puts the reward head on the masked mean
of the last hidden states, which is what the encoder was trained to produce.

Importing this module registers the class with ``AutoModelForSequenceClassification`` (config
``model_type = "arbiter-mean-pooled-bert"``), so saved artifacts load through the Auto classes
once ``reward_models`` is imported. Nothing else here: no training, no scoring.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

__all__ = ["MeanPooledBertConfig", "MeanPooledBertForSequenceClassification", "load_mean_pooled"]


class MeanPooledBertConfig(BertConfig):
    model_type = "arbiter-mean-pooled-bert"


class MeanPooledBertForSequenceClassification(BertPreTrainedModel):
    config_class = MeanPooledBertConfig

    def __init__(self, config: MeanPooledBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.score = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_kwargs) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return SequenceClassifierOutput(logits=self.score(pooled))


def load_mean_pooled(path: str | Path, num_labels: int = 1, **kwargs) -> MeanPooledBertForSequenceClassification:
    """From a BERT checkpoint (any BERT-family ``config.json``) or a saved mean-pooled model."""
    base = AutoConfig.from_pretrained(path)
    if base.model_type not in ("bert", MeanPooledBertConfig.model_type):
        raise ValueError(f"mean pooling is implemented for BERT encoders, not {base.model_type!r} ({path})")
    values = {k: v for k, v in base.to_dict().items() if k not in ("model_type", "architectures")}
    config = MeanPooledBertConfig(**values, num_labels=num_labels)
    return MeanPooledBertForSequenceClassification.from_pretrained(path, config=config, **kwargs)


AutoConfig.register(MeanPooledBertConfig.model_type, MeanPooledBertConfig, exist_ok=True)
AutoModelForSequenceClassification.register(MeanPooledBertConfig, MeanPooledBertForSequenceClassification, exist_ok=True)
