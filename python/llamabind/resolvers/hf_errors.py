"""What a ``huggingface_hub`` failure means for the user: llamabind's errors, with what to do."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llamabind.errors import ModelDownloadError, ModelNotFoundError
from llamabind.resolvers.base import not_found

if TYPE_CHECKING:
    from llamabind.resolvers.hf import HFReference


@dataclass(frozen=True, slots=True)
class LocalOnly:
    """Why only the Hugging Face cache may be used, and what to do about it.

    Attributes:
        why: ``"offline mode is on (HF_HUB_OFFLINE=1)"`` or why the hub could not be reached.
        hint: What the user can do.
        is_offline: Offline mode was asked for (else the hub is unreachable).
    """

    why: str
    hint: str
    is_offline: bool

    def not_cached(self, uri: str, cache_dir: Path) -> Exception:
        """The error for a file that is needed but not in the cache."""
        if self.is_offline:
            return not_found(uri, [(str(cache_dir), f"not in the cache; {self.why}")], self.hint)
        message = f"{uri}: not in the Hugging Face cache ({cache_dir}), and {self.why}; {self.hint}"
        return ModelDownloadError(message, url=uri, reason="connection")


def hub_errors() -> Any:
    """``huggingface_hub.utils``, which exports the error classes in every version since 0.23."""
    return importlib.import_module("huggingface_hub.utils")


def translate_hub_error(
    error: Exception, reference: HFReference, cache_dir: Path, local: LocalOnly | None
) -> Exception | None:
    """llamabind's exception for a ``huggingface_hub`` one, saying what to do (``None``: keep)."""
    errors, uri = hub_errors(), reference.uri()
    login = "set HF_TOKEN or run `hf auth login`"
    if isinstance(error, errors.LocalEntryNotFoundError):
        if local is not None:
            return local.not_cached(uri, cache_dir)
        message = (
            f"{uri}: the connection to the hub failed ({error.__cause__ or error}) and the file "
            "is not in the Hugging Face cache; check the network and retry"
        )
        return ModelDownloadError(message, url=uri, reason="connection")
    if isinstance(error, errors.GatedRepoError):
        message = f"{uri}: the repository is gated; accept its terms on the hub and {login}"
        return ModelDownloadError(message, url=uri, reason="http", status=403)
    list_files = f"list the files with HFModelResolver({reference.repo_id!r}).list_models()"
    not_found_kinds = [
        (errors.RepositoryNotFoundError, "repository", f"check the name; if private, {login}"),
        (errors.RevisionNotFoundError, "revision", "check the branch, tag or commit"),
        (errors.EntryNotFoundError, "file", list_files),
    ]
    for kind, what, hint in not_found_kinds:
        if isinstance(error, kind):
            return not_found(uri, [(uri, f"no such {what} on the hub")], hint)
    if isinstance(error, errors.HfHubHTTPError):
        status = getattr(getattr(error, "response", None), "status_code", None)
        message = f"{uri}: the hub answered HTTP {status}: {error}"
        return ModelDownloadError(message, url=uri, reason="http", status=status)
    if isinstance(error, OSError) or "httpx" in type(error).__module__:
        message = (
            f"{uri}: could not reach the hub ({error}); check the connection, or use "
            "offline mode with a cached model"
        )
        return ModelDownloadError(message, url=uri, reason="connection")
    return None


@contextlib.contextmanager
def translated_hub_errors(
    reference: HFReference, cache_dir: Path, local: LocalOnly | None
) -> Iterator[None]:
    """Raises llamabind's error in place of a ``huggingface_hub`` one inside the block."""
    try:
        yield
    except (ModelNotFoundError, ModelDownloadError):
        raise
    except Exception as error:
        translated = translate_hub_error(error, reference, cache_dir, local)
        if translated is None:
            raise
        raise translated from error
