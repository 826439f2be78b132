"""The core: Run, FlexLogger (add / log / reset), the plot table, aggregation, distributed pooling."""
