"""Chat templates: a model's Jinja template rendered in a sandbox, as llama.cpp renders it.

``ChatTemplate.from_model(model)`` takes the template from the GGUF file (ChatML, with a
warning, when there is none); ``ChatTemplate(source)`` takes any template text.
``render(messages, tools=..., add_generation_prompt=..., enable_thinking=..., **kwargs)``
returns the prompt. Nothing here imports the compiled extension.
"""

from __future__ import annotations

from .caps import TemplateCaps
from .limits import RenderLimits
from .template import CHATML_TEMPLATE, ChatTemplate, MissingChatTemplateWarning

__all__ = [
    "CHATML_TEMPLATE",
    "ChatTemplate",
    "MissingChatTemplateWarning",
    "RenderLimits",
    "TemplateCaps",
]
