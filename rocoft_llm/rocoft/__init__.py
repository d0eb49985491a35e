"""The RoCoFT method: the layer, index selection, applying/merging, adapters."""
