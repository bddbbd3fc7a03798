"""Models: the chunked model store and federated training (DESIGN §4 "Models").

Each subpackage is imported below in its own block, so that the store and the
training layer can be developed (and merged) independently.
"""

# -- training (protocol-spec/14-training.md) --
from qdht.models import training as training
