"""The node's service proxy: nftables rules in the node namespace, and the ``kubernetes`` Service forwarder.

:mod:`.render` decides (pure), :mod:`.apply` loads the table, :mod:`.proxy` follows the
API, :mod:`.apiforward` answers 10.96.0.1:443 inside the node namespace.
"""

from .apiforward import ApiForwarder
from .apply import NftApplier
from .proxy import ServiceProxy
from .render import render_ruleset

__all__ = ["ApiForwarder", "NftApplier", "ServiceProxy", "render_ruleset"]
