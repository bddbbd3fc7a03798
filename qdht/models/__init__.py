# Models layer (DESIGN §4 "Models"); each subpackage is imported in its own block.
# -- training (protocol-spec/14-training.md) --
from qdht.models import training as training
