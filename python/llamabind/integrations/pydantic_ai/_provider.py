"""The provider: owns the engines, loads each model once and shares it between model objects."""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pydantic_ai.profiles import ModelProfile
from pydantic_ai.providers import Provider

from llamabind.aio import AsyncLlamaEngine
from llamabind.engine import LlamaEngine
from llamabind.params import ModelParams
from llamabind.resolvers import ModelResolver, resolve_model

PROVIDER_NAME = "llamabind"

_PROBE_MESSAGES = [{"role": "user", "content": "?"}]
_PROBE_TOOLS = [
    {
        "type": "function",
        "function": {"name": "probe", "parameters": {"type": "object", "properties": {}}},
    }
]


def llamabind_model_profile(model_name: str) -> ModelProfile:
    """What a model run by llamabind supports, whatever the model.

    Native structured output is a JSON-schema grammar, so it is the default mode and always
    validates. ``thinking`` is accepted by every model: templates without a thinking switch
    ignore it. The whole prompt is tokenized with special tokens parsed, so pydantic-ai breaks
    chat-template markers that appear inside message text.
    """
    del model_name  # the same for every model
    return ModelProfile(
        supports_tools=True,
        supports_json_schema_output=True,
        supports_json_object_output=True,
        default_structured_output_mode="native",
        supports_thinking=True,
        supports_image_output=False,
        may_tokenize_special_tokens_in_content=True,
        ignore_streamed_leading_whitespace=True,
    )


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One loaded model of a provider.

    Args:
        engine: Its engine (shared by every model object that names the same file and params).
        path: The GGUF file the name resolved to.
        combines_tools_and_schema: Whether its chat template can offer tools and constrain the
            reply to a JSON schema in one request (templates with their own tool syntax can).
    """

    engine: AsyncLlamaEngine
    path: Path
    combines_tools_and_schema: bool


class LlamaProvider(Provider["LlamaProvider"]):
    """Runs GGUF models in this process: resolves names, loads each model once, shares it.

    Model objects (``LlamaModel``, ``LlamaEmbeddingModel``) that name the same file with the same
    ``ModelParams`` share one loaded model. Models load lazily, on their first request, in a
    worker thread. ``async with provider:`` (or an ``async with agent:`` whose model uses it)
    releases them on exit, as does ``await provider.aclose()``; a later request loads again.

    Args:
        resolver: Turns names into files for this provider's models; None uses llamabind's
            default chain (``LLAMABIND_MODELS_PATH``, the current directory, installed packages,
            the download caches, Hugging Face).
        params: How models are loaded (context size, GPU layers, ...); None for the defaults.
    """

    def __init__(
        self, *, resolver: ModelResolver | None = None, params: ModelParams | None = None
    ) -> None:
        if params is not None and not isinstance(params, ModelParams):
            raise TypeError(f"params must be ModelParams, got {type(params).__name__}")
        self.resolver = resolver
        self.params = params
        self._loaded: dict[tuple[Path, ModelParams], LoadedModel] = {}
        self._load_lock = threading.Lock()

    @property
    def name(self) -> str:
        """``"llamabind"``: the provider name recorded on responses."""
        return PROVIDER_NAME

    @property
    def base_url(self) -> str:
        """A placeholder URL: models run in this process, no server is involved."""
        return "llamabind://in-process"

    @property
    def client(self) -> LlamaProvider:
        """The provider itself (it is its own client: engines are made per model)."""
        return self

    @staticmethod
    def model_profile(model_name: str) -> ModelProfile | None:
        """The profile of every llamabind model (see ``llamabind_model_profile``)."""
        return llamabind_model_profile(model_name)

    @property
    def loaded_models(self) -> list[Path]:
        """The files of the models loaded now."""
        return [path for path, _ in self._loaded]

    async def load(
        self,
        model_name: str | os.PathLike[str],
        *,
        resolver: ModelResolver | None = None,
        params: ModelParams | None = None,
    ) -> LoadedModel:
        """The loaded model ``model_name`` names, loading it (in a worker thread) if needed.

        Args:
            model_name: A path, a ``file://``, ``https://`` or ``hf://`` URI, ``package:...``,
                or a plain name for the resolver chain.
            resolver: Overrides the provider's resolver.
            params: Overrides the provider's ModelParams.

        Raises:
            ModelNotFoundError: no resolver found the model (it lists every place searched).
            ModelLoadError: the file could not be loaded.
        """
        return await asyncio.to_thread(self._load, model_name, resolver, params)

    def _load(
        self,
        model_name: str | os.PathLike[str],
        resolver: ModelResolver | None,
        params: ModelParams | None,
    ) -> LoadedModel:
        params = params if params is not None else self.params or ModelParams()
        path = resolve_model(model_name, resolver if resolver is not None else self.resolver)
        key = (path, params)
        with self._load_lock:  # one load per file and params, however many callers wait
            loaded = self._loaded.get(key)
            if loaded is None:
                engine = LlamaEngine()
                try:
                    engine.load_model(path, params)
                    loaded = LoadedModel(
                        AsyncLlamaEngine(engine=engine), path, _combines_tools_and_schema(engine)
                    )
                except BaseException:
                    engine.close()
                    raise
                self._loaded[key] = loaded
            return loaded

    async def aclose(self) -> None:
        """Cancels running generations and frees every loaded model."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Like ``aclose``, for code outside an event loop."""
        with self._load_lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        for model in loaded:
            model.engine.engine.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        """Leaves the provider; the last exit frees the loaded models."""
        await super().__aexit__(exc_type, exc_val, exc_tb)
        if self._entered_count == 0:
            await self.aclose()
        return None

    def __repr__(self) -> str:
        return f"LlamaProvider(resolver={self.resolver!r}, params={self.params!r})"


def _combines_tools_and_schema(engine: LlamaEngine) -> bool:
    try:
        engine.chat_template(
            _PROBE_MESSAGES, tools=_PROBE_TOOLS, response_format={"type": "json_object"}
        )
    except ValueError:
        return False
    return True
