//! The transform stage: API pages and statement files into typed Arrow record batches.
