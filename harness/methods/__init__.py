"""Built-in methods (only ``baseline``); the rest are plugin distributions under plugins/."""
