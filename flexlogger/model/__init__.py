"""Model statistics: TooledModel, its reductions (stats), the flight recorder, TooledModelLogger."""
