"""Wire format: modules generated from protos/ (never edit by hand) and the codec."""
