"""Getting real pretrained models: GGUF import and models shipped by package-registry packages."""
