"""qdht-lint: checks protocol-spec/ and any implementation's messages against it."""

__all__: list[str] = []
