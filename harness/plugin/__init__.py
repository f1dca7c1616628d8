"""The plugin contract: the objects a plugin registers (``types``) and the hooks it implements
(``hookspecs``). Plugin authors import these through ``harness`` itself."""
