"""Reward heads that read the mean of token states instead of one position.

Two families:

- **BERT encoders** (all-MiniLM-L6-v2). Sentence-embedding encoders were trained with *mean
  pooling*: their [CLS] position and pooler were never trained to summarise a text, so the stock
  ``BertForSequenceClassification`` (pooler on [CLS]) starts a reward model from a poor
  representation. The head reads the masked mean of all token states.
- **Llama-architecture decoders** (SmolLM2). The stock head reads the last token of the last
  layer, which a 135M causal LM uses to predict the next token, not to summarise the answer. On
  HH-RLHF harmless pairs a linear head on the *mean of the response tokens' states* of a middle
  layer separates chosen from rejected better than the last token of any layer (frozen features,
  5-fold cross-validation on the training pool: 0.667 at layer 21 of 30 against 0.60-0.63 for last
  tokens; recipes/reward_hh_smollm2.yaml has the sweep). ``keep_layers``
  keeps only the lowest N layers, which is both the better feature and less compute. The
  response starts after the last ``response_start_token_id`` in a row (the encoding puts that
  marker between prompt and response); a row without it is pooled whole.

Importing this module registers both classes with ``AutoModelForSequenceClassification``, so
saved artifacts load through the Auto classes once ``reward_models`` is imported. Every class
has ``pooled(input_ids, attention_mask)``, the features its linear ``score`` head reads (used to
fit that head by logistic regression before fine-tuning, see ``training.fit_linear_head``).
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
    LlamaConfig,
    LlamaModel,
    LlamaPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

__all__ = [
    "MeanPooledBertConfig",
    "MeanPooledBertForSequenceClassification",
    "MeanPooledLlamaConfig",
    "MeanPooledLlamaForSequenceClassification",
    "load_mean_pooled",
    "response_mask",
]


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def response_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, marker_id: int | None) -> torch.Tensor:
    """``attention_mask`` restricted to the tokens after the last ``marker_id`` of each row.

    Rows without the marker (or ``marker_id`` None) keep their whole mask.

    >>> ids = torch.tensor([[5, 1, 7, 8, 0], [5, 6, 7, 0, 0]])
    >>> response_mask(ids, (ids != 0).long(), marker_id=1).tolist()
    [[0, 0, 1, 1, 0], [1, 1, 1, 0, 0]]
    """
    if marker_id is None:
        return attention_mask
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    is_marker = input_ids == marker_id
    last_marker = torch.where(is_marker, positions, torch.full_like(positions, -1)).max(dim=1, keepdim=True).values
    return attention_mask * (positions > last_marker).to(attention_mask.dtype)


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

    def pooled(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        return _masked_mean(hidden, attention_mask)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_kwargs) -> SequenceClassifierOutput:
        return SequenceClassifierOutput(logits=self.score(self.pooled(input_ids, attention_mask, token_type_ids)))


class MeanPooledLlamaConfig(LlamaConfig):
    model_type = "arbiter-mean-pooled-llama"

    def __init__(self, response_start_token_id: int | None = None, **kwargs):
        self.response_start_token_id = response_start_token_id
        super().__init__(**kwargs)


class MeanPooledLlamaForSequenceClassification(LlamaPreTrainedModel):
    config_class = MeanPooledLlamaConfig

    def __init__(self, config: MeanPooledLlamaConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = LlamaModel(config)  # same attribute name as LlamaForCausalLM: its weights load as is
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def pooled(self, input_ids, attention_mask=None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return _masked_mean(hidden, response_mask(input_ids, attention_mask, self.config.response_start_token_id))

    def forward(self, input_ids=None, attention_mask=None, **_kwargs) -> SequenceClassifierOutput:
        return SequenceClassifierOutput(logits=self.score(self.pooled(input_ids, attention_mask)))


def load_mean_pooled(
    path: str | Path,
    num_labels: int = 1,
    *,
    keep_layers: int | None = None,
    response_start_token_id: int | None = None,
    **kwargs,
):
    """A mean-pooled reward model from a BERT or Llama checkpoint, or a saved mean-pooled model.

    ``keep_layers`` (decoders only) drops every transformer layer above the lowest N; their
    weights are not loaded.
    """
    base = AutoConfig.from_pretrained(path)
    values = {k: v for k, v in base.to_dict().items() if k not in ("model_type", "architectures", "transformers_version")}
    if base.model_type in ("bert", MeanPooledBertConfig.model_type):
        if keep_layers is not None:
            raise ValueError("keep_layers is implemented for decoders, not BERT encoders")
        config = MeanPooledBertConfig(**{**values, "num_labels": num_labels})
        return MeanPooledBertForSequenceClassification.from_pretrained(path, config=config, **kwargs)
    if base.model_type in ("llama", MeanPooledLlamaConfig.model_type):
        if keep_layers is not None:
            if not 1 <= keep_layers <= base.num_hidden_layers:
                raise ValueError(f"keep_layers must be in [1, {base.num_hidden_layers}] for {path}, got {keep_layers}")
            values["num_hidden_layers"] = keep_layers
            values.pop("layer_types", None)  # recomputed for the new depth
        if response_start_token_id is not None:
            values["response_start_token_id"] = response_start_token_id
        config = MeanPooledLlamaConfig(**{**values, "num_labels": num_labels})
        return MeanPooledLlamaForSequenceClassification.from_pretrained(path, config=config, **kwargs)
    raise ValueError(f"mean pooling is implemented for BERT encoders and Llama decoders, not {base.model_type!r} ({path})")


for _config, _model in ((MeanPooledBertConfig, MeanPooledBertForSequenceClassification),
                        (MeanPooledLlamaConfig, MeanPooledLlamaForSequenceClassification)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModelForSequenceClassification.register(_config, _model, exist_ok=True)
