"""Job handlers of the Unitalk side (registered at start-up by UnitalkConfig.ready)."""
