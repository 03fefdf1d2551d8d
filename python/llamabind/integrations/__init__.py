"""Integrations of llamabind with other frameworks, each behind its own extra.

- :mod:`llamabind.integrations.pydantic_ai`: a pydantic-ai ``Model``, ``EmbeddingModel`` and
  provider (``pip install 'llamabind[pydantic-ai]'``).

Nothing here is imported by ``import llamabind``; importing an integration without its extra
raises an ``ImportError`` that names the ``pip install`` to run.
"""
