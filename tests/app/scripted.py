"""A policy backend for the chat tests: the tiny model, with generation scripted, installed in the serving app."""

from __future__ import annotations

from policies.backends.local import TransformersBackend


class ScriptedBackend(TransformersBackend):
    """The tiny model, except that generation returns a scripted reply (to exercise output checks)."""

    reply = "Thanks for writing!"

    def generate(self, prompts, **kwargs):
        return [self.reply for _ in prompts]


def install_backend(serving_app, tiny_causal_lm, cls: type[TransformersBackend] = ScriptedBackend, *,
                    name: str = "scripted", **attributes) -> TransformersBackend:
    """Serve every policy of ``serving_app`` with one ``cls`` backend over the tiny model; ``attributes`` are set on it."""
    model, tokenizer = tiny_causal_lm
    backend = cls(model, tokenizer, name=name)
    for key, value in attributes.items():
        setattr(backend, key, value)
    serving_app.state.serving.runtime.backend_factory = lambda version: backend
    return backend
