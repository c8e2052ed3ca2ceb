"""The always-on bot: one transport-agnostic command layer, thin chat adapters, scheduler, state."""
