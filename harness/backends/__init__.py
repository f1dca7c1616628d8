"""Built-in backends (cpu). GPU backends are plugin distributions under plugins/."""
