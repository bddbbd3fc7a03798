"""The optional layers a ``Config`` turns on, as service factories (HACKING "Services").

A built-in layer (mixnet, messaging, models, training, ...) is a service
like any other; what makes it built in is a field of ``qdht.Config`` that
enables and configures it and a property on ``Node`` that returns its face.
Each layer adds one block below; its package is imported only when the
layer is on, so a node without it pays nothing (not even the import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qdht.config import Config
    from qdht.node._service import ServiceFactory

__all__ = ["builtin_services"]


def builtin_services(config: Config) -> list[ServiceFactory]:
    """The factories of the layers ``config`` enables, in registration order."""
    factories: list[ServiceFactory] = []
    # -- built-in layers (one block per layer: `if config.<layer> is not None:`) --
    if config.messaging is not None:
        from qdht.messaging import messaging_service

        factories.append(messaging_service(config.messaging))

    if config.resolve is not None:
        from qdht.node._resolver import resolver_service

        factories.append(resolver_service)

    if config.models is not None:
        from qdht.models import models_service

        factories.append(models_service(config.models))

    if config.mixnet is not None:
        from qdht.mixnet import mixnet_service

        factories.append(mixnet_service(config.mixnet))

    if config.groups is not None:
        from qdht.groups import groups_service

        factories.append(groups_service(config.groups))

    if config.training is not None:
        from qdht.models.training import training_service

        factories.append(training_service(config.training))
    return factories
