"""NetworkPolicy enforced by nftables in each node's network namespace.

:mod:`.render` turns policies, pods and namespaces into one ``nft -f`` script (pure),
:mod:`.apply` loads it inside the node namespace, :mod:`.enforcer` keeps it in step
with the API.
"""

from .enforcer import PolicyEnforcer
from .render import render_policy_ruleset

__all__ = ["PolicyEnforcer", "render_policy_ruleset"]
