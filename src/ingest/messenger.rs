//! Importer being written (see src/ingest/mod.rs for the contract).
